// gptx/nn/reward_model.hpp: the InstructGPT reward model, the trunk plus a scalar head (no
// unembedding), read at the end-of-text token that closes the response, or averaged over the
// response's tokens (reward_pooling). Tested by tests/train/test_reward.cpp.
// Legend: B batch, T time, C channels.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "heads.hpp"
#include "transformer.hpp"

namespace gptx {

// Whole sequences, each closed by its end-of-text, `batch` at a time as rows right-padded with
// end-of-text: fn(index of the batch's first sequence, tokens (B, T), B, T, end positions).
template <class Fn>
void for_each_sequence_batch(std::span<const std::vector<int>> seqs, int end_of_text, int batch,
                             const char* who, Fn&& fn) {
    GPTX_CHECK(batch > 0, who, ": batch must be positive, got ", batch);
    std::vector<int> tokens, ends;
    for (std::size_t s0 = 0; s0 < seqs.size(); s0 += std::size_t(batch)) {
        const int B = int(std::min<std::size_t>(std::size_t(batch), seqs.size() - s0));
        std::size_t Tn = 1;
        for (int b = 0; b < B; ++b)
            Tn = std::max(Tn, seqs[s0 + b].size());
        tokens.assign(std::size_t(B) * Tn, end_of_text);
        ends.resize(std::size_t(B));
        for (int b = 0; b < B; ++b) {
            const auto& q = seqs[s0 + b];
            GPTX_CHECK(!q.empty() && q.back() == end_of_text, who, ": sequence ", s0 + b,
                       " does not end with the end-of-text token ", end_of_text);
            std::copy(q.begin(), q.end(), tokens.begin() + std::ptrdiff_t(b * Tn));
            ends[std::size_t(b)] = int(q.size()) - 1;
        }
        fn(s0, tokens.data(), B, int(Tn), ends.data());
    }
}

// The reward position. A scored sequence is end-of-text, prompt, response, end-of-text (the SFT
// layout); the reward is the scalar head at the end-of-text that closes the response: the first
// one at or after response_start, the number of tokens before the response (1 + prompt tokens;
// the prompt itself may contain end-of-text tokens). RM training, PPO and evaluation all read
// there. Returns -1 when the response has no end-of-text (it was cut off); the caller decides
// (PPO may append one, or penalise). A row may be right-padded with anything after that
// end-of-text: causal attention keeps padding from touching the positions before it.
inline int reward_position(std::span<const int> seq, int response_start, int end_of_text) {
    GPTX_CHECK(response_start >= 0, "reward_position: response start must be >= 0, got ",
               response_start);
    for (std::size_t t = std::size_t(response_start); t < seq.size(); ++t)
        if (seq[t] == end_of_text)
            return static_cast<int>(t);
    return -1;
}

// positions (B) of right-padded rows tokens (B, T) whose responses start at response_starts (B).
inline void reward_positions(int* positions, const int* tokens, int B, int T,
                             const int* response_starts, int end_of_text) {
    for (int b = 0; b < B; ++b)
        positions[b] = reward_position({tokens + std::size_t(b) * T, std::size_t(T)},
                                       response_starts[b], end_of_text);
}

// Where the scalar head reads a scored sequence.
//  - last: at the end-of-text that closes the response (InstructGPT; the position sees it all).
//  - mean: at every position from the response's first token to that end-of-text, averaged:
//    r = W · mean_p h_p + b. Each position judges its own token in context (a wrong capital is
//    found where it is written, as the policy wrote it), and the mean keeps a one-letter slip
//    from weighing as much as a wholly wrong answer in a long one.
enum class reward_pooling { last, mean };
inline const char* to_string(reward_pooling p) {
    return p == reward_pooling::mean ? "mean" : "last";
}
inline reward_pooling parse_reward_pooling(std::string_view s) {
    GPTX_CHECK(s == "last" || s == "mean", "reward pooling must be last or mean, got '", s, "'");
    return s == "mean" ? reward_pooling::mean : reward_pooling::last;
}

// The pooled read of a linear_head(C, 1) over a trunk's hidden states (B*T, C): sequence b's
// reward is the head averaged over rows [first_b, ends[b]] of row b, first_b = ends[b] (last) or
// starts[b] (mean). plan() checks and lays out the rows (before the trunk's forward, so bad input
// costs nothing); forward() reads them and keeps them for backward.
template <class T> class pooled_reward {
  public:
    void plan(int B, int Tn, const int* ends, const int* starts, reward_pooling pool) {
        GPTX_CHECK(pool == reward_pooling::last || starts,
                   "reward model: mean pooling needs where each response starts");
        rows_.clear();
        first_.assign(1, 0);
        for (int b = 0; b < B; ++b) {
            GPTX_CHECK(ends[b] >= 0 && ends[b] < Tn, "reward model: position ", ends[b], " of row ",
                       b, " is outside [0, ", Tn,
                       ") (a response without end-of-text has no reward position)");
            const int from = pool == reward_pooling::mean ? starts[b] : ends[b];
            GPTX_CHECK(from >= 0, "reward model: row ", b, "'s response start ", from,
                       " is negative");
            GPTX_CHECK(from <= ends[b], "reward model: row ", b, "'s response starts at ", from,
                       ", after its end-of-text at ", ends[b]);
            for (int p = from; p <= ends[b]; ++p)
                rows_.push_back(b * Tn + p);
            first_.push_back(int(rows_.size()));
        }
    }
    // rewards (B) of the planned rows of hidden.
    void forward(T* rewards, linear_head<T>& head, const T* hidden) {
        const int B = int(first_.size()) - 1;
        out_.resize(rows_.size());
        head.forward(out_.data(), hidden, rows_.data(), int(rows_.size()));
        for (int b = 0; b < B; ++b) {
            double s = 0;
            for (int i = first_[b]; i < first_[b + 1]; ++i)
                s += double(out_[std::size_t(i)]);
            rewards[b] = T(s / double(first_[b + 1] - first_[b]));
        }
    }
    // d out_p = d r_b / n_b for each of b's n_b rows; the head adds W · d out_p to d hidden[p].
    void backward(T* dhidden, linear_head<T>& head, const T* drewards) {
        dout_.resize(rows_.size());
        for (std::size_t b = 0; b + 1 < first_.size(); ++b) {
            const T g = T(double(drewards[b]) / double(first_[b + 1] - first_[b]));
            std::fill(dout_.begin() + first_[b], dout_.begin() + first_[b + 1], g);
        }
        head.backward(dhidden, dout_.data());
    }

  private:
    std::vector<int> rows_, first_; // rows read; first_[b] .. first_[b + 1] are sequence b's
    std::vector<T> out_, dout_;
};

// Trunk + linear_head(C, 1). The trunk is a plain transformer, so a pre-trained or SFT
// checkpoint loads into trunk() unchanged; the head is the "reward_head" checkpoint section.
template <shape S, class T = float> class reward_model {
  public:
    using trunk_type = transformer<S, T>;
    using value_type = T;
    static constexpr shape dims = S;
    static constexpr const char* head_name = "reward_head"; // its checkpoint section

    explicit reward_model(model_config cfg, reward_pooling pool = reward_pooling::last)
        : trunk_(cfg), head_(S.width, 1), pool_(pool) {}

    // Trunk: GPT-2 initialisation; head: N(0, 1/sqrt(C + 1)) weights and bias 0 (the reward
    // head of Ziegler et al. 2019, lm-human-preferences). An RM then loads its trunk from SFT.
    void init(std::uint64_t seed) {
        trunk_.init(seed);
        head_.init(mix64(seed ^ 0x4e3d), float(1.0 / std::sqrt(double(S.width) + 1.0)));
    }

    trunk_type& trunk() { return trunk_; }
    const trunk_type& trunk() const { return trunk_; }
    linear_head<T>& head() { return head_; }
    const linear_head<T>& head() const { return head_; }
    int vocab() const { return trunk_.vocab(); }
    int context() const { return trunk_.context(); }
    reward_pooling pooling() const { return pool_; }
    void set_pooling(reward_pooling p) { pool_ = p; }

    // The reward offset: a constant added to every reward (the head's bias).
    T bias() const { return head_.bias()[0]; }
    void set_bias(T b) { head_.bias()[0] = b; }

    // rewards (B) of right-padded rows tokens (B, T), row b's response closed by the end-of-text
    // at ends[b] and begun at starts[b] (needed by mean pooling). Evaluation mode (no dropout);
    // the trunk's activations are overwritten, gradients are untouched.
    void score(T* rewards, const int* tokens, int B, int Tn, const int* ends,
               const int* starts = nullptr) {
        read_.plan(B, Tn, ends, starts, pool_);
        const bool was_training = trunk_.training();
        trunk_.set_training(false);
        const T* h = trunk_.forward(tokens, B, Tn);
        read_.forward(rewards, head_, h);
        trunk_.set_training(was_training);
    }
    std::vector<T> score(const int* tokens, int B, int Tn, const int* ends,
                         const int* starts = nullptr) {
        std::vector<T> r(static_cast<std::size_t>(B));
        score(r.data(), tokens, B, Tn, ends, starts);
        return r;
    }

    // Rewards of whole sequences (each laid out by reward_sequence, closed by its last token,
    // which must be the end-of-text; starts[i] is where sequence i's response begins, needed by
    // mean pooling), `batch` rows per forward, right-padded with end-of-text.
    std::vector<T> score_sequences(std::span<const std::vector<int>> seqs, int end_of_text,
                                   int batch = 16, std::span<const int> starts = {}) {
        GPTX_CHECK(starts.empty() || starts.size() == seqs.size(), "reward model: ", starts.size(),
                   " response starts for ", seqs.size(), " sequences");
        std::vector<T> out(seqs.size());
        for_each_sequence_batch(
            seqs, end_of_text, batch, "reward model",
            [&](std::size_t s0, const int* tokens, int B, int Tn, const int* ends) {
                score(out.data() + s0, tokens, B, Tn, ends,
                      starts.empty() ? nullptr : starts.data() + s0);
            });
        return out;
    }

  private:
    trunk_type trunk_;
    linear_head<T> head_;
    reward_pooling pool_;
    pooled_reward<T> read_;
};

namespace detail {
// The mean and population standard deviation of at(0), ..., at(n - 1), summed in double.
template <class At> std::pair<double, double> mean_and_sd(std::size_t n, At&& at) {
    double mean = 0, var = 0;
    for (std::size_t i = 0; i < n; ++i)
        mean += double(at(i));
    mean /= double(n);
    for (std::size_t i = 0; i < n; ++i)
        var += (double(at(i)) - mean) * (double(at(i)) - mean);
    return {mean, std::sqrt(var / double(n))};
}
} // namespace detail

// InstructGPT: "a bias is set so that the reward of the SFT demonstrations averages 0". Scores
// the demonstrations (reward_sequence of each prompt and demonstrated response) and shifts the
// head's bias by minus their mean (a shift of every reward under either pooling). Returns that
// mean (the offset removed). starts: where each demonstration's response begins (mean pooling).
template <shape S, class T>
double normalize_reward_bias(reward_model<S, T>& rm, std::span<const std::vector<int>> demos,
                             int end_of_text, int batch = 16, std::span<const int> starts = {}) {
    GPTX_CHECK(!demos.empty(), "normalize_reward_bias: no demonstrations to score");
    const std::vector<T> r = rm.score_sequences(demos, end_of_text, batch, starts);
    const double mean = detail::mean_and_sd(r.size(), [&](std::size_t i) { return r[i]; }).first;
    rm.set_bias(T(double(rm.bias()) - mean));
    return mean;
}

// Scales the head (weights and bias) so the demonstrations' rewards have standard deviation 1,
// after normalize_reward_bias has put their mean at 0; every reward scales by the same positive
// factor, so rankings are unchanged. The common scale an ensemble's members are averaged on.
// Returns the standard deviation divided out.
template <shape S, class T>
double standardize_reward_scale(reward_model<S, T>& rm, std::span<const std::vector<int>> demos,
                                int end_of_text, int batch = 16, std::span<const int> starts = {}) {
    GPTX_CHECK(demos.size() >= 2,
               "standardize_reward_scale: a spread needs at least 2 demonstrations, got ",
               demos.size());
    const std::vector<T> r = rm.score_sequences(demos, end_of_text, batch, starts);
    const double sd = detail::mean_and_sd(r.size(), [&](std::size_t i) { return r[i]; }).second;
    GPTX_CHECK(sd > 0 && std::isfinite(sd), "standardize_reward_scale: the reward model scores ",
               "every demonstration alike (standard deviation ", sd, "); nothing to scale by");
    auto& h = rm.head();
    const std::size_t n = h.params().size(); // the weights (C) and the bias (1)
    for (std::size_t i = 0; i < n; ++i)
        h.params().data()[i] = T(double(h.params().data()[i]) / sd);
    return sd;
}

// Several reward models trained alike from different seeds, read as one reward (Coste et al.
// 2023, against over-optimisation). Each member should be on a common scale
// (standardize_reward_scale); the reward is the members' mean less `penalty` times their
// standard deviation: penalty 0 is the mean; > 0 is a standard-deviation form of Coste et al.'s
// uncertainty-weighted optimisation (theirs subtracts a multiple of the variance), in the
// rewards' own units. It charges a response for the members' disagreement, where a policy has
// found one member's error.
template <shape S, class T = float> class reward_ensemble {
  public:
    explicit reward_ensemble(double penalty = 0) : penalty_(penalty) {
        GPTX_CHECK(penalty >= 0 && std::isfinite(penalty),
                   "reward ensemble: the disagreement penalty must be >= 0, got ", penalty);
    }
    reward_model<S, T>& add(model_config cfg, reward_pooling pool) {
        members_.push_back(std::make_unique<reward_model<S, T>>(cfg, pool));
        return *members_.back();
    }
    std::size_t size() const { return members_.size(); }
    reward_model<S, T>& member(std::size_t k) {
        GPTX_CHECK(k < members_.size(), "reward ensemble: member ", k, " of ", members_.size());
        return *members_[k];
    }
    double penalty() const { return penalty_; }

    // As reward_model::score and score_sequences, combined over the members.
    std::vector<T> score(const int* tokens, int B, int Tn, const int* ends,
                         const int* starts = nullptr) {
        return combine([&](reward_model<S, T>& m) { return m.score(tokens, B, Tn, ends, starts); });
    }
    std::vector<T> score_sequences(std::span<const std::vector<int>> seqs, int end_of_text,
                                   int batch = 16, std::span<const int> starts = {}) {
        return combine([&](reward_model<S, T>& m) {
            return m.score_sequences(seqs, end_of_text, batch, starts);
        });
    }

  private:
    template <class Score> std::vector<T> combine(Score&& score) {
        GPTX_CHECK(!members_.empty(), "reward ensemble: no members");
        std::vector<std::vector<T>> by;
        for (auto& m : members_)
            by.push_back(score(*m));
        std::vector<T> out(by[0].size());
        for (std::size_t i = 0; i < out.size(); ++i) {
            const auto [mean, sd] =
                detail::mean_and_sd(by.size(), [&](std::size_t k) { return by[k][i]; });
            out[i] = T(mean - penalty_ * sd);
        }
        return out;
    }
    double penalty_;
    std::vector<std::unique_ptr<reward_model<S, T>>> members_;
};

} // namespace gptx
