// Tests for gptx/data/task_jsonl.hpp: the five task forms round-trip, and every bad line is an
// error naming the file, the line and what is wrong; a write never leaves half a file.
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gptx/data/task_jsonl.hpp>
#include <tasks/task_corpus.hpp>

#include "support/scratch.hpp"

using namespace gptx;
using namespace gptx::tasks;

namespace {
// The error message of parse_task_jsonl(text), or "" when it parses.
std::string error_of(const std::string& text) {
    try {
        parse_task_jsonl(text, "f.jsonl");
    } catch (const error& e) {
        return e.what();
    }
    return "";
}
void expect_error(const std::string& text, const std::string& needle) {
    const std::string msg = error_of(text);
    BOOST_TEST(msg.find(needle) != std::string::npos,
               "expected '" << needle << "' in '" << msg << "'");
}
} // namespace

BOOST_AUTO_TEST_SUITE(task_jsonl)

BOOST_AUTO_TEST_CASE(every_form_parses) {
    auto t = parse_task_jsonl(
        "{\"text\":\"good\",\"label\":1}\n\n{\"text\":\"bad\",\"label\":0}\r\n", "x");
    BOOST_TEST(int(t.form) == int(task_form::text));
    BOOST_TEST(t.examples.size() == 2u);
    BOOST_TEST(t.examples[0].first == "good");
    BOOST_TEST(t.classes() == 2);
    t = parse_task_jsonl("{\"premise\":\"p\",\"hypothesis\":\"h\",\"label\":2}", "x");
    BOOST_TEST(int(t.form) == int(task_form::entailment));
    BOOST_TEST(t.examples[0].second == "h");
    BOOST_TEST(t.classes() == 3);
    t = parse_task_jsonl("{\"a\":\"x\",\"b\":\"y\",\"label\":0}", "x");
    BOOST_TEST(int(t.form) == int(task_form::similarity));
    t = parse_task_jsonl("{\"context\":\"c\",\"choices\":[\" a\",\" b\",\" c\"],\"label\":2}", "x");
    BOOST_TEST(int(t.form) == int(task_form::choice));
    BOOST_TEST(t.examples[0].choices.size() == 3u);
    BOOST_TEST(t.classes() == 3);
    t = parse_task_jsonl("{\"input\":\"abc\",\"output\":\"cba\",\"extra\":1}", "x");
    BOOST_TEST(int(t.form) == int(task_form::generation));
    BOOST_TEST(t.examples[0].second == "cba");
}

BOOST_AUTO_TEST_CASE(bad_lines_name_file_line_and_problem) {
    expect_error("{\"text\":\"a\",\"label\":0}\n{\"text\":\"b\"", "f.jsonl:2: not valid JSON");
    expect_error("[1,2]", "f.jsonl:1: expected a JSON object, got array");
    // A number too large for a double is nlohmann's out_of_range, not a parse_error (fuzzing).
    expect_error("{\"text\":\"a\",\"label\":1e999}", "f.jsonl:1: not valid JSON");
    expect_error("{\"text\":\"a\"}", "f.jsonl:1: missing \"label\"");
    expect_error("{\"text\":3,\"label\":0}", "f.jsonl:1: \"text\" must be a string, got number");
    expect_error("{\"text\":\"a\",\"label\":\"pos\"}",
                 "f.jsonl:1: \"label\" must be an integer, got string");
    expect_error("{\"text\":\"a\",\"label\":0.5}", "\"label\" must be an integer, got a fraction");
    expect_error("{\"text\":\"a\",\"label\":-1}",
                 "f.jsonl:1: \"label\" must be in [0, 1000000), got -1");
    // A whole number written as a float: out of range, not "a fraction".
    expect_error("{\"text\":\"a\",\"label\":1e20}",
                 "f.jsonl:1: \"label\" must be in [0, 1000000), got 1e+20");
    expect_error("{\"premise\":\"p\",\"label\":0}", "f.jsonl:1: missing \"hypothesis\"");
    expect_error("{\"context\":\"c\",\"choices\":\"ab\",\"label\":0}",
                 "\"choices\" must be an array");
    expect_error("{\"context\":\"c\",\"choices\":[\"a\"],\"label\":0}",
                 "needs at least 2 entries, got 1");
    expect_error("{\"context\":\"c\",\"choices\":[\"a\",2],\"label\":0}",
                 "choice 1 must be a string");
    expect_error("{\"context\":\"c\",\"choices\":[\"a\",\"\"],\"label\":0}", "choice 1 is empty");
    expect_error("{\"context\":\"c\",\"choices\":[\"a\",\"b\"],\"label\":2}",
                 "\"label\" 2 is not the index of one of the 2 choices");
    expect_error("{\"input\":\"a\",\"output\":\"\"}", "f.jsonl:1: \"output\" is empty");
    expect_error("{\"question\":\"a\"}", "f.jsonl:1: not a task line");
    expect_error(
        "{\"text\":\"a\",\"label\":0}\n\n{\"a\":\"x\",\"b\":\"y\",\"label\":0}",
        "f.jsonl:3: a {\"a\",\"b\",\"label\"} line in a file of {\"text\",\"label\"} lines");
    expect_error("\n  \n", "f.jsonl: no examples");
    BOOST_CHECK_THROW(read_task_jsonl("/nonexistent/x.jsonl"), error);
}

