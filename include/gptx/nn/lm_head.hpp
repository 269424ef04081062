// gptx/nn/lm_head.hpp: the tied language-model head (logits = hidden · wteᵀ) with a masked
// softmax cross-entropy. Tested by tests/nn/test_transformer.cpp.
// Legend: B batch, T time, C channels, V vocab.
#pragma once
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

    // chunk_rows bounds the logits held at once: chunk_rows * V values.
    explicit lm_head(int chunk_rows = 64) : chunk_rows_(chunk_rows) {}

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

  private:
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
        const std::size_t need = std::size_t(std::min<std::int64_t>(chunk_rows_, N)) * V;
        if (scratch_.size() < need)
            scratch_.resize(need);
        if (losses_.size() != std::size_t(N))
            losses_.resize(N);
        const T* hidden = last_hidden(m);
        const double total =
            ops::lm_head_loss(grads ? m.dhidden() : nullptr, m.grad(p_wte), losses_.data(), hidden,
                              m.param(p_wte), targets, mask, N, Model::C, V,
                              T(grad_scale / double(count)), scratch_.data(), chunk_rows_);
        return total / double(count);
    }
    static const T* last_hidden(Model& m) { return m.hidden(); }

    int chunk_rows_;
    std::vector<T> scratch_, losses_;
};

} // namespace gptx
