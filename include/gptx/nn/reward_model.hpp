// gptx/nn/reward_model.hpp: the InstructGPT reward model, the trunk plus a scalar head (no
// unembedding), read at the end-of-text token that closes the response. Tested by
// tests/train/test_reward.cpp. Legend: B batch, T time, C channels.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "heads.hpp"
#include "transformer.hpp"

namespace gptx {

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

// Trunk + linear_head(C, 1). The trunk is a plain transformer, so a pre-trained or SFT
// checkpoint loads into trunk() unchanged; the head is the "reward_head" checkpoint section.
template <shape S, class T = float> class reward_model {
  public:
    using trunk_type = transformer<S, T>;
    using value_type = T;
    static constexpr shape dims = S;
    static constexpr const char* head_name = "reward_head"; // its checkpoint section

    explicit reward_model(model_config cfg) : trunk_(cfg), head_(S.width, 1) {}

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

    // The reward offset: a constant added to every reward (the head's bias).
    T bias() const { return head_.bias()[0]; }
    void set_bias(T b) { head_.bias()[0] = b; }

    // rewards (B) of right-padded rows tokens (B, T), row b read at positions[b]. Evaluation
    // mode (no dropout); the trunk's activations are overwritten, gradients are untouched.
    void score(T* rewards, const int* tokens, int B, int Tn, const int* positions) {
        rows_.resize(std::size_t(B));
        for (int b = 0; b < B; ++b) {
            GPTX_CHECK(positions[b] >= 0 && positions[b] < Tn, "reward model: position ",
                       positions[b], " of row ", b, " is outside [0, ", Tn,
                       ") (a response without end-of-text has no reward position)");
            rows_[b] = b * Tn + positions[b];
        }
        const bool was_training = trunk_.training();
        trunk_.set_training(false);
        const T* h = trunk_.forward(tokens, B, Tn);
        head_.forward(rewards, h, rows_.data(), B);
        trunk_.set_training(was_training);
    }
    std::vector<T> score(const int* tokens, int B, int Tn, const int* positions) {
        std::vector<T> r(static_cast<std::size_t>(B));
        score(r.data(), tokens, B, Tn, positions);
        return r;
    }

    // Rewards of whole sequences (each laid out by reward_sequence, read at its last token, which
    // must be the end-of-text), `batch` rows per forward, right-padded with end-of-text.
    std::vector<T> score_sequences(std::span<const std::vector<int>> seqs, int end_of_text,
                                   int batch = 16) {
        GPTX_CHECK(batch > 0, "reward model: batch must be positive, got ", batch);
        std::vector<T> out(seqs.size());
        std::vector<int> tokens, positions;
        for (std::size_t s0 = 0; s0 < seqs.size(); s0 += std::size_t(batch)) {
            const int B = int(std::min<std::size_t>(std::size_t(batch), seqs.size() - s0));
            std::size_t Tn = 1;
            for (int b = 0; b < B; ++b)
                Tn = std::max(Tn, seqs[s0 + b].size());
            tokens.assign(std::size_t(B) * Tn, end_of_text);
            positions.resize(std::size_t(B));
            for (int b = 0; b < B; ++b) {
                const auto& q = seqs[s0 + b];
                GPTX_CHECK(!q.empty() && q.back() == end_of_text, "reward model: sequence ", s0 + b,
                           " does not end with the end-of-text token ", end_of_text);
                std::copy(q.begin(), q.end(), tokens.begin() + std::ptrdiff_t(b * Tn));
                positions[b] = int(q.size()) - 1;
            }
            score(out.data() + s0, tokens.data(), B, int(Tn), positions.data());
        }
        return out;
    }

  private:
    trunk_type trunk_;
    linear_head<T> head_;
    std::vector<int> rows_;
};

// InstructGPT: "a bias is set so that the reward of the SFT demonstrations averages 0". Scores
// the demonstrations (reward_sequence of each prompt and demonstrated response) and shifts the
// head's bias by minus their mean. Returns that mean (the offset removed).
template <shape S, class T>
double normalize_reward_bias(reward_model<S, T>& rm, std::span<const std::vector<int>> demos,
                             int end_of_text, int batch = 16) {
    GPTX_CHECK(!demos.empty(), "normalize_reward_bias: no demonstrations to score");
    const std::vector<T> r = rm.score_sequences(demos, end_of_text, batch);
    double mean = 0;
    for (T v : r)
        mean += double(v);
    mean /= double(r.size());
    rm.set_bias(T(double(rm.bias()) - mean));
    return mean;
}

} // namespace gptx
