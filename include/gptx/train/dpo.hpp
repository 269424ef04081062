// gptx/train/dpo.hpp: Direct Preference Optimization (Rafailov et al. 2023) on the reward model's
// ranked comparisons, as an objective for the generic trainer, with the reference model's
// response log-probabilities computed once. Tested by tests/train/test_dpo.cpp.
// Legend: P prompts in a batch, K responses of a prompt, N = sum of K rows, T time.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/error.hpp"
#include "../data/comparisons.hpp"
#include "../nn/lm_head.hpp"
#include "reward_objective.hpp"

namespace gptx {

// A DPO micro-batch: the rows of a reward batch (P prompts, each prompt's K responses best first,
// with where each response starts) and the reference's log-probability of each row's response.
struct dpo_batch {
    reward_batch rows;
    const double* ref_logp = nullptr; // (N) sum over the response's tokens of log ref(token)
};

// What the last forward saw, over its pairs (i ranked above j).
struct dpo_stats {
    double loss = 0;
    double chosen_reward = 0;   // mean implicit reward beta (log pi - log ref) of the better
    double rejected_reward = 0; // ... and of the worse response of each pair
    double margin = 0;          // mean chosen - rejected
    double accuracy = 0;        // pairs whose chosen reward is higher (a tie counts 1/2)
    std::size_t pairs = 0;
};

// With r_k = beta (log pi(y_k | x) - log ref(y_k | x)), the sum over response tokens (the closing
// end-of-text included), DPO's loss is the reward model's K-wise loss on these implicit rewards:
//   loss = (1/P) sum_p 1/C(K_p, 2) sum_{i<j} -log sigmoid(r_i - r_j),
// which for K = 2 is -log sigmoid(beta ((log pi_w - log ref_w) - (log pi_l - log ref_l))).
// d loss / d log pi(token of row k) = beta d loss / d r_k, the same for every token of the row.
template <class Model> class dpo_objective {
  public:
    using T = typename Model::value_type;
    using batch_type = dpo_batch;

    explicit dpo_objective(double beta = 0.1, int chunk_rows = 64)
        : beta_(beta), head_(chunk_rows) {
        GPTX_CHECK(beta > 0, "dpo: beta must be positive, got ", beta);
    }

    double forward_backward(Model& m, const dpo_batch& b, double scale) {
        GPTX_CHECK(b.ref_logp, "dpo: the batch has no reference log-probabilities");
        return run(m, b, scale, true);
    }
    double evaluate(Model& m, const dpo_batch& b) {
        GPTX_CHECK(b.ref_logp, "dpo: the batch has no reference log-probabilities");
        const bool was = m.training();
        m.set_training(false);
        const double loss = run(m, b, 1.0, false);
        m.set_training(was);
        return loss;
    }
    // log pi(response) of every row of the last forward (N).
    const std::vector<double>& response_logprobs() const { return seq_; }
    // The same for a batch without gradients (the reference's cache; dropout off).
    const std::vector<double>& response_logprobs(Model& m, const reward_batch& rows) {
        const bool was = m.training();
        m.set_training(false);
        logprobs(m, rows);
        m.set_training(was);
        return seq_;
    }
    const dpo_stats& stats() const { return stats_; }
    double beta() const { return beta_; }

  private:
    // Fills seq_ (N) and the per-token buffers of the batch's response tokens.
    void logprobs(Model& m, const reward_batch& b) {
        GPTX_CHECK(b.starts, "dpo: the batch does not say where responses start (tokenize the "
                             "comparisons with tokenize_comparisons)");
        const int N = b.rows(), Tn = b.T;
        m.forward(b.tokens, N, Tn);
        rows_.clear();
        tokens_.clear();
        owner_.clear();
        for (int n = 0; n < N; ++n) {
            GPTX_CHECK(b.starts[n] >= 1 && b.starts[n] <= b.positions[n] && b.positions[n] < Tn,
                       "dpo: row ", n, " has its response at [", b.starts[n], ", ", b.positions[n],
                       "] of ", Tn, " positions");
            for (int t = b.starts[n]; t <= b.positions[n]; ++t) { // hidden t-1 predicts token t
                rows_.push_back(n * Tn + t - 1);
                tokens_.push_back(b.tokens[std::size_t(n) * Tn + t]);
                owner_.push_back(n);
            }
        }
        logp_.resize(rows_.size());
        head_.chosen_logprobs(m, rows_.data(), tokens_.data(), int(rows_.size()), logp_.data());
        seq_.assign(std::size_t(N), 0.0);
        for (std::size_t i = 0; i < rows_.size(); ++i)
            seq_[std::size_t(owner_[i])] += double(logp_[i]);
    }

    double run(Model& m, const dpo_batch& b, double scale, bool grads) {
        const reward_batch& rb = b.rows;
        logprobs(m, rb);
        const int N = rb.rows();
        rewards_.resize(std::size_t(N));
        drewards_.resize(std::size_t(N));
        for (int n = 0; n < N; ++n)
            rewards_[std::size_t(n)] = beta_ * (seq_[std::size_t(n)] - b.ref_logp[n]);
        const double loss = reward_loss(grads ? drewards_.data() : nullptr, rewards_.data(),
                                        rb.group_sizes, rb.P, scale);
        summarise(rb, loss);
        if (grads) {
            dlogp_.resize(rows_.size());
            for (std::size_t i = 0; i < rows_.size(); ++i)
                dlogp_[i] = T(beta_ * drewards_[std::size_t(owner_[i])]);
            std::fill(m.dhidden(), m.dhidden() + std::size_t(N) * rb.T * Model::C, T(0));
            head_.chosen_logprobs_backward(m, rows_.data(), tokens_.data(), int(rows_.size()),
                                           dlogp_.data());
            m.backward();
        }
        return loss;
    }

    void summarise(const reward_batch& b, double loss) {
        stats_ = {};
        stats_.loss = loss;
        const pair_counts c = pairwise_accuracy(rewards_.data(), b.group_sizes, b.P);
        stats_.accuracy = c.accuracy();
        stats_.pairs = c.pairs;
        int off = 0;
        for (int p = 0; p < b.P; ++p) {
            const int K = b.group_sizes[p];
            for (int i = 0; i < K; ++i)
                for (int j = i + 1; j < K; ++j) {
                    stats_.chosen_reward += rewards_[std::size_t(off + i)];
                    stats_.rejected_reward += rewards_[std::size_t(off + j)];
                }
            off += K;
        }
        if (c.pairs) {
            stats_.chosen_reward /= double(c.pairs);
            stats_.rejected_reward /= double(c.pairs);
        }
        stats_.margin = stats_.chosen_reward - stats_.rejected_reward;
    }

    double beta_;
    lm_head<Model> head_;
    dpo_stats stats_;
    std::vector<int> rows_, tokens_, owner_; // per response token: hidden row, token, its row n
    std::vector<T> logp_, dlogp_;
    std::vector<double> seq_, rewards_, drewards_; // (N)
};

// The reference's log-probability of every response of `data` ([group][k]), computed once
// before training: the reference is frozen, so DPO never runs it again.
template <class Model>
std::vector<std::vector<double>> reference_logprobs(Model& ref, const tokenized_comparisons& data,
                                                    int prompts_per_batch, int end_of_text) {
    reward_batcher batches(data, prompts_per_batch, end_of_text);
    dpo_objective<Model> obj;
    std::vector<std::vector<double>> out(data.groups.size());
    for (std::size_t first = 0; first < data.groups.size();
         first += std::size_t(prompts_per_batch)) {
        const int count =
            int(std::min<std::size_t>(std::size_t(prompts_per_batch), data.groups.size() - first));
        const std::vector<double>& lp = obj.response_logprobs(ref, batches.slice(first, count));
        std::size_t row = 0;
        for (std::size_t g = first; g < first + std::size_t(count); ++g)
            for (std::size_t k = 0; k < data.groups[g].responses.size(); ++k)
                out[g].push_back(lp[row++]);
    }
    return out;
}

// Batches of comparisons with the reference's log-probabilities of their rows (a reward_batcher,
// so the order and resume rules are the reward model's: batch k is a pure function of k).
class dpo_batcher {
  public:
    dpo_batcher(const tokenized_comparisons& data, const std::vector<std::vector<double>>& ref,
                int prompts_per_batch, int end_of_text, std::uint64_t seed = 0)
        : rows_(data, prompts_per_batch, end_of_text, seed), ref_(&ref) {
        GPTX_CHECK(ref.size() == data.groups.size(), "dpo batcher: ", ref.size(),
                   " reference groups for ", data.groups.size(), " comparisons");
        for (std::size_t g = 0; g < ref.size(); ++g)
            GPTX_CHECK(ref[g].size() == data.groups[g].responses.size(), "dpo batcher: comparison ",
                       g, " has ", data.groups[g].responses.size(), " responses but ",
                       ref[g].size(), " reference log-probabilities");
    }
    std::size_t size() const { return rows_.size(); }
    std::int64_t steps_for_epochs(double epochs) const { return rows_.steps_for_epochs(epochs); }
    dpo_batch batch(std::int64_t k) { return with_ref(rows_.batch(k)); }
    dpo_batch slice(std::size_t first, int count) { return with_ref(rows_.slice(first, count)); }

