// samples/cli/taskgen.cpp: `gptx taskgen`, the task corpus (samples/tasks/task_corpus.hpp)
// and its labelled files, written without any download. Tested by tests/cli/test_task_cli.cpp.
#include <cstdio>
#include <fstream>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "tasks/task_corpus.hpp"

namespace gptx::cli {

using namespace gptx::tasks;

struct taskgen_options {
    std::string out = "tasks";
    task_corpus_config cfg;
};

inline void add_taskgen_command(CLI::App& app, taskgen_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand(
        "taskgen", "Write the word-task corpus (tasks stated in words, then shown) and task files");
    c->add_option("--out", o.out, "Folder for corpus.txt and the *.jsonl task files");
    c->add_option("--seed", o.cfg.seed, "Seed");
    c->add_option("--documents", o.cfg.documents, "Documents in corpus.txt");
    c->add_option("--described", o.cfg.described,
                  "Fraction of documents that state their task in words");
    c->add_option("--train-examples", o.cfg.train_examples, "Lines per training file");
    c->add_option("--test-examples", o.cfg.test_examples, "Lines per test file (held-out words)");
    c->callback([&] { run(); });
}

inline void run_taskgen(const taskgen_options& o) {
    const task_corpus_config& c = o.cfg;
    GPTX_CHECK(c.documents > 0, "--documents must be positive, got ", c.documents);
    GPTX_CHECK(c.described >= 0 && c.described <= 1, "--described must be in [0, 1], got ",
               c.described);
    GPTX_CHECK(c.train_examples > 0 && c.test_examples > 0,
               "--train-examples and --test-examples must be positive");
    const fs::path dir = o.out;
    fs::create_directories(dir);
    {
        const std::string text = make_task_corpus(c);
        const fs::path tmp = dir / "corpus.txt.tmp";
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        f << text;
        f.close();
        GPTX_CHECK(f.good(), "cannot write '", tmp.string(), "'");
        fs::rename(tmp, dir / "corpus.txt");
        std::printf("corpus.txt: %d documents, %zu characters\n", c.documents, text.size());
    }
    std::uint64_t s = c.seed * 1000;
    for (const word_task& t : word_tasks) {
        const std::string name(t.name);
        write_task_jsonl(dir / (name + ".train.jsonl"),
                         make_word_task_set(t, c.train_examples, false, ++s));
        write_task_jsonl(dir / (name + ".test.jsonl"),
                         make_word_task_set(t, c.test_examples, true, ++s));
        std::printf("%s.{train,test}.jsonl: {input,output}, \"%s\"\n", name.c_str(),
                    std::string(t.description).c_str());
    }
    write_task_jsonl(dir / "which.train.jsonl", make_which_task_set(c.train_examples, false, ++s));
    write_task_jsonl(dir / "which.test.jsonl", make_which_task_set(c.test_examples, true, ++s));
    std::printf("which.{train,test}.jsonl: {text,label}, which task a line shows (label = task "
                "index: reverse, upper, first, last, twice)\n");
    write_task_jsonl(dir / "described.test.jsonl", make_described_choice_set(c.test_examples, ++s));
    std::printf("described.test.jsonl: {context,choices,label}, the task stated in words, "
                "choices = the five tasks' answers\n");
    for (const word_task& t : word_tasks) { // after the others: their seeds stay as they were
        const std::string name(t.name);
        write_task_jsonl(dir / (name + ".choice.train.jsonl"),
                         make_task_choice_set(t, c.train_examples, false, ++s));
        write_task_jsonl(dir / (name + ".choice.test.jsonl"),
                         make_task_choice_set(t, c.test_examples, true, ++s));
    }
    std::printf("<task>.choice.{train,test}.jsonl: {context,choices,label}, \"word =>\" and the "
                "five tasks' answers, no description\n");
}

void add_taskgen_command(commands& cmds) { cmds.add(add_taskgen_command, run_taskgen); }

} // namespace gptx::cli
