// gptx/data/batcher.hpp: train/val split and (B, T) next-token batches: random (training) and
// sequential (evaluation). Tested by tests/data/test_data.cpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"

namespace gptx {

// Legend: B batch rows, T time (context length).

struct train_val_split {
    std::vector<int> train;
    std::vector<int> val;
};

// Deterministic, as nanoGPT's prepare.py: n = int((1 - val_fraction) * len); the first n tokens
// train, the rest validate. Contiguous (not shuffled) so val text is unseen text.
inline train_val_split split_train_val(std::span<const int> tokens, double val_fraction = 0.1) {
    GPTX_CHECK(val_fraction >= 0.0 && val_fraction < 1.0, "split_train_val: val_fraction ",
               val_fraction, " is outside [0, 1)");
    const auto n =
        static_cast<std::size_t>((1.0 - val_fraction) * static_cast<double>(tokens.size()));
    return {std::vector<int>(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(n)),
            std::vector<int>(tokens.begin() + static_cast<std::ptrdiff_t>(n), tokens.end())};
}

// Random windows, as nanoGPT's get_batch: i uniform in [0, len - T - 1], x = data[i : i+T],
// y = data[i+1 : i+1+T]. The rng state is the whole state, so a checkpoint resumes exactly.
class batcher {
  public:
    batcher(std::vector<int> tokens, int B, int T, rng gen = rng{})
        : tokens_(std::move(tokens)), B_(B), T_(T), gen_(gen) {
        GPTX_CHECK(B > 0 && T > 0, "batcher: B and T must be positive (got B=", B, ", T=", T, ")");
        GPTX_CHECK(tokens_.size() > static_cast<std::size_t>(T), "batcher: ", tokens_.size(),
                   " tokens are too few for context length T=", T,
                   " (need at least T+1 = ", static_cast<std::size_t>(T) + 1, ")");
    }

    // inputs, targets: (B, T) each, row-major.
    void next(int* inputs, int* targets) {
        const std::size_t T = static_cast<std::size_t>(T_);
        const std::uint64_t starts = tokens_.size() - T; // offsets 0 .. len-T-1
        for (int b = 0; b < B_; ++b) {
            const std::size_t i = static_cast<std::size_t>(gen_.below(starts));
            const int* src = tokens_.data() + i;
            int* x = inputs + static_cast<std::size_t>(b) * T;
            int* y = targets + static_cast<std::size_t>(b) * T;
            for (std::size_t t = 0; t < T; ++t) {
                x[t] = src[t];
                y[t] = src[t + 1];
            }
        }
    }
    void next(std::span<int> inputs, std::span<int> targets) {
        const std::size_t n = static_cast<std::size_t>(B_) * static_cast<std::size_t>(T_);
        GPTX_CHECK(inputs.size() == n && targets.size() == n, "batcher: buffers hold ",
                   inputs.size(), " inputs and ", targets.size(), " targets (expected B*T = ", n,
                   ")");
        next(inputs.data(), targets.data());
    }

    int batch_size() const { return B_; }
    int context() const { return T_; }
    std::size_t size() const { return tokens_.size(); }
    const std::vector<int>& tokens() const { return tokens_; }

    const rng::state_type& rng_state() const { return gen_.state(); }
    void set_rng_state(const rng::state_type& s) { gen_.set_state(s); }

  private:
    std::vector<int> tokens_;
    int B_, T_;
    rng gen_;
};

// Consecutive non-overlapping windows, as llm.c's val loader: batch k covers tokens
// [k*B*T, (k+1)*B*T] and row b of it starts at k*B*T + b*T. Only full batches are served, so
// every evaluation sees the same tokens.
class sequential_batcher {
  public:
    sequential_batcher(std::vector<int> tokens, int B, int T)
        : tokens_(std::move(tokens)), B_(B), T_(T) {
        GPTX_CHECK(B > 0 && T > 0, "sequential_batcher: B and T must be positive (got B=", B,
                   ", T=", T, ")");
        GPTX_CHECK(num_batches() > 0, "sequential_batcher: ", tokens_.size(),
                   " tokens are too few for one batch of B=", B, ", T=", T,
                   " (need at least B*T+1 = ", batch_tokens() + 1, ")");
    }

    std::size_t num_batches() const {
        return tokens_.empty() ? 0 : (tokens_.size() - 1) / batch_tokens();
    }
    // Fills (B, T) inputs and targets; returns false (filling nothing) when the pass is over.
    bool next(int* inputs, int* targets) {
        if (pos_ >= num_batches())
            return false;
        const int* src = tokens_.data() + pos_ * batch_tokens();
        for (std::size_t j = 0; j < batch_tokens(); ++j) {
            inputs[j] = src[j];
            targets[j] = src[j + 1];
        }
        ++pos_;
        return true;
    }
    void reset() { pos_ = 0; }

    // Index of the next batch, for resuming a pass.
    std::size_t position() const { return pos_; }
    void set_position(std::size_t k) {
        GPTX_CHECK(k <= num_batches(), "sequential_batcher: position ", k, " is past the last of ",
                   num_batches(), " batches");
        pos_ = k;
    }

    int batch_size() const { return B_; }
    int context() const { return T_; }
    std::size_t size() const { return tokens_.size(); }

  private:
    std::size_t batch_tokens() const {
        return static_cast<std::size_t>(B_) * static_cast<std::size_t>(T_);
    }

    std::vector<int> tokens_;
    int B_, T_;
    std::size_t pos_ = 0;
};

} // namespace gptx
