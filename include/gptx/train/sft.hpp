// gptx/train/sft.hpp: supervised fine-tuning (InstructGPT's first step): epochs over packed
// demonstrations with the masked LM objective, and model selection by a callback. Tested by
// tests/train/test_sft.cpp.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>

#include "../data/sft.hpp"
#include "objective.hpp"
#include "optimizer.hpp"
#include "schedule.hpp"
#include "trainer.hpp"

namespace gptx {

struct sft_config {
    int epochs = 2;
    float lr = 1e-4f, min_lr = 1e-5f; // cosine from lr to min_lr over every step of every epoch
    int warmup = 0;
    float grad_clip = 1.0f;
    int select_every = 0; // steps between model-selection calls; 0: at the end of each epoch
};

// Which model was selected so far. A checkpoint keeps it so a resumed run selects as an
// uninterrupted one would.
struct sft_selection {
    std::int64_t best_step = -1;
    double best_score = -std::numeric_limits<double>::infinity();
};

template <class Model> struct sft_hooks {
    // Model selection: a score, higher is better (the paper selects by reward-model score on a
    // validation set; held-out loss negated works too). Called at every selection point and
    // after the last step. Empty: the last model is the selected one.
    std::function<double(Model&)> score;
    // Called with the model when it becomes the best so far (save or copy it).
    std::function<void(Model&, std::int64_t step, double score)> on_best;
    // After every optimizer step.
    std::function<void(const step_metrics&, std::int64_t total_steps)> on_step;
    // At every selection point (after the selection), so the state on disk is consistent.
    std::function<void(std::int64_t step, const sft_selection&)> on_checkpoint;
    // Stop early after this many steps (as if interrupted); -1: run to the end.
    std::int64_t stop_at = -1;
};

inline std::int64_t sft_total_steps(const sft_config& cfg, int steps_per_epoch) {
    return std::int64_t(cfg.epochs) * steps_per_epoch;
}

// Runs SFT from step `start` (0, or the step of a resumed checkpoint) to the end of the last
// epoch. Returns the selection after the run.
template <class Model>
sft_selection run_sft(Model& model, adamw<float>& opt, sft_batches& data, const sft_config& cfg,
                      const sft_hooks<Model>& hooks, std::int64_t start = 0,
                      sft_selection sel = {}) {
    GPTX_CHECK(cfg.epochs > 0, "sft: epochs must be positive, got ", cfg.epochs);
    GPTX_CHECK(cfg.select_every >= 0, "sft: select_every must be >= 0, got ", cfg.select_every);
    const int spe = data.steps_per_epoch();
    const std::int64_t total = sft_total_steps(cfg, spe);
    GPTX_CHECK(start >= 0 && start <= total, "sft: start step ", start, " is outside [0, ", total,
               "]");
    lm_objective<Model> obj;
    cosine_schedule sched{cfg.lr, cfg.min_lr, cfg.warmup, int(total)};
    trainer tr(model, obj, opt, {1, cfg.grad_clip, [sched](int it) { return sched(it); }});
    tr.set_step_count(start);
    const int every = cfg.select_every > 0 ? cfg.select_every : spe;
    auto select = [&](std::int64_t step) {
        if (hooks.score) {
            const double s = hooks.score(model);
            GPTX_CHECK(std::isfinite(s), "sft: the selection score at step ", step,
                       " is not finite (", s, ")");
            if (s > sel.best_score) {
                sel = {step, s};
                if (hooks.on_best)
                    hooks.on_best(model, step, s);
            }
        } else {
            sel = {step, 0.0};
            if (hooks.on_best)
                hooks.on_best(model, step, 0.0);
        }
        if (hooks.on_checkpoint)
            hooks.on_checkpoint(step, sel);
    };
    for (std::int64_t step = start; step < total; ++step) {
        if (hooks.stop_at >= 0 && step >= hooks.stop_at)
            return sel;
        const step_metrics m = tr.step([&](int) { return data.batch(step); });
        if (hooks.on_step)
            hooks.on_step(m, total);
        if (m.step % every == 0 || m.step == total)
            select(m.step);
    }
    return sel;
}

} // namespace gptx
