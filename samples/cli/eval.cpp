// samples/cli/eval.cpp: `gptx eval`, zero- and few-shot evaluation (GPT-2, GPT-3): k
// demonstrations from a training file packed into the context, multiple choice scored three ways,
// open-ended answers by greedy decoding and exact match; a table of accuracies with 95% Wilson
// intervals per k and rule. Tested by tests/cli/test_task_cli.cpp.
#include <algorithm>
#include <cstdio>
#include <sstream>

#include <CLI/CLI.hpp>

#include <gptx/data/prompts.hpp>
#include <gptx/data/task_jsonl.hpp>
#include <gptx/generate/scoring.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace gptx::cli {

struct eval_options {
    std::string checkpoint, test, train, ks = "0", format = "arrow", description;
    std::string answer_context = "Answer:";
    int limit = 0, max_tokens = 24;
    std::uint64_t seed = 1;
};

inline void add_eval_command(CLI::App& app, eval_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand("eval", "Zero- and few-shot accuracy of a checkpoint on a task");
    auto* from =
        c->add_option("--checkpoint", o.checkpoint, "Run folder or .gptx file")->required();
    add_weights_option(c, from, o.checkpoint);
    c->add_option("--test", o.test, "Task JSONL: {context,choices,label} or {input,output}")
        ->required();
    c->add_option("--train", o.train, "Task JSONL of the same form the demonstrations come from");
    c->add_option("--k", o.ks, "Demonstrations per test input, comma-separated (e.g. 0,1,4,8)");
    c->add_option("--format", o.format,
                  "Prompt format: arrow `x => y`, equals `x = y`, qa `Q: x\\nA: y`, tldr "
                  "`x\\nTL;DR: y`, plain (the context as is)");
    c->add_option("--description", o.description, "The task in words, before the prompt");
    c->add_option("--answer-context", o.answer_context,
                  "Context of the unconditional probability (GPT-3's normalisation)");
    c->add_option("--limit", o.limit, "Evaluate the first N test examples (0: all)");
    c->add_option("--max-tokens", o.max_tokens, "Longest open-ended answer in tokens");
    c->add_option("--seed", o.seed, "Seed of the demonstration draws");
    c->callback([&] { run(); });
}

