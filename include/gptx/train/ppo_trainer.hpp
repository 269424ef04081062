// gptx/train/ppo_trainer.hpp: InstructGPT's PPO and PPO-ptx loop: batched rollouts with the KV
// cache, per-token KL-penalised rewards, GAE, then epochs x minibatches of clipped policy and
// value updates. Tested by tests/train/test_ppo.cpp.
// Legend: N rollouts per iteration, M sequences per minibatch, P prompt length, T time.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/progress.hpp"
#include "../core/rng.hpp"
#include "../data/batcher.hpp"
#include "../generate/sampler.hpp"
#include "../nn/kv_cache.hpp"
#include "../nn/reward_model.hpp"
#include "clip.hpp"
#include "ema.hpp"
#include "gae.hpp"
#include "kl_controller.hpp"
#include "optimizer.hpp"
#include "ppo.hpp"
#include "rollouts.hpp"
#include "trainer.hpp"

namespace gptx {

struct ppo_config {
    int end_of_text = -1; // the end-of-text id (required): ends responses, the RM reads there
    int rollouts = 64;    // sequences sampled per iteration
    int max_new_tokens =
        32;             // response cap (also bounded by the context, leaving room for end-of-text)
    int epochs = 4;     // passes over the rollouts
    int minibatch = 16; // sequences per update
    // > 0: the updates (policy and value) use only this many of each iteration's rollouts, those
    // whose largest |whitened advantage| is largest (0: all); their advantages are not whitened
    // again. Sampling is cheap next to the updates, so more rollouts than are trained on could
    // find the few that carry a signal when most score as expected (docs/pipeline.md measures it).
    // Under data parallel each rank keeps this many of its own rollouts.
    int keep = 0;
    float lr = 1e-5f;      // policy learning rate
    float value_lr = 0.0f; // value model learning rate; 0: lr
    float beta1 = 0.9f, beta2 = 0.95f, weight_decay = 0.0f;
    float grad_clip = 1.0f;  // global norm, per model; 0 disables
    double clip_eps = 0.2;   // policy ratio clip
    double value_clip = 0.2; // value clip; 0 disables
    double gamma = 1.0, lambda = 0.95;
    double kl_coef = 0.02;     // beta (initial beta when adaptive)
    double kl_target = 0.0;    // > 0: adaptive KL controller with this per-sequence KL target
    double kl_horizon = 10000; // the controller's horizon, in rollouts
    double ema_decay = 0.0;    // > 0: keep an EMA of the policy (InstructGPT: 0.992)
    double ptx_coef = 0.0;     // PPO-ptx gamma (InstructGPT: 27.8); needs pre-training tokens
    int ptx_batch = 4;         // pre-training sequences per minibatch
    int ptx_context = 0;       // their length; 0: the policy's context
    float temperature = 1.0f;  // rollout sampling temperature (1: on-policy)
    double missing_eot_penalty =
        0.0; // subtracted from the score of a response cut by the length cap (or a stop token)
    std::vector<int> stop_tokens{}; // cut a response as the cap does (rollout_config::stop_tokens)
    double guard_ratio = 1e3;       // skip an update when a token's ratio pi / pi_old exceeds this
    double guard_kl = 1.0;          // ... or when the mean KL(old || new) per token exceeds this
    int value_warmup = 0;           // first iterations that train only the value model: a critic
                                    // initialised from the RM is not yet a value function, and
                                    // advantages from it would push the policy at random
    int lr_warmup = 0; // the policy's learning rate ramps up linearly over this many iterations
                       // after the value warm-up: Adam's first steps, from second moments of a
                       // few noisy gradients, move every weight by about lr whatever its signal
    std::uint64_t seed = 1;
    // Data parallel: each rank samples `rollouts` of its own prompts; advantages are whitened and
    // the KL controller fed over the global batch; gradients are summed over ranks before
    // clipping; an update is skipped on every rank when a guard trips on any. Null: alone.
    communicator* comm = nullptr;
};

struct ppo_metrics {
    std::int64_t iteration = 0; // iterations done, this one included
    double score = 0;           // mean RM score of the rollouts
    double kl = 0;       // mean log pi - log pi_ref over sampled tokens (the estimate optimised)
    double kl_seq = 0;   // its sum per sequence, averaged (the KL controller's input)
    double kl_exact = 0; // mean exact KL(pi || pi_ref) over the vocabulary at generated positions
    double entropy = 0;  // mean policy entropy at generated positions
    double reward = 0;   // mean total reward per sequence (score - beta * KL)
    double beta = 0;     // the KL coefficient used for these rollouts
    double response_length = 0; // mean action tokens per response (end-of-text included)
    double ended = 0;           // share of the rollouts that sampled end-of-text
    double stopped = 0;         // share cut by a stop token (the rest hit the length cap)
    double policy_loss = 0, value_loss = 0, ptx_loss = 0; // means over the updates
    double clip_frac = 0, value_clip_frac = 0, approx_kl = 0;
    double grad_norm = 0;          // mean policy gradient norm before clipping
    double explained_variance = 0; // 1 - Var(returns - values) / Var(returns), at rollout time
    int updates = 0, skipped = 0;  // minibatch updates applied and skipped by the guards
    double kept_advantage = 1;     // share of the summed |advantage| in the rollouts trained on
                                   // (over every rank's rollouts under data parallel)
    double ms = 0;
};

// The state that, with the models' parameters and the optimizers, resumes a run exactly.
struct ppo_state {
    std::int64_t iteration = 0;
    rng::state_type sampler_rng{}, ptx_rng{};
    double beta = 0;
};

// The policy starts as the SFT model; the reference is the SFT model (frozen); the value model is a
// trunk (initialised from the RM's trunk) plus a scalar head (from the RM's head); the RM is
// frozen behind `reward`. Every model must outlive the trainer. Dropout is off during PPO.
template <class Policy, class ValueModel = Policy> class ppo_trainer {
  public:
    using T = typename Policy::value_type;
    static_assert(std::is_same_v<T, typename ValueModel::value_type>,
                  "ppo: policy and value model share a type");

    ppo_trainer(Policy& policy, Policy& reference, ValueModel& value_model,
                const linear_head<T>& value_head, reward_fn reward,
                std::vector<std::vector<int>> prompts, ppo_config cfg,
                std::vector<int> ptx_tokens = {})
        : policy_(policy), ref_(reference), value_(value_model), reward_(std::move(reward)),
          prompts_(std::move(prompts)), cfg_(cfg), policy_obj_(cfg.clip_eps),
          value_obj_(cfg.value_clip), kl_(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon),
          rng_(cfg.seed), buf_(policy, reference, reward_,
                               rollout_config{.end_of_text = cfg.end_of_text,
                                              .max_new_tokens = cfg.max_new_tokens,
                                              .temperature = cfg.temperature,
                                              .missing_eot_penalty = cfg.missing_eot_penalty,
                                              .score_batch = cfg.minibatch,
                                              .stop_tokens = cfg.stop_tokens}) {
        GPTX_CHECK(cfg_.end_of_text >= 0 && cfg_.end_of_text < policy.vocab(),
                   "ppo: end-of-text id ", cfg_.end_of_text, " is outside the vocabulary [0, ",
                   policy.vocab(), ")");
        GPTX_CHECK(policy.vocab() == reference.vocab() && policy.context() == reference.context(),
                   "ppo: the policy and the reference differ in vocabulary or context");
        GPTX_CHECK(value_model.vocab() == policy.vocab(), "ppo: the value model's vocabulary ",
                   value_model.vocab(), " differs from the policy's ", policy.vocab());
        GPTX_CHECK(value_model.context() >= policy.context(), "ppo: the value model's context ",
                   value_model.context(), " is shorter than the policy's ", policy.context());
        GPTX_CHECK(value_head.channels() == ValueModel::C && value_head.outputs() == 1,
                   "ppo: the value head must map ", ValueModel::C, " channels to 1 output");
        GPTX_CHECK(static_cast<bool>(reward_), "ppo: a reward function is required");
        check_rollout_prompts(prompts_, policy.context(), "ppo");
        GPTX_CHECK(cfg_.rollouts > 0 && cfg_.minibatch > 0 && cfg_.epochs > 0 &&
                       cfg_.max_new_tokens > 0,
                   "ppo: rollouts, minibatch, epochs and max_new_tokens must be positive");
        GPTX_CHECK(cfg_.keep >= 0 && cfg_.keep <= cfg_.rollouts, "ppo: keep must be in [0, ",
                   cfg_.rollouts, "] (the rollouts; 0: all), got ", cfg_.keep);
        GPTX_CHECK(cfg_.lr > 0 && cfg_.value_lr >= 0, "ppo: learning rates must be positive");
        GPTX_CHECK(cfg_.value_warmup >= 0, "ppo: value warm-up iterations must be >= 0, got ",
                   cfg_.value_warmup);
        GPTX_CHECK(cfg_.lr_warmup >= 0, "ppo: learning-rate warm-up iterations must be >= 0, got ",
                   cfg_.lr_warmup);
        GPTX_CHECK(cfg_.ema_decay >= 0 && cfg_.ema_decay < 1,
                   "ppo: EMA decay must be in [0, 1), got ", cfg_.ema_decay);
        GPTX_CHECK(cfg_.temperature > 0, "ppo: the rollout temperature must be positive");
        std::copy(value_head.params().data(),
                  value_head.params().data() + value_head.params().size(),
                  value_obj_.head_params().data());
        const adamw_config pc{.lr = cfg_.lr,
                              .beta1 = cfg_.beta1,
                              .beta2 = cfg_.beta2,
                              .eps = 1e-8f,
                              .weight_decay = cfg_.weight_decay};
        adamw_config vc = pc;
        vc.lr = cfg_.value_lr > 0 ? cfg_.value_lr : cfg_.lr;
        policy_opt_ = adamw<T>(policy.params(), pc);
        value_opt_ = adamw<T>(value_model.params(), vc);
        policy_obj_.set_guards(cfg_.guard_ratio, cfg_.guard_kl);
        // The updates are the generic trainer's steps: one for the policy, one for the value
        // model and its head (the trainer keeps the head's optimizer, made from vc).
        policy_step_.emplace(policy_, policy_obj_, policy_opt_,
                             trainer_config{.grad_clip = cfg_.grad_clip,
                                            .lr = [this](int) { return policy_lr(); },
                                            .comm = cfg_.comm,
                                            .name = "ppo policy update"});
        value_step_.emplace(value_, value_obj_, value_opt_,
                            trainer_config{.grad_clip = cfg_.grad_clip,
                                           .lr = [lr = vc.lr](int) { return lr; },
                                           .comm = cfg_.comm,
                                           .name = "ppo value update"});
        if (cfg_.ema_decay > 0)
            ema_.emplace(policy.params(), cfg_.ema_decay);
        ptx_ = ptx_source(cfg_.ptx_coef, std::move(ptx_tokens), cfg_.ptx_batch, cfg_.ptx_context,
                          policy.context(), cfg_.seed, "ppo");
        for (auto* m : {&policy_, &ref_})
            m->set_training(false);
        value_.set_training(false);
        split_streams();
    }

    // One iteration: rollouts, then epochs x minibatches of updates; then the KL controller.
    // Throws (before the update that would apply it) when a loss or gradient is not finite.
    ppo_metrics iteration() {
        const auto t0 = std::chrono::steady_clock::now();
        ppo_metrics out;
        out.beta = kl_.beta();
        rollout(out);
        optimise(out);
        kl_.update(out.kl_seq, cfg_.rollouts * ranks());
        ++iteration_;
        out.iteration = iteration_;
        out.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count();
        return out;
    }

    // Samples one response per prompt from the current policy (temperature as configured), each
    // stopping at end-of-text or the length cap; for evaluation. Does not touch the run's state.
    std::vector<std::vector<int>> sample(const std::vector<std::vector<int>>& prompts,
                                         std::uint64_t seed) {
        return buf_.sample(prompts, seed);
    }

    ppo_state state() const { return {iteration_, rng_.state(), ptx_.state(), kl_.beta()}; }
    void set_state(const ppo_state& s) {
        iteration_ = s.iteration;
        rng_.set_state(s.sampler_rng);
        ptx_.set_state(s.ptx_rng);
        split_streams(); // a checkpoint holds rank 0's streams; the others derive theirs
        kl_.set_beta(s.beta);
    }
    std::int64_t iteration_count() const { return iteration_; }

    Policy& policy() { return policy_; }
    ValueModel& value_model() { return value_; }
    linear_head<T>& value_head() { return value_obj_.head(); }
    adamw<T>& policy_optimizer() { return policy_opt_; }
    adamw<T>& value_optimizer() { return value_opt_; }
    adamw<T>& value_head_optimizer() { return value_step_->head_optimizer(); }
    kl_controller& kl() { return kl_; }
    // The EMA of the policy weights, when ema_decay > 0 (else null).
    ema<T>* policy_ema() { return ema_ ? &*ema_ : nullptr; }
    const ppo_config& config() const { return cfg_; }
    // The policy's learning rate in this iteration: lr * (k + 1) / (lr_warmup + 1) in the k-th
    // iteration (from 0) after the value warm-up while k < lr_warmup, then lr. Keyed on the
    // iteration count, so a resumed run continues the ramp where it stopped.
    float policy_lr() const {
        const std::int64_t k = iteration_ - cfg_.value_warmup;
        if (k >= cfg_.lr_warmup)
            return cfg_.lr;
        return float(double(cfg_.lr) * double(std::max<std::int64_t>(k, 0) + 1) /
                     double(cfg_.lr_warmup + 1));
    }
    // The last iteration's rollouts (prompt, response, end-of-text; ended/stopped flags), for a
    // caller that judges them by other means than the reward (a labeler's gold score).
    const auto& rollouts() const { return buf_.sequences(); }
    // The last iteration's whitened advantages, one per action in rollouts() order.
    const std::vector<T>& advantages() const { return adv_; }

    // The last iteration's rollouts its updates used, in rollout order: all, or the cfg_.keep
    // whose largest |advantage| over their tokens is largest (ties to the earlier rollout).
    // Empty before the first iteration.
    std::vector<int> trained_rollouts() const {
        const int N = int(buf_.sequences().size());
        if (N == 0)
            return {};
        std::vector<int> all(N);
        std::iota(all.begin(), all.end(), 0);
        if (cfg_.keep == 0 || cfg_.keep >= N)
            return all;
        std::vector<double> key(N);
        for (int i = 0; i < N; ++i)
            key[i] = abs_advantage(i).largest;
        std::stable_sort(all.begin(), all.end(), [&](int a, int b) { return key[a] > key[b]; });
        all.resize(cfg_.keep);
        std::sort(all.begin(), all.end());
        return all;
    }

  private:
    // Rollout i's |advantage| over its tokens: the largest (what keep orders by) and the sum.
    struct abs_advantage_t {
        double largest = 0, sum = 0;
    };
    abs_advantage_t abs_advantage(int i) const {
        const auto& s = buf_.sequences()[i];
        abs_advantage_t a;
        for (int j = 0; j < s.actions; ++j) {
            const double v = std::abs(double(adv_[s.offset + j]));
            a.largest = std::max(a.largest, v);
            a.sum += v;
        }
        return a;
    }

    // The share of the summed |advantage| that `pool` (sorted rollout indices) holds, over every
    // rank's rollouts; every rank calls it, since keep and rollouts are the run's.
    double kept_share(const std::vector<int>& pool) const {
        double sums[2] = {0, 0}; // kept, all
        for (int i = 0; i < cfg_.rollouts; ++i) {
            const double a = abs_advantage(i).sum;
            sums[1] += a;
            if (std::binary_search(pool.begin(), pool.end(), i))
                sums[0] += a;
        }
        if (parallel())
            cfg_.comm->allreduce_sum(sums, 2);
        return sums[1] > 0 ? sums[0] / sums[1] : 1.0;
    }

    void rollout(ppo_metrics& out) {
        const int N = cfg_.rollouts;
        values_.clear(); // filled by collect, in action order
        std::vector<std::vector<int>> chosen(N);
        for (int i = 0; i < N; ++i)
            chosen[i] = prompts_[rng_.below(prompts_.size())];
        buf_.collect(chosen, rng_,
                     [&](const int* x, int M, int Tm, const std::vector<int>& rows, std::size_t) {
                         const auto& v = value_obj_.predict(value_, x, M, Tm, rows);
                         values_.insert(values_.end(), v.begin(), v.end());
                     });
        const auto& rolled = buf_.sequences();
        const auto& logp = buf_.logp();
        const auto& ref_logp = buf_.ref_logp();
        const auto& ent = buf_.entropy();
        const auto& klx = buf_.kl_exact();
        const auto& scores = buf_.scores();
        const std::size_t total = buf_.actions();
        adv_.assign(total, 0);
        ret_.assign(total, 0);

        // Per-token rewards -beta (log pi - log pi_ref), the score added at the final token; GAE.
        const double beta = kl_.beta();
        std::vector<T> rew;
        double kl_sum = 0, klx_sum = 0, ent_sum = 0, score_sum = 0, reward_sum = 0, ended = 0,
               stopped = 0;
        for (int i = 0; i < N; ++i) {
            const auto& s = rolled[i];
            rew.assign(s.actions, 0);
            double seq_kl = 0;
            for (int j = 0; j < s.actions; ++j) {
                const double k = double(logp[s.offset + j]) - double(ref_logp[s.offset + j]);
                seq_kl += k;
                rew[j] = T(-beta * k);
                klx_sum += klx[s.offset + j];
                ent_sum += ent[s.offset + j];
            }
            if (s.actions > 0) {
                rew[s.actions - 1] += T(scores[i]);
                gae(adv_.data() + s.offset, ret_.data() + s.offset, rew.data(),
                    values_.data() + s.offset, s.actions, cfg_.gamma, cfg_.lambda);
            }
            kl_sum += seq_kl;
            ended += s.ended ? 1 : 0;
            stopped += s.stopped ? 1 : 0;
            score_sum += scores[i];
            reward_sum += scores[i] - beta * seq_kl;
        }
        double sums[8] = {score_sum, reward_sum,    kl_sum, klx_sum,
                          ent_sum,   double(total), ended,  stopped};
        if (parallel()) // the global batch's means (the KL controller must see the same beta input)
            cfg_.comm->allreduce_sum(sums, 8);
        const double seqs = double(N) * ranks(), ntok = std::max(1.0, sums[5]);
        out.score = sums[0] / seqs;
        out.reward = sums[1] / seqs;
        out.kl_seq = sums[2] / seqs;
        out.kl = sums[2] / ntok;
        out.kl_exact = sums[3] / ntok;
        out.entropy = sums[4] / ntok;
        out.response_length = sums[5] / seqs;
        out.ended = sums[6] / seqs;
        out.stopped = sums[7] / seqs;
        out.explained_variance = explained_variance(ret_, values_); // this rank's rollouts
        if (parallel())
            whiten(adv_.data(), adv_.size(), *cfg_.comm);
        else
            whiten(adv_.data(), adv_.size());
    }

    static double explained_variance(const std::vector<T>& ret, const std::vector<T>& val) {
        const std::size_t n = ret.size();
        if (n < 2)
            return 0.0;
        double mr = 0, md = 0;
        for (std::size_t i = 0; i < n; ++i) {
            mr += double(ret[i]);
            md += double(ret[i]) - double(val[i]);
        }
        mr /= double(n);
        md /= double(n);
        double vr = 0, vd = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const double d = double(ret[i]) - double(val[i]);
            vr += (double(ret[i]) - mr) * (double(ret[i]) - mr);
            vd += (d - md) * (d - md);
        }
        return vr > 0 ? 1.0 - vd / vr : 0.0;
    }

