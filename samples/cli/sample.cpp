// samples/cli/sample.cpp: `gptx sample`, text generation from a checkpoint or imported GPT-2
// weights (GGUF, llm.c .bin, Hugging Face .safetensors) streamed to stdout: the options of
// run_sample (gptx/recipes/sample.hpp), its dispatch on the model's shape, and the printing.
// Tested by tests/cli/test_cli.cpp and tests/cli/test_tokenize_cli.cpp.
#include <cstdio>
#include <string_view>

#include <CLI/CLI.hpp>

#include <gptx/recipes/sample.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "instances/sample.hpp"

namespace gptx::cli {

using sample_options = sample_run_options;

inline void add_sample_command(CLI::App& app, sample_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand("sample", "Generate text from a checkpoint");
    auto* ckpt = c->add_option("--checkpoint", o.checkpoint, "Run folder or checkpoint file");
    auto* weights =
        c->add_option("--weights", o.weights,
                      "GPT-2 weights instead: GGUF, llm.c .bin or Hugging Face .safetensors");
    ckpt->excludes(weights);
    weights->excludes(ckpt);
    // A checkpoint carries its own tokenizer: these apply to --weights alone.
    c->add_option("--tokenizer", o.tokenizer_kind, "With --weights: gpt2 (default) or byte")
        ->check(CLI::IsMember({"gpt2", "byte"}))
        ->needs(weights);
    c->add_option("--vocab-dir", o.vocab_dir,
                  "With --weights: folder with encoder.json and vocab.bpe")
        ->needs(weights);
    c->add_option("--tokenizer-file", o.tokenizer_file,
                  "With --weights: a tokenizer saved by gptx tokenize (PREFIX_tokenizer.gtok)")
        ->needs(weights);
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

inline void sample_command(const sample_options& o) {
    validate_sample_options(o);
    // Each piece as it arrives, each sample followed by a rule.
    sample_stream out;
    out.on_text = [](int, std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
    };
    out.on_end = [](int) { std::printf("\n---------------\n"); };
    if (!o.weights.empty()) {
        const fs::path file = o.weights;
        const weights_info info = read_weights_info(file);
        const tokenizer tok = sample_weights_tokenizer(o, file, info);
        const bool found = with_weights_preset(
            info, [&]<shape S>() { run_sample_weights<S>(o, file, info, tok, out); });
        GPTX_CHECK(found, file.string(), ": a GPT-2 of ",
                   gptx::detail::weights_shape_text(info.dims), ": ",
                   gptx::detail::preset_hint(info.dims));
        return;
    }
    const fs::path file = checkpoint_file(o.checkpoint);
    const checkpoint_info info = read_checkpoint_info(file);
    const bool found =
        with_checkpoint_preset(info, [&]<shape S>() { run_sample<S>(o, file, info, out); });
    GPTX_CHECK(found, file.string(), ": no preset has the checkpoint's shape ",
               to_string(info.dims));
}

void add_sample_command(commands& cmds) { cmds.add(add_sample_command, sample_command); }

} // namespace gptx::cli
