// gptx/train/trainer.hpp: the generic optimisation step: micro-batches -> objective forward and
// backward -> clip -> NaN guard -> AdamW at the scheduled rate. Tested by
// tests/train/test_trainer.cpp.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>

#include "../core/error.hpp"
#include "clip.hpp"
#include "objective.hpp"
#include "optimizer.hpp"

namespace gptx {

// An objective that owns trainable heads (a classifier, a reward or value head) exposes their
// parameter and gradient arenas; the trainer zeroes, clips and steps them with the trunk.
template <class O>
concept has_heads = requires(O o) {
    o.head_params();
    o.head_grads();
};

namespace detail {
// A number for a message; NaN prints as "nan" whatever its sign bit (which differs by -march).
inline std::string number_text(double v) {
    if (std::isnan(v))
        return "nan";
    std::ostringstream os;
    os << v;
    return os.str();
}
} // namespace detail

struct trainer_config {
    int grad_accum = 1;                // micro-batches per optimizer step
    float grad_clip = 1.0f;            // global norm; 0 disables
    std::function<float(int)> lr = {}; // learning rate for iteration it (0-based)
};

struct step_metrics {
    std::int64_t step = 0; // optimizer steps done, this one included
    double loss = 0;       // mean over micro-batches
    double grad_norm = 0;  // before clipping
    float lr = 0;
    double ms = 0; // wall time of the step
};

template <class Model, class Objective, class Optimizer = adamw<typename Model::value_type>>
requires objective<Objective, Model>
class trainer {
  public:
    trainer(Model& model, Objective& obj, Optimizer& opt, trainer_config cfg)
        : model_(model), obj_(obj), opt_(opt), cfg_(std::move(cfg)) {
        GPTX_CHECK(cfg_.grad_accum > 0, "trainer: grad_accum must be positive, got ",
                   cfg_.grad_accum);
        GPTX_CHECK(static_cast<bool>(cfg_.lr), "trainer: a learning-rate schedule is required");
        if constexpr (has_heads<Objective>)
            head_opt_ = Optimizer(obj_.head_params(), opt_.config());
    }

    // One optimizer step. next_batch(micro) returns the micro-batch to use. A non-finite loss or
    // gradient norm throws before the parameters change, so the last good state is kept.
    template <class NextBatch> step_metrics step(NextBatch&& next_batch) {
        const auto t0 = std::chrono::steady_clock::now();
        using T = typename Model::value_type;
        model_.zero_grad();
        if constexpr (has_heads<Objective>)
            obj_.head_grads().zero();
        double loss = 0;
        for (int micro = 0; micro < cfg_.grad_accum; ++micro)
            loss += obj_.forward_backward(model_, next_batch(micro), 1.0 / cfg_.grad_accum);
        loss /= cfg_.grad_accum;
        double norm;
        if constexpr (has_heads<Objective>)
            norm = clip_grad_norm({&model_.grads(), &obj_.head_grads()}, T(cfg_.grad_clip));
        else
            norm = cfg_.grad_clip > 0 ? clip_grad_norm(model_.grads(), T(cfg_.grad_clip))
                                      : global_norm(model_.grads());
        GPTX_CHECK(std::isfinite(loss) && std::isfinite(norm), "step ", step_ + 1, ": loss is ",
                   detail::number_text(loss), " and gradient norm is ", detail::number_text(norm),
                   "; training stopped before applying this update");
        const float lr = cfg_.lr(static_cast<int>(step_));
        opt_.step(model_.params(), model_.grads(), lr);
        if constexpr (has_heads<Objective>)
            head_opt_.step(obj_.head_params(), obj_.head_grads(), lr);
        ++step_;
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        return {step_, loss, norm, lr, ms};
    }

    std::int64_t step_count() const { return step_; }
    void set_step_count(std::int64_t s) { step_ = s; }
    Model& model() { return model_; }
    Objective& objective_fn() { return obj_; }
    Optimizer& optimizer() { return opt_; }
    // The optimizer of the objective's heads (unused without heads); checkpoints save it.
    Optimizer& head_optimizer() { return head_opt_; }

  private:
    Model& model_;
    Objective& obj_;
    Optimizer& opt_;
    Optimizer head_opt_{};
    trainer_config cfg_;
    std::int64_t step_ = 0;
};

} // namespace gptx
