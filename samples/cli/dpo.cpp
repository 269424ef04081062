// samples/cli/dpo.cpp: `gptx dpo`, Direct Preference Optimization of an SFT checkpoint on the
// reward model's ranked comparisons (the SFT model is the reference), resumable: the options of
// run_dpo (gptx/recipes/dpo.hpp) and its dispatch on the checkpoint's shape. Tested by
// tests/cli/test_dpo_cli.cpp.
#include <filesystem>
#include <functional>

#include <CLI/CLI.hpp>

#include <gptx/recipes/dpo.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "instances/dpo.hpp"

namespace gptx::cli {

using dpo_options = dpo_run_options;

inline void add_dpo_command(CLI::App& app, dpo_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand(
        "dpo", "Align a policy with DPO on ranked comparisons (no reward model, no sampling)");
    c->add_option(
         "--policy", o.policy,
         "SFT checkpoint (run folder or file): the initial policy and the frozen reference")
        ->required();
    c->add_option("--data", o.data,
                  "Comparisons JSONL: {\"prompt\",\"chosen\",\"rejected\"} or "
                  "{\"prompt\",\"responses\":[best, ..., worst]} (each C(K,2) pairs)")
        ->required();
    c->add_option("--val", o.val, "Held-out comparisons JSONL (default: split off --data)");
    c->add_option("--val-fraction", o.val_fraction,
                  "Without --val: the last fraction of --data's prompts held out");
    c->add_option("--beta", o.beta,
                  "DPO beta: the implicit reward is beta (log pi - log pi_ref); smaller lets the "
                  "policy move further from the reference");
    c->add_option("--epochs", o.epochs, "Passes over the training prompts");
    c->add_option("--iters", o.iters, "Optimizer steps (overrides --epochs)");
    c->add_option("--batch", o.batch, "Prompts per micro-batch (all C(K,2) pairs of each)");
    c->add_option("--grad-accum", o.grad_accum, "Micro-batches per step");
    c->add_option("--lr", o.lr, "Learning rate (constant after --warmup)");
    c->add_option("--warmup", o.warmup, "Linear warmup steps");
    c->add_option("--weight-decay", o.weight_decay, "AdamW decay on 2-D weights");
    c->add_option("--beta1", o.beta1, "AdamW beta1");
    c->add_option("--beta2", o.beta2, "AdamW beta2");
    c->add_option("--grad-clip", o.grad_clip, "Global gradient-norm clip (0 disables)");
    c->add_option("--eval-every", o.eval_every, "Steps between held-out evaluations and saves");
    c->add_option("--log-every", o.log_every, "Steps between progress lines");
    c->add_option("--end-of-text", o.end_of_text,
                  "End-of-text id (default: the tokenizer's, or the id after it)");
    c->add_option("--seed", o.seed, "Seed of the data order");
    c->add_option("--out", o.out, "Run folder: model.gptx (policy + AdamW) and metrics.jsonl");
    c->add_flag("--resume", o.resume, "Continue the run in --out");
    c->callback([&] { run(); });
}

inline void dpo_command(const dpo_options& o) {
    validate_dpo_options(o);
    const fs::path policy_file = checkpoint_file(o.policy);
    const checkpoint_info info = read_checkpoint_info(policy_file);
    fs::create_directories(o.out);
    const bool found =
        with_checkpoint_preset(info, [&]<shape S>() { run_dpo<S>(o, policy_file, info); });
    GPTX_CHECK(found, policy_file.string(), ": no preset has the checkpoint's shape ",
               to_string(info.dims));
}

void add_dpo_command(commands& cmds) { cmds.add(add_dpo_command, dpo_command); }

} // namespace gptx::cli
