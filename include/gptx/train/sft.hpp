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
#include "run_loop.hpp"
#include "schedule.hpp"
#include "trainer.hpp"

namespace gptx {

struct sft_config {
    int epochs = 2;
    float lr = 1e-4f, min_lr = 1e-5f; // cosine from lr to min_lr over every step of every epoch
    int warmup = 0;
    float grad_clip = 1.0f;
    int select_every = 0; // steps between model-selection calls; 0: at the end of each epoch
    // Data parallel: step k of rank r trains on batch k * ranks + r, so N ranks train as one
    // process with N batches per step, and an epoch takes 1/N of the steps. Null: alone.
    communicator* comm = nullptr;
};

// Which model was selected so far. A checkpoint keeps it so a resumed run selects as an
// uninterrupted one would.
struct sft_selection {
    std::int64_t best_step = -1;
    double best_score = -std::numeric_limits<double>::infinity();
};

template <class Model> struct sft_hooks {
    // Model selection: a score, higher is better (the paper selects by reward-model score on a
    // validation set; held-out loss negated works too). Called at every selection point: the
    // start of a fresh run, every select_every steps, the end. Empty: the last model is selected.
    std::function<double(Model&)> score;
    // Called with the model when it becomes the best so far (save or copy it).
    std::function<void(Model&, std::int64_t step, double score)> on_best;
    // At every selection point, after the selection, so what is saved is consistent.
    std::function<void(std::int64_t step, const sft_selection&)> on_checkpoint;
    std::function<void(const step_metrics&)> on_step;
    // Progress lines and metrics.jsonl (run_loop.hpp); iters and eval_every are set by run_sft.
    run_options run{};
    // Stop after this many steps, as if interrupted (the schedule still spans every epoch);
    // -1: run to the end.
    std::int64_t stop_at = -1;
};

inline std::int64_t sft_total_steps(const sft_config& cfg, int steps_per_epoch) {
    const std::int64_t ranks = cfg.comm ? cfg.comm->size() : 1; // the last step may run over
    return (std::int64_t(cfg.epochs) * steps_per_epoch + ranks - 1) / ranks; // into a new epoch
}

// Runs SFT with the masked LM objective from the optimizer state (a fresh run, or a resumed
// checkpoint whose step is opt.step_count()) to the end of the last epoch, through the shared run
// loop. Returns the selection after the run; `sel` is the selection restored with a checkpoint.
template <class Model>
sft_selection run_sft(Model& model, adamw<float>& opt, sft_batches& data, const sft_config& cfg,
                      const sft_hooks<Model>& hooks, std::int64_t start = 0,
                      sft_selection sel = {}) {
    GPTX_CHECK(cfg.epochs > 0, "sft: epochs must be positive, got ", cfg.epochs);
    GPTX_CHECK(cfg.select_every >= 0, "sft: select_every must be >= 0, got ", cfg.select_every);
    const int ranks = cfg.comm ? cfg.comm->size() : 1, rank = cfg.comm ? cfg.comm->rank() : 0;
    const int spe = (data.steps_per_epoch() + ranks - 1) / ranks; // optimizer steps per epoch
    const std::int64_t total = sft_total_steps(cfg, data.steps_per_epoch());
    GPTX_CHECK(start >= 0 && start <= total, "sft: start step ", start, " is outside [0, ", total,
               "]");
    lm_objective<Model> obj;
    cosine_schedule sched{cfg.lr, cfg.min_lr, cfg.warmup, int(total)};
    trainer tr(model, obj, opt,
               {1, cfg.grad_clip, [sched](int it) { return sched(it); }, cfg.comm});
    tr.set_step_count(start);
    if (start == total)
        return sel;
    run_options o = hooks.run;
    o.iters = hooks.stop_at >= 0 ? std::min(hooks.stop_at, total) : total;
    o.eval_every = cfg.select_every > 0 ? cfg.select_every : spe;
    if (o.iters <= start)
        return sel;
    run_hooks rh;
    rh.evaluate = [&](std::int64_t step) {
        metrics_map m;
        if (hooks.score) {
            const double s = hooks.score(model);
            GPTX_CHECK(std::isfinite(s), "sft: the selection score at step ", step,
                       " is not finite (", s, ")");
            m.emplace_back("score", s);
            if (s > sel.best_score) {
                sel = {step, s};
                if (hooks.on_best)
                    hooks.on_best(model, step, s);
            }
            m.emplace_back("best_score", sel.best_score);
        } else {
            sel = {step, 0.0};
            if (hooks.on_best)
                hooks.on_best(model, step, 0.0);
        }
        return m;
    };
    rh.save = [&](std::int64_t step) {
        if (hooks.on_checkpoint)
            hooks.on_checkpoint(step, sel);
    };
    if (hooks.on_step)
        rh.on_step = hooks.on_step;
    run_training(
        tr, o, [&](int) { return data.batch(tr.step_count() * ranks + rank); }, rh);
    return sel;
}

} // namespace gptx
