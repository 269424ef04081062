// Writes a tiny chat checkpoint for the chat CLI tests: a char tokenizer with the chat tokens and
// a tiny model given a few hundred steps of dialogue SFT (the task dialogues, plus one long
// memorised reply to "story" so the terminal test can watch a reply stream). Deterministic:
// the same file on every run (results do not depend on the thread count).
// Usage: make_chat_fixture DIR   (writes DIR/model.gptx)
#include <cstdio>
#include <filesystem>
#include <numeric>

#include <gptx/gptx.hpp>
#include <tasks/dialogue_tasks.hpp>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_chat_fixture DIR\n");
        return 2;
    }
    try {
        using namespace gptx;
        using namespace gptx::tasks;
        using model_t = transformer<presets::tiny>;
        gptx::tokenizer tok = make_tokenizer(
            "char", "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:?!'\n");
        const chat_format fmt = chat_format::register_tokens(tok);
        const int T = 64, B = 16, steps = 300;
        std::vector<conversation> ds = make_dialogues(1, 400, 1, 2);
        const conversation story{
            {chat_role::user, "story"},
            {chat_role::assistant, "once upon a time a small cat sang to the fish"}};
        for (int i = 0; i < 100; ++i)
            ds.push_back(story);
        const auto formatted = format_dialogues(ds, tok, fmt, T);
        std::vector<int> order(formatted.size());
        std::iota(order.begin(), order.end(), 0);
        rng r(3);
        for (std::size_t i = order.size(); i > 1; --i)
            std::swap(order[i - 1], order[std::size_t(r.below(i))]);
        sft_batches data(pack_dialogues(formatted, order, T, fmt.end), B, 5);
        model_t model({tok.vocab_size(), T});
        model.init(7);
        lm_objective<model_t> obj;
        adamw<float> opt(
            model.params(),
            {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.0f});
        const cosine_schedule lr{3e-3f, 3e-4f, 20, steps};
        trainer tr(model, obj, opt,
                   {.grad_accum = 1, .grad_clip = 1.0f, .lr = [lr](int it) { return lr(it); }});
        for (int s = 0; s < steps; ++s)
            tr.step([&](int) { return data.batch(s); });
        std::filesystem::create_directories(argv[1]);
        save_checkpoint<presets::tiny>(std::filesystem::path(argv[1]) / "model.gptx", model,
                                       nullptr, tok, {});
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_chat_fixture: %s\n", e.what());
        return 1;
    }
    return 0;
}
