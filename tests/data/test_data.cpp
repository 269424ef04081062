// Tests for gptx/data: text files, .bin token files, the train/val split and the batchers.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <gptx/core/file.hpp>
#include <gptx/data/batcher.hpp>
#include <gptx/data/token_file.hpp>
#include <gptx/text/char_tokenizer.hpp>

#include "support/data.hpp"

#include "support/errors.hpp"
#include "support/scratch.hpp"

using namespace gptx;
using gptx::test::data_files;
namespace fs = std::filesystem;
namespace utf = boost::unit_test;

namespace {

using test::error_of;

struct temp_dir : gptx::test::scratch_dir {
    temp_dir() : scratch_dir("test_data") {}
};

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
std::uint32_t le32(const std::string& s, std::size_t at) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
        v |= std::uint32_t(static_cast<unsigned char>(s[at + i])) << (8 * i);
    return v;
}
void set_le32(std::string& s, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
// Built with append: "'" + std::string trips GCC 12's false -Wrestrict positive at -O2.
std::string quoted(const fs::path& p) {
    std::string s = "'";
    s.append(p.string()).append("'");
    return s;
}
std::vector<int> iota(int n) {
    std::vector<int> v(n);
    for (int i = 0; i < n; ++i)
        v[i] = i;
    return v;
}

const fs::path shakespeare_path = gptx::test::data_dir() / "tinyshakespeare.txt";

} // namespace

BOOST_AUTO_TEST_SUITE(data)

BOOST_AUTO_TEST_CASE(text_file_reads_and_rejects_missing_or_empty) {
    temp_dir dir;
    write_bytes(dir / "a.txt", "line one\nline two\n");
    BOOST_TEST(read_text_file(dir / "a.txt") == "line one\nline two\n");
    const fs::path missing = dir / "missing.txt";
    BOOST_TEST(error_of([&] { read_text_file(missing); }) ==
               "cannot open '" + missing.string() + "': no such file");
    const fs::path empty = dir / "empty.txt";
    write_bytes(empty, "");
    BOOST_TEST(error_of([&] { read_text_file(empty); }) == quoted(empty) + " is empty");
    BOOST_TEST(error_of([&] { read_text_file(dir.path); }) ==
               "cannot read '" + dir.path.string() + "': it is a directory");
}

BOOST_AUTO_TEST_CASE(token_file_round_trip_with_exact_header) {
    temp_dir dir;
    const fs::path p = dir / "data.bin";
    const std::vector<int> tokens{0, 1, 258, 50256, 65535, 7};
    write_token_file(p, tokens);
    BOOST_TEST(!fs::exists(dir / "data.bin.tmp"));

    const std::string raw = read_bytes(p);
    BOOST_TEST(raw.size() == 1024u + 2u * tokens.size());
    BOOST_TEST(le32(raw, 0) == 20240520u);
    BOOST_TEST(le32(raw, 4) == 1u);
    BOOST_TEST(le32(raw, 8) == tokens.size());
    bool rest_zero = true;
    for (std::size_t i = 12; i < 1024; ++i)
        rest_zero = rest_zero && raw[i] == 0;
    BOOST_TEST(rest_zero);
    // 258 = 0x0102 little-endian, 65535 = 0xFFFF.
    BOOST_TEST(static_cast<unsigned char>(raw[1024 + 4]) == 0x02);
    BOOST_TEST(static_cast<unsigned char>(raw[1024 + 5]) == 0x01);
    BOOST_TEST(static_cast<unsigned char>(raw[1024 + 8]) == 0xFF);
    BOOST_TEST(static_cast<unsigned char>(raw[1024 + 9]) == 0xFF);

    BOOST_TEST(read_token_file(p) == tokens);

    // Overwriting replaces the file; an empty token list is a valid file.
    write_token_file(p, {});
    BOOST_TEST(fs::file_size(p) == 1024u);
    BOOST_TEST(read_token_file(p).empty());
}