  private:
    dpo_batch with_ref(const reward_batch& b) {
        row_ref_.clear();
        for (std::size_t g : rows_.items())
            row_ref_.insert(row_ref_.end(), (*ref_)[g].begin(), (*ref_)[g].end());
        return {b, row_ref_.data()};
    }
    reward_batcher rows_;
    const std::vector<std::vector<double>>* ref_;
    std::vector<double> row_ref_;
};

// Held-out evaluation over every comparison: the loss averaged over prompts, the pairs' mean
// implicit rewards, margin and accuracy.
template <class Model>
dpo_stats evaluate_dpo(Model& m, dpo_objective<Model>& obj, dpo_batcher& batches,
                       int prompts_per_batch) {
    dpo_stats out;
    double loss = 0, correct = 0;
    for (std::size_t first = 0; first < batches.size(); first += std::size_t(prompts_per_batch)) {
        const int count =
            int(std::min<std::size_t>(std::size_t(prompts_per_batch), batches.size() - first));
        loss += obj.evaluate(m, batches.slice(first, count)) * count;
        const dpo_stats& s = obj.stats();
        correct += s.accuracy * double(s.pairs);
        out.chosen_reward += s.chosen_reward * double(s.pairs);
        out.rejected_reward += s.rejected_reward * double(s.pairs);
        out.pairs += s.pairs;
    }
    out.loss = loss / double(batches.size());
    if (out.pairs) {
        out.accuracy = correct / double(out.pairs);
        out.chosen_reward /= double(out.pairs);
        out.rejected_reward /= double(out.pairs);
    }
    out.margin = out.chosen_reward - out.rejected_reward;
    return out;
}

} // namespace gptx