    void optimise(ppo_metrics& out) {
        const std::vector<int> pool = trained_rollouts();
        const int N = int(pool.size());
        if (N < cfg_.rollouts)
            out.kept_advantage = kept_share(pool);
        std::vector<int> order(N);
        int counted = 0;
        progress bar("updates",
                     std::int64_t(cfg_.epochs) * ((N + cfg_.minibatch - 1) / cfg_.minibatch),
                     {.unit = "batch"});
        for (int epoch = 0; epoch < cfg_.epochs; ++epoch) {
            order = pool;
            for (int i = N - 1; i > 0; --i)
                std::swap(order[i], order[rng_.below(std::uint64_t(i) + 1)]);
            for (int first = 0; first < N; first += cfg_.minibatch) {
                const int M = std::min(cfg_.minibatch, N - first);
                bar.advance();
                const int Tm = buf_.pack(order, first, M);
                // Per-(b, t) arrays of the minibatch, filled at the action rows.
                const std::size_t n = std::size_t(M) * Tm;
                old_.assign(n, 0);
                a_.assign(n, 0);
                ov_.assign(n, 0);
                r_.assign(n, 0);
                bool any = false;
                for (int k = 0; k < M; ++k) {
                    const auto& s = buf_.sequences()[order[first + k]];
                    for (int j = 0; j < s.actions; ++j) {
                        const std::size_t row = std::size_t(k) * Tm + s.prompt - 1 + j,
                                          f = s.offset + j;
                        old_[row] = buf_.logp()[f];
                        a_[row] = adv_[f];
                        ov_[row] = values_[f];
                        r_[row] = ret_[f];
                        any = true;
                    }
                }
                // Every rank takes part in an update any rank has rows for; one without rows adds
                // nothing (its objectives see an empty mask).
                if ((parallel() ? cfg_.comm->sum(any ? 1.0 : 0.0) : any ? 1.0 : 0.0) == 0.0)
                    continue;
                const lm_batch* ptx = ptx_.next();
                if (iteration_ >= cfg_.value_warmup) {
                    const step_metrics sm = policy_step_->step([&](int) {
                        return ppo_policy_batch<T>{buf_.x(),    buf_.y(),  buf_.mask(),
                                                   old_.data(), a_.data(), M,
                                                   Tm,          ptx,       cfg_.ptx_coef};
                    });
                    const ppo_policy_stats& st = policy_obj_.stats();
                    out.policy_loss += st.ppo_loss;
                    out.ptx_loss += st.ptx_loss;
                    out.clip_frac += st.clip_frac;
                    out.approx_kl += st.approx_kl;
                    out.grad_norm += sm.grad_norm;
                    if (sm.applied) {
                        if (ema_)
                            ema_->update(policy_.params());
                        ++out.updates;
                    } else {
                        ++out.skipped; // a guard tripped (ppo_policy_objective::accept_update)
                    }
                }
                value_step_->step([&](int) {
                    return ppo_value_batch<T>{buf_.x(), buf_.mask(), ov_.data(), r_.data(), M, Tm};
                });
                out.value_loss += value_obj_.stats().value_loss;
                out.value_clip_frac += value_obj_.stats().clip_frac;
                ++counted;
            }
        }
        if (counted > 0) {
            for (double* v : {&out.policy_loss, &out.value_loss, &out.ptx_loss, &out.clip_frac,
                              &out.value_clip_frac, &out.approx_kl, &out.grad_norm})
                *v /= counted;
        }
    }

