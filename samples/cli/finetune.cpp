// samples/cli/finetune.cpp: `gptx finetune`, GPT-1 supervised fine-tuning of a checkpoint on a
// labelled task JSONL file, writing a checkpoint with the classifier head: the options of
// run_finetune (gptx/recipes/finetune.hpp) and its dispatch on the checkpoint's shape.
// Tested by tests/cli/test_task_cli.cpp.
#include <functional>

#include <CLI/CLI.hpp>

#include <gptx/recipes/finetune.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "instances/finetune.hpp"

namespace gptx::cli {

using finetune_options = finetune_run_options;

inline void add_finetune_command(CLI::App& app, finetune_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand(
        "finetune", "GPT-1 fine-tuning: a task head at the extract token + lambda x LM loss");
    auto* from = c->add_option("--checkpoint", o.checkpoint, "Pre-trained run folder or .gptx file")
                     ->required();
    add_weights_option(c, from, o.checkpoint);
    c->add_option("--train", o.train,
                  "Labelled JSONL: {text,label}, {premise,hypothesis,label}, {a,b,label} or "
                  "{context,choices,label}")
        ->required();
    c->add_option("--test", o.test, "Held-out JSONL of the same form: accuracy after each epoch");
    c->add_option("--out", o.out,
                  "Run folder: model.gptx (trunk + classifier_head), metrics.jsonl");
    c->add_option("--lm-weight", o.lm_weight, "lambda, the auxiliary LM loss weight (0: off)");
    c->add_option("--lr", o.lr, "Peak learning rate (GPT-1: 6.25e-5)");
    c->add_option("--batch", o.batch, "Examples per step (GPT-1: 32)");
    c->add_option("--epochs", o.epochs, "Passes over --train (GPT-1: 3)");
    c->add_option("--warmup", o.warmup, "Warmup as a fraction of all steps (GPT-1: 0.002)");
    c->add_option("--grad-clip", o.grad_clip, "Global gradient-norm clip (0 disables)");
    c->add_option("--clf-dropout", o.clf_dropout, "Dropout on the extract state (GPT-1: 0.1)");
    c->add_option("--dropout", o.dropout, "Trunk dropout (GPT-1: 0.1)");
    c->add_option("--weight-decay", o.weight_decay, "AdamW decay on 2-D weights (GPT-1: 0.01)");
    c->add_option("--context", o.context, "Longest input in tokens (default: the model's)");
    c->add_option("--log-every", o.log_every, "Steps between progress lines");
    c->add_option("--seed", o.seed, "Seed for the new rows, the head, shuffling and dropout");
    c->add_flag("--scratch", o.scratch,
                "Baseline: the same architecture and tokenizer, randomly initialised");
    c->callback([&] { run(); });
}

inline void finetune_command(const finetune_options& o) {
    validate_finetune_options(o);
    const fs::path ckpt = checkpoint_file(o.checkpoint);
    GPTX_CHECK(fs::exists(ckpt), "no checkpoint at '", ckpt.string(), "'");
    const checkpoint_info info = read_model_info(ckpt);
    const bool found =
        with_checkpoint_preset(info, [&]<shape S>() { run_finetune<S>(o, ckpt, info); });
    GPTX_CHECK(found, ckpt.string(), ": no preset has the shape ", to_string(info.dims));
}

void add_finetune_command(commands& cmds) { cmds.add(add_finetune_command, finetune_command); }

} // namespace gptx::cli
