// samples/finetune_classifier.cpp: GPT-1's recipe top to bottom: pre-train a language model on
// unlabelled text, then fine-tune it with a classifier head on a small labelled set, and compare
// with the same fine-tuning from a random start. Tested by tests/samples/check_story.cmake (run
// from samples/CMakeLists.txt).
// The task: which of five word tasks ("reverse", "upper", ...) does a line "kopa => apok" show?
// Usage: finetune_classifier [pretrain_steps=800] [finetune_epochs=3] [train_examples=200]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <gptx/gptx.hpp>

#include "tasks/task_corpus.hpp" // the toy word tasks and their labelled files

using namespace gptx;

constexpr shape S{64, 4, 2, norm::post}; // GPT-1 puts LayerNorm after each residual
using model_t = transformer<S>;

// Fine-tunes `model` on `train` with GPT-1's objective (task loss + 0.5 x LM loss) and returns
// its accuracy on `test`.
double finetune(model_t& model, const std::vector<finetune_example>& train,
                const std::vector<finetune_example>& test, int epochs) {
    finetune_objective<model_t> obj({.form = finetune_form::classify, .classes = 5});
    adamw<float> opt(model.params(), {.lr = 1e-3f, .beta2 = 0.999f, .weight_decay = 0.01f});
    const int batch = 16, steps = epochs * int((train.size() + batch - 1) / batch);
    trainer tr(model, obj, opt, {.lr = finetune_schedule(1e-3f, steps, 0.002f)});
    rng shuffle(7);
    std::vector<finetune_example> mb;
    for (int s = 0; s < steps; ++s)
        tr.step([&](int) {
            mb.clear();
            for (int i = 0; i < batch; ++i)
                mb.push_back(train[shuffle.below(train.size())]);
            return finetune_batch{mb.data(), batch};
        });
    int right = 0;
    for (std::size_t i = 0; i < test.size(); i += 32) {
        const int m = int(std::min<std::size_t>(32, test.size() - i));
        const auto& pred = obj.predict(model, {test.data() + i, m});
        for (int j = 0; j < m; ++j)
            right += pred[j] == test[i + j].label;
    }
    return double(right) / double(test.size());
}

int main(int argc, char** argv) try {
    const int pretrain_steps = argc > 1 ? std::atoi(argv[1]) : 800;
    const int epochs = argc > 2 ? std::atoi(argv[2]) : 3;
    const int n_train = argc > 3 ? std::atoi(argv[3]) : 200;
    GPTX_CHECK(pretrain_steps >= 0 && epochs > 0 && n_train > 0, "sizes must be positive");
    const int T = 32;

    // ---- 1. Unlabelled text: documents that demonstrate the tasks on training words ----------
    const std::string corpus = tasks::make_task_corpus({.seed = 1, .documents = 3000});
    const tokenizer tok = make_tokenizer("char", corpus);
    // GPT-1's start, delimiter and extract tokens take the three ids after the characters.
    const task_token_ids tt = task_tokens_after(tok.vocab_size());
    const model_config cfg{tok.vocab_size() + 3, T};

    // ---- 2. Generative pre-training --------------------------------------------------------
    model_t pretrained(cfg);
    pretrained.init(1);
    {
        lm_objective<model_t> obj;
        adamw<float> opt(pretrained.params(), {.lr = 2e-3f, .beta2 = 0.99f});
        trainer tr(pretrained, obj, opt,
                   {.lr = cosine_schedule{2e-3f, 2e-4f, 20, std::max(1, pretrain_steps)}});
        batcher data(tok.encode(corpus), 16, T, rng(2));
        std::vector<int> x(16 * T), y(16 * T);
        for (int i = 0; i < pretrain_steps; ++i) {
            const step_metrics m = tr.step([&](int) {
                data.next(x.data(), y.data());
                return lm_batch{x.data(), y.data(), nullptr, 16, T};
            });
            if (m.step % 200 == 0 || m.step == pretrain_steps)
                std::printf("pre-training step %lld: loss %.3f\n", (long long)m.step, m.loss);
        }
    }

    // ---- 3. Labelled data through GPT-1's input transformation: start, text, extract --------
    auto transform = [&](const task_set& s) {
        std::vector<finetune_example> out;
        for (const auto& e : s.examples)
            out.push_back({{classification_input(tt, tok.encode(e.first), T)}, e.label});
        return out;
    };
    const auto train = transform(tasks::make_which_task_set(n_train, false, 3));
    const auto test = transform(tasks::make_which_task_set(200, true, 4)); // held-out words

    // ---- 4. Fine-tune the pre-trained model, and a random one the same way -----------------
    model_t scratch(cfg);
    scratch.init(1);
    const double acc_scratch = finetune(scratch, train, test, epochs);
    const double acc_pretrained = finetune(pretrained, train, test, epochs);
    std::printf("test accuracy from scratch: %.3f\n", acc_scratch);
    std::printf("test accuracy pre-trained: %.3f (chance 0.200, %zu test lines)\n", acc_pretrained,
                test.size());
} catch (const gptx::error& e) {
    std::fprintf(stderr, "finetune_classifier: %s\n", e.what());
    return 1;
}