BOOST_AUTO_TEST_CASE(write_then_read_round_trips_atomically) {
    const gptx::test::scratch_dir scratch("task_jsonl");
    const auto& dir = scratch.path;
    const auto path = dir / "t.jsonl";
    task_set s;
    s.form = task_form::choice;
    s.examples = {{"ctx \"quoted\"\n", "", {" a", " b"}, 1}, {"c2", "", {"x", "y", "z"}, 0}};
    write_task_jsonl(path, s);
    const auto back = read_task_jsonl(path);
    BOOST_TEST(int(back.form) == int(task_form::choice));
    BOOST_TEST((back.examples == s.examples));
    BOOST_TEST(!std::filesystem::exists(dir / "t.jsonl.tmp"));
    // A failed write (the target is a folder) leaves the old file untouched.
    BOOST_CHECK_THROW(write_task_jsonl(dir, s), error);
    BOOST_TEST((read_task_jsonl(path).examples == s.examples));
    BOOST_TEST(!std::filesystem::exists(dir.string() + ".tmp"));
    std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(task_corpus_states_tasks_and_holds_out_test_words) {
    task_corpus_config c;
    c.documents = 300;
    const std::string corpus = make_task_corpus(c);
    for (const auto& t : word_tasks)
        BOOST_TEST(corpus.find(std::string(t.description) + "\n") != std::string::npos, t.name);
    // Every demonstration line uses a training word and shows its task's answer.
    std::size_t lines = 0, pos = 0;
    while (pos < corpus.size()) {
        const std::size_t end = corpus.find('\n', pos);
        const std::string line = corpus.substr(pos, end - pos);
        pos = end + 1;
        const std::size_t arrow = line.find(" => ");
        if (arrow == std::string::npos)
            continue;
        ++lines;
        BOOST_TEST(!held_out_word(line.substr(0, arrow)), line);
    }
    BOOST_TEST(lines > 900u);
    for (const auto& t : word_tasks) {
        const task_set test = make_word_task_set(t, 50, true, 3);
        for (const auto& e : test.examples) {
            BOOST_TEST(held_out_word(e.first));
            BOOST_TEST(corpus.find("\n" + e.first + " => ") == std::string::npos, e.first);
            BOOST_TEST(e.second == t.apply(e.first));
        }
    }
    BOOST_TEST(word_tasks[0].apply("abc") == "cba");
    BOOST_TEST(word_tasks[1].apply("abc") == "ABC");
    BOOST_TEST(word_tasks[4].apply("abc") == "abcabc");
    const task_set mc = make_described_choice_set(40, 5);
    for (const auto& e : mc.examples) {
        BOOST_TEST(e.choices.size() == word_tasks.size());
        for (std::size_t i = 0; i < e.choices.size(); ++i)
            for (std::size_t j = i + 1; j < e.choices.size(); ++j)
                BOOST_TEST(e.choices[i] != e.choices[j]); // five different answers
        BOOST_TEST(e.first.find(word_tasks[e.label].description) == 0u);
    }
    const task_set few = make_task_choice_set(word_tasks[3], 20, true, 7);
    for (const auto& e : few.examples) {
        const std::string word = e.first.substr(0, e.first.size() - 3);
        BOOST_TEST(e.first == word + " =>");
        BOOST_TEST(e.label == 3);
        std::string expected(1, ' '); // not " " + string: GCC 12 warns falsely (-Wrestrict)
        expected += word_tasks[3].apply(word);
        BOOST_TEST(e.choices[3] == expected);
        BOOST_TEST(held_out_word(word));
    }
    const task_set which = make_which_task_set(40, false, 6);
    for (const auto& e : which.examples) {
        const std::string word = e.first.substr(0, e.first.find(' '));
        BOOST_TEST(e.first == task_line(word, word_tasks[e.label].apply(word)));
    }
}

BOOST_AUTO_TEST_SUITE_END()
