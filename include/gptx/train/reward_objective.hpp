// gptx/train/reward_objective.hpp: InstructGPT's K-wise reward-model loss, pairwise accuracy,
// and batches of ranked comparisons. Tested by tests/train/test_reward.cpp.
// Legend: P prompts in a batch, K responses of a prompt, N = sum of K rows, T time, C channels.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "../data/comparisons.hpp"
#include "../nn/heads.hpp"
#include "../nn/reward_model.hpp"
#include "objective.hpp"

namespace gptx {

// P prompts; prompt p's K_p responses are consecutive rows, best first. One (N, T) forward
// scores all of them: K passes per prompt, never C(K, 2).
struct reward_batch {
    const int* tokens = nullptr;      // (N, T) right-padded
    const int* positions = nullptr;   // (N) each row's end-of-text, closing its response
    const int* group_sizes = nullptr; // (P) K of each prompt, >= 2; they sum to N
    int P = 0, T = 0;
    // (N) where each row's response begins (its prefix length), when the data records it; DPO
    // and a mean-pooled reward model need it.
    const int* starts = nullptr;
    int rows() const { return std::accumulate(group_sizes, group_sizes + P, 0); }
};

// loss = (1/P) sum_p -1/C(K_p, 2) sum_{i<j} log sigmoid(r_i - r_j), rows i < j of a prompt
// meaning i was ranked above j. With drewards non-null it is written (not added) with
// grad_scale * d loss / d r:  d(-log sigmoid(x))/dx = -sigmoid(-x), x = r_i - r_j.
template <class T>
double reward_loss(T* drewards, const T* rewards, const int* group_sizes, int P,
                   double grad_scale = 1.0) {
    GPTX_CHECK(P > 0, "reward loss: no prompts in the batch");
    double loss = 0;
    int off = 0;
    for (int p = 0; p < P; ++p) {
        const int K = group_sizes[p];
        GPTX_CHECK(K >= 2, "reward loss: prompt ", p, " has ", K, " responses; need at least 2");
        const double w = 1.0 / (double(P) * (K * (K - 1) / 2));
        const T* r = rewards + off;
        T* dr = drewards ? drewards + off : nullptr;
        if (dr)
            std::fill(dr, dr + K, T(0));
        for (int i = 0; i < K; ++i)
            for (int j = i + 1; j < K; ++j) {
                const double x = double(r[i]) - double(r[j]);
                // -log sigmoid(x) = softplus(-x), stable for either sign.
                loss += w * (std::max(-x, 0.0) + std::log1p(std::exp(-std::abs(x))));
                if (dr) {
                    const double e = std::exp(-std::abs(x));
                    const double sig_neg = x >= 0 ? e / (1 + e) : 1 / (1 + e); // sigmoid(-x)
                    dr[i] -= T(grad_scale * w * sig_neg);
                    dr[j] += T(grad_scale * w * sig_neg);
                }
            }
        off += K;
    }
    return loss;
}

// One ranked pair's outcome: r_better > r_worse counts 1, a tie 1/2 (so a constant reward model
// scores 50%, chance), a wrong order 0.
template <class T> double pair_outcome(T better, T worse) {
    return better > worse ? 1.0 : (better == worse ? 0.5 : 0.0);
}

// Pairs ranked right by the rewards, each counted by pair_outcome.
struct pair_counts {
    double correct = 0;
    std::size_t pairs = 0;
    double accuracy() const { return pairs ? correct / double(pairs) : 0.0; }
};
template <class T> pair_counts pairwise_accuracy(const T* rewards, const int* group_sizes, int P) {
    pair_counts c;
    int off = 0;
    for (int p = 0; p < P; ++p) {
        const int K = group_sizes[p];
        for (int i = 0; i < K; ++i)
            for (int j = i + 1; j < K; ++j) {
                c.correct += pair_outcome(rewards[off + i], rewards[off + j]);
                ++c.pairs;
            }
        off += K;
    }
    return c;
}

// The reward objective on the trunk Model; the scalar head it trains is borrowed from a
// reward_model (which owns it and checkpoints it). The trainer steps trunk and head together.
template <class Model> class reward_objective {
  public:
    using batch_type = reward_batch;
    using value_type = typename Model::value_type;
    using T = value_type;

    explicit reward_objective(linear_head<T>& head, reward_pooling pool = reward_pooling::last)
        : head_(&head), pool_(pool) {
        GPTX_CHECK(head.outputs() == 1 && head.channels() == Model::C,
                   "reward objective: the head must map ", Model::C, " channels to 1 output, got ",
                   head.channels(), " -> ", head.outputs());
    }
    template <shape S>
    explicit reward_objective(reward_model<S, T>& rm) : reward_objective(rm.head(), rm.pooling()) {}

    double forward_backward(Model& m, const reward_batch& b, double grad_scale) {
        forward(m, b);
        const double loss =
            reward_loss(drewards_.data(), rewards_.data(), b.group_sizes, b.P, grad_scale);
        T* dh = m.dhidden();
        std::fill(dh, dh + std::size_t(rewards_.size()) * b.T * Model::C, T(0));
        read_.backward(dh, *head_, drewards_.data());
        m.backward();
        return loss;
    }
    double evaluate(Model& m, const reward_batch& b) { return evaluate_pairs(m, b).loss; }

    struct eval_result {
        double loss = 0;
        pair_counts counts;
    };
    // Loss and pair counts without touching gradients (evaluation mode: no dropout).
    eval_result evaluate_pairs(Model& m, const reward_batch& b) {
        const bool was_training = m.training();
        m.set_training(false);
        forward(m, b);
        m.set_training(was_training);
        return {reward_loss<T>(nullptr, rewards_.data(), b.group_sizes, b.P),
                pairwise_accuracy(rewards_.data(), b.group_sizes, b.P)};
    }

    basic_arena<T>& head_params() { return head_->params(); }
    basic_arena<T>& head_grads() { return head_->grads(); }
    linear_head<T>& head() { return *head_; }
    // Rewards (N) of the last forward.
    const std::vector<T>& rewards() const { return rewards_; }

  private:
    void forward(Model& m, const reward_batch& b) {
        const int N = b.rows();
        GPTX_CHECK(pool_ == reward_pooling::last || b.starts,
                   "reward objective: mean pooling needs the comparisons' response starts");
        read_.plan(N, b.T, b.positions, b.starts, pool_);
        rewards_.resize(std::size_t(N));
        drewards_.resize(std::size_t(N));
        const T* h = m.forward(b.tokens, N, b.T);
        read_.forward(rewards_.data(), *head_, h);
    }

    linear_head<T>* head_;
    reward_pooling pool_;
    pooled_reward<T> read_;
    std::vector<T> rewards_, drewards_; // (N)
};

template <shape S, class T>
reward_objective(reward_model<S, T>&) -> reward_objective<transformer<S, T>>;

// Batches of P prompts from tokenized comparisons, right-padded with the end-of-text token to the
// longest row of the batch. Training order: batch k holds items k*P .. k*P+P-1 of an endless
// stream of epochs, each a fresh shuffle seeded by (seed, epoch), so batch k is a pure function
// of k: a resumed run needs only its step count. The data must outlive the batcher; a returned
// batch is valid until the next call.
class reward_batcher {
  public:
    reward_batcher(const tokenized_comparisons& data, int prompts_per_batch, int end_of_text,
                   std::uint64_t seed = 0)
        : data_(&data), P_(prompts_per_batch), eot_(end_of_text), seed_(seed) {
        GPTX_CHECK(!data.groups.empty(), "reward batcher: no comparisons");
        GPTX_CHECK(prompts_per_batch > 0,
                   "reward batcher: prompts per batch must be positive, got ", prompts_per_batch);
    }

