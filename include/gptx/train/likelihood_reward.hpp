// gptx/train/likelihood_reward.hpp: a reward plus the reference model's mean log-likelihood of
// the response, and any reward function scored over ranked comparisons. A reward model of the
// policy's size, trained pairwise on a few thousand comparisons, misranks near misses its frozen
// SFT model already tells apart (a wrong capital is an unlikely token to it); the weighted
// likelihood hands the reward that knowledge (docs/pipeline.md, "The SFT model's likelihood").
// Tested by tests/train/test_likelihood_reward.cpp.
// Legend: B sequences, T time, n response tokens (its end-of-text included).
#pragma once
#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../nn/lm_head.hpp"
#include "../nn/reward_model.hpp"
#include "rollouts.hpp"

namespace gptx {

// Mean log-likelihood under `model` of each row's response and its end-of-text:
// (1/n) sum_{t = starts[b]}^{ends[b]} log p(tokens[b][t] | tokens[b][< t]), rows as reward_fn
// gives them. One forward in eval mode (no dropout); the model's activations are overwritten.
template <class Model> class response_likelihood {
  public:
    explicit response_likelihood(Model& m) : m_(m) {}
    std::vector<double> operator()(const int* tokens, int B, int Tn, const int* ends,
                                   const int* starts) {
        GPTX_CHECK(starts, "response likelihood: needs each row's response start, got none");
        rows_.clear();
        toks_.clear();
        owner_.clear();
        for (int b = 0; b < B; ++b) {
            GPTX_CHECK(starts[b] >= 1 && starts[b] <= ends[b] && ends[b] < Tn,
                       "response likelihood: row ", b, "'s response [", starts[b], ", ", ends[b],
                       "] must satisfy 1 <= start <= end < ", Tn, " (the row's length)");
            for (int t = starts[b]; t <= ends[b]; ++t) { // hidden t-1 predicts token t
                rows_.push_back(b * Tn + t - 1);
                toks_.push_back(tokens[std::size_t(b) * Tn + t]);
                owner_.push_back(b);
            }
        }
        const bool was = m_.training();
        m_.set_training(false);
        m_.forward(tokens, B, Tn);
        m_.set_training(was);
        logp_.resize(rows_.size());
        head_.chosen_logprobs(m_, rows_.data(), toks_.data(), int(rows_.size()), logp_.data());
        std::vector<double> out(std::size_t(B), 0.0);
        for (std::size_t i = 0; i < rows_.size(); ++i)
            out[std::size_t(owner_[i])] += double(logp_[i]);
        for (int b = 0; b < B; ++b)
            out[std::size_t(b)] /= double(ends[b] - starts[b] + 1);
        return out;
    }

  private:
    Model& m_;
    lm_head<Model> head_;
    std::vector<int> rows_, toks_, owner_;
    std::vector<typename Model::value_type> logp_;
};

// base_weight * base + alpha * (mean log-likelihood of the response under `reference`). The
// reference is frozen (PPO's: the SFT model) and must outlive the function; it runs a forward of
// its own, which the rollouts allow (they read the reference's activations before the reward).
// base_weight 0 is the ablation that drops the reward model and keeps the likelihood alone.
template <class Model>
reward_fn with_reference_likelihood(reward_fn base, Model& reference, double alpha,
                                    double base_weight = 1.0) {
    GPTX_CHECK(alpha >= 0 && std::isfinite(alpha) && std::isfinite(base_weight),
               "likelihood reward: alpha (the likelihood's weight) must be finite and >= 0 and "
               "the base reward's weight finite, got ",
               alpha, " and ", base_weight);
    auto like = std::make_shared<response_likelihood<Model>>(reference);
    return [base = std::move(base), like, alpha, base_weight](const int* tokens, int B, int Tn,
                                                              const int* ends, const int* starts) {
        std::vector<float> r = base(tokens, B, Tn, ends, starts);
        GPTX_CHECK(int(r.size()) == B, "likelihood reward: the base reward gave ", r.size(),
                   " scores, expected one per row (", B, ")");
        if (alpha == 0 && base_weight == 1.0)
            return r;
        const std::vector<double> ll = (*like)(tokens, B, Tn, ends, starts);
        for (int b = 0; b < B; ++b)
            r[std::size_t(b)] =
                float(base_weight * double(r[std::size_t(b)]) + alpha * ll[std::size_t(b)]);
        return r;
    };
}

// A reward function as a scorer of whole sequences (each ends with its end-of-text; starts[i]
// is where sequence i's response begins), `batch` rows at a time: what pair_outcomes needs to
// rank held-out comparisons by any reward the RL methods follow.
struct reward_fn_scorer {
    reward_fn fn;
    std::vector<float> score_sequences(std::span<const std::vector<int>> seqs, int end_of_text,
                                       int batch, std::span<const int> starts) const {
        GPTX_CHECK(starts.size() == seqs.size(),
                   "reward scorer: needs one response start per sequence, got ", starts.size(),
                   " for ", seqs.size());
        std::vector<float> out(seqs.size());
        for_each_sequence_batch(
            seqs, end_of_text, batch, "reward scorer",
            [&](std::size_t s0, const int* tokens, int B, int Tn, const int* ends) {
                const std::vector<float> r = fn(tokens, B, Tn, ends, starts.data() + s0);
                GPTX_CHECK(int(r.size()) == B, "reward scorer: the reward gave ", r.size(),
                           " scores, expected one per sequence (", B, ")");
                std::copy(r.begin(), r.end(), out.begin() + std::ptrdiff_t(s0));
            });
        return out;
    }
};

} // namespace gptx
