// samples/cli/sample.cpp: `gptx sample`, text generation from a checkpoint or imported GPT-2
// weights (GGUF, llm.c .bin, Hugging Face .safetensors) with the KV cache, streamed to stdout.
// Tested by tests/cli/test_cli.cpp and tests/cli/test_tokenize_cli.cpp.
#include <cstdio>

#include <CLI/CLI.hpp>

#include <gptx/io/import.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace gptx::cli {

struct sample_options {
    std::string checkpoint = "out", prompt = "\n";
    int tokens = 200, num_samples = 1;
    float temperature = 0.8f, top_p = 1.0f;
    int top_k = 200;
    std::uint64_t seed = 1337;
    std::vector<std::string> stop;
    std::string weights, tokenizer_kind = "gpt2", vocab_dir, tokenizer_file; // imported weights
};

inline void add_sample_command(CLI::App& app, sample_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand("sample", "Generate text from a checkpoint");
    auto* ckpt = c->add_option("--checkpoint", o.checkpoint, "Run folder or checkpoint file");
    auto* weights =
        c->add_option("--weights", o.weights,
                      "GPT-2 weights instead: GGUF, llm.c .bin or Hugging Face .safetensors");
    ckpt->excludes(weights);
    weights->excludes(ckpt);
    c->add_option("--tokenizer", o.tokenizer_kind, "With --weights: gpt2 (default) or byte")
        ->check(CLI::IsMember({"gpt2", "byte"}));
    c->add_option("--vocab-dir", o.vocab_dir,
                  "With --weights: folder with encoder.json and vocab.bpe");
    c->add_option("--tokenizer-file", o.tokenizer_file,
                  "With --weights: a tokenizer saved by gptx tokenize (PREFIX_tokenizer.gtok)");
    c->add_option("--prompt", o.prompt, "Text to continue (default: a newline)");
    c->add_option("--tokens", o.tokens, "New tokens per sample");
    c->add_option("--num-samples", o.num_samples, "Independent samples");
    c->add_option("--temperature", o.temperature, "0 = greedy");
    c->add_option("--top-k", o.top_k, "Keep the k most likely tokens (0 = all)");
    c->add_option("--top-p", o.top_p, "Nucleus: keep the smallest set with this much probability");
    c->add_option("--seed", o.seed, "Sampling seed");
    c->add_option("--stop", o.stop, "Stop when the continuation contains this text (repeatable)");
    c->callback([&] { run(); });
}

namespace detail {

// Streams o.num_samples continuations of o.prompt to stdout.
template <shape S>
void generate_samples(const sample_options& o, transformer<S>& model, const tokenizer& tok) {
    const std::vector<int> prompt = tok.encode(o.prompt, "prompt");
    for (std::size_t i = 0; i < prompt.size(); ++i)
        GPTX_CHECK(prompt[i] < model.vocab(), "prompt token ", prompt[i], " ('",
                   tok.decode_token(prompt[i]), "') is outside the model's vocabulary of ",
                   model.vocab(), " tokens");
    GPTX_CHECK(static_cast<int>(prompt.size()) < model.context(), "prompt has ", prompt.size(),
               " tokens; the model's context is ", model.context());
    kv_cache<transformer<S>> cache(model, 1);
    cache.set_weights_precision(ops::matmul_precision()); // --precision bf16: bf16 weights
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
        // Stream: print each token as it arrives.
        opts.on_token = [&](int id) {
            const std::string piece = tok.decode_token(id);
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            return true;
        };
        std::fwrite(o.prompt.data(), 1, o.prompt.size(), stdout);
        generate(cache, prompt, o.tokens, sc, opts);
        std::printf("\n---------------\n");
    }
}

} // namespace detail

inline void run_sample(const sample_options& o) {
    GPTX_CHECK(o.tokens > 0, "--tokens must be positive, got ", o.tokens);
    GPTX_CHECK(o.num_samples > 0, "--num-samples must be positive, got ", o.num_samples);
    GPTX_CHECK(o.temperature >= 0, "--temperature must be >= 0, got ", o.temperature);
    GPTX_CHECK(o.top_k >= 0, "--top-k must be >= 0, got ", o.top_k);
    GPTX_CHECK(o.top_p > 0 && o.top_p <= 1, "--top-p must be in (0, 1], got ", o.top_p);
    GPTX_CHECK(!o.prompt.empty(), "--prompt is empty: give some text to continue");
    if (!o.weights.empty()) {
        const fs::path file = o.weights;
        const weights_info info = read_weights_info(file);
        // A GGUF carries its tokenizer; the options name one for the other formats.
        const auto own = o.tokenizer_file.empty() && o.vocab_dir.empty()
                             ? read_weights_tokenizer(file)
                             : std::nullopt;
        const tokenizer tok = own ? *own
                              : o.tokenizer_file.empty()
                                  ? make_tokenizer(o.tokenizer_kind, "", o.vocab_dir)
                                  : tokenizer::deserialize(read_text_file(o.tokenizer_file));
        GPTX_CHECK(info.config.vocab <= tok.vocab_size(), file.string(),
                   ": the model's vocabulary (", info.config.vocab, ") is larger than the ",
                   tok.kind(), " tokenizer's (", tok.vocab_size(), ")");
        const bool found = with_weights_preset(info, [&]<shape S>() {
            transformer<S> model(info.config);
            load_weights<S>(file, model);
            detail::generate_samples(o, model, tok);
        });
        GPTX_CHECK(found, file.string(), ": a GPT-2 of ",
                   gptx::detail::weights_shape_text(info.dims), ": ",
                   gptx::detail::preset_hint(info.dims));
        return;
    }
    const fs::path file = checkpoint_file(o.checkpoint);
    const checkpoint_info info = read_checkpoint_info(file);
    const bool found = with_checkpoint_preset(info, [&]<shape S>() {
        transformer<S> model(info.config);
        tokenizer tok;
        load_checkpoint<S>(file, model, nullptr, &tok, nullptr);
        detail::generate_samples(o, model, tok);
    });
    GPTX_CHECK(found, file.string(), ": no preset has the checkpoint's shape ",
               to_string(info.dims));
}

void add_sample_command(commands& cmds) { cmds.add(add_sample_command, run_sample); }

} // namespace gptx::cli
