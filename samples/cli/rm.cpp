// samples/cli/rm.cpp: `gptx rm`, the InstructGPT reward model trained on pairwise or ranked
// comparisons from an SFT (or pre-trained) trunk, resumable, or (--evaluate) a trained one scoring
// a comparisons file: the options of run_reward_model (gptx/recipes/rm.hpp) and its dispatch on
// the checkpoint's shape. Tested by tests/cli/test_rm_cli.cpp.
#include <filesystem>
#include <functional>

#include <CLI/CLI.hpp>

#include <gptx/recipes/rm.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "instances/rm.hpp"

namespace gptx::cli {

using rm_options = reward_model_run_options;

inline void add_rm_command(CLI::App& app, rm_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand("rm", "Train a reward model on ranked comparisons");
    auto* from =
        c->add_option("--init", o.init, "SFT or pre-trained checkpoint whose trunk starts the RM")
            ->required();
    add_weights_option(c, from, o.init);
    c->add_option("--data", o.data,
                  "Comparisons JSONL: {\"prompt\",\"chosen\",\"rejected\"} or "
                  "{\"prompt\",\"responses\":[best, ..., worst]} (K = 2..9)")
        ->required();
    c->add_option("--val", o.val, "Held-out comparisons JSONL (default: split off --data)");
    c->add_option("--val-fraction", o.val_fraction,
                  "Without --val: the last fraction of --data's prompts held out");
    c->add_option("--demos", o.demos,
                  "SFT demonstrations JSONL {\"prompt\",\"response\"}: the reward bias is set so "
                  "that their rewards average 0");
    c->add_option("--epochs", o.epochs, "Passes over the training prompts (InstructGPT: 1)");
    c->add_option("--iters", o.iters, "Optimizer steps (overrides --epochs)");
    c->add_option("--batch", o.batch, "Prompts per micro-batch (all C(K,2) pairs of each)");
    c->add_option("--grad-accum", o.grad_accum, "Micro-batches per step");
    c->add_option("--lr", o.lr, "Peak learning rate");
    c->add_option("--min-lr", o.min_lr, "Cosine floor (default: --lr / 10)");
    c->add_option("--warmup", o.warmup, "Linear warmup steps");
    c->add_option("--decay-iters", o.decay_iters, "Cosine decay length (default: the run's steps)");
    c->add_option("--weight-decay", o.weight_decay, "AdamW decay on 2-D weights");
    c->add_option("--beta1", o.beta1, "AdamW beta1");
    c->add_option("--beta2", o.beta2, "AdamW beta2");
    c->add_option("--grad-clip", o.grad_clip, "Global gradient-norm clip (0 disables)");
    c->add_option("--dropout", o.dropout, "Dropout rate (0 disables)");
    c->add_option("--eval-every", o.eval_every, "Steps between held-out evaluations and saves");
    c->add_option("--log-every", o.log_every, "Steps between progress lines");
    c->add_option("--end-of-text", o.end_of_text,
                  "End-of-text id (default: the tokenizer's <|endoftext|>, else the id after its "
                  "vocabulary)");
    c->add_option("--seed", o.seed, "Seed for the head, the data order and dropout");
    c->add_option_function<std::string>(
         "--pooling", [&o](const std::string& s) { o.pooling = parse_reward_pooling(s); },
         "Where the head reads: last (the closing end-of-text, InstructGPT) or mean (every "
         "response position, averaged)")
        ->check(CLI::IsMember({"last", "mean"}));
    c->add_option("--out", o.out, "Run folder: model.gptx (trunk + reward_head) and metrics.jsonl");
    c->add_flag("--resume", o.resume, "Continue from the checkpoint in --out");
    c->add_flag("--evaluate", o.evaluate,
                "Train nothing: print the pairwise accuracy of the reward model in --out (a run "
                "folder or a checkpoint file) on every comparison of --data (--init gives the "
                "tokenizer, which must be the model's)");
    c->callback([&] { run(); });
}

inline void rm_command(const rm_options& o) {
    validate_reward_model_options(o);
    const fs::path init_file = checkpoint_file(o.init);
    const checkpoint_info info = read_model_info(init_file);
    if (!o.evaluate)
        fs::create_directories(o.out);
    const bool found =
        with_checkpoint_preset(info, [&]<shape S>() { run_reward_model<S>(o, init_file, info); });
    GPTX_CHECK(found, init_file.string(), ": no preset has the checkpoint's shape ",
               to_string(info.dims));
}

void add_rm_command(commands& cmds) { cmds.add(add_rm_command, rm_command); }

} // namespace gptx::cli