namespace detail {

inline std::vector<int> parse_k_list(const std::string& s) {
    std::vector<int> ks;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ',')) {
        std::size_t used = 0;
        int k = -1;
        try {
            k = std::stoi(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        GPTX_CHECK(used == item.size() && k >= 0, "--k: '", item,
                   "' is not a non-negative integer (expected e.g. 0,1,4,8)");
        ks.push_back(k);
    }
    GPTX_CHECK(!ks.empty(), "--k: no values");
    return ks;
}

template <shape S>
void eval_run(const eval_options& o, const fs::path& ckpt, const checkpoint_info& info) {
    using model_t = transformer<S>;
    tokenizer tok;
    model_t model(info.config);
    load_model<S>(ckpt, model, &tok);
    model.set_training(false);
    const std::vector<int> ks = parse_k_list(o.ks);
    const int max_k = *std::max_element(ks.begin(), ks.end());
    prompt_format fmt = named_prompt_format(o.format);
    fmt.description = o.description;

    task_set test = read_task_jsonl(o.test);
    GPTX_CHECK(test.form == task_form::choice || test.form == task_form::generation, o.test, ": ",
               task_form_keys(test.form),
               " lines need a fine-tuned head (gptx finetune --test); eval takes "
               "{context,choices,label} or {input,output}");
    if (o.limit > 0 && std::size_t(o.limit) < test.examples.size())
        test.examples.resize(o.limit);
    task_set train;
    if (max_k > 0) {
        GPTX_CHECK(!o.train.empty(), "--k ", max_k,
                   " needs --train (where demonstrations come from)");
        train = read_task_jsonl(o.train);
        GPTX_CHECK(train.form == test.form, o.train, ": ", task_form_keys(train.form),
                   " lines, but --test has ", task_form_keys(test.form), " lines");
        GPTX_CHECK(int(train.examples.size()) >= max_k, o.train, ": ", train.examples.size(),
                   " examples are too few for k = ", max_k);
    }
    const bool choice = test.form == task_form::choice;
    auto encode = [&](const std::string& text, const std::string& what) {
        try {
            return tok.encode(text, what);
        } catch (const error& e) {
            gptx::detail::fail(what, ": ", e.what());
        }
    };
    auto demo_text = [&](const task_example& e) {
        return choice ? fmt.demonstration(e.first, e.choices[e.label])
                      : fmt.demonstration(e.first, e.second);
    };
    const std::vector<int> description = encode(fmt.description, "--description");
    const std::vector<int> delimiter = encode(fmt.delimiter, "the delimiter");
    const std::vector<int> answer_ctx = encode(o.answer_context, "--answer-context");
    std::vector<std::vector<int>> train_demos;
    for (std::size_t i = 0; i < train.examples.size(); ++i)
        train_demos.push_back(
            encode(demo_text(train.examples[i]), o.train + ": example " + std::to_string(i + 1)));

    const auto rules = choice ? std::vector<std::string>{"total", "per-token", "unconditional"}
                              : std::vector<std::string>{"exact-match"};
    std::vector<std::vector<int>> right(ks.size(), std::vector<int>(rules.size(), 0));
    std::vector<double> demos_kept(ks.size(), 0);
    const int n = int(test.examples.size());
    auto decode = [&](std::span<const int> ids) { return tok.decode(ids); };
    progress bar("eval", n, {.unit = "example"});
    for (int i = 0; i < n; ++i) {
        const task_example& e = test.examples[i];
        const std::string where = o.test + ": example " + std::to_string(i + 1);
        const std::vector<int> query = encode(fmt.query(e.first), where);
        std::vector<std::vector<int>> choices;
        int room = o.max_tokens;
        if (choice) {
            room = 0;
            for (const auto& c : e.choices) {
                choices.push_back(encode(c, where));
                room = std::max(room, int(choices.back().size()));
            }
        }
        // The first k of one draw of max_k: a larger k adds demonstrations to a smaller k's.
        rng r(mix64(o.seed ^ mix64(std::uint64_t(i) + 1)));
        const std::vector<int> drawn =
            max_k > 0 ? draw_demonstrations(r, int(train_demos.size()), max_k) : std::vector<int>{};
        for (std::size_t ki = 0; ki < ks.size(); ++ki) {
            std::vector<std::vector<int>> demos;
            for (int j = 0; j < ks[ki]; ++j)
                demos.push_back(train_demos[drawn[j]]);
            const packed_prompt p =
                pack_few_shot(description, demos, delimiter, query, model.context() - room);
            demos_kept[ki] += p.demonstrations;
            if (choice) {
                const choice_scores s = score_choices(model, p.tokens, choices, answer_ctx);
                for (std::size_t ri = 0; ri < std::size(all_scoring_rules); ++ri)
                    right[ki][ri] += pick_choice(s, all_scoring_rules[ri]) == e.label;
            } else {
                const std::string answer =
                    greedy_answer(model, p.tokens, o.max_tokens, {fmt.delimiter}, decode);
                right[ki][0] += exact_match(answer, e.second);
            }
        }
        bar.update(i + 1);
    }
    bar.finish();
    std::printf("gptx eval: %s on %s (%s, %d examples)%s%s\n", ckpt.string().c_str(),
                o.test.c_str(), std::string(task_form_keys(test.form)).c_str(), n,
                max_k > 0 ? ", demonstrations from " : "", max_k > 0 ? o.train.c_str() : "");
    std::printf("%4s  %-14s %9s  %-16s %6s %8s\n", "k", "rule", "accuracy", "95% interval", "n",
                "demos");
    for (std::size_t ki = 0; ki < ks.size(); ++ki)
        for (std::size_t ri = 0; ri < rules.size(); ++ri) {
            const auto [lo, hi] = wilson_interval(right[ki][ri], n);
            std::printf("%4d  %-14s %9.3f  [%.3f, %.3f]  %6d %8.1f\n", ks[ki], rules[ri].c_str(),
                        double(right[ki][ri]) / n, lo, hi, n, demos_kept[ki] / n);
        }
}

} // namespace detail

inline void run_eval(const eval_options& o) {
    GPTX_CHECK(o.limit >= 0, "--limit must be >= 0, got ", o.limit);
    GPTX_CHECK(o.max_tokens > 0, "--max-tokens must be positive, got ", o.max_tokens);
    const fs::path ckpt = checkpoint_file(o.checkpoint);
    GPTX_CHECK(fs::exists(ckpt), "no checkpoint at '", ckpt.string(), "'");
    const checkpoint_info info = read_model_info(ckpt);
    const bool found =
        with_checkpoint_preset(info, [&]<shape S>() { detail::eval_run<S>(o, ckpt, info); });
    GPTX_CHECK(found, ckpt.string(), ": no preset has the shape ", to_string(info.dims));
}

void add_eval_command(commands& cmds) { cmds.add(add_eval_command, run_eval); }

} // namespace gptx::cli
