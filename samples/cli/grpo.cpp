// samples/cli/grpo.cpp: `gptx grpo`, GRPO (--baseline group) or RLOO (--baseline loo) from an SFT
// checkpoint against a reward-model checkpoint: G samples per prompt, advantages from the group's
// rewards, no value model; resumable: the options of run_grpo (gptx/recipes/grpo.hpp) and its
// dispatch on the checkpoint's shape. Tested by tests/cli/test_grpo_cli.cpp.
#include <cstdio>
#include <filesystem>
#include <functional>

#include <CLI/CLI.hpp>

#include <gptx/recipes/grpo.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "instances/grpo.hpp"

namespace gptx::cli {

using grpo_options = grpo_run_options;

inline void add_grpo_command(CLI::App& app, grpo_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand(
        "grpo", "Align a policy with GRPO (or RLOO: --baseline loo) against a reward model");
    c->add_option("--policy", o.policy,
                  "SFT checkpoint (run folder or file): the initial policy and the reference")
        ->required();
    c->add_option("--reward", o.reward, "Reward-model checkpoint (gptx rm), frozen")->required();
    c->add_option("--prompts", o.prompts, "JSONL with one {\"prompt\": ...} per line")->required();
    c->add_option("--baseline", o.baseline,
                  "group: GRPO's (r - group mean) / group std; loo: RLOO's r - mean of the others")
        ->check(CLI::IsMember({"group", "loo"}));
    c->add_option("--out", o.out,
                  "Run folder: policy.gptx (with AdamW), model.gptx, metrics.jsonl");
    c->add_option("--iters", o.iters, "Iterations (rollouts + updates each)");
    c->add_option("--prompts-per-iter", o.prompts_per_iter, "Prompts sampled per iteration");
    c->add_option("--group-size", o.group_size, "Responses sampled per prompt (G >= 2)");
    c->add_option("--epochs", o.epochs, "Passes over the rollouts per iteration");
    c->add_option("--minibatch", o.minibatch, "Responses per update");
    c->add_option("--max-new", o.max_new, "Response length cap in tokens");
    c->add_option("--temperature", o.temperature, "Rollout sampling temperature");
    c->add_option("--lr", o.lr, "Policy learning rate");
    c->add_option("--grad-clip", o.grad_clip, "Global gradient-norm clip (0 disables)");
    c->add_option("--kl-coef", o.kl_coef,
                  "Coefficient of the k3 KL penalty to the reference in the loss (DeepSeekMath: "
                  "0.04)");
    c->add_option("--clip", o.clip, "Policy ratio clip epsilon");
    c->add_option("--ptx-coef", o.ptx_coef, "Pre-training gradient weight gamma (as PPO-ptx)");
    c->add_option("--ptx-data", o.ptx_data, "Pre-training token file (.bin) for --ptx-coef");
    c->add_option("--ptx-batch", o.ptx_batch, "Pre-training sequences per update");
    c->add_option("--ptx-context", o.ptx_context, "Their length (default: the model's context)");
    add_likelihood_options(c, o.likelihood);
    c->add_option("--end-of-text", o.end_of_text,
                  "End-of-text id (default: the tokenizer's, or the id after it)");
    c->add_option("--save-every", o.save_every, "Iterations between checkpoints");
    c->add_option("--log-every", o.log_every, "Iterations between progress lines");
    c->add_option("--seed", o.seed, "Seed for prompts, sampling and minibatches");
    c->add_flag("--resume", o.resume, "Continue the run in --out");
    c->callback([&] { run(); });
}

inline void grpo_command(const grpo_options& o) {
    validate_grpo_options(o);
    const fs::path policy_file = checkpoint_file(o.policy);
    const checkpoint_info info = read_checkpoint_info(policy_file);
    fs::create_directories(o.out);
    std::printf("gptx grpo (%s baseline): policy %s (%s), vocab %d, context %d, %d threads\n",
                o.baseline.c_str(), policy_file.string().c_str(), to_string(info.dims).c_str(),
                info.config.vocab, info.config.context, num_threads());
    const bool found =
        with_checkpoint_preset(info, [&]<shape S>() { run_grpo<S>(o, policy_file, info); });
    GPTX_CHECK(found, policy_file.string(), ": no preset has the checkpoint's shape ",
               to_string(info.dims));
}

void add_grpo_command(commands& cmds) { cmds.add(add_grpo_command, grpo_command); }

} // namespace gptx::cli