BOOST_AUTO_TEST_CASE(bad_token_files_give_clear_errors) {
    temp_dir dir;
    const fs::path p = dir / "data.bin";
    const std::string n = p.string();
    write_token_file(p, iota(1000));
    const std::string good = read_bytes(p);
    auto read_err = [&](const std::string& bytes) {
        write_bytes(p, bytes);
        return error_of([&] { read_token_file(p); });
    };

    std::string s = good;
    set_le32(s, 0, 123);
    BOOST_TEST(read_err(s) == n + ": bad magic 123 (expected 20240520)");
    s = good;
    set_le32(s, 4, 2);
    BOOST_TEST(read_err(s) == n + ": unsupported version 2 (expected 1)");
    BOOST_TEST(read_err(good.substr(0, good.size() - 4)) ==
               n + ": truncated: header says 1000 tokens, file holds 998");
    BOOST_TEST(read_err(good + "xy") ==
               n + ": header says 1000 tokens but the file is 3026 bytes (expected 3024)");
    BOOST_TEST(read_err(good.substr(0, 100)) ==
               n + ": too small for a token file header (100 bytes, expected at least 1024)");
    s = good;
    set_le32(s, 8, 0xFFFFFFFFu);
    BOOST_TEST(read_err(s) == n + ": negative token count -1 in the header");

    const fs::path missing = dir / "x.bin";
    BOOST_TEST(error_of([&] { read_token_file(missing); }) ==
               "cannot open '" + missing.string() + "': no such file");

    // Unwritable tokens fail before anything touches the disk.
    const fs::path q = dir / "big.bin";
    BOOST_TEST(error_of([&] {
                   write_token_file(q, std::vector<int>{1, 2, 65536});
               }) == q.string() +
                         ": token 65536 at position 2 does not fit uint16 (must be in 0..65535)");
    BOOST_CHECK_THROW(write_token_file(q, std::vector<int>{-1}), gptx::error);
    BOOST_TEST(!fs::exists(q));
    BOOST_TEST(!fs::exists(dir / "big.bin.tmp"));
}

BOOST_AUTO_TEST_CASE(split_is_deterministic_and_contiguous) {
    const auto tokens = iota(25);
    const auto s = split_train_val(tokens);
    BOOST_TEST(s.train.size() == 22u); // int(0.9 * 25) = 22
    BOOST_TEST(s.val.size() == 3u);
    BOOST_TEST(s.train.front() == 0);
    BOOST_TEST(s.val.front() == 22);
    BOOST_TEST(s.val.back() == 24);
    BOOST_TEST(split_train_val(tokens, 0.0).val.empty());
    BOOST_TEST(error_of([&] { split_train_val(tokens, 1.0); }) ==
               "split_train_val: val_fraction 1 is outside [0, 1)");
}

BOOST_AUTO_TEST_CASE(tinyshakespeare_split_and_bin_round_trip,
                     *utf::label("data") * utf::precondition(data_files{{"tinyshakespeare.txt"}})) {
    const std::string text = read_text_file(shakespeare_path);
    const auto tok = char_tokenizer::from_corpus(text);
    BOOST_TEST(tok.vocab_size() == 65);
    const auto ids = tok.encode(text);
    const auto s = split_train_val(ids);
    BOOST_TEST(s.train.size() == 1003854u); // nanoGPT shakespeare_char: train has 1,003,854
    BOOST_TEST(s.val.size() == 111540u);    // and val 111,540 tokens

    temp_dir dir;
    write_token_file(dir / "val.bin", s.val);
    BOOST_TEST(fs::file_size(dir / "val.bin") == 1024u + 2u * 111540u);
    BOOST_TEST(read_token_file(dir / "val.bin") == s.val);
}

