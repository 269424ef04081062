// gptx/train/grpo.hpp: GRPO (Shao et al. 2024, DeepSeekMath) and RLOO (Ahmadian et al. 2024):
// G responses sampled per prompt, advantages from their rewards alone (no value model), and
// PPO's clipped policy loss with per-sequence means and a k3 KL penalty to the reference in the
// loss (ppo_policy_objective's GRPO form), each update a step of the generic trainer.
// Tested by tests/train/test_grpo.cpp.
// Legend: P prompts per iteration, G responses per prompt, N = P x G sequences.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <optional>
#include <string_view>
#include <vector>

#include "../core/communicator.hpp"
#include "../core/error.hpp"
#include "../core/progress.hpp"
#include "../core/rng.hpp"
#include "../data/batcher.hpp"
#include "ema.hpp"
#include "optimizer.hpp"
#include "ppo.hpp"
#include "rollouts.hpp"
#include "trainer.hpp"

namespace gptx {

enum class group_baseline {
    group, // GRPO: (r_i - mean) / (std + eps), the group's sample standard deviation
    loo    // RLOO: r_i - mean of the other G - 1 rewards, no scaling
};

inline std::string_view to_string(group_baseline b) {
    return b == group_baseline::loo ? "loo" : "group";
}
inline group_baseline parse_group_baseline(std::string_view s) {
    if (s == "group")
        return group_baseline::group;
    if (s == "loo")
        return group_baseline::loo;
    detail::fail("unknown baseline '", s, "' (choose group or loo)");
}

// advantages[i] for n rewards in consecutive groups of G (G >= 2; n a multiple of G). A group
// whose rewards are all equal gets advantage 0 under both baselines: it says nothing about which
// response is better. eps keeps GRPO's division finite for nearly equal rewards.
template <class T>
void group_advantages(T* advantages, const double* rewards, std::size_t n, int G,
                      group_baseline baseline, double eps = 1e-4) {
    GPTX_CHECK(G >= 2, "group advantages: a group needs at least 2 responses, got ", G);
    GPTX_CHECK(n % std::size_t(G) == 0, "group advantages: ", n,
               " rewards do not make whole groups of ", G);
    for (std::size_t g0 = 0; g0 < n; g0 += std::size_t(G)) {
        const double* r = rewards + g0;
        double sum = 0;
        for (int i = 0; i < G; ++i)
            sum += r[i];
        const double mean = sum / G;
        if (baseline == group_baseline::loo) {
            // r_i - (sum - r_i) / (G - 1) = G / (G - 1) (r_i - mean)
            for (int i = 0; i < G; ++i)
                advantages[g0 + std::size_t(i)] = T(r[i] - (sum - r[i]) / (G - 1));
            continue;
        }
        double ss = 0;
        for (int i = 0; i < G; ++i)
            ss += (r[i] - mean) * (r[i] - mean);
        const double sd = std::sqrt(ss / (G - 1));
        for (int i = 0; i < G; ++i)
            advantages[g0 + std::size_t(i)] = T(ss > 0 ? (r[i] - mean) / (sd + eps) : 0.0);
    }
}

struct grpo_config {
    int end_of_text = -1;    // ends responses; the reward model reads there (required)
    int prompts = 16;        // prompts per iteration (per rank under MPI)
    int group_size = 4;      // G responses sampled for each
    int max_new_tokens = 32; // response cap (also bounded by the context)
    int epochs = 1;          // passes over the rollouts (1: every update on-policy but the first)
    int minibatch = 16;      // sequences per update
    float lr = 1e-5f;
    float beta1 = 0.9f, beta2 = 0.95f, weight_decay = 0.0f;
    float grad_clip = 1.0f; // global norm; 0 disables
    double clip_eps = 0.2;  // policy ratio clip
    double kl_coef = 0.04;  // beta of the k3 penalty to the reference (DeepSeekMath: 0.04)
    group_baseline baseline = group_baseline::group; // GRPO; loo: RLOO
    double eps = 1e-4;                               // GRPO's (r - mean) / (sd + eps)
    float temperature = 1.0f;                        // rollout sampling temperature
    double missing_eot_penalty = 0.0;
    std::vector<int> stop_tokens{}; // cut a response as the cap does (rollout_config::stop_tokens)
    double guard_ratio = 1e3, guard_kl = 1.0; // as PPO's: skip an update that exploded
    double ptx_coef = 0.0;                    // PPO-ptx's pre-training term, here too
    int ptx_batch = 4, ptx_context = 0;
    std::uint64_t seed = 1;
    communicator* comm = nullptr; // data parallel: each rank samples its own groups
};

struct grpo_metrics {
    std::int64_t iteration = 0; // iterations done, this one included
    double score = 0;           // mean reward-model score of the rollouts
    double kl = 0;              // mean log pi - log pi_ref over sampled tokens
    double kl_exact = 0;        // mean exact KL(pi || pi_ref) at generated positions
    double entropy = 0;         // mean policy entropy at generated positions
    double response_length = 0; // mean action tokens per response (end-of-text included)
    double flat_groups = 0;     // share of groups whose G rewards were all equal (no signal)
    double policy_loss = 0, ptx_loss = 0, kl_k3 = 0; // means over the updates
    double clip_frac = 0, approx_kl = 0, grad_norm = 0;
    int updates = 0, skipped = 0;
    double ms = 0;
};

// With the policy's parameters and optimizer, this resumes a run exactly.
struct grpo_state {
    std::int64_t iteration = 0;
    rng::state_type sampler_rng{}, ptx_rng{};
};

// The policy starts as the SFT model and the reference is the SFT model, frozen; the reward
// function is the frozen reward model. Every model must outlive the trainer.
template <class Policy> class grpo_trainer {
  public:
    using T = typename Policy::value_type;

    grpo_trainer(Policy& policy, Policy& reference, reward_fn reward,
                 std::vector<std::vector<int>> prompts, grpo_config cfg,
                 std::vector<int> ptx_tokens = {})
        : policy_(policy), prompts_(std::move(prompts)), cfg_(cfg), obj_(cfg.clip_eps),
          rng_(cfg.seed), buf_(policy, reference, std::move(reward),
                               rollout_config{.end_of_text = cfg.end_of_text,
                                              .max_new_tokens = cfg.max_new_tokens,
                                              .temperature = cfg.temperature,
                                              .missing_eot_penalty = cfg.missing_eot_penalty,
                                              .score_batch = cfg.minibatch,
                                              .stop_tokens = cfg.stop_tokens}) {
        GPTX_CHECK(cfg_.end_of_text >= 0 && cfg_.end_of_text < policy.vocab(),
                   "grpo: end-of-text id ", cfg_.end_of_text, " is outside the vocabulary [0, ",
                   policy.vocab(), ")");
        GPTX_CHECK(policy.vocab() == reference.vocab() && policy.context() == reference.context(),
                   "grpo: the policy and the reference differ in vocabulary or context");
        check_rollout_prompts(prompts_, policy.context(), "grpo");
        GPTX_CHECK(cfg_.prompts > 0 && cfg_.minibatch > 0 && cfg_.epochs > 0 &&
                       cfg_.max_new_tokens > 0,
                   "grpo: prompts, minibatch, epochs and max_new_tokens must be positive");
        GPTX_CHECK(cfg_.group_size >= 2, "grpo: a group needs at least 2 responses, got ",
                   cfg_.group_size);
        GPTX_CHECK(cfg_.lr > 0, "grpo: the learning rate must be positive");
        GPTX_CHECK(cfg_.temperature > 0, "grpo: the rollout temperature must be positive");
        obj_.set_kl_penalty(cfg_.kl_coef);
        obj_.set_sequence_mean(true);
        obj_.set_guards(cfg_.guard_ratio, cfg_.guard_kl);
        opt_ = adamw<T>(policy.params(), adamw_config{.lr = cfg_.lr,
                                                      .beta1 = cfg_.beta1,
                                                      .beta2 = cfg_.beta2,
                                                      .eps = 1e-8f,
                                                      .weight_decay = cfg_.weight_decay});
        step_.emplace(policy_, obj_, opt_,
                      trainer_config{.grad_clip = cfg_.grad_clip,
                                     .lr = [lr = cfg_.lr](int) { return lr; },
                                     .comm = cfg_.comm,
                                     .name = cfg_.baseline == group_baseline::loo
                                                 ? "rloo policy update"
                                                 : "grpo policy update"});
        ptx_ = ptx_source(cfg_.ptx_coef, std::move(ptx_tokens), cfg_.ptx_batch, cfg_.ptx_context,
                          policy.context(), cfg_.seed, "grpo");
        policy.set_training(false);
        reference.set_training(false);
        split_streams();
    }

    // One iteration: P prompts x G responses, their advantages within each group, then epochs x
    // minibatches of policy updates.
    grpo_metrics iteration() {
        const auto t0 = std::chrono::steady_clock::now();
        grpo_metrics out;
        rollout(out);
        optimise(out);
        ++iteration_;
        out.iteration = iteration_;
        out.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count();
        return out;
    }

    std::vector<std::vector<int>> sample(const std::vector<std::vector<int>>& prompts,
                                         std::uint64_t seed) {
        return buf_.sample(prompts, seed);
    }
    grpo_state state() const { return {iteration_, rng_.state(), ptx_.state()}; }
    void set_state(const grpo_state& s) {
        iteration_ = s.iteration;
        rng_.set_state(s.sampler_rng);
        ptx_.set_state(s.ptx_rng);
        split_streams();
    }
    std::int64_t iteration_count() const { return iteration_; }
    Policy& policy() { return policy_; }
    adamw<T>& policy_optimizer() { return opt_; }
    const grpo_config& config() const { return cfg_; }

  private:
    void rollout(grpo_metrics& out) {
        const int G = cfg_.group_size, N = cfg_.prompts * G;
        std::vector<std::vector<int>> chosen;
        chosen.reserve(std::size_t(N));
        for (int p = 0; p < cfg_.prompts; ++p) {
            const auto& prompt = prompts_[rng_.below(prompts_.size())];
            for (int g = 0; g < G; ++g)
                chosen.push_back(prompt); // a group: consecutive sequences
        }
        buf_.collect(chosen, rng_, [](auto&&...) {});
        const auto& seqs = buf_.sequences();
        const auto& scores = buf_.scores();
        std::vector<double> seq_adv(static_cast<std::size_t>(N));
        group_advantages(seq_adv.data(), scores.data(), std::size_t(N), G, cfg_.baseline, cfg_.eps);
        adv_.assign(buf_.actions(), 0);
        double flat = 0, kl = 0, klx = 0, ent = 0, score = 0;
        for (int i = 0; i < N; ++i) {
            const auto& s = seqs[std::size_t(i)];
            for (int j = 0; j < s.actions; ++j) {
                const std::size_t f = s.offset + std::size_t(j);
                adv_[f] = T(seq_adv[std::size_t(i)]);
                kl += double(buf_.logp()[f]) - double(buf_.ref_logp()[f]);
                klx += buf_.kl_exact()[f];
                ent += buf_.entropy()[f];
            }
            score += scores[std::size_t(i)];
        }
        for (int p = 0; p < cfg_.prompts; ++p)
            flat += std::all_of(scores.begin() + p * G, scores.begin() + (p + 1) * G,
                                [&](double v) { return v == scores[std::size_t(p * G)]; })
                        ? 1.0
                        : 0.0;
        double sums[7] = {score, kl, klx, ent, double(buf_.actions()), flat, double(N)};
        if (cfg_.comm && cfg_.comm->size() > 1)
            cfg_.comm->allreduce_sum(sums, 7);
        const double ntok = std::max(1.0, sums[4]);
        out.score = sums[0] / sums[6];
        out.kl = sums[1] / ntok;
        out.kl_exact = sums[2] / ntok;
        out.entropy = sums[3] / ntok;
        out.response_length = sums[4] / sums[6];
        out.flat_groups = sums[5] / (sums[6] / G);
    }

    void optimise(grpo_metrics& out) {
        const int N = cfg_.prompts * cfg_.group_size;
        std::vector<int> order(static_cast<std::size_t>(N));
        int counted = 0;
        progress bar("updates",
                     std::int64_t(cfg_.epochs) * ((N + cfg_.minibatch - 1) / cfg_.minibatch),
                     {.unit = "batch"});
        for (int epoch = 0; epoch < cfg_.epochs; ++epoch) {
            std::iota(order.begin(), order.end(), 0);
            for (int i = N - 1; i > 0; --i)
                std::swap(order[std::size_t(i)], order[rng_.below(std::uint64_t(i) + 1)]);
            for (int first = 0; first < N; first += cfg_.minibatch) {
                const int M = std::min(cfg_.minibatch, N - first);
                bar.advance();
                const int Tm = buf_.pack(order, std::size_t(first), M);
                const std::size_t n = std::size_t(M) * Tm;
                old_.assign(n, 0);
                a_.assign(n, 0);
                ref_.assign(n, 0);
                bool any = false;
                for (int k = 0; k < M; ++k) {
                    const auto& s = buf_.sequences()[std::size_t(order[std::size_t(first + k)])];
                    for (int j = 0; j < s.actions; ++j) {
                        const std::size_t row = std::size_t(k) * Tm + s.prompt - 1 + j,
                                          f = s.offset + std::size_t(j);
                        old_[row] = buf_.logp()[f];
                        ref_[row] = buf_.ref_logp()[f];
                        a_[row] = adv_[f];
                        any = true;
                    }
                }
                const bool parallel = cfg_.comm && cfg_.comm->size() > 1;
                if ((parallel ? cfg_.comm->sum(any ? 1.0 : 0.0) : any ? 1.0 : 0.0) == 0.0)
                    continue;
                const lm_batch* ptx = ptx_.next();
                const step_metrics sm = step_->step([&](int) {
                    ppo_policy_batch<T> b{buf_.x(), buf_.y(), buf_.mask(), old_.data(),  a_.data(),
                                          M,        Tm,       ptx,         cfg_.ptx_coef};
                    b.ref_logp = ref_.data();
                    return b;
                });
                const ppo_policy_stats& st = obj_.stats();
                out.policy_loss += st.ppo_loss;
                out.ptx_loss += st.ptx_loss;
                out.kl_k3 += st.kl_k3;
                out.clip_frac += st.clip_frac;
                out.approx_kl += st.approx_kl;
                out.grad_norm += sm.grad_norm;
                (sm.applied ? out.updates : out.skipped) += 1;
                ++counted;
            }
        }
        if (counted > 0)
            for (double* v : {&out.policy_loss, &out.ptx_loss, &out.kl_k3, &out.clip_frac,
                              &out.approx_kl, &out.grad_norm})
                *v /= counted;
    }

    // Under data parallel, ranks after 0 sample from streams of their own (as PPO's).
    void split_streams() {
        if (!cfg_.comm || cfg_.comm->size() <= 1)
            return;
        split_stream_for_rank(rng_, cfg_.comm->rank());
        ptx_.split_for_rank(cfg_.comm->rank());
    }

    Policy& policy_;
    std::vector<std::vector<int>> prompts_;
    grpo_config cfg_;
    ppo_policy_objective<Policy> obj_;
    adamw<T> opt_;
    std::optional<trainer<Policy, ppo_policy_objective<Policy>, adamw<T>>> step_;
    rng rng_;
    ptx_source ptx_;
    rollout_buffer<Policy> buf_;
    std::int64_t iteration_ = 0;
    std::vector<T> adv_;           // per action, in the rollouts' order
    std::vector<T> old_, a_, ref_; // (M, Tm) of the minibatch
};

} // namespace gptx