    std::size_t size() const { return data_->groups.size(); }
    int prompts_per_batch() const { return P_; }
    // Optimizer steps (of one batch each) that make `epochs` passes over the data.
    // Saturates at 2^62, so that huge counts stay comparable and a caller can refuse them.
    std::int64_t steps_for_epochs(double epochs) const {
        const double s = std::ceil(epochs * double(size()) / P_);
        return s >= 0x1p62 ? std::int64_t(1) << 62 : std::max<std::int64_t>(1, std::int64_t(s));
    }

    // The k-th training batch.
    reward_batch batch(std::int64_t k) {
        const std::uint64_t n = size();
        std::vector<std::size_t>& ids = ids_;
        ids.clear();
        for (int i = 0; i < P_; ++i) {
            const std::uint64_t g = std::uint64_t(k) * std::uint64_t(P_) + std::uint64_t(i);
            const std::uint64_t epoch = g / n;
            if (epoch != epoch_ || order_.empty())
                shuffle(epoch);
            ids.push_back(order_[g % n]);
        }
        return assemble();
    }
    // The comparisons (indices into the data's groups) of the last batch, in row order.
    const std::vector<std::size_t>& items() const { return ids_; }
    // Items first .. first+count-1 in file order (evaluation).
    reward_batch slice(std::size_t first, int count) {
        GPTX_CHECK(count > 0 && first + std::size_t(count) <= size(), "reward batcher: slice [",
                   first, ", ", first + std::size_t(count), ") is outside the ", size(),
                   " prompts");
        ids_.resize(std::size_t(count));
        std::iota(ids_.begin(), ids_.end(), first);
        return assemble();
    }