BOOST_AUTO_TEST_CASE(batcher_targets_are_inputs_shifted_by_one) {
    // Token value = position, so each row reveals its offset.
    const int N = 50, B = 4, T = 8;
    batcher b(iota(N), B, T, rng(3));
    std::vector<int> x(B * T), y(B * T);
    std::set<int> offsets;
    for (int step = 0; step < 500; ++step) {
        b.next(x, y);
        for (int r = 0; r < B; ++r) {
            const int i = x[r * T];
            BOOST_REQUIRE(i >= 0);
            BOOST_REQUIRE(i <= N - T - 1);
            offsets.insert(i);
            for (int t = 0; t < T; ++t) {
                BOOST_REQUIRE(x[r * T + t] == i + t); // a contiguous slice of the data
                BOOST_REQUIRE(y[r * T + t] == i + t + 1);
            }
        }
    }
    // Every offset 0 .. N-T-1 is reachable, the last one included (nanoGPT's randint(len - T)).
    BOOST_TEST(offsets.size() == static_cast<std::size_t>(N - T));
}

BOOST_AUTO_TEST_CASE(batcher_is_reproducible_and_resumable) {
    const auto data = iota(1000);
    const int B = 3, T = 16;
    std::vector<int> x1(B * T), y1(B * T), x2(B * T), y2(B * T);

    batcher a(data, B, T, rng(42)), b(data, B, T, rng(42)), c(data, B, T, rng(43));
    bool differs = false;
    for (int i = 0; i < 20; ++i) {
        a.next(x1, y1);
        b.next(x2, y2);
        BOOST_TEST(x1 == x2);
        BOOST_TEST(y1 == y2);
        c.next(x2, y2);
        differs = differs || x1 != x2;
    }
    BOOST_TEST(differs);

    // Save the state, draw, restore into a fresh batcher: the continuation is identical.
    const auto state = a.rng_state();
    std::vector<std::vector<int>> expected;
    for (int i = 0; i < 5; ++i) {
        a.next(x1, y1);
        expected.push_back(x1);
    }
    batcher resumed(data, B, T, rng(999));
    resumed.set_rng_state(state);
    for (int i = 0; i < 5; ++i) {
        resumed.next(x2, y2);
        BOOST_TEST(x2 == expected[i]);
    }
}

BOOST_AUTO_TEST_CASE(batcher_rejects_too_short_data_and_bad_buffers) {
    BOOST_TEST(error_of([] { batcher(iota(16), 2, 16); }) ==
               "batcher: 16 tokens are too few for context length T=16 (need at least T+1 = 17)");
    batcher ok(iota(17), 2, 16); // exactly T+1 tokens: one possible window
    std::vector<int> x(32), y(32);
    ok.next(x, y);
    BOOST_TEST(x[0] == 0);
    BOOST_TEST(y[31] == 16);
    std::vector<int> small(31);
    BOOST_TEST(error_of([&] { ok.next(small, y); }) ==
               "batcher: buffers hold 31 inputs and 32 targets (expected B*T = 32)");
    BOOST_CHECK_THROW(batcher(iota(100), 0, 4), gptx::error);
}

