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

#include "../core/communicator.hpp"
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
    // Data parallel: the ranks that share each step (null or one rank: this process alone).
    // Each rank runs its own micro-batches; see step_parallel.
    communicator* comm = nullptr;
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
        if (cfg_.comm && cfg_.comm->size() > 1)
            return step_parallel(next_batch);
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
    // One data-parallel step. Every rank scales its gradient by 1 / (grad_accum * ranks), so the
    // sum over ranks is the mean over the global batch. The trunk's gradient arena is then summed
    // in one call: an all-reduce, or under ZeRO-1 (an optimizer that owns a window of the
    // parameters) a reduce-scatter, after which each rank clips and updates its window and the
    // parameters are all-gathered. Heads are small and always all-reduced and updated everywhere.
    template <class NextBatch> step_metrics step_parallel(NextBatch& next_batch) {
        const auto t0 = std::chrono::steady_clock::now();
        using T = typename Model::value_type;
        communicator& comm = *cfg_.comm;
        const int ranks = comm.size();
        model_.zero_grad();
        if constexpr (has_heads<Objective>)
            obj_.head_grads().zero();
        double loss = 0;
        for (int micro = 0; micro < cfg_.grad_accum; ++micro)
            loss += obj_.forward_backward(model_, next_batch(micro),
                                          1.0 / (double(cfg_.grad_accum) * ranks));
        loss = comm.sum(loss / cfg_.grad_accum) / ranks;
        basic_arena<T>& g = model_.grads();
        std::size_t lo = 0, hi = g.size();
        bool sharded = false;
        if constexpr (requires { opt_.sharded(); })
            sharded = opt_.sharded();
        if (sharded) {
            lo = opt_.shard_begin();
            hi = opt_.shard_end();
            GPTX_CHECK(std::pair(lo, hi) == comm.shard(g.size()), "trainer: the optimizer owns [",
                       lo, ", ", hi, ") of the parameters, but rank ", comm.rank(), " of ", ranks,
                       " owns [", comm.shard(g.size()).first, ", ", comm.shard(g.size()).second,
                       ") (build it with comm.shard(params.size()))");
            comm.reduce_scatter_sum(g.data(), g.size());
        } else {
            comm.allreduce_sum(g.data(), g.size());
        }
        double sq = sum_squares(g.data() + lo, hi - lo);
        if (sharded)
            sq = comm.sum(sq);
        if constexpr (has_heads<Objective>) {
            comm.allreduce_sum(obj_.head_grads().data(), obj_.head_grads().size());
            sq += sum_squares(obj_.head_grads().data(), obj_.head_grads().size());
        }
        const double norm = std::sqrt(sq);
        GPTX_CHECK(std::isfinite(loss) && std::isfinite(norm), "step ", step_ + 1, ": loss is ",
                   detail::number_text(loss), " and gradient norm is ", detail::number_text(norm),
                   "; training stopped before applying this update");
        if (cfg_.grad_clip > 0) {
            const double coef = double(cfg_.grad_clip) / (norm + 1e-6); // as clip_grad_norm
            auto scale = [c = T(coef)](T* x, std::size_t n) {
                parallel_ranges(
                    static_cast<std::int64_t>(n),
                    [&](std::int64_t b, std::int64_t e) {
                        detail::scale_inplace<simd::default_arch>(x + b, c, std::size_t(e - b));
                    },
                    std::int64_t{1} << 14);
            };
            if (coef < 1.0) {
                scale(g.data() + lo, hi - lo);
                if constexpr (has_heads<Objective>)
                    scale(obj_.head_grads().data(), obj_.head_grads().size());
            }
        }
        const float lr = cfg_.lr(static_cast<int>(step_));
        opt_.step(model_.params(), g, lr);
        if (sharded)
            comm.allgather_shards(model_.params().data(), model_.params().size());
        if constexpr (has_heads<Objective>)
            head_opt_.step(obj_.head_params(), obj_.head_grads(), lr);
        ++step_;
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        return {step_, loss, norm, lr, ms};
    }

    Model& model_;
    Objective& obj_;
    Optimizer& opt_;
    Optimizer head_opt_{};
    trainer_config cfg_;
    std::int64_t step_ = 0;
};

} // namespace gptx
