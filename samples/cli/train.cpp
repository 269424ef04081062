// samples/cli/train.cpp: `gptx train`, language-model pre-training on a text or token file with
// periodic evaluation, checkpoints and metrics.jsonl: the options of run_pretrain
// (gptx/recipes/pretrain.hpp) and its dispatch on the preset or --weights' shape. Tested by
// tests/cli/test_cli.cpp.
#include <cstdio>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include <gptx/recipes/pretrain.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "instances/pretrain.hpp"

namespace gptx::cli {

using train_options = pretrain_run_options;

inline void add_train_command(CLI::App& app, train_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand("train", "Pre-train a GPT language model on a text or token file");
    c->add_option("--text", o.text, "Training text (UTF-8 or any bytes)");
    c->add_option("--train-bin", o.train_bin,
                  "Training tokens (.bin from gptx tokenize), instead of --text");
    c->add_option("--val-bin", o.val_bin,
                  "Validation tokens (.bin; default: the last 10% of --train-bin)");
    c->add_option("--tokenizer", o.tokenizer_kind, "char (sorted unique characters), byte or gpt2")
        ->check(CLI::IsMember({"char", "byte", "gpt2"}));
    c->add_option("--vocab-dir", o.vocab_dir,
                  "Folder with encoder.json and vocab.bpe (--tokenizer gpt2)");
    c->add_option(
        "--tokenizer-file", o.tokenizer_file,
        "Tokenizer saved by gptx tokenize (PREFIX_tokenizer.gtok); overrides --tokenizer");
    c->add_option("--preset", o.preset_name, "Model shape: " + preset_names());
    c->add_option("--weights", o.weights,
                  "Start from these weights instead of random ones (GGUF, safetensors, llm.c .bin "
                  "or .gptx): shape, vocabulary, context and tokenizer come from the file");
    c->add_option("--batch", o.batch, "Sequences per micro-batch");
    c->add_option("--context", o.context, "Tokens per training sequence");
    c->add_option("--model-context", o.model_context,
                  "Positions the model holds (default: --context)");
    c->add_option("--iters", o.iters, "Optimizer steps");
    c->add_option("--grad-accum", o.grad_accum, "Micro-batches per step");
    c->add_option("--lr", o.lr, "Peak learning rate");
    c->add_option("--min-lr", o.min_lr, "Cosine floor");
    c->add_option("--warmup", o.warmup, "Linear warmup steps");
    c->add_option("--decay-iters", o.decay_iters, "Cosine decay length (default: --iters)");
    c->add_option("--weight-decay", o.weight_decay, "AdamW decay on 2-D weights");
    c->add_option("--beta1", o.beta1, "AdamW beta1");
    c->add_option("--beta2", o.beta2, "AdamW beta2");
    c->add_option("--grad-clip", o.grad_clip, "Global gradient-norm clip (0 disables)");
    c->add_option("--dropout", o.dropout, "Dropout rate (0 disables)");
    c->add_option("--eval-every", o.eval_every, "Steps between evaluations");
    c->add_option("--eval-iters", o.eval_iters, "Batches per evaluation");
    c->add_option("--log-every", o.log_every, "Steps between progress lines");
    c->add_option("--seed", o.seed, "Seed for init, batches and dropout");
    c->add_option("--rng", o.rng_kind,
                  "Random stream for init and batches: gptx (xoshiro256**), or torch: PyTorch's, "
                  "drawn as nanoGPT's train.py draws, so --seed 1337 starts where nanoGPT starts "
                  "(with --model-context equal to --context, nanoGPT's one block_size)")
        ->check(CLI::IsMember({"gptx", "torch"}));
    c->add_option("--out", o.out, "Run folder: model.gptx and metrics.jsonl");
    c->add_flag("--resume", o.resume, "Continue from the checkpoint in --out");
    c->add_option("--zero", o.zero,
                  "Under mpirun: 1 shards AdamW's state over the ranks (ZeRO-1), 0 replicates it")
        ->check(CLI::IsMember({0, 1}));
    c->callback([&] { run(); });
}

inline void train_command(const train_options& o) {
    validate_pretrain_options(o);
    const preset& p = require_preset(o.preset_name);
    pretrain_data data = read_pretrain_data(o);
    const std::optional<checkpoint_info> from = data.from; // --weights: the model's shape
    std::string ranks_note;                                // under mpirun: threads per rank x ranks
    if (world().size() > 1)
        ranks_note.append(" x ").append(std::to_string(world().size())).append(" ranks");
    std::printf(
        "gptx train: %s (%s), vocab %d, context %d, %zu train / %zu val tokens, %d threads%s\n",
        from ? o.weights.c_str() : std::string(p.name).c_str(),
        to_string(from ? from->dims : p.dims).c_str(), data.config.vocab, data.config.context,
        data.train.size(), data.val.size(), num_threads(), ranks_note.c_str());
    auto run = [&]<shape S>() { run_pretrain<S>(o, std::move(data)); };
    if (!from)
        with_preset(o.preset_name, run);
    else
        GPTX_CHECK(with_checkpoint_preset(*from, run), o.weights, ": no preset has the shape ",
                   to_string(from->dims));
}

void add_train_command(commands& cmds) { cmds.add(add_train_command, train_command); }

} // namespace gptx::cli