    bool parallel() const { return cfg_.comm && cfg_.comm->size() > 1; }
    int ranks() const { return parallel() ? cfg_.comm->size() : 1; }
    // Under data parallel, ranks after 0 sample (and draw ptx rows) from streams of their own,
    // derived from rank 0's so that one seed fixes the whole job.
    void split_streams() {
        if (!cfg_.comm || cfg_.comm->size() <= 1)
            return;
        split_stream_for_rank(rng_, cfg_.comm->rank());
        ptx_.split_for_rank(cfg_.comm->rank());
    }

    Policy& policy_;
    Policy& ref_;
    ValueModel& value_;
    reward_fn reward_;
    std::vector<std::vector<int>> prompts_;
    ppo_config cfg_;
    ppo_policy_objective<Policy> policy_obj_;
    ppo_value_objective<ValueModel> value_obj_;
    adamw<T> policy_opt_, value_opt_;
    std::optional<trainer<Policy, ppo_policy_objective<Policy>, adamw<T>>> policy_step_;
    std::optional<trainer<ValueModel, ppo_value_objective<ValueModel>, adamw<T>>> value_step_;
    std::optional<ema<T>> ema_;
    kl_controller kl_;
    rng rng_;
    ptx_source ptx_;
    rollout_buffer<Policy> buf_;
    std::int64_t iteration_ = 0;
    // Rollout buffers: sequences, and per-action arrays in sequence order.
    std::vector<T> values_, adv_, ret_; // per action, in the rollouts' order
    // Minibatch buffers (M, Tm).
    std::vector<T> old_, a_, ov_, r_;
};

