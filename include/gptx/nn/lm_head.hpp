// gptx/nn/lm_head.hpp: the tied language-model head (logits = hidden · wteᵀ) with a masked
// softmax cross-entropy. Tested by tests/nn/test_transformer.cpp.
// Legend: B batch, T time, C channels, V vocab.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "../core/error.hpp"
#include "../ops/crossentropy.hpp"
#include "transformer.hpp"

namespace gptx {

// Owns the head's scratch, so steady-state steps never allocate.
template <class Model> class lm_head {
  public:
    using T = typename Model::value_type;

    // chunk_rows bounds the logits held at once: chunk_rows * V values. 0 (the default) takes as
    // many rows as 64 MiB of logits hold, at least 64: each chunk streams all of wte through the
    // head's three products, so for GPT-2's vocabulary few large chunks beat many small ones.
    explicit lm_head(int chunk_rows = 0) : chunk_rows_(chunk_rows) {}

    // The rows per chunk for a vocabulary of V.
    int chunk_rows(int V) const {
        if (chunk_rows_ > 0)
            return chunk_rows_;
        const std::int64_t fit = (std::int64_t(64) << 20) / (std::int64_t(sizeof(T)) * V);
        return int(std::clamp<std::int64_t>(fit / 16 * 16, 64, std::int64_t(1) << 20));
    }

    // Mean cross-entropy over unmasked tokens of the last forward; writes model.dhidden() scaled
    // by grad_scale / (unmasked count) and accumulates d wte. mask may be null (all tokens count).
    // Returns NaN when every token is masked.
    double forward_backward(Model& m, const int* targets, const std::uint8_t* mask,
                            double grad_scale = 1.0) {
        return run(m, targets, mask, true, grad_scale);
    }
    // Mean cross-entropy without gradients.
    double loss(Model& m, const int* targets, const std::uint8_t* mask = nullptr) {
        return run(m, targets, mask, false, 1.0);
    }
    // Per-token losses of the last call (B*T), 0 at masked tokens.
    const std::vector<T>& token_losses() const { return losses_; }

    // logits(rows, V) for `rows` consecutive hidden states starting at row `first`.
    void logits(Model& m, const T* hidden, T* out, std::int64_t rows) {
        ops::lm_logits(out, hidden, m.param(p_wte), rows, Model::C, m.vocab());
    }

    // Log-probabilities of chosen tokens in the last forward (ops::chosen_logprobs_forward):
    // logp[i] of tokens[i] at hidden row rows[i] (flat b * T + t), entropy[i] if non-null.
    void chosen_logprobs(Model& m, const int* rows, const int* tokens, int N, T* logp,
                         T* entropy = nullptr) {
        check_chosen(m, rows, tokens, N);
        const int chunk = reserve_chosen(m, N);
        ops::chosen_logprobs_forward(logp, entropy, last_hidden(m), m.param(p_wte), rows, tokens, N,
                                     Model::C, m.vocab(), scratch_.data(), chunk);
    }
    // Its backward for dlogp[i] = dL/dlogp_i: adds into model.dhidden() (the caller zeroes it
    // first) and d wte.
    void chosen_logprobs_backward(Model& m, const int* rows, const int* tokens, int N,
                                  const T* dlogp) {
        const int chunk = reserve_chosen(m, N);
        ops::chosen_logprobs_backward(m.dhidden(), m.grad(p_wte), dlogp, last_hidden(m),
                                      m.param(p_wte), rows, tokens, N, Model::C, m.vocab(),
                                      scratch_.data(), chunk);
    }

  private:
    // Scratch for a chunk of N rows rounded up to 16, when that is fewer than chunk_rows: a call
    // on N rows runs the same one chunk either way (and keeps its offsets' alignment), without
    // zeroing a full 64 MiB chunk for a few rows. Returns the chunk.
    int reserve_chosen(const Model& m, int N) {
        const int chunk = std::min(chunk_rows(m.vocab()), std::max(16, (N + 15) / 16 * 16));
        const std::size_t need = std::size_t(chunk) * (m.vocab() + 2 * Model::C);
        if (scratch_.size() < need)
            scratch_.resize(need);
        return chunk;
    }
    static void check_chosen(Model& m, const int* rows, const int* tokens, int N) {
        const std::int64_t BT = std::int64_t(m.batch()) * m.seq_len();
        for (int i = 0; i < N; ++i) {
            GPTX_CHECK(rows[i] >= 0 && rows[i] < BT, "lm_head: row ", rows[i],
                       " is outside the last forward's ", BT, " positions");
            GPTX_CHECK(tokens[i] >= 0 && tokens[i] < m.vocab(), "lm_head: token ", tokens[i],
                       " at row ", rows[i], " is outside the vocabulary [0, ", m.vocab(), ")");
        }
    }

    double run(Model& m, const int* targets, const std::uint8_t* mask, bool grads,
               double grad_scale) {
        const std::int64_t N = std::int64_t(m.batch()) * m.seq_len();
        const int V = m.vocab();
        std::int64_t count = 0;
        for (std::int64_t i = 0; i < N; ++i) {
            GPTX_CHECK(targets[i] >= 0 && targets[i] < V, "lm_head: target ", targets[i],
                       " at position ", i, " is outside the vocabulary [0, ", V, ")");
            count += (!mask || mask[i]) ? 1 : 0;
        }
        if (count == 0) {
            if (grads)
                std::fill(m.dhidden(), m.dhidden() + N * Model::C, T(0));
            return std::numeric_limits<double>::quiet_NaN();
        }
        const std::size_t need = std::size_t(std::min<std::int64_t>(chunk_rows(V), N)) * V;
        if (scratch_.size() < need)
            scratch_.resize(need);
        if (losses_.size() != std::size_t(N))
            losses_.resize(N);
        const T* hidden = last_hidden(m);
        const double total =
            ops::lm_head_loss(grads ? m.dhidden() : nullptr, m.grad(p_wte), losses_.data(), hidden,
                              m.param(p_wte), targets, mask, N, Model::C, V,
                              T(grad_scale / double(count)), scratch_.data(), chunk_rows(V));
        return total / double(count);
    }
    static const T* last_hidden(Model& m) { return m.hidden(); }

    int chunk_rows_;
    std::vector<T> scratch_, losses_;
};

} // namespace gptx
