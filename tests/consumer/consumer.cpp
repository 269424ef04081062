// A consumer of gptx: builds a tiny model, takes two training steps, checks the loss falls.
#include <gptx/gptx.hpp>

int main() {
    using model_t = gptx::transformer<gptx::shape{16, 2, 1, gptx::norm::pre}>;
    model_t m({8, 8});
    m.init(1);
    gptx::lm_objective<model_t> obj;
    gptx::adamw<float> opt(m.params());
    gptx::trainer tr(m, obj, opt,
                     {.grad_accum = 1, .grad_clip = 1.0f, .lr = [](int) { return 1e-2f; }});
    std::vector<int> x{1, 2, 3, 4, 5, 6, 7, 0}, y{2, 3, 4, 5, 6, 7, 0, 1};
    double first = 0, last = 0;
    for (int i = 0; i < 20; ++i) {
        last = tr.step([&](int) { return gptx::lm_batch{x.data(), y.data(), nullptr, 1, 8}; }).loss;
        if (i == 0)
            first = last;
    }
    return last < first ? 0 : 1;
}
