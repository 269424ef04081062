// gptx/data/batcher.hpp: train/val split and (B, T) next-token batches: random (training) and
// sequential (evaluation). Tested by tests/data/test_data.cpp.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "../core/torch_rng.hpp"

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

namespace detail {
// Row x = tokens[i : i+T], y = tokens[i+1 : i+1+T].
inline void copy_window(const std::vector<int>& tokens, std::size_t i, std::size_t T, int* x,
                        int* y) {
    const int* src = tokens.data() + i;
    for (std::size_t t = 0; t < T; ++t) {
        x[t] = src[t];
        y[t] = src[t + 1];
    }
}
} // namespace detail

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
        for (int b = 0; b < B_; ++b)
            detail::copy_window(tokens_, static_cast<std::size_t>(gen_.below(starts)), T,
                                inputs + b * T, targets + b * T);
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

// nanoGPT's get_batch on PyTorch's generator, in the order nanoGPT's train.py draws: the model's
// initialisation first (the generator arrives past it), then the first training batch; step k's
// batch is handed out and step k+1's drawn at once (nanoGPT prefetches it after the forward), so
// the evaluation that follows step k draws after step k+1's batch. Evaluations draw from the same
// generator, train split then val split, as estimate_loss. Each row start is
// torch.randint(len - T).
class nanogpt_batches {
  public:
    // The whole state: the seed, the words drawn before the pending batch, and all words drawn.
    using state_type = std::array<std::uint64_t, 3>;
    // More words than any run draws (2^40, hours to replay): a state beyond it is damaged.
    static constexpr std::uint64_t max_words = std::uint64_t{1} << 40;

    nanogpt_batches(torch_generator gen, std::vector<int> train, int B, int T)
        : gen_(std::move(gen)), tokens_(std::move(train)), B_(B), T_(T) {
        GPTX_CHECK(B > 0 && T > 0, "nanogpt_batches: B and T must be positive (got B=", B,
                   ", T=", T, ")");
        check_length(tokens_, "training");
        pending_x_.resize(std::size_t(B) * std::size_t(T));
        pending_y_.resize(pending_x_.size());
        draw_pending();
    }

    // The pending training batch; then draws the next one.
    void next(int* inputs, int* targets) {
        std::copy(pending_x_.begin(), pending_x_.end(), inputs);
        std::copy(pending_y_.begin(), pending_y_.end(), targets);
        draw_pending();
    }
    // One evaluation batch of `tokens` (either split), from the same generator.
    void eval_batch(const std::vector<int>& tokens, int* inputs, int* targets) {
        check_length(tokens, "evaluation");
        draw(tokens, inputs, targets);
    }

    const std::vector<int>& tokens() const { return tokens_; }
    state_type state() const { return {gen_.seed(), pending_at_, gen_.draws()}; }
    // Redraws the pending batch from its position, then replays what was drawn after it (linear
    // in the words: Mersenne Twister has no cheap jump).
    void set_state(const state_type& s) {
        GPTX_CHECK(s[2] <= max_words, "nanogpt_batches: state draws ", s[2],
                   " words, more than 2^40: the state is damaged");
        GPTX_CHECK(s[1] <= s[2], "nanogpt_batches: state draws ", s[2],
                   " words in all but its pending batch starts at word ", s[1]);
        redraw_pending(s[0], s[1]);
        GPTX_CHECK(gen_.draws() <= s[2], "nanogpt_batches: state draws ", s[2],
                   " words, fewer than its pending batch needs (", gen_.draws(), ")");
        gen_.restore(s[0], s[2]);
    }
    // Back to just after the pending batch was drawn, undoing later evaluations' draws: a run
    // saved after its step-0 evaluation repeats that evaluation when resumed.
    void rewind_to_pending() { redraw_pending(gen_.seed(), pending_at_); }

  private:
    void check_length(const std::vector<int>& tokens, const char* what) const {
        GPTX_CHECK(tokens.size() > static_cast<std::size_t>(T_), "nanogpt_batches: ", tokens.size(),
                   " ", what, " tokens are too few for context length T=", T_);
    }
    void draw(const std::vector<int>& tokens, int* inputs, int* targets) {
        const std::size_t T = static_cast<std::size_t>(T_);
        for (int b = 0; b < B_; ++b)
            detail::copy_window(tokens, static_cast<std::size_t>(gen_.randint(tokens.size() - T)),
                                T, inputs + b * T, targets + b * T);
    }
    void draw_pending() {
        pending_at_ = gen_.draws();
        draw(tokens_, pending_x_.data(), pending_y_.data());
    }
    void redraw_pending(std::uint64_t seed, std::uint64_t at) {
        gen_.restore(seed, at);
        draw_pending();
    }

    torch_generator gen_;
    std::vector<int> tokens_;
    int B_, T_;
    std::vector<int> pending_x_, pending_y_; // (B, T): the next training batch
    std::uint64_t pending_at_ = 0;           // words drawn before it
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
