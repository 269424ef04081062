// Tests for gptx/data/sft.hpp: the JSONL reader, token layouts and masks, packing and batches.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gptx/data/sft.hpp>

#include "support/scratch.hpp"

using namespace gptx;
namespace fs = std::filesystem;

namespace {

struct sft_temp_dir : gptx::test::scratch_dir {
    sft_temp_dir() : scratch_dir("test_sft") {}
};

std::string sft_error(const fs::path& p) {
    try {
        (void)read_sft_jsonl(p);
    } catch (const gptx::error& e) {
        return e.what();
    }
    return "<no error>";
}

// ids: one per character, 'a' = 0 ... ; eot = 99
sft_tokens toks(const std::string& p, const std::string& r) {
    sft_tokens t;
    for (char c : p)
        t.prompt.push_back(c - 'a');
    for (char c : r)
        t.response.push_back(c - 'a');
    return t;
}

} // namespace

BOOST_AUTO_TEST_SUITE(sft_data)

BOOST_AUTO_TEST_CASE(jsonl_round_trip) {
    sft_temp_dir d;
    const std::vector<sft_example> ex{
        {"Q: a\nA: ", "b"}, {"", "only a response"}, {"p \"quoted\" \\", "r\tx"}};
    write_sft_jsonl(d.path / "x.jsonl", ex);
    BOOST_TEST((read_sft_jsonl(d.path / "x.jsonl") == ex));
    BOOST_TEST(!fs::exists(d.path / "x.jsonl.tmp"));
    // blank lines and CRLF are fine; unknown keys are ignored
    const auto p = d.write("y.jsonl", "\n{\"prompt\":\"a\",\"response\":\"b\",\"id\":3}\r\n  \n");
    BOOST_TEST((read_sft_jsonl(p) == std::vector<sft_example>{{"a", "b"}}));
    const std::vector<std::string> prompts{"x", "y z"};
    write_prompts_jsonl(d.path / "p.jsonl", prompts);
    BOOST_TEST((read_prompts_jsonl(d.path / "p.jsonl") == prompts));
}

