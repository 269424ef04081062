// gptx/recipes/chat.hpp: a chat checkpoint loaded behind a shape-free interface, what `gptx chat`
// talks to: its tokenizer and chat format, and streaming replies over one KV cache. A front end
// (the command's terminal loop, a server) is written once, not once per shape.
// Tested by tests/cli/test_chat_cli.cpp and tests/chat/test_chat_tmux.sh.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "../generate/generate.hpp"
#include "../generate/sampler.hpp"
#include "../io/checkpoint.hpp"
#include "../io/import.hpp"
#include "../nn/kv_cache.hpp"
#include "../nn/transformer.hpp"
#include "../ops/gemm_bf16.hpp"
#include "../text/chat_format.hpp"
#include "../text/tokenizer.hpp"

namespace gptx {

class chat_model {
  public:
    virtual ~chat_model() = default;
    virtual const tokenizer& tok() const = 0;
    virtual const chat_format& format() const = 0;
    virtual shape dims() const = 0;
    virtual int vocab() const = 0;
    virtual int context() const = 0;
    // Samples a reply to the formatted prompt until the end-of-turn token or max_new tokens;
    // on_token(id) sees each token kept and returns false to stop after it.
    virtual generation reply(const std::vector<int>& prompt, int max_new, const sampling_config& sc,
                             const std::function<bool(int id)>& on_token) = 0;
};

namespace detail {
template <shape S> class chat_model_of final : public chat_model {
  public:
    chat_model_of(const std::filesystem::path& file, const checkpoint_info& info)
        : model_(info.config), fmt_(load(file)), cache_(model_, 1) {
        for (int id : {fmt_.system, fmt_.user, fmt_.assistant, fmt_.end})
            GPTX_CHECK(id < model_.vocab(), "chat: the chat token ", id,
                       " is outside the model's vocabulary of ", model_.vocab());
        cache_.set_weights_precision(ops::matmul_precision()); // --precision bf16: bf16 weights
    }
    const tokenizer& tok() const override { return tok_; }
    const chat_format& format() const override { return fmt_; }
    shape dims() const override { return S; }
    int vocab() const override { return model_.vocab(); }
    int context() const override { return model_.context(); }
    generation reply(const std::vector<int>& prompt, int max_new, const sampling_config& sc,
                     const std::function<bool(int id)>& on_token) override {
        generate_options opts;
        opts.end_of_text = fmt_.end;
        opts.on_token = on_token;
        return generate(cache_, prompt, max_new, sc, opts);
    }

  private:
    chat_format load(const std::filesystem::path& file) {
        load_model<S>(file, model_, &tok_);
        try {
            return chat_format::of(tok_);
        } catch (const error& e) {
            fail(file.string(), ": ", e.what());
        }
    }

    transformer<S> model_;
    tokenizer tok_;
    chat_format fmt_;
    kv_cache<transformer<S>> cache_;
};
} // namespace detail

// Loads the chat checkpoint `file` (its info read beforehand, which fixes S). Throws, naming the
// file, when its tokenizer has no chat format or the format's tokens are outside the model.
template <shape S>
std::unique_ptr<chat_model> load_chat_model(const std::filesystem::path& file,
                                            const checkpoint_info& info) {
    return std::make_unique<detail::chat_model_of<S>>(file, info);
}

} // namespace gptx
