// samples/cli/eval.cpp: `gptx eval`, zero- and few-shot evaluation (GPT-2, GPT-3): the options of
// run_eval (gptx/recipes/eval.hpp), its dispatch on the checkpoint's shape, and the table of
// accuracies with 95% Wilson intervals per k and rule. Tested by tests/cli/test_task_cli.cpp.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include <gptx/recipes/eval.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "instances/eval.hpp"

namespace gptx::cli {

using eval_options = eval_run_options;

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

// The header line and the table: accuracy with its 95% Wilson interval per k and rule.
inline void print_eval_result(const eval_options& o, const fs::path& ckpt, const eval_result& r) {
    const int n = r.examples;
    const bool few_shot =
        std::any_of(r.rows.begin(), r.rows.end(), [](const eval_row& row) { return row.k > 0; });
    std::printf("gptx eval: %s on %s (%s, %d examples)%s%s\n", ckpt.string().c_str(),
                o.test.c_str(), std::string(task_form_keys(r.form)).c_str(), n,
                few_shot ? ", demonstrations from " : "", few_shot ? o.train.c_str() : "");
    std::printf("%4s  %-14s %9s  %-16s %6s %8s\n", "k", "rule", "accuracy", "95% interval", "n",
                "demos");
    for (const eval_row& row : r.rows) {
        const auto [lo, hi] = wilson_interval(row.right, n);
        std::printf("%4d  %-14s %9.3f  [%.3f, %.3f]  %6d %8.1f\n", row.k, row.rule.c_str(),
                    double(row.right) / n, lo, hi, n, row.demonstrations);
    }
}

inline void eval_command(const eval_options& o) {
    validate_eval_options(o);
    const fs::path ckpt = checkpoint_file(o.checkpoint);
    GPTX_CHECK(fs::exists(ckpt), "no checkpoint at '", ckpt.string(), "'");
    const checkpoint_info info = read_model_info(ckpt);
    eval_result r;
    const bool found =
        with_checkpoint_preset(info, [&]<shape S>() { r = run_eval<S>(o, ckpt, info); });
    GPTX_CHECK(found, ckpt.string(), ": no preset has the shape ", to_string(info.dims));
    print_eval_result(o, ckpt, r);
}

void add_eval_command(commands& cmds) { cmds.add(add_eval_command, eval_command); }

} // namespace gptx::cli