  private:
    void shuffle(std::uint64_t epoch) {
        order_.resize(size());
        std::iota(order_.begin(), order_.end(), std::size_t(0));
        rng r(mix64(seed_ ^ mix64(epoch + 0x5151)));
        for (std::size_t i = order_.size(); i > 1; --i)
            std::swap(order_[i - 1], order_[r.below(i)]);
        epoch_ = epoch;
    }
    reward_batch assemble() {
        std::size_t Tn = 1, N = 0;
        sizes_.clear();
        for (std::size_t id : ids_) {
            const auto& g = data_->groups[id].responses;
            sizes_.push_back(int(g.size()));
            N += g.size();
            for (const auto& s : g)
                Tn = std::max(Tn, s.size());
        }
        tokens_.assign(N * Tn, eot_);
        positions_.resize(N);
        starts_.resize(N);
        bool have_starts = true;
        std::size_t row = 0;
        for (std::size_t id : ids_) {
            const ranked_sequences& g = data_->groups[id];
            have_starts = have_starts && g.starts.size() == g.responses.size();
            for (std::size_t k = 0; k < g.responses.size(); ++k, ++row) {
                const auto& s = g.responses[k];
                std::copy(s.begin(), s.end(), tokens_.begin() + std::ptrdiff_t(row * Tn));
                positions_[row] = int(s.size()) - 1; // the closing end-of-text
                starts_[row] = k < g.starts.size() ? g.starts[k] : 1;
            }
        }
        return {tokens_.data(),   positions_.data(), sizes_.data(),
                int(ids_.size()), int(Tn),           have_starts ? starts_.data() : nullptr};
    }

    const tokenized_comparisons* data_;
    int P_, eot_;
    std::uint64_t seed_, epoch_ = 0;
    std::vector<std::size_t> order_, ids_;
    std::vector<int> tokens_, positions_, sizes_, starts_;
};

// Held-out evaluation over every prompt of `data`, `prompts_per_batch` at a time: the loss
// averaged over prompts and the pairwise accuracy over all pairs.
struct reward_eval {
    double loss = 0;
    double accuracy = 0;
    std::size_t pairs = 0, prompts = 0;
};
template <class Model>
reward_eval evaluate_rewards(Model& m, reward_objective<Model>& obj,
                             const tokenized_comparisons& data, int prompts_per_batch,
                             int end_of_text) {
    reward_batcher b(data, prompts_per_batch, end_of_text);
    reward_eval out;
    pair_counts total;
    double loss_sum = 0;
    for (std::size_t first = 0; first < b.size(); first += std::size_t(prompts_per_batch)) {
        const int count =
            int(std::min<std::size_t>(std::size_t(prompts_per_batch), b.size() - first));
        const auto r = obj.evaluate_pairs(m, b.slice(first, count));
        loss_sum += r.loss * count;
        total.correct += r.counts.correct;
        total.pairs += r.counts.pairs;
    }
    out.prompts = b.size();
    out.loss = loss_sum / double(b.size());
    out.accuracy = total.accuracy();
    out.pairs = total.pairs;
    return out;
}

// Each ranked pair's outcome under `score` (any scorer with score_sequences: a reward model, an
// ensemble): 1 right, 1/2 tied, 0 wrong, in the order pairwise_accuracy counts them. Kept per
// pair so that several scorers' errors can be compared pair by pair.
template <class Scorer>
std::vector<double> pair_outcomes(Scorer& score, const tokenized_comparisons& data, int end_of_text,
                                  int batch = 16) {
    std::vector<std::vector<int>> seqs;
    std::vector<int> starts;
    for (const auto& g : data.groups) {
        seqs.insert(seqs.end(), g.responses.begin(), g.responses.end());
        starts.insert(starts.end(), g.starts.begin(), g.starts.end());
    }
    const auto r = score.score_sequences(seqs, end_of_text, batch, starts);
    std::vector<double> out;
    std::size_t off = 0;
    for (const auto& g : data.groups) {
        const std::size_t K = g.responses.size();
        for (std::size_t i = 0; i < K; ++i)
            for (std::size_t j = i + 1; j < K; ++j)
                out.push_back(pair_outcome(r[off + i], r[off + j]));
        off += K;
    }
    return out;
}

// The share of pairs ranked right, from pair_outcomes (0 for none).
inline double outcome_accuracy(std::span<const double> outcomes) {
    return outcomes.empty()
               ? 0.0
               : std::accumulate(outcomes.begin(), outcomes.end(), 0.0) / double(outcomes.size());
}

// How much several scorers' errors coincide: over ordered pairs of scorers (a, b), the share of
// the pairs a ranks wrong that b ranks wrong too (a tie is half an error), averaged. Independent
// scorers with error rate e give about e; scorers that err on the same pairs give 1.
inline double shared_error_rate(std::span<const std::vector<double>> outcomes) {
    GPTX_CHECK(outcomes.size() >= 2, "shared error rate: needs two scorers, got ", outcomes.size());
    double sum = 0;
    int n = 0;
    for (std::size_t a = 0; a < outcomes.size(); ++a)
        for (std::size_t b = 0; b < outcomes.size(); ++b) {
            if (a == b)
                continue;
            GPTX_CHECK(outcomes[a].size() == outcomes[b].size(), "shared error rate: scorer ", a,
                       " has ", outcomes[a].size(), " outcomes, scorer ", b, " ",
                       outcomes[b].size());
            double wrong = 0, both = 0;
            for (std::size_t i = 0; i < outcomes[a].size(); ++i) {
                wrong += 1 - outcomes[a][i];
                both += (1 - outcomes[a][i]) * (1 - outcomes[b][i]);
            }
            if (wrong > 0) {
                sum += both / wrong;
                ++n;
            }
        }
    return n ? sum / n : 0.0;
}

} // namespace gptx
