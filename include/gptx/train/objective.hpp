// gptx/train/objective.hpp: what a training objective is (a concept) and the language-model
// objective with a loss mask. Tested by tests/train/test_trainer.cpp.
// Legend: B batch, T time.
#pragma once
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../data/lm_batch.hpp"
#include "../nn/lm_head.hpp"

namespace gptx {

// An objective owns its heads and loss. forward_backward runs the model on one micro-batch,
// adds grad_scale * d(loss) into the model's gradients and returns the loss; evaluate returns
// the loss without touching gradients.
template <class O, class Model>
concept objective = requires(O o, Model& m, const typename O::batch_type& b, double scale) {
    typename O::batch_type;
    { o.forward_backward(m, b, scale) } -> std::convertible_to<double>;
    { o.evaluate(m, b) } -> std::convertible_to<double>;
};

// Mean next-token cross-entropy over unmasked targets, through the tied LM head.
template <class Model> class lm_objective {
  public:
    using batch_type = lm_batch;

    explicit lm_objective(int chunk_rows = 0) : head_(chunk_rows) {}

    double forward_backward(Model& m, const lm_batch& b, double grad_scale) {
        m.forward(b.inputs, b.B, b.T);
        const double loss = head_.forward_backward(m, b.targets, b.mask, grad_scale);
        m.backward();
        return loss;
    }
    double evaluate(Model& m, const lm_batch& b) {
        const bool was_training = m.training();
        m.set_training(false);
        m.forward(b.inputs, b.B, b.T);
        const double loss = head_.loss(m, b.targets, b.mask);
        m.set_training(was_training);
        return loss;
    }
    lm_head<Model>& head() { return head_; }

  private:
    lm_head<Model> head_;
};

// Mean next-token loss over a whole token sequence (a validation split), every token after the
// first predicted exactly once: windows of T tokens at 0, T, 2T, ..., up to B per forward, the
// last window shorter. Unlike an estimate from a few random batches it has no sampling noise.
template <class Model>
double lm_sequence_loss(lm_objective<Model>& obj, Model& m, std::span<const int> tokens, int B,
                        int T) {
    GPTX_CHECK(B > 0 && T > 0, "lm_sequence_loss: B and T must be positive (got B=", B, ", T=", T,
               ")");
    GPTX_CHECK(tokens.size() >= 2, "lm_sequence_loss: ", tokens.size(),
               " tokens hold no prediction (need at least 2)");
    const std::size_t n = tokens.size() - 1, t = std::size_t(T), full = n / t;
    std::vector<int> x(std::size_t(B) * t), y(std::size_t(B) * t);
    double total = 0;
    auto run = [&](std::size_t first_window, int rows, int len) {
        for (int r = 0; r < rows; ++r) {
            const auto s = tokens.begin() + std::ptrdiff_t((first_window + r) * t);
            std::copy_n(s, len, x.begin() + std::ptrdiff_t(r) * len);
            std::copy_n(s + 1, len, y.begin() + std::ptrdiff_t(r) * len);
        }
        total += obj.evaluate(m, {x.data(), y.data(), nullptr, rows, len}) * double(rows) * len;
    };
    for (std::size_t w = 0; w < full; w += std::size_t(B))
        run(w, int(std::min<std::size_t>(std::size_t(B), full - w)), T);
    if (const std::size_t tail = n - full * t; tail > 0)
        run(full, 1, int(tail));
    return total / double(n);
}

} // namespace gptx
