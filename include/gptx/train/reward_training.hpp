// gptx/train/reward_training.hpp: the reward-model stage (InstructGPT's second step) beside
// run_sft: epochs of ranked comparisons through the K-wise loss, with held-out pairwise accuracy.
// Tested by tests/train/test_reward_training.cpp.
#pragma once
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "../data/comparisons.hpp"
#include "../nn/reward_model.hpp"
#include "optimizer.hpp"
#include "reward_objective.hpp"
#include "run_loop.hpp"
#include "schedule.hpp"
#include "trainer.hpp"

namespace gptx {

struct reward_training_config {
    double epochs = 1;      // passes over the training prompts
    int batch = 8;          // prompts per step, and per held-out evaluation batch
    float lr = 1e-4f;       // cosine from lr to lr / 10 over the run, no warmup
    float grad_clip = 1.0f; // global norm; 0 disables
    int evals = 4;          // held-out evaluations over the run (the last at its end)
    int logs = 8;           // progress lines over the run
    std::uint64_t seed = 1; // the order of the batches
};

// Trains rm (trunk and head) on `train` from its current parameters with `opt` (over the trunk's
// parameters; the trainer keeps the head's), and returns the last held-out evaluation on `val`.
// `run` names the metrics file, progress label and checkpoint; iters and the evaluation and log
// intervals come from cfg.
template <shape S, class T>
reward_eval train_reward_model(reward_model<S, T>& rm, adamw<float>& opt,
                               const tokenized_comparisons& train, const tokenized_comparisons& val,
                               int end_of_text, const reward_training_config& cfg,
                               run_options run = {}) {
    GPTX_CHECK(cfg.epochs > 0 && cfg.evals > 0 && cfg.logs > 0,
               "reward training: epochs, evals and logs must be positive");
    GPTX_CHECK(!val.groups.empty(), "reward training: no held-out comparisons");
    reward_objective obj(rm);
    reward_batcher data(train, cfg.batch, end_of_text, cfg.seed);
    const std::int64_t steps = data.steps_for_epochs(cfg.epochs);
    const cosine_schedule sched{cfg.lr, cfg.lr / 10, 0, int(steps)};
    trainer tr(rm.trunk(), obj, opt, {1, cfg.grad_clip, [sched](int it) { return sched(it); }});
    run.iters = steps;
    run.eval_every = int(std::max<std::int64_t>(1, steps / cfg.evals));
    run.log_every = int(std::max<std::int64_t>(1, steps / cfg.logs));
    reward_eval last{};
    run_hooks hooks;
    hooks.evaluate = [&](std::int64_t) {
        last = evaluate_rewards(rm.trunk(), obj, val, cfg.batch, end_of_text);
        return metrics_map{{"val_loss", last.loss}, {"val_accuracy", last.accuracy}};
    };
    run_training(
        tr, run, [&](int) { return data.batch(tr.step_count()); }, hooks);
    return last;
}

// Iterated RLHF's reward step (InstructGPT and ChatGPT collect comparisons of the current policy's
// samples and train the RM again): `fresh` joins `seen`, and rm continues from its current
// parameters over all of `seen` (cfg.epochs) with new AdamW moments (β 0.9 / 0.95, no decay: the
// pipeline's RM settings), so the policy's samples add to what it knew rather than replace it.
// Then the bias is set again so that the demonstrations' reward averages 0 (PPO's reward scale;
// demo_starts: where their responses begin, for mean pooling). Returns the last held-out
// evaluation on val.
template <shape S, class T>
reward_eval
continue_reward_model(reward_model<S, T>& rm, tokenized_comparisons& seen,
                      const tokenized_comparisons& fresh, const tokenized_comparisons& val,
                      std::span<const std::vector<int>> demos, std::span<const int> demo_starts,
                      int end_of_text, const reward_training_config& cfg, run_options run = {}) {
    GPTX_CHECK(!fresh.groups.empty(), "continue_reward_model: no new comparisons");
    seen.groups.insert(seen.groups.end(), fresh.groups.begin(), fresh.groups.end());
    adamw<float> opt(rm.trunk().params(), {cfg.lr, 0.9f, 0.95f, 1e-8f, 0.0f});
    const reward_eval e = train_reward_model(rm, opt, seen, val, end_of_text, cfg, std::move(run));
    normalize_reward_bias(rm, demos, end_of_text, 16, demo_starts);
    return e;
}

} // namespace gptx
