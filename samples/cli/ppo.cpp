// samples/cli/ppo.cpp: `gptx ppo`, InstructGPT's PPO (and PPO-ptx with --ptx-coef/--ptx-data)
// from an SFT checkpoint and a reward-model checkpoint, resumable: the options of run_ppo
// (gptx/recipes/ppo.hpp) and its dispatch on the checkpoint's shape. Tested by
// tests/cli/test_ppo_cli.cpp.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <gptx/recipes/ppo.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "instances/ppo.hpp"

namespace gptx::cli {

using ppo_options = ppo_run_options;

inline void add_ppo_command(CLI::App& app, ppo_options& o, std::function<void()>& run) {
    auto* c =
        app.add_subcommand("ppo", "Align a policy with PPO (or PPO-ptx) against a reward model");
    auto* from =
        c->add_option("--policy", o.policy,
                      "SFT checkpoint (run folder or file): the initial policy and the reference")
            ->required();
    add_weights_option(c, from, o.policy);
    c->add_option("--reward", o.reward,
                  "Reward-model checkpoint (gptx rm): the frozen RM and the value model's init")
        ->required();
    c->add_option("--prompts", o.prompts, "JSONL with one {\"prompt\": ...} per line")->required();
    c->add_option("--out", o.out, "Run folder: policy.gptx, value.gptx, model.gptx, metrics.jsonl");
    c->add_option("--iters", o.iters, "PPO iterations (rollouts + updates each)");
    c->add_option("--rollouts", o.rollouts, "Responses sampled per iteration");
    c->add_option("--epochs", o.epochs, "Passes over the rollouts per iteration");
    c->add_option("--minibatch", o.minibatch, "Responses per update");
    c->add_option("--keep", o.keep,
                  "Update on this many of each iteration's rollouts (per rank under mpirun), those "
                  "with the largest |advantage| (0: all; --resume repeats it)");
    c->add_option("--max-new", o.max_new, "Response length cap in tokens");
    c->add_option("--lr", o.lr, "Policy learning rate");
    c->add_option("--value-lr", o.value_lr, "Value model learning rate (default: --lr)");
    c->add_option("--value-warmup", o.value_warmup,
                  "First iterations that train only the value model (the policy waits)");
    c->add_option("--grad-clip", o.grad_clip, "Global gradient-norm clip per model (0 disables)");
    c->add_option("--kl-coef", o.kl_coef,
                  "KL penalty beta (InstructGPT: 0.02); the initial beta when adaptive");
    c->add_option("--kl-target", o.kl_target,
                  "Adaptive KL controller: target KL per response (0: fixed beta)");
    c->add_option("--kl-horizon", o.kl_horizon, "Adaptive KL controller horizon, in responses");
    c->add_option("--ema", o.ema, "EMA decay of the policy weights (InstructGPT: 0.992; 0: off)");
    c->add_option("--ptx-coef", o.ptx_coef,
                  "PPO-ptx: pre-training gradient weight gamma (InstructGPT: 27.8)");
    c->add_option("--ptx-data", o.ptx_data, "PPO-ptx: pre-training token file (.bin)");
    c->add_option("--ptx-batch", o.ptx_batch, "PPO-ptx: pre-training sequences per update");
    c->add_option("--ptx-context", o.ptx_context,
                  "PPO-ptx: their length (default: the model's context)");
    add_likelihood_options(c, o.likelihood);
    c->add_option("--gamma", o.gamma, "GAE discount (InstructGPT: 1)");
    c->add_option("--lambda", o.lambda, "GAE lambda");
    c->add_option("--clip", o.clip, "Policy ratio clip epsilon");
    c->add_option("--value-clip", o.value_clip, "Value clip (0 disables)");
    c->add_option("--end-of-text", o.end_of_text,
                  "End-of-text id (default: the tokenizer's, or the id after it)");
    c->add_option("--save-every", o.save_every, "Iterations between checkpoints");
    c->add_option("--log-every", o.log_every, "Iterations between progress lines");
    c->add_option("--seed", o.seed, "Seed for prompts, sampling and minibatches");
    c->add_flag("--resume", o.resume, "Continue the run in --out");
    c->callback([&] { run(); });
}

inline void ppo_command(const ppo_options& o) {
    validate_ppo_options(o);
    const fs::path policy_file = checkpoint_file(o.policy);
    const checkpoint_info info = read_model_info(policy_file);
    fs::create_directories(o.out);
    std::printf("gptx ppo: policy %s (%s), vocab %d, context %d, %d threads\n",
                policy_file.string().c_str(), to_string(info.dims).c_str(), info.config.vocab,
                info.config.context, num_threads());
    const bool found =
        with_checkpoint_preset(info, [&]<shape S>() { run_ppo<S>(o, policy_file, info); });
    GPTX_CHECK(found, policy_file.string(), ": no preset has the checkpoint's shape ",
               to_string(info.dims));
}

void add_ppo_command(commands& cmds) { cmds.add(add_ppo_command, ppo_command); }

} // namespace gptx::cli
