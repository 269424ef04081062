// gptx/train/ppo.hpp: the PPO losses as objectives — the clipped policy loss through the tied LM
// head (PPO-ptx adds gamma x the pre-training LM gradient into the same buffers) and the clipped
// value loss through a scalar head — and per-token statistics of a policy (log-probabilities,
// entropy, exact KL to a reference). Tested by tests/train/test_ppo.cpp.
// Legend: B batch, T time, C channels, V vocab, N action rows (response tokens).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../nn/heads.hpp"
#include "../ops/crossentropy.hpp"
#include "objective.hpp"

namespace gptx {

namespace detail {
// The flat row indices (b * T + t) where mask is set, in order.
inline void set_rows(std::vector<int>& rows, const std::uint8_t* mask, std::int64_t n) {
    rows.clear();
    for (std::int64_t i = 0; i < n; ++i)
        if (mask[i])
            rows.push_back(static_cast<int>(i));
}
// dst(n, C) = the rows of src(*, C).
template <class T> void gather_rows(T* dst, const T* src, const int* rows, int n, int C) {
    for (int i = 0; i < n; ++i)
        std::memcpy(dst + std::size_t(i) * C, src + std::int64_t(rows[i]) * C, sizeof(T) * C);
}
} // namespace detail

// Per action row i (a row of hidden(*, C) named by rows[i], whose action is targets[rows[i]]):
// logp[i] = log pi(action), entropy[i] = -sum_v pi log pi. With a reference (ref_hidden and
// ref_wte not null) also ref_logp[i] = log pi_ref(action) and the exact KL over the vocabulary
// kl[i] = sum_v pi (log pi - log pi_ref), computed in double and clamped at 0 (it is >= 0; the
// clamp only removes rounding). Logits exist for chunk rows at a time. The log-probabilities are
// computed in T exactly as ops::chosen_logprobs_forward computes them for the updates, so at the
// first update the ratio pi / pi_old is 1 and the k3 penalty 0 to the last bit, not to rounding
// (which Adam would scale up to a full step).
template <class Arch = simd::default_arch, class T>
void policy_token_stats(T* logp, T* entropy, T* ref_logp, T* kl, const T* hidden, const T* wte,
                        const T* ref_hidden, const T* ref_wte, const int* rows, const int* targets,
                        int N, int C, int V, std::vector<T>& scratch, int chunk = 64) {
    const bool with_ref = ref_hidden && ref_wte;
    const std::size_t cv = std::size_t(chunk) * V, cc = std::size_t(chunk) * C;
    scratch.resize((with_ref ? 2 : 1) * (cv + cc) + cv);
    T* z = scratch.data();
    T* h = z + cv;
    T* zr = h + cc;
    T* hr = zr + cv;
    T* copy = scratch.data() + (with_ref ? 2 : 1) * (cv + cc); // (chunk, V)
    for (int r0 = 0; r0 < N; r0 += chunk) {
        const int n = std::min(chunk, N - r0);
        detail::gather_rows(h, hidden, rows + r0, n, C);
        ops::lm_logits<Arch>(z, h, wte, n, C, V);
        if (with_ref) {
            detail::gather_rows(hr, ref_hidden, rows + r0, n, C);
            ops::lm_logits<Arch>(zr, hr, ref_wte, n, C, V);
        }
        parallel_for(n, [&](std::int64_t i) {
            const int a = targets[rows[r0 + i]];
            const T* row = z + i * V;
            double m = row[0];
            for (int v = 1; v < V; ++v)
                m = std::max(m, double(row[v]));
            double s = 0;
            for (int v = 0; v < V; ++v)
                s += std::exp(double(row[v]) - m);
            const double lse = m + std::log(s);
            double ent = 0, klv = 0, lser = 0;
            const T* rr = with_ref ? zr + i * V : nullptr;
            if (with_ref) {
                double mr = rr[0];
                for (int v = 1; v < V; ++v)
                    mr = std::max(mr, double(rr[v]));
                double sr = 0;
                for (int v = 0; v < V; ++v)
                    sr += std::exp(double(rr[v]) - mr);
                lser = mr + std::log(sr);
            }
            for (int v = 0; v < V; ++v) {
                const double lp = double(row[v]) - lse, p = std::exp(lp);
                ent -= p * lp;
                if (with_ref)
                    klv += p * (lp - (double(rr[v]) - lser));
            }
            // The updates' log-probability: a softmax in T on a copy of the logits.
            T* c = copy + i * V;
            std::copy(row, row + V, c);
            logp[r0 + i] = row[a] - ops::softmax_inplace<Arch>(c, V);
            entropy[r0 + i] = T(ent);
            if (with_ref) {
                std::copy(rr, rr + V, c);
                ref_logp[r0 + i] = rr[a] - ops::softmax_inplace<Arch>(c, V);
                kl[r0 + i] = T(std::max(0.0, klv));
            }
        });
    }
}

// One PPO policy minibatch. Arrays indexed by (b, t) are (B, T) and read only where mask is set.
template <class Real> struct ppo_policy_batch {
    const int* inputs = nullptr;        // (B, T)
    const int* targets = nullptr;       // (B, T): the sampled tokens (actions)
    const std::uint8_t* mask = nullptr; // (B, T): 1 at response tokens; prompts never carry loss
    const Real* old_logp = nullptr;     // (B, T): log pi_old(action) from the rollout
    const Real* advantages = nullptr;   // (B, T): whitened GAE advantages
    int B = 0, T = 0;
    const lm_batch* ptx =
        nullptr; // PPO-ptx: a pre-training batch whose LM loss has weight ptx_coef
    double ptx_coef = 0.0;
    // (B, T): log pi_ref(action), needed when the objective puts a KL penalty in its loss (GRPO).
    const Real* ref_logp = nullptr;
};

// What the last policy forward saw.
struct ppo_policy_stats {
    double ppo_loss = 0;  // mean clipped surrogate loss over action tokens
    double ptx_loss = 0;  // pre-training LM loss of the ptx batch (0 without one)
    double clip_frac = 0; // fraction of tokens with |ratio - 1| > eps
    double approx_kl = 0; // mean (r - 1) - log r: KL(old || new), >= 0
    double max_ratio = 0; // largest ratio pi / pi_old
    double entropy = 0;   // mean entropy at action tokens
    double kl_k3 = 0;     // mean k3 estimate of KL(pi || pi_ref) at action tokens (with ref_logp)
    std::int64_t tokens = 0;
};

// Schulman's k3 estimator of KL(pi || ref) from one sample x ~ pi: with d = log ref(x) - log pi(x),
// k3 = e^d - d - 1 >= 0, unbiased (E_pi[e^d] = 1) and of lower variance than -d.
// d k3 / d log pi(x) = 1 - e^d.
inline double kl_k3(double logp, double ref_logp) {
    const double d = ref_logp - logp;
    return std::expm1(d) - d;
}

// Loss = sum_i w_i (-min(r_i A_i, clip(r_i, 1 - eps, 1 + eps) A_i) + kl_coef k3_i),
// r_i = exp(logp_i - old_i), plus ptx_coef x the LM loss of the ptx batch. PPO (InstructGPT) has
// w_i = 1/N over the N action tokens and kl_coef 0 (its KL penalty is in the reward); GRPO
// (Shao et al. 2024) averages each sequence's tokens, then the S sequences (w_i = 1 / (S n_s)),
// and penalises k3 to the reference in the loss. The PPO part and the ptx part are two
// forward/backward passes whose parameter gradients accumulate in the model's arena.
template <class Model> class ppo_policy_objective {
  public:
    using T = typename Model::value_type;
    using batch_type = ppo_policy_batch<T>;

    explicit ppo_policy_objective(double clip_eps = 0.2, int chunk_rows = 64)
        : eps_(clip_eps), chunk_(chunk_rows), lm_(chunk_rows) {
        GPTX_CHECK(clip_eps > 0 && clip_eps < 1, "ppo: clip epsilon must be in (0, 1), got ",
                   clip_eps);
    }

    double forward_backward(Model& m, const batch_type& b, double scale) {
        return run(m, b, scale, true);
    }
    double evaluate(Model& m, const batch_type& b) { return run(m, b, 1.0, false); }
    const ppo_policy_stats& stats() const { return stats_; }
    double clip_eps() const { return eps_; }

    // The guards: an update whose largest ratio pi / pi_old exceeds max_ratio, or whose mean
    // KL(old || new) exceeds max_kl, is vetoed (the trainer then skips it).
    void set_guards(double max_ratio, double max_kl) {
        max_ratio_ = max_ratio;
        max_kl_ = max_kl;
    }
    bool accept_update() const {
        return stats_.max_ratio <= max_ratio_ && stats_.approx_kl <= max_kl_;
    }
    // GRPO's form: a k3 KL penalty to the reference (batch.ref_logp) with this weight in the loss,
    // and per-sequence token means (each row of the batch one sequence).
    void set_kl_penalty(double kl_coef) {
        GPTX_CHECK(kl_coef >= 0, "ppo: the KL penalty must be >= 0, got ", kl_coef);
        kl_coef_ = kl_coef;
    }
    void set_sequence_mean(bool on) { sequence_mean_ = on; }

  private:
    double run(Model& m, const batch_type& b, double scale, bool grads) {
        constexpr int C = Model::C;
        detail::set_rows(rows_, b.mask, std::int64_t(b.B) * b.T);
        const int N = static_cast<int>(rows_.size());
        stats_ = {};
        if (N == 0) // no response tokens (a rank whose rollouts were all empty): no loss
            return 0.0;
        m.forward(b.inputs, b.B, b.T);
        tokens_.resize(N);
        logp_.resize(N);
        ent_.resize(N);
        dlogp_.resize(N);
        row_loss_.resize(N);
        row_ratio_.resize(N);
        for (int i = 0; i < N; ++i)
            tokens_[i] = b.targets[rows_[i]];
        GPTX_CHECK(kl_coef_ == 0 || b.ref_logp,
                   "ppo: a KL penalty in the loss needs the reference's log-probabilities");
        lm_head<Model>& head = lm_.head();
        head.chosen_logprobs(m, rows_.data(), tokens_.data(), N, logp_.data(), ent_.data());
        weights(b, N);
        for (int i = 0; i < N; ++i) {
            const int row = rows_[i];
            const double A = double(b.advantages[row]), lp = double(logp_[i]);
            const double r = std::exp(lp - double(b.old_logp[row]));
            const double rc = std::clamp(r, 1.0 - eps_, 1.0 + eps_);
            const double s1 = r * A, s2 = rc * A;
            row_loss_[i] = -std::min(s1, s2);
            row_ratio_[i] = r;
            // d loss / d logp = -A r on the unclipped branch, 0 where the clip is active.
            double g = s2 < s1 ? 0.0 : -A * r;
            if (kl_coef_ > 0) {
                const double ref = double(b.ref_logp[row]);
                row_kl_[i] = kl_k3(lp, ref);
                g += kl_coef_ * -std::expm1(ref - lp); // d k3 / d logp = 1 - e^(ref - logp)
            }
            dlogp_[i] = T(g * w_[i] * scale);
        }
        if (grads) {
            std::fill(m.dhidden(), m.dhidden() + std::size_t(b.B) * b.T * C, T(0));
            head.chosen_logprobs_backward(m, rows_.data(), tokens_.data(), N, dlogp_.data());
        }
        stats_.tokens = N;
        double penalty = 0;
        for (int i = 0; i < N; ++i) {
            const double r = row_ratio_[i];
            stats_.ppo_loss += w_[i] * row_loss_[i];
            penalty += w_[i] * row_kl_[i];
            stats_.kl_k3 += row_kl_[i];
            stats_.clip_frac += std::abs(r - 1.0) > eps_ ? 1.0 : 0.0;
            stats_.approx_kl += (r - 1.0) - std::log(r);
            stats_.max_ratio = std::max(stats_.max_ratio, r);
            stats_.entropy += double(ent_[i]);
        }
        stats_.kl_k3 /= N;
        stats_.clip_frac /= N;
        stats_.approx_kl /= N;
        stats_.entropy /= N;
        if (grads)
            m.backward();
        double total = stats_.ppo_loss + kl_coef_ * penalty;
        if (b.ptx && b.ptx_coef != 0.0) {
            stats_.ptx_loss = grads ? lm_.forward_backward(m, *b.ptx, scale * b.ptx_coef)
                                    : lm_.evaluate(m, *b.ptx);
            total += b.ptx_coef * stats_.ptx_loss;
        }
        return total;
    }

    double eps_;
    double max_ratio_ = std::numeric_limits<double>::infinity(),
           max_kl_ = std::numeric_limits<double>::infinity();
    int chunk_;
    lm_objective<Model> lm_;
    ppo_policy_stats stats_;
    std::vector<int> rows_;
    // w_[i]: token i's weight in the loss, 1/N or 1 / (sequences x its sequence's tokens).
    void weights(const batch_type& b, int N) {
        w_.assign(std::size_t(N), 1.0 / N);
        row_kl_.assign(std::size_t(N), 0.0);
        if (!sequence_mean_)
            return;
        std::vector<int>& count = seq_tokens_;
        count.assign(std::size_t(b.B), 0);
        for (int i = 0; i < N; ++i)
            ++count[std::size_t(rows_[i] / b.T)];
        const auto S =
            double(std::count_if(count.begin(), count.end(), [](int c) { return c > 0; }));
        for (int i = 0; i < N; ++i)
            w_[std::size_t(i)] = 1.0 / (S * count[std::size_t(rows_[i] / b.T)]);
    }

    double kl_coef_ = 0;
    bool sequence_mean_ = false;
    std::vector<int> seq_tokens_;
    std::vector<double> w_, row_kl_;    // (N)
    std::vector<int> tokens_;           // (N): the action at each row
    std::vector<T> logp_, ent_, dlogp_; // (N)
    std::vector<double> row_loss_, row_ratio_;
};

// One value minibatch: values are read at the rows where mask is set (the states before each
// action), as the policy's log-probabilities are.
template <class Real> struct ppo_value_batch {
    const int* inputs = nullptr;        // (B, T)
    const std::uint8_t* mask = nullptr; // (B, T)
    const Real* old_values = nullptr;   // (B, T): values at rollout time
    const Real* returns = nullptr;      // (B, T): GAE returns (targets)
    int B = 0, T = 0;
};

struct ppo_value_stats {
    double value_loss = 0;
    double clip_frac = 0; // fraction of tokens where the clipped term is the larger one
    std::int64_t tokens = 0;
};

// Loss = (1/N) sum_i 0.5 max((v_i - R_i)^2, (vc_i - R_i)^2), vc = old + clip(v - old, -c, c)
// (c = value_clip; 0 disables the clipped term). The value model is a trunk plus a scalar head
// (initialised from the reward model's).
template <class Model> class ppo_value_objective {
  public:
    using T = typename Model::value_type;
    using batch_type = ppo_value_batch<T>;

    explicit ppo_value_objective(double value_clip = 0.2) : clip_(value_clip), head_(Model::C, 1) {
        GPTX_CHECK(value_clip >= 0, "ppo: value clip must be >= 0 (0 disables it), got ",
                   value_clip);
    }

    double forward_backward(Model& m, const batch_type& b, double scale) {
        return run(m, b, scale, true);
    }
    double evaluate(Model& m, const batch_type& b) { return run(m, b, 1.0, false); }

    // Values at the mask's rows of the last forward (N, in row order).
    const std::vector<T>& values() const { return values_; }
    // Runs the trunk and the head only: values at the given rows of tokens (B, T).
    const std::vector<T>& predict(Model& m, const int* tokens, int B, int Tn,
                                  const std::vector<int>& rows) {
        const T* h = m.forward(tokens, B, Tn);
        values_.resize(rows.size());
        head_.forward(values_.data(), h, rows.data(), static_cast<int>(rows.size()));
        return values_;
    }

    linear_head<T>& head() { return head_; }
    basic_arena<T>& head_params() { return head_.params(); }
    basic_arena<T>& head_grads() { return head_.grads(); }
    const ppo_value_stats& stats() const { return stats_; }

  private:
    double run(Model& m, const batch_type& b, double scale, bool grads) {
        detail::set_rows(rows_, b.mask, std::int64_t(b.B) * b.T);
        const int N = static_cast<int>(rows_.size());
        stats_ = {};
        if (N == 0) // no response tokens: no loss
            return 0.0;
        predict(m, b.inputs, b.B, b.T, rows_);
        dvalues_.resize(N);
        stats_.tokens = N;
        for (int i = 0; i < N; ++i) {
            const int row = rows_[i];
            const double v = values_[i], R = double(b.returns[row]),
                         old = double(b.old_values[row]);
            const double e1 = (v - R) * (v - R);
            double loss = 0.5 * e1, dv = v - R;
            if (clip_ > 0 && std::abs(v - old) > clip_) {
                // Inside the clip range both terms are equal; outside, the clipped one does not
                // depend on v, so where it is the larger the gradient is 0.
                const double vc = old + std::clamp(v - old, -clip_, clip_),
                             e2 = (vc - R) * (vc - R);
                if (e2 > e1) {
                    loss = 0.5 * e2;
                    dv = 0;
                    stats_.clip_frac += 1;
                }
            }
            stats_.value_loss += loss;
            dvalues_[i] = T(dv * scale / N);
        }
        stats_.value_loss /= N;
        stats_.clip_frac /= N;
        if (grads) {
            std::fill(m.dhidden(), m.dhidden() + std::size_t(b.B) * b.T * Model::C, T(0));
            head_.backward(m.dhidden(), dvalues_.data());
            m.backward();
        }
        return stats_.value_loss;
    }

    double clip_;
    linear_head<T> head_;
    ppo_value_stats stats_;
    std::vector<int> rows_;
    std::vector<T> values_, dvalues_;
};

} // namespace gptx
