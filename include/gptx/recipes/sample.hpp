// gptx/recipes/sample.hpp: text generation from a checkpoint or imported GPT-2 weights (GGUF,
// llm.c .bin, Hugging Face .safetensors) with the KV cache, streamed as it is generated: what
// `gptx sample` prints. Tested by tests/cli/test_cli.cpp and tests/cli/test_tokenize_cli.cpp.
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "../core/file.hpp"
#include "../core/shape.hpp"
#include "../generate/generate.hpp"
#include "../generate/sampler.hpp"
#include "../io/checkpoint.hpp"
#include "../io/import.hpp"
#include "../io/weights.hpp"
#include "../nn/kv_cache.hpp"
#include "../nn/transformer.hpp"
#include "../ops/gemm_bf16.hpp"
#include "../text/tokenizer.hpp"

namespace gptx {

// The model, the prompt and the sampling; the defaults are `gptx sample`'s. Errors name the
// options by their command-line flags.
struct sample_run_options {
    std::string checkpoint = "out", prompt = "\n";
    int tokens = 200, num_samples = 1;
    float temperature = 0.8f, top_p = 1.0f;
    int top_k = 200;
    std::uint64_t seed = 1337;
    std::vector<std::string> stop;
    std::string weights, tokenizer_kind = "gpt2", vocab_dir, tokenizer_file; // imported weights
};

// Where the samples go as they are generated (either may be empty): on_text gets sample i's
// prompt, then the text of each new token; on_end follows its last piece.
struct sample_stream {
    std::function<void(int sample, std::string_view text)> on_text;
    std::function<void(int sample)> on_end;
};

// Throws, naming the flag, on a sampling option out of range.
inline void validate_sample_options(const sample_run_options& o) {
    GPTX_CHECK(o.tokens > 0, "--tokens must be positive, got ", o.tokens);
    GPTX_CHECK(o.num_samples > 0, "--num-samples must be positive, got ", o.num_samples);
    GPTX_CHECK(o.temperature >= 0 && std::isfinite(o.temperature),
               "--temperature must be a finite number >= 0, got ", o.temperature);
    GPTX_CHECK(o.top_k >= 0, "--top-k must be >= 0, got ", o.top_k);
    GPTX_CHECK(o.top_p > 0 && o.top_p <= 1, "--top-p must be in (0, 1], got ", o.top_p);
    GPTX_CHECK(!o.prompt.empty(), "--prompt is empty: give some text to continue");
}

// The tokenizer for the weights file `file` (info read from it): a GGUF's own unless o names
// one (o.tokenizer_file, or o.tokenizer_kind with o.vocab_dir), checked to cover the model's
// vocabulary.
inline tokenizer sample_weights_tokenizer(const sample_run_options& o,
                                          const std::filesystem::path& file,
                                          const weights_info& info) {
    const auto own = o.tokenizer_file.empty() && o.vocab_dir.empty() ? read_weights_tokenizer(file)
                                                                     : std::nullopt;
    tokenizer tok = own                        ? *own
                    : o.tokenizer_file.empty() ? make_tokenizer(o.tokenizer_kind, "", o.vocab_dir)
                                               : read_tokenizer_file(o.tokenizer_file);
    GPTX_CHECK(info.config.vocab <= tok.vocab_size(), file.string(), ": the model's vocabulary (",
               info.config.vocab, ") is larger than the ", tok.kind(), " tokenizer's (",
               tok.vocab_size(), ")");
    return tok;
}

namespace detail {

// o.num_samples continuations of o.prompt from a loaded model, streamed to out.
template <shape S>
std::vector<generation> sample_from_model(const sample_run_options& o, transformer<S>& model,
                                          const tokenizer& tok, const sample_stream& out) {
    const std::vector<int> prompt = tok.encode(o.prompt, "prompt");
    for (std::size_t i = 0; i < prompt.size(); ++i)
        GPTX_CHECK(prompt[i] < model.vocab(), "prompt token ", prompt[i], " ('",
                   tok.decode_token(prompt[i]), "') is outside the model's vocabulary of ",
                   model.vocab(), " tokens");
    GPTX_CHECK(static_cast<int>(prompt.size()) < model.context(), "prompt has ", prompt.size(),
               " tokens; the model's context is ", model.context());
    kv_cache<transformer<S>> cache(model, 1);
    cache.set_weights_precision(ops::matmul_precision()); // --precision bf16: bf16 weights
    std::vector<generation> results;
    for (int i = 0; i < o.num_samples; ++i) {
        sampling_config sc{o.temperature, o.top_k, o.top_p, o.seed + static_cast<std::uint64_t>(i)};
        generate_options opts;
        opts.stop_strings = o.stop;
        opts.slide_context = true; // free-running text may exceed the context
        // A model from gptx sft/pipeline reserves the id after a char/byte tokenizer's last for
        // end-of-text: the tokenizer cannot print it, so it ends the sample.
        if (model.vocab() > tok.vocab_size())
            opts.end_of_text = tok.vocab_size();
        opts.decode = [&](std::span<const int> ids) { return tok.decode(ids); };
        if (out.on_text)
            opts.on_token = [&](int id) {
                out.on_text(i, tok.decode_token(id));
                return true;
            };
        if (out.on_text)
            out.on_text(i, o.prompt);
        results.push_back(generate(cache, prompt, o.tokens, sc, opts));
        if (out.on_end)
            out.on_end(i);
    }
    return results;
}

} // namespace detail

// Samples from the checkpoint file (its info read beforehand, which fixes S) with its own
// tokenizer; returns each sample's continuation and streams it to out.
template <shape S>
std::vector<generation> run_sample(const sample_run_options& o, const std::filesystem::path& file,
                                   const checkpoint_info& info, const sample_stream& out = {}) {
    validate_sample_options(o);
    transformer<S> model(info.config);
    tokenizer tok;
    load_checkpoint<S>(file, model, nullptr, &tok, nullptr);
    return detail::sample_from_model(o, model, tok, out);
}

// The same from a weights file (read_weights_info, which fixes S through with_weights_preset)
// with tok (sample_weights_tokenizer).
template <shape S>
std::vector<generation>
run_sample_weights(const sample_run_options& o, const std::filesystem::path& file,
                   const weights_info& info, const tokenizer& tok, const sample_stream& out = {}) {
    validate_sample_options(o);
    transformer<S> model(info.config);
    load_weights<S>(file, model);
    return detail::sample_from_model(o, model, tok, out);
}

} // namespace gptx
