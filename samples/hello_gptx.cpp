// samples/hello_gptx.cpp: the library's front door. Define a shape, build a model, train a few
// hundred steps on a text, then sample from it. Usage: hello_gptx [text-file]
#include <cstdio>

#include <gptx/gptx.hpp>

using namespace gptx;

// Width 128, 4 heads, 4 layers, GPT-2 style pre-LayerNorm: a compile-time shape.
constexpr shape my_shape{128, 4, 4, norm::pre};
using model_t = transformer<my_shape>;

int main(int argc, char** argv) try {
    const std::string text =
        read_text_file(argc > 1 ? argv[1] : "/usr/share/common-licenses/GPL-3");
    const tokenizer tok = make_tokenizer("char", text); // sorted unique characters
    const int B = 12, T = 64, steps = 300;

    model_t model({tok.vocab_size(), T}); // vocabulary and context are runtime
    model.init(1337);
    batcher batches(tok.encode(text), B, T, rng(1));

    lm_objective<model_t> objective;
    adamw<float> opt(model.params(), {.lr = 1e-3f, .beta2 = 0.99f});
    cosine_schedule lr{1e-3f, 1e-4f, 20, steps};
    trainer train(model, objective, opt, {.grad_accum = 1, .grad_clip = 1.0f, .lr = lr});

    std::vector<int> x(B * T), y(B * T);
    for (int i = 0; i < steps; ++i) {
        step_metrics m = train.step([&](int) {
            batches.next(x.data(), y.data());
            return lm_batch{x.data(), y.data(), nullptr, B, T};
        });
        if (m.step % 50 == 0)
            std::printf("step %lld  loss %.3f  %.1f ms\n", (long long)m.step, m.loss, m.ms);
    }

    generate_options opts;
    opts.on_token = [&](int id) { // stream tokens as they come
        std::fputs(tok.decode_token(id).c_str(), stdout);
        return true;
    };
    const std::vector<int> prompt = tok.encode("The ");
    std::fputs("The ", stdout);
    generate(model, prompt, 300, {.temperature = 0.8f, .top_k = 40}, opts);
    std::puts("");
} catch (const gptx::error& e) {
    std::fprintf(stderr, "hello_gptx: %s\n", e.what());
    return 1;
}
