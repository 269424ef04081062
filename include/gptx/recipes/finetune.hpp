// gptx/recipes/finetune.hpp: GPT-1 fine-tuning on a run folder, what `gptx finetune` does: a
// checkpoint plus three task tokens and a task head, trained on a labelled task JSONL file, with
// held-out accuracy per epoch; model.gptx keeps the head as a section.
// Tested by tests/cli/test_task_cli.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "../core/shape.hpp"
#include "../data/task_jsonl.hpp"
#include "../generate/scoring.hpp"
#include "../io/checkpoint.hpp"
#include "../io/import.hpp"
#include "../nn/resize.hpp"
#include "../nn/transformer.hpp"
#include "../train/finetune.hpp"
#include "../train/optimizer.hpp"
#include "../train/run_loop.hpp"
#include "../train/trainer.hpp"

namespace gptx {

// The run's paths and hyper-parameters; the defaults are `gptx finetune`'s (GPT-1's). Errors name
// the options by their command-line flags.
struct finetune_run_options {
    std::string checkpoint, train, test, out = "out-finetune";
    float lm_weight = gpt1_finetune_defaults::lm_weight, lr = gpt1_finetune_defaults::lr;
    int batch = gpt1_finetune_defaults::batch, epochs = gpt1_finetune_defaults::epochs;
    float warmup = gpt1_finetune_defaults::warmup_fraction;
    float grad_clip = gpt1_finetune_defaults::grad_clip;
    float clf_dropout = gpt1_finetune_defaults::clf_dropout, dropout = 0.1f;
    float weight_decay = gpt1_finetune_defaults::weight_decay;
    int log_every = 10, context = 0; // context: the longest input in tokens; 0: the model's
    std::uint64_t seed = 1;
    bool scratch = false; // baseline: the same architecture and tokenizer, randomly initialised
};

// Throws, naming the flag, on a hyper-parameter out of range.
inline void validate_finetune_options(const finetune_run_options& o) {
    GPTX_CHECK(o.batch > 0, "--batch must be positive, got ", o.batch);
    GPTX_CHECK(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
    GPTX_CHECK(o.context >= 0, "--context must be >= 0 (0: the model's), got ", o.context);
    GPTX_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be positive, got ", o.lr);
    GPTX_CHECK(o.lm_weight >= 0, "--lm-weight must be >= 0, got ", o.lm_weight);
    GPTX_CHECK(o.warmup >= 0 && o.warmup < 1, "--warmup must be in [0, 1), got ", o.warmup);
    GPTX_CHECK(o.clf_dropout >= 0 && o.clf_dropout < 1, "--clf-dropout must be in [0, 1)");
    GPTX_CHECK(o.dropout >= 0 && o.dropout < 1, "--dropout must be in [0, 1)");
    GPTX_CHECK(o.log_every > 0, "--log-every must be positive, got ", o.log_every);
}

namespace detail {

inline finetune_form finetune_form_of(task_form f, const std::string& file) {
    switch (f) {
    case task_form::text:
    case task_form::entailment:
        return finetune_form::classify;
    case task_form::similarity:
        return finetune_form::similarity;
    case task_form::choice:
        return finetune_form::choice;
    case task_form::generation:
        break;
    }
    fail(file, ": {input,output} lines have no labels to fine-tune a head on (use gptx eval)");
}

// The GPT-1 input transformation of every line; a text the tokenizer rejects names its line.
inline std::vector<finetune_example> transform_task_set(const task_set& s, const tokenizer& tok,
                                                        const task_token_ids& tt, int max_len,
                                                        const std::string& file) {
    std::vector<finetune_example> out;
    out.reserve(s.examples.size());
    for (std::size_t i = 0; i < s.examples.size(); ++i) {
        const task_example& e = s.examples[i];
        try {
            switch (s.form) {
            case task_form::text:
                out.push_back({{classification_input(tt, tok.encode(e.first), max_len)}, e.label});
                break;
            case task_form::entailment:
                out.push_back({{pair_input(tt, tok.encode(e.first), tok.encode(e.second), max_len)},
                               e.label});
                break;
            case task_form::similarity:
                out.push_back(similarity_example(tt, tok.encode(e.first), tok.encode(e.second),
                                                 e.label, max_len));
                break;
            case task_form::choice: {
                std::vector<std::vector<int>> answers;
                for (const auto& c : e.choices)
                    answers.push_back(tok.encode(c));
                out.push_back(choice_example(tt, tok.encode(e.first), answers, e.label, max_len));
                break;
            }
            case task_form::generation:
                break;
            }
        } catch (const error& err) {
            fail(file, ": example ", i + 1, ": ", err.what());
        }
    }
    return out;
}

} // namespace detail

// Fine-tunes the checkpoint ckpt (its info read beforehand, which fixes S) on o.train for
// o.epochs, writing o.out/model.gptx (the trunk with the three task tokens, and the head as its
// "classifier_head" section) and metrics.jsonl.
template <shape S>
void run_finetune(const finetune_run_options& o, const std::filesystem::path& ckpt,
                  const checkpoint_info& info) {
    validate_finetune_options(o);
    using model_t = transformer<S>;
    tokenizer tok;
    model_t base(info.config);
    load_model<S>(ckpt, base, &tok);
    const task_token_ids tt = add_task_tokens(tok, base.vocab());
    model_t model = grow_vocab(base, 3, mix64(o.seed ^ 0x70c3));
    if (o.scratch)
        model.init(o.seed);
    model.set_dropout(o.dropout);
    model.set_dropout_seed(mix64(o.seed ^ 0xd0d0));
    GPTX_CHECK(o.context <= model.context(), "--context ", o.context,
               " is longer than the model's ", model.context(), " tokens");
    const int max_len = o.context > 0 ? o.context : model.context();

    const task_set train_set = read_task_jsonl(o.train);
    const finetune_form form = detail::finetune_form_of(train_set.form, o.train);
    const auto train = detail::transform_task_set(train_set, tok, tt, max_len, o.train);
    std::vector<finetune_example> test;
    if (!o.test.empty()) {
        const task_set test_set = read_task_jsonl(o.test);
        GPTX_CHECK(test_set.form == train_set.form, o.test, ": ", task_form_keys(test_set.form),
                   " lines, but --train has ", task_form_keys(train_set.form), " lines");
        GPTX_CHECK(test_set.classes() <= train_set.classes() || form == finetune_form::choice,
                   o.test, ": label ", test_set.classes() - 1, " never occurs in --train");
        test = detail::transform_task_set(test_set, tok, tt, max_len, o.test);
    }
    const int classes = train_set.classes();

    finetune_objective<model_t> obj(
        {form, std::max(classes, 2), o.lm_weight, o.clf_dropout, mix64(o.seed ^ 0x4ead)});
    adamw<float> opt(model.params(), {o.lr, 0.9f, 0.999f, 1e-8f, o.weight_decay});
    const int n = int(train.size());
    const int per_epoch = (n + o.batch - 1) / o.batch;
    const int steps = int(epoch_steps(std::int64_t(per_epoch) * o.epochs, o.epochs));
    const linear_schedule sched = finetune_schedule(o.lr, steps, o.warmup);
    trainer tr(model, obj, opt, {1, o.grad_clip, sched});

    std::printf("gptx finetune: %s %s, %s trunk, vocab %d + 3 task tokens (start %d, delim %d, "
                "extract %d), %d examples (%s), %d %s, lambda %g, %d steps\n",
                to_string(S).c_str(), ckpt.string().c_str(),
                o.scratch ? "randomly initialised" : "pre-trained", base.vocab(), tt.start,
                tt.delim, tt.extract, n, std::string(task_form_keys(train_set.form)).c_str(),
                form == finetune_form::choice ? 0 : classes,
                form == finetune_form::choice ? "classes (one scalar per choice)" : "classes",
                double(o.lm_weight), steps);

    rng shuffle(mix64(o.seed ^ 0x5a1f));
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::vector<finetune_example> mb;
    int cursor = n; // reshuffle at the start of every epoch
    auto next = [&](int) {
        mb.clear();
        for (int i = 0; i < o.batch && (i == 0 || cursor < n); ++i) {
            if (cursor >= n) {
                for (int j = n - 1; j > 0; --j)
                    std::swap(order[j], order[shuffle.below(std::uint64_t(j + 1))]);
                cursor = 0;
            }
            mb.push_back(train[order[cursor++]]);
        }
        return finetune_batch{mb.data(), int(mb.size())};
    };
    auto accuracy = [&](const std::vector<finetune_example>& set) {
        int right = 0;
        for (std::size_t i = 0; i < set.size(); i += 32) {
            const int m = int(std::min<std::size_t>(32, set.size() - i));
            const auto& pred = obj.predict(model, {set.data() + i, m});
            for (int j = 0; j < m; ++j)
                right += pred[j] == set[i + j].label;
        }
        return right;
    };
    const std::filesystem::path dir = o.out, out_ckpt = dir / "model.gptx";
    std::filesystem::create_directories(dir);
    std::filesystem::remove(dir / "metrics.jsonl");
    run_hooks hooks;
    int last_right = -1;
    hooks.evaluate = [&](std::int64_t) {
        metrics_map m;
        if (!test.empty()) {
            last_right = accuracy(test);
            m.emplace_back("test_accuracy", double(last_right) / double(test.size()));
        }
        return m;
    };
    hooks.save = [&](std::int64_t step) {
        if (step != steps)
            return;
        train_state st;
        st.step = step;
        st.dropout_seed = model.dropout_seed();
        st.dropout_counter = model.dropout_counter();
        st.run_json =
            nlohmann::json{
                {"command", "finetune"},    {"base", ckpt.string()},
                {"train", o.train},         {"form", std::string(task_form_keys(train_set.form))},
                {"classes", classes},       {"task_tokens", {tt.start, tt.delim, tt.extract}},
                {"lm_weight", o.lm_weight}, {"lr", o.lr},
                {"batch", o.batch},         {"epochs", o.epochs},
                {"scratch", o.scratch},     {"seed", o.seed}}
                .dump();
        const checkpoint_extra head{"classifier_head", &obj.head_params(), &tr.head_optimizer()};
        save_checkpoint<S>(out_ckpt, model, &opt, tok, st, std::span(&head, 1));
    };
    run_options ro;
    ro.iters = steps;
    ro.eval_every = per_epoch;
    ro.log_every = o.log_every;
    ro.metrics = dir / "metrics.jsonl";
    ro.checkpoint_name = out_ckpt.string();
    run_training(tr, ro, next, hooks);
    if (!test.empty()) {
        const auto [lo, hi] = wilson_interval(last_right, int(test.size()));
        std::printf("test accuracy %.4f (%d/%zu), 95%% interval [%.3f, %.3f]\n",
                    double(last_right) / double(test.size()), last_right, test.size(), lo, hi);
    }
    std::printf("done: checkpoint %s\n", out_ckpt.string().c_str());
}

} // namespace gptx
