// samples/tasks/task_corpus.hpp: a task corpus made on the spot (no download), after GPT-2's
// hypothesis that a language model learns tasks demonstrated in natural-language sequences:
// documents that state a word task in words and then show it through examples, plus labelled
// files for fine-tuning and evaluation on held-out words. Tested by tests/data/test_task_jsonl.cpp.
#pragma once
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <gptx/core/error.hpp>
#include <gptx/core/rng.hpp>
#include <gptx/data/task_jsonl.hpp>

namespace gptx::tasks {

// A word task: its name, the sentence that states it, and what it does to a word.
struct word_task {
    std::string_view name;
    std::string_view description;
    std::string (*apply)(std::string_view word);
};

namespace detail {
inline std::string wt_reverse(std::string_view w) { return {w.rbegin(), w.rend()}; }
inline std::string wt_upper(std::string_view w) {
    std::string s(w);
    for (char& c : s)
        c = char(std::toupper(static_cast<unsigned char>(c)));
    return s;
}
inline std::string wt_first(std::string_view w) { return std::string(w.substr(0, 1)); }
inline std::string wt_last(std::string_view w) { return std::string(w.substr(w.size() - 1)); }
inline std::string wt_twice(std::string_view w) { return std::string(w) + std::string(w); }
} // namespace detail

inline constexpr std::array<word_task, 5> word_tasks{{
    {"reverse", "Task: write each word backwards.", detail::wt_reverse},
    {"upper", "Task: write each word in capital letters.", detail::wt_upper},
    {"first", "Task: give the first letter of each word.", detail::wt_first},
    {"last", "Task: give the last letter of each word.", detail::wt_last},
    {"twice", "Task: write each word two times.", detail::wt_twice},
}};

// How a demonstration line reads: "word => answer" (prompt_format "arrow").
inline std::string task_line(std::string_view input, std::string_view output) {
    return std::string(input) + " => " + std::string(output);
}

// Words are random lowercase strings; a fixed quarter of all strings (by hash) is held out of
// the corpus and of every training file, so test inputs are never seen in training. A word's
// first and last letters differ, so the five tasks give five different answers.
inline bool held_out_word(std::string_view w) {
    std::uint64_t h = 0x9e3779b97f4a7c15ull;
    for (char c : w)
        h = mix64(h ^ static_cast<unsigned char>(c));
    return h % 4 == 0;
}
inline std::string random_task_word(rng& r, bool held_out) {
    for (;;) {
        const int n = 3 + int(r.below(3));
        std::string w;
        for (int i = 0; i < n; ++i)
            w += char('a' + r.below(26));
        if (w.front() != w.back() && held_out_word(w) == held_out)
            return w;
    }
}

struct task_corpus_config {
    std::uint64_t seed = 1;
    int documents = 4000;
    int min_examples = 3, max_examples = 10; // demonstration lines per document
    double described = 0.5;                  // documents that begin with the task's statement
    int train_examples = 200;                // per labelled training file
    int test_examples = 200;                 // per test file (held-out words)
};

// Documents separated by a blank line; each picks a task, states it (with probability
// `described`) and shows it on training words, one "word => answer" line each.
inline std::string make_task_corpus(const task_corpus_config& c) {
    GPTX_CHECK(c.documents > 0 && c.min_examples > 0 && c.min_examples <= c.max_examples,
               "task corpus: bad sizes");
    rng r(c.seed);
    std::string out;
    for (int d = 0; d < c.documents; ++d) {
        const word_task& t = word_tasks[r.below(word_tasks.size())];
        if (r.uniform_double() < c.described) {
            out += t.description;
            out += '\n';
        }
        const int n =
            c.min_examples + int(r.below(std::uint64_t(c.max_examples - c.min_examples + 1)));
        for (int i = 0; i < n; ++i) {
            const std::string w = random_task_word(r, false);
            out += task_line(w, t.apply(w));
            out += '\n';
        }
        out += '\n';
    }
    return out;
}

// {"input","output"} pairs of one task on training or held-out words.
inline task_set make_word_task_set(const word_task& t, int n, bool held_out, std::uint64_t seed) {
    rng r(seed);
    task_set s;
    s.form = task_form::generation;
    for (int i = 0; i < n; ++i) {
        const std::string w = random_task_word(r, held_out);
        s.examples.push_back({w, t.apply(w), {}, -1});
    }
    return s;
}

// {"text","label"}: which task does the line "word => answer" show? (GPT-1 classification.)
inline task_set make_which_task_set(int n, bool held_out, std::uint64_t seed) {
    rng r(seed);
    task_set s;
    s.form = task_form::text;
    for (int i = 0; i < n; ++i) {
        const int k = int(r.below(word_tasks.size()));
        const std::string w = random_task_word(r, held_out);
        s.examples.push_back({task_line(w, word_tasks[k].apply(w)), "", {}, k});
    }
    return s;
}

// " answer": a choice continues "word =>". (Appending, not " " + s: GCC 12 at -O3 reports a false
// -Wrestrict on operator+(const char*, string&&).)
inline std::string spaced(const std::string& answer) {
    std::string s = " ";
    s += answer;
    return s;
}

// {"context","choices","label"}: the task stated in words and a held-out word; the choices are
// the five tasks' answers, the label the stated one (GPT-2 zero-shot; chance is 1/5).
inline task_set make_described_choice_set(int n, std::uint64_t seed) {
    rng r(seed);
    task_set s;
    s.form = task_form::choice;
    for (int i = 0; i < n; ++i) {
        const int k = int(r.below(word_tasks.size()));
        const std::string w = random_task_word(r, true);
        task_example e;
        e.first = std::string(word_tasks[k].description) + "\n" + w + " =>";
        for (const auto& t : word_tasks)
            e.choices.push_back(spaced(t.apply(w)));
        e.label = k;
        s.examples.push_back(std::move(e));
    }
    return s;
}

// {"context","choices","label"} without the task in words: "word =>" and the five tasks' answers,
// the label the given task's. Only demonstrations say which task it is (GPT-3 few-shot scored by
// likelihood; chance is 1/5 at k = 0).
inline task_set make_task_choice_set(const word_task& t, int n, bool held_out, std::uint64_t seed) {
    rng r(seed);
    task_set s;
    s.form = task_form::choice;
    for (int i = 0; i < n; ++i) {
        const std::string w = random_task_word(r, held_out);
        task_example e;
        e.first = w + " =>";
        for (std::size_t k = 0; k < word_tasks.size(); ++k) {
            e.choices.push_back(spaced(word_tasks[k].apply(w)));
            if (word_tasks[k].name == t.name)
                e.label = int(k);
        }
        s.examples.push_back(std::move(e));
    }
    return s;
}

} // namespace gptx::tasks