BOOST_AUTO_TEST_CASE(jsonl_errors_name_file_line_and_problem) {
    sft_temp_dir d;
    const std::string ok = "{\"prompt\":\"a\",\"response\":\"b\"}\n";
    struct bad_case {
        std::string text, expect;
    };
    const std::vector<bad_case> cases{
        {ok + "{\"prompt\":\"a\",\"response\":\"b\"\n", "bad.jsonl:2: not valid JSON"},
        {ok + ok + "[1,2]\n", "bad.jsonl:3: expected a JSON object, got array"},
        // out_of_range, not parse_error, in nlohmann: found by fuzzing
        {"{\"prompt\":4e78411,\"response\":\"b\"}\n", "bad.jsonl:1: not valid JSON"},
        {ok + "{\"response\":\"b\"}\n", "bad.jsonl:2: missing \"prompt\""},
        {"{\"prompt\":\"a\"}\n", "bad.jsonl:1: missing \"response\""},
        {"{\"prompt\":1,\"response\":\"b\"}\n",
         "bad.jsonl:1: \"prompt\" must be a string, got number"},
        {"{\"prompt\":\"a\",\"response\":\"\"}\n", "bad.jsonl:1: \"response\" is empty"},
        {"\n\n", "bad.jsonl: no examples"},
    };
    for (const auto& c : cases) {
        const auto p = d.write("bad.jsonl", c.text);
        const std::string e = sft_error(p);
        BOOST_TEST(e.find(c.expect) != std::string::npos,
                   "got: " << e << "\nexpected: " << c.expect);
    }
    BOOST_TEST(sft_error(d.path / "missing.jsonl").find("cannot open") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(token_layout_and_mask_of_one_example) {
    const std::vector<sft_tokens> ex{toks("ab", "cd")};
    const std::vector<int> order{0};
    const packed_rows rows = pack_sft(ex, order, 8, 99);
    BOOST_TEST(rows.rows() == 1);
    // EOT p p r r EOT pad pad pad
    BOOST_TEST(rows.tokens == (std::vector<int>{99, 0, 1, 2, 3, 99, 99, 99, 99}),
               boost::test_tools::per_element());
    // targets: p(1) r(2) r(3) EOT pad pad pad pad: only the response and its end-of-text count
    BOOST_TEST(rows.mask == (std::vector<std::uint8_t>{0, 0, 1, 1, 1, 0, 0, 0}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(packing_shares_end_of_text_and_never_splits_an_example) {
    // T = 8: a row holds 9 tokens. "ab"+"c" needs 4 (with its EOT), "d"+"e" 3, "fgh"+"ij" 6.
    const std::vector<sft_tokens> ex{toks("ab", "c"), toks("d", "e"), toks("fgh", "ij")};
    const std::vector<int> order{0, 1, 2};
    const packed_rows rows = pack_sft(ex, order, 8, 99);
    BOOST_TEST(rows.rows() == 2);
    BOOST_TEST(rows.tokens == (std::vector<int>{99, 0, 1, 2, 99, 3, 4, 99, 99, //
                                                99, 5, 6, 7, 8, 9, 99, 99, 99}),
               boost::test_tools::per_element());
    BOOST_TEST(rows.mask == (std::vector<std::uint8_t>{0, 0, 1, 1, 0, 1, 1, 0, //
                                                       0, 0, 0, 1, 1, 1, 0, 0}),
               boost::test_tools::per_element());
    // an example that fills a row exactly: |p| + |r| + 1 = T
    const std::vector<sft_tokens> full{toks("abc", "defg")};
    const std::vector<int> one{0};
    const packed_rows f = pack_sft(full, one, 8, 99);
    BOOST_TEST(f.rows() == 1);
    BOOST_TEST(f.tokens.back() == 99);
    BOOST_TEST(f.mask.back() == 1);
    // one token more is an error naming the example
    const std::vector<sft_tokens> too_long{toks("a", "b"), toks("abcd", "defg")};
    const std::vector<int> two{0, 1};
    try {
        (void)pack_sft(too_long, two, 8, 99, "demos.jsonl");
        BOOST_FAIL("no error");
    } catch (const gptx::error& e) {
        BOOST_TEST(std::string(e.what()) == "demos.jsonl: example 2 needs 9 tokens (prompt, "
                                            "response, end-of-text) but the context holds 8");
    }
}

BOOST_AUTO_TEST_CASE(batches_cover_every_row_once_per_epoch_and_depend_only_on_the_step) {
    std::vector<sft_tokens> ex;
    for (int i = 0; i < 23; ++i)
        ex.push_back(toks(std::string(1, char('a' + i % 20)), std::string(1 + i % 3, 'b')));
    sft_batches a(ex, 3, 8, 99, 42), b(ex, 3, 8, 99, 42);
    const int R = a.rows(), spe = a.steps_per_epoch();
    BOOST_TEST(spe == (R + 2) / 3);
    // response tokens per epoch: every response token plus one end-of-text per example
    std::int64_t expect = 0;
    for (const auto& e : ex)
        expect += std::int64_t(e.response.size()) + 1;
    BOOST_TEST(a.response_tokens() == expect);
    for (int epoch = 0; epoch < 2; ++epoch) {
        std::multiset<std::vector<int>> seen;
        std::int64_t masked = 0;
        for (int j = 0; j < spe; ++j) {
            const lm_batch x = a.batch(std::int64_t(epoch) * spe + j);
            BOOST_TEST(x.T == 8);
            BOOST_TEST(x.B == std::min(3, R - 3 * j));
            for (int r = 0; r < x.B; ++r) {
                seen.insert(std::vector<int>(x.inputs + r * 8, x.inputs + r * 8 + 8));
                for (int t = 0; t < 8; ++t) {
                    masked += x.mask[r * 8 + t];
                    if (t + 1 < 8)
                        BOOST_TEST(x.targets[r * 8 + t] == x.inputs[r * 8 + t + 1]);
                }
            }
        }
        BOOST_TEST(int(seen.size()) == R);
        BOOST_TEST(masked == expect);
    }
    // random access equals sequential access (what exact resume relies on)
    const lm_batch late = b.batch(spe + 1);
    const std::vector<int> late_x(late.inputs, late.inputs + late.B * 8);
    (void)a.batch(0);
    const lm_batch again = a.batch(spe + 1);
    BOOST_TEST(std::vector<int>(again.inputs, again.inputs + again.B * 8) == late_x,
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(end_of_text_is_the_reserved_id_after_the_tokenizer) {
    const tokenizer tok = make_tokenizer("char", "abc");
    BOOST_TEST(end_of_text_id(tok, 4) == 3);
    BOOST_CHECK_THROW(end_of_text_id(tok, 3), gptx::error);
    const auto t = tokenize_sft(std::vector<sft_example>{{"ab", "c"}}, tok);
    BOOST_TEST(t[0].prompt == (std::vector<int>{0, 1}), boost::test_tools::per_element());
    try {
        (void)tokenize_sft(std::vector<sft_example>{{"ab", "c"}, {"a", "z"}}, tok, "d.jsonl");
        BOOST_FAIL("no error");
    } catch (const gptx::error& e) {
        BOOST_TEST(std::string(e.what()).find("d.jsonl: example 2: response character 'z'") == 0);
    }
}

BOOST_AUTO_TEST_SUITE_END()
