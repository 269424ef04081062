// Tests for gptx/text tokenizers: byte, char, the tokenizer value and its serialized form.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gptx/core/rng.hpp>
#include <gptx/text/byte_tokenizer.hpp>
#include <gptx/text/char_tokenizer.hpp>
#include <gptx/text/tokenizer.hpp>

#include "support/data.hpp"
#include "support/errors.hpp"

using namespace gptx;
using gptx::test::data_dir;
using gptx::test::data_files;
namespace utf = boost::unit_test;

namespace {

using test::error_of;

std::string shakespeare() {
    const auto path = data_dir() / "tinyshakespeare.txt";
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return {};
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

} // namespace

BOOST_AUTO_TEST_SUITE(text)

BOOST_AUTO_TEST_CASE(byte_tokenizer_round_trips_random_bytes) {
    byte_tokenizer tok;
    BOOST_TEST(tok.vocab_size() == 256);
    rng r(5);
    for (int trial = 0; trial < 50; ++trial) {
        std::string s(r.below(300), '\0');
        for (char& c : s)
            c = static_cast<char>(r.below(256));
        const auto ids = tok.encode(s);
        BOOST_TEST(ids.size() == s.size());
        for (std::size_t i = 0; i < s.size(); ++i)
            BOOST_TEST(ids[i] == static_cast<unsigned char>(s[i]));
        BOOST_TEST(tok.decode(ids) == s);
    }
    std::vector<int> all(256);
    for (int i = 0; i < 256; ++i)
        all[i] = i;
    const std::string bytes = tok.decode(all);
    BOOST_TEST(tok.encode(bytes) == all);
    BOOST_TEST(tok.decode_token(65) == "A");
    BOOST_TEST(tok.decode_token(0) == std::string(1, '\0'));
}

BOOST_AUTO_TEST_CASE(byte_tokenizer_rejects_out_of_range_ids) {
    byte_tokenizer tok;
    BOOST_TEST(error_of([&] { tok.decode_token(256); }) ==
               "token id 256 is out of range for the byte tokenizer (valid: 0..255)");
    const std::vector<int> bad{1, -1};
    BOOST_CHECK_THROW(tok.decode(bad), gptx::error);
}

BOOST_AUTO_TEST_CASE(char_tokenizer_uses_sorted_unique_bytes) {
    const auto tok = char_tokenizer::from_corpus("hello world\n");
    BOOST_TEST(tok.symbols() == "\n dehlorw");
    BOOST_TEST(tok.vocab_size() == 9);
    const auto ids = tok.encode("hold");
    BOOST_TEST((ids == std::vector<int>{4, 6, 5, 2}));
    BOOST_TEST(tok.decode(ids) == "hold");
    BOOST_TEST(tok.decode_token(0) == "\n");
    BOOST_TEST(error_of([&] { tok.decode_token(9); }) ==
               "token id 9 is out of range for the char tokenizer (valid: 0..8)");
}

BOOST_AUTO_TEST_CASE(char_tokenizer_names_an_unknown_character) {
    const auto tok = char_tokenizer::from_corpus("abc ");
    BOOST_TEST(error_of([&] { tok.encode("abcZ", "prompt"); }) ==
               "prompt character 'Z' (position 3) is not in the tokenizer's 4-symbol vocabulary");
    BOOST_TEST(error_of([&] { tok.encode("a\tb"); }) ==
               "text character '\\x09' (position 1) is not in the tokenizer's 4-symbol "
               "vocabulary");
    BOOST_TEST(error_of([&] { tok.encode("\xC3\xA9"); }) ==
               "text character '\\xC3' (position 0) is not in the tokenizer's 4-symbol "
               "vocabulary");
}

BOOST_AUTO_TEST_CASE(char_tokenizer_from_chars_keeps_the_saved_mapping) {
    const auto a = char_tokenizer::from_corpus("the quick brown fox");
    const auto b = char_tokenizer::from_chars(a.symbols());
    BOOST_TEST((a == b));
    BOOST_TEST(b.encode("fox") == a.encode("fox"));
    // Order is kept as given, not re-sorted.
    const auto c = char_tokenizer::from_chars("ba");
    BOOST_TEST((c.encode("ab") == std::vector<int>{1, 0}));
    BOOST_TEST(error_of([] { char_tokenizer::from_chars("abca"); }) ==
               "char tokenizer: symbol 'a' appears twice in the symbol list (position 3)");
    BOOST_CHECK_THROW(char_tokenizer::from_chars(""), gptx::error);
    BOOST_CHECK_THROW(char_tokenizer::from_corpus(""), gptx::error);
}

BOOST_AUTO_TEST_CASE(tinyshakespeare_char_vocabulary_matches_nanogpt,
                     *utf::label("data") * utf::precondition(data_files{{"tinyshakespeare.txt"}})) {
    const std::string text = shakespeare();
    BOOST_TEST(text.size() == 1115394u);
    const auto tok = char_tokenizer::from_corpus(text);
    BOOST_TEST(tok.vocab_size() == 65);
    // nanoGPT's data/shakespeare_char/prepare.py prints exactly this alphabet.
    BOOST_TEST(tok.symbols() ==
               "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    const auto ids = tok.encode(text);
    BOOST_TEST(tok.decode(ids) == text);
    BOOST_TEST((tok.encode("hii there") == std::vector<int>{46, 47, 47, 1, 58, 46, 43, 56, 43}));
}

BOOST_AUTO_TEST_CASE(tokenizer_value_dispatches_by_kind) {
    const tokenizer b = make_tokenizer("byte", "ignored");
    BOOST_TEST(b.kind() == "byte");
    BOOST_TEST(b.vocab_size() == 256);
    BOOST_TEST(b.decode(b.encode("any\xFFthing")) == "any\xFFthing");

    const tokenizer c = make_tokenizer("char", "abcabc");
    BOOST_TEST(c.kind() == "char");
    BOOST_TEST(c.vocab_size() == 3);
    BOOST_TEST((c.encode("cab") == std::vector<int>{2, 0, 1}));
    BOOST_TEST(c.decode_token(1) == "b");
    BOOST_TEST(c.get_if<char_tokenizer>() != nullptr);
    BOOST_TEST(c.get_if<byte_tokenizer>() == nullptr);
    BOOST_TEST(error_of([&] { c.encode("abz", "prompt"); }) ==
               "prompt character 'z' (position 2) is not in the tokenizer's 3-symbol vocabulary");

    BOOST_TEST(error_of([] { make_tokenizer("gpt3", ""); }) ==
               "unknown tokenizer kind 'gpt3' (valid: byte, char, gpt2)");
    BOOST_CHECK_THROW(make_tokenizer("char", ""), gptx::error);
}

BOOST_AUTO_TEST_CASE(serialize_round_trips_every_kind) {
    for (const tokenizer& t : {tokenizer(byte_tokenizer{}), make_tokenizer("char", "zyx\n\x01")}) {
        const std::string blob = t.serialize();
        const tokenizer u = tokenizer::deserialize(blob);
        BOOST_TEST((u == t));
        BOOST_TEST(u.kind() == t.kind());
        BOOST_TEST(u.vocab_size() == t.vocab_size());
        BOOST_TEST(u.serialize() == blob);
    }
    // The char blob is compact: 17 bytes of framing + the 4-byte kind name + the symbols.
    const std::string blob = make_tokenizer("char", "ba").serialize();
    BOOST_TEST(blob.size() == 17u + 4u + 2u);
    BOOST_TEST(blob.substr(0, 4) == "GTOK");
}

BOOST_AUTO_TEST_CASE(corrupted_blobs_are_rejected) {
    const std::string good = make_tokenizer("char", "hello").serialize();
    auto err = [](std::string blob) { return error_of([&] { tokenizer::deserialize(blob); }); };

    BOOST_TEST(err("") == "tokenizer blob: too short (0 bytes, expected at least 17)");
    std::string s = good;
    s[0] = 'X';
    BOOST_TEST(err(s) == "tokenizer blob: bad magic (expected \"GTOK\"); not a gptx tokenizer");
    s = good;
    s[4] = 9;
    BOOST_TEST(err(s) == "tokenizer blob: unsupported version 9 (expected 1)");
    BOOST_TEST(err(good.substr(0, good.size() - 1)) ==
               "tokenizer blob: size 24 does not match its header (expected 25 bytes)");
    BOOST_TEST(err(good + "x") ==
               "tokenizer blob: size 26 does not match its header (expected 25 bytes)");
    s = good;
    s[18] ^= 0x20; // a payload byte
    BOOST_TEST(err(s) == "tokenizer blob: checksum mismatch (corrupted)");
    s = good;
    s[8] = 100; // kind length beyond the blob
    BOOST_TEST(err(s) == "tokenizer blob: truncated in the kind name");

    // A well-formed blob of a kind this build does not know.
    std::string alien = tokenizer(byte_tokenizer{}).serialize();
    alien.replace(9, 4, "bpe9");
    alien.resize(alien.size() - 4);
    std::uint32_t h = 2166136261u; // recompute FNV-1a so only the kind is wrong
    for (char ch : alien)
        h = (h ^ static_cast<unsigned char>(ch)) * 16777619u;
    for (int i = 0; i < 4; ++i)
        alien += static_cast<char>((h >> (8 * i)) & 0xff);
    BOOST_TEST(err(alien) == "tokenizer blob: unknown kind 'bpe9' (valid: byte, char, gpt2)");
}

BOOST_AUTO_TEST_SUITE_END()
