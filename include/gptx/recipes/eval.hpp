// gptx/recipes/eval.hpp: zero- and few-shot evaluation of a checkpoint (GPT-2, GPT-3), what
// `gptx eval` does: k demonstrations from a training file packed into the context, multiple
// choice scored three ways, open-ended answers by greedy decoding and exact match; the counts of
// right answers per k and rule. Tested by tests/cli/test_task_cli.cpp.
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/progress.hpp"
#include "../core/rng.hpp"
#include "../core/shape.hpp"
#include "../data/prompts.hpp"
#include "../data/task_jsonl.hpp"
#include "../generate/scoring.hpp"
#include "../io/checkpoint.hpp"
#include "../io/import.hpp"
#include "../nn/transformer.hpp"
#include "../text/tokenizer.hpp"

namespace gptx {

// The run's files and settings; the defaults are `gptx eval`'s. Errors name the options by their
// command-line flags.
struct eval_run_options {
    std::string checkpoint, test, train;
    std::string ks = "0";         // demonstrations per test input, comma-separated: "0,1,4,8"
    std::string format = "arrow"; // named_prompt_format (data/prompts.hpp)
    std::string description;      // the task in words, before the prompt
    std::string answer_context = "Answer:"; // context of the unconditional probability
    int limit = 0, max_tokens = 24;         // limit: the first N test examples (0: all)
    std::uint64_t seed = 1;                 // of the demonstration draws
};

// The right answers for one k under one scoring rule.
struct eval_row {
    int k = 0;
    std::string rule; // total, per-token, unconditional (multiple choice) or exact-match
    int right = 0;
    double demonstrations = 0; // per example, on average: those that fit the context (<= k)
};

struct eval_result {
    task_form form = task_form::choice; // the test file's: choice or generation
    int examples = 0;                   // evaluated; accuracy is right / examples
    std::vector<eval_row> rows;         // per k in the order of o.ks, then per rule
};

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

} // namespace detail

// Throws, naming the flag, on a setting out of range or a malformed --k.
inline void validate_eval_options(const eval_run_options& o) {
    GPTX_CHECK(o.limit >= 0, "--limit must be >= 0, got ", o.limit);
    GPTX_CHECK(o.max_tokens > 0, "--max-tokens must be positive, got ", o.max_tokens);
    detail::parse_k_list(o.ks);
}

// Evaluates the checkpoint ckpt (its info read beforehand, which fixes S) on o.test, showing a
// progress bar; prints nothing else.
template <shape S>
eval_result run_eval(const eval_run_options& o, const std::filesystem::path& ckpt,
                     const checkpoint_info& info) {
    validate_eval_options(o);
    using model_t = transformer<S>;
    tokenizer tok;
    model_t model(info.config);
    load_model<S>(ckpt, model, &tok);
    model.set_training(false);
    const std::vector<int> ks = detail::parse_k_list(o.ks);
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
        } catch (const error& e) { // the tokenizer's message names `what` already
            const std::string m = e.what();
            if (m.starts_with(what))
                throw;
            detail::fail(what, ": ", m);
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
    GPTX_CHECK(choice || o.max_tokens < model.context(), "--max-tokens ", o.max_tokens,
               " leaves no room for a prompt in the model's context of ", model.context());
    progress bar("eval", n, {.unit = "example"});
    for (int i = 0; i < n; ++i) {
        const task_example& e = test.examples[i];
        const std::string where = o.test + ": example " + std::to_string(i + 1);
        const std::vector<int> query = encode(fmt.query(e.first), where + ", input");
        std::vector<std::vector<int>> choices;
        int room = o.max_tokens;
        if (choice) {
            room = 0;
            for (std::size_t c = 0; c < e.choices.size(); ++c) {
                choices.push_back(
                    encode(e.choices[c], where + ", choice " + std::to_string(c + 1)));
                room = std::max(room, int(choices.back().size()));
            }
        }
        GPTX_CHECK(room < model.context(), where, ": its longest choice needs ", room,
                   " tokens; the model's context is ", model.context());
        // The first k of one draw of max_k: a larger k adds demonstrations to a smaller k's.
        rng r(mix64(o.seed ^ mix64(std::uint64_t(i) + 1)));
        const std::vector<int> drawn =
            max_k > 0 ? draw_demonstrations(r, int(train_demos.size()), max_k) : std::vector<int>{};
        for (std::size_t ki = 0; ki < ks.size(); ++ki) {
            std::vector<std::vector<int>> demos;
            for (int j = 0; j < ks[ki]; ++j)
                demos.push_back(train_demos[drawn[j]]);
            packed_prompt p;
            try {
                p = pack_few_shot(description, demos, delimiter, query, model.context() - room);
            } catch (const error& err) {
                detail::fail(where, ": ", err.what());
            }
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
    eval_result out;
    out.form = test.form;
    out.examples = n;
    for (std::size_t ki = 0; ki < ks.size(); ++ki)
        for (std::size_t ri = 0; ri < rules.size(); ++ri)
            out.rows.push_back({ks[ki], rules[ri], right[ki][ri], demos_kept[ki] / n});
    return out;
}

} // namespace gptx
