// gptx/train/objective.hpp: what a training objective is (a concept) and the language-model
// objective with a loss mask. Tested by tests/train/test_trainer.cpp.
// Legend: B batch, T time.
#pragma once
#include <concepts>
#include <cstdint>

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

// A language-model micro-batch: inputs and next-token targets (B, T), and an optional mask (B, T)
// of the targets that count (SFT and ptx are masks and data, not new code).
struct lm_batch {
    const int* inputs = nullptr;
    const int* targets = nullptr;
    const std::uint8_t* mask = nullptr;
    int B = 0, T = 0;
};

// Mean next-token cross-entropy over unmasked targets, through the tied LM head.
template <class Model> class lm_objective {
  public:
    using batch_type = lm_batch;

    explicit lm_objective(int chunk_rows = 64) : head_(chunk_rows) {}

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

} // namespace gptx
