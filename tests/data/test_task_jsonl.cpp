// Tests for gptx/data/task_jsonl.hpp: the five task forms round-trip, and every bad line is an
// error naming the file, the line and what is wrong; a write never leaves half a file.
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gptx/data/task_jsonl.hpp>

using namespace gptx;

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
    expect_error("{\"text\":\"a\"}", "f.jsonl:1: missing \"label\"");
    expect_error("{\"text\":3,\"label\":0}", "f.jsonl:1: \"text\" must be a string, got number");
    expect_error("{\"text\":\"a\",\"label\":\"pos\"}",
                 "f.jsonl:1: \"label\" must be an integer, got string");
    expect_error("{\"text\":\"a\",\"label\":0.5}", "\"label\" must be an integer, got a fraction");
    expect_error("{\"text\":\"a\",\"label\":-1}",
                 "f.jsonl:1: \"label\" must be in [0, 1000000), got -1");
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
    const auto dir =
        std::filesystem::temp_directory_path() / ("gptx_task_jsonl_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
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

BOOST_AUTO_TEST_SUITE_END()