// The reward function of a frozen reward model, read as it pools, or of an ensemble of them,
// combined as it combines (reward_ensemble); rm must outlive it.
template <class RM>
requires requires(RM& rm, const int* p) { rm.score(p, 1, 1, p, p); }
reward_fn reward_of(RM& rm) {
    return [&rm](const int* tokens, int B, int Tn, const int* ends, const int* starts) {
        const auto r = rm.score(tokens, B, Tn, ends, starts);
        return std::vector<float>(r.begin(), r.end());
    };
}

// The three trainable or frozen trunks of InstructGPT's PPO, made from the SFT model and the RM:
// the policy and the reference start as copies of the SFT model, the value trunk as a copy of
// the RM's trunk (its head comes from rm.head(), passed to ppo_trainer).
template <shape S, class T = float> struct ppo_models {
    transformer<S, T> policy, reference, value;
    ppo_models(const transformer<S, T>& sft, const reward_model<S, T>& rm)
        : policy(sft.config()), reference(sft.config()), value(rm.trunk().config()) {
        copy_parameters(policy, sft);
        copy_parameters(reference, sft);
        copy_parameters(value, rm.trunk());
    }
    static void copy_parameters(transformer<S, T>& dst, const transformer<S, T>& src) {
        std::copy(src.params().data(), src.params().data() + src.params().size(),
                  dst.params().data());
    }
};

} // namespace gptx
