// gptx/train/trainer.hpp: the generic optimisation step: micro-batches -> objective forward and
// backward -> (all-reduce) -> NaN guard -> (veto) -> clip -> AdamW at the scheduled rate. Tested by
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

// An objective may veto the update its last forward/backward computed (PPO skips one whose
// probability ratio or KL to the rollout policy exploded); the step then changes nothing.
template <class O>
concept vetoes_updates = requires(const O o) {
    { o.accept_update() } -> std::convertible_to<bool>;
};

struct trainer_config {
    int grad_accum = 1;                // micro-batches per optimizer step
    float grad_clip = 1.0f;            // global norm; 0 disables
    std::function<float(int)> lr = {}; // learning rate for iteration it (0-based)
    // Data parallel: the ranks that share each step (null: this process alone). Each rank runs
    // its own micro-batches; see step.
    communicator* comm = nullptr;
    std::string name = "step"; // how errors name this trainer's steps ("ppo policy step 3: ...")
};

struct step_metrics {
    std::int64_t step = 0; // steps taken, this one included (a vetoed one too)
    double loss = 0;       // mean over micro-batches (and ranks)
    double grad_norm = 0;  // before clipping
    float lr = 0;
    double ms = 0;       // wall time of the step
    bool applied = true; // false: the objective vetoed the update (vetoes_updates)
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

    // One optimizer step; next_batch(micro) returns the micro-batch to use. Alone, or on every
    // rank of cfg.comm at once (the one-process communicator's collectives do nothing): each rank
    // scales its gradient by 1 / (grad_accum * ranks), so the sum over ranks is the mean over the
    // global batch. The trunk's gradient arena is summed in one call: an all-reduce, or under
    // ZeRO-1 (an optimizer that owns a window of the parameters) a reduce-scatter, after which
    // each rank clips and updates its window and the parameters are all-gathered. Heads are small
    // and always all-reduced and updated everywhere. A non-finite loss or gradient norm throws
    // before the parameters change, so the last good state is kept.
    template <class NextBatch> step_metrics step(NextBatch&& next_batch) {
        const auto t0 = std::chrono::steady_clock::now();
        using T = typename Model::value_type;
        communicator& comm = cfg_.comm ? *cfg_.comm : alone_;
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
        GPTX_CHECK(std::isfinite(loss) && std::isfinite(norm), cfg_.name, " ", step_ + 1,
                   ": loss is ", detail::number_text(loss), " and gradient norm is ",
                   detail::number_text(norm), "; training stopped before applying this update");
        const float lr = cfg_.lr(static_cast<int>(step_));
        ++step_;
        bool accept = true;
        if constexpr (vetoes_updates<Objective>)
            accept = comm.sum(obj_.accept_update() ? 0.0 : 1.0) == 0.0; // any rank's veto
        if (accept) {
            if (cfg_.grad_clip > 0) {
                // As torch.nn.utils.clip_grad_norm_ (and clip_grad_norm): max / (norm + 1e-6).
                const double coef = double(cfg_.grad_clip) / (norm + 1e-6);
                if (coef < 1.0) {
                    scale(g.data() + lo, hi - lo, T(coef));
                    if constexpr (has_heads<Objective>)
                        scale(obj_.head_grads().data(), obj_.head_grads().size(), T(coef));
                }
            }
            opt_.step(model_.params(), g, lr);
            if (sharded)
                comm.allgather_shards(model_.params().data(), model_.params().size());
            if constexpr (has_heads<Objective>)
                head_opt_.step(obj_.head_params(), obj_.head_grads(), lr);
        }
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        return {step_, loss, norm, lr, ms, accept};
    }

    std::int64_t step_count() const { return step_; }
    void set_step_count(std::int64_t s) { step_ = s; }
    Model& model() { return model_; }
    Objective& objective_fn() { return obj_; }
    Optimizer& optimizer() { return opt_; }
    // The optimizer of the objective's heads (unused without heads); checkpoints save it.
    Optimizer& head_optimizer() { return head_opt_; }

  private:
    template <class T> static void scale(T* x, std::size_t n, T c) {
        parallel_ranges(
            static_cast<std::int64_t>(n),
            [&](std::int64_t b, std::int64_t e) {
                detail::scale_inplace<simd::default_arch>(x + b, c, std::size_t(e - b));
            },
            std::int64_t{1} << 14);
    }

    communicator alone_; // the one-process job: every collective is a no-op
    Model& model_;
    Objective& obj_;
    Optimizer& opt_;
    Optimizer head_opt_{};
    trainer_config cfg_;
    std::int64_t step_ = 0;
};

} // namespace gptx