// nanoGPT's order: the next training batch is drawn when the current one is handed out, so an
// evaluation between two steps shifts only the batches after the next one.
BOOST_AUTO_TEST_CASE(nanogpt_batches_prefetch_and_resume_from_their_state) {
    std::vector<int> train(5000), val(700);
    std::iota(train.begin(), train.end(), 0);
    std::iota(val.begin(), val.end(), 100000);
    const int B = 3, T = 8;
    std::vector<int> x(B * T), y(B * T);
    auto rows = [&] { return std::vector<int>{x[0], x[T], x[2 * T]}; };

    nanogpt_batches plain(torch_generator(5), train, B, T), evald(torch_generator(5), train, B, T);
    plain.next(x.data(), y.data());
    const auto first = rows();
    evald.next(x.data(), y.data());
    BOOST_TEST(rows() == first);
    evald.eval_batch(val, x.data(), y.data()); // draws from the same stream
    BOOST_TEST(x[0] >= 100000);
    BOOST_TEST(y[T - 1] == x[T - 1] + 1);
    plain.next(x.data(), y.data());
    const auto second = rows();
    evald.next(x.data(), y.data());
    BOOST_TEST(rows() == second); // drawn before the evaluation
    plain.next(x.data(), y.data());
    const auto third = rows();
    evald.next(x.data(), y.data());
    BOOST_TEST(rows() != third); // drawn after it

    // A state taken after an evaluation restores into a batcher seeded otherwise.
    evald.eval_batch(train, x.data(), y.data());
    const auto st = evald.state();
    nanogpt_batches resumed(torch_generator(99), train, B, T);
    resumed.set_state(st);
    for (int k = 0; k < 5; ++k) {
        evald.next(x.data(), y.data());
        const auto want = rows();
        resumed.next(x.data(), y.data());
        BOOST_TEST(rows() == want, "batch " << k << " after resuming");
        evald.eval_batch(val, x.data(), y.data());
        const auto want_eval = rows();
        resumed.eval_batch(val, x.data(), y.data());
        BOOST_TEST(rows() == want_eval);
    }
    // Rewinding undoes the evaluations after the pending batch was drawn: the step-0 evaluation of
    // a run resumed from its step-0 checkpoint draws what the first one drew.
    nanogpt_batches fresh(torch_generator(11), train, B, T),
        again(torch_generator(11), train, B, T);
    fresh.eval_batch(val, x.data(), y.data());
    const auto first_eval = rows();
    fresh.next(x.data(), y.data());
    const auto after_eval = rows();
    again.eval_batch(val, x.data(), y.data());
    again.eval_batch(train, x.data(), y.data());
    again.rewind_to_pending();
    again.eval_batch(val, x.data(), y.data());
    BOOST_TEST(rows() == first_eval);
    again.next(x.data(), y.data());
    BOOST_TEST(rows() == after_eval);

    BOOST_CHECK_THROW(resumed.set_state({5, 10, 9}), gptx::error); // pending after the end
    BOOST_CHECK_THROW(resumed.set_state({5, 0, std::uint64_t{1} << 50}), gptx::error); // damaged
    BOOST_CHECK_THROW(resumed.set_state({5, 10, 11}), gptx::error); // pending batch cut short
    BOOST_CHECK_THROW(nanogpt_batches(torch_generator(1), std::vector<int>(8), B, T), gptx::error);
    BOOST_CHECK_THROW(nanogpt_batches(torch_generator(1), train, -1, T), gptx::error);
    BOOST_CHECK_THROW(nanogpt_batches(torch_generator(1), train, B, -1), gptx::error);
    BOOST_CHECK_THROW(resumed.eval_batch(std::vector<int>(T), x.data(), y.data()), gptx::error);
}

BOOST_AUTO_TEST_CASE(sequential_batcher_walks_consecutive_windows) {
    const int B = 2, T = 5;
    sequential_batcher s(iota(47), B, T); // (47 - 1) / 10 = 4 full batches
    BOOST_TEST(s.num_batches() == 4u);
    std::vector<int> x(B * T), y(B * T);
    for (int k = 0; k < 4; ++k) {
        BOOST_TEST(s.next(x.data(), y.data()));
        for (int j = 0; j < B * T; ++j) {
            BOOST_TEST(x[j] == k * B * T + j);
            BOOST_TEST(y[j] == k * B * T + j + 1);
        }
    }
    BOOST_TEST(!s.next(x.data(), y.data()));
    s.reset();
    BOOST_TEST(s.next(x.data(), y.data()));
    BOOST_TEST(x[0] == 0);
    s.set_position(3);
    BOOST_TEST(s.next(x.data(), y.data()));
    BOOST_TEST(x[0] == 30);
    BOOST_CHECK_THROW(s.set_position(5), gptx::error);
    BOOST_TEST(error_of([] { sequential_batcher(iota(10), 2, 5); }) ==
               "sequential_batcher: 10 tokens are too few for one batch of B=2, T=5 (need at "
               "least B*T+1 = 11)");
}

BOOST_AUTO_TEST_SUITE_END()
