// Tests for gptx/text/gpt2_tokenizer.hpp, special_tokens.hpp, bpe_trainer.hpp and the gpt2 kind
// of the tokenizer value: exactness against GPT-2's reference encodings, tinyshakespeare's token
// counts, the pre-tokenizer against PCRE2 and its Unicode table against utf8proc, byte round
// trips, special tokens, BPE training, files and bad input.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include <gptx/core/rng.hpp>
#include <gptx/text/bpe_trainer.hpp>
#include <gptx/text/gpt2_tokenizer.hpp>
#include <gptx/text/tokenizer.hpp>

#include "support/data.hpp"

#if defined(GPTX_TEST_HAVE_PCRE2_UTF8PROC)
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include "support/errors.hpp"
#include "support/scratch.hpp"
#endif

using namespace gptx;
namespace fs = std::filesystem;
namespace utf = boost::unit_test;
using gptx::test::data_files;

namespace {

using test::error_of;

using gptx::test::data_dir;
fs::path gpt2_dir() { return data_dir() / "gpt2"; }

// The precondition of the cases that need GPT-2's vocabulary (label "data").
const data_files gpt2_files{{"gpt2/encoder.json", "gpt2/vocab.bpe"}};

// Loaded once: every test that needs GPT-2's vocabulary shares it.
const gpt2_tokenizer& gpt2_vocab() {
    static const gpt2_tokenizer t = gpt2_tokenizer::from_dir(gpt2_dir());
    return t;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> pieces_of(std::string_view text) {
    std::vector<std::string> out;
    gpt2_pretokenize(text, [&](std::string_view p) { out.emplace_back(p); });
    return out;
}

std::string random_bytes(rng& r, std::size_t n) {
    std::string s(n, '\0');
    for (auto& c : s)
        c = static_cast<char>(r.below(256));
    return s;
}

// Random UTF-8 text mixing ASCII words, spaces of every kind, digits, punctuation,
// apostrophes (contractions) and code points from anywhere in Unicode.
std::string random_text(rng& r, std::size_t chars, std::span<const std::uint32_t> palette) {
    static const char* ascii[] = {"a",   "Z",   "q",  "7",    "0",  " ",  " ",
                                  "  ",  "\n",  "\t", "\r\n", "'",  "'s", "'ll",
                                  "'re", "'ve", "'d", "'m",   "'t", "'S", ".",
                                  ",",   "!",   "?",  "-",    "(",  "_",  "<|endoftext|>",
                                  "\v",  "\f"};
    std::string s;
    for (std::size_t i = 0; i < chars; ++i) {
        if (r.below(3) == 0 && !palette.empty())
            detail::append_utf8(s, palette[r.below(palette.size())]);
        else
            s += ascii[r.below(std::size(ascii))];
    }
    return s;
}

// GPT-2's encoder.py bpe() on one piece, literally (lists of byte strings, a dict of ranks).
std::vector<int> reference_bpe(const gpt2_tokenizer& t, std::string_view piece,
                               const std::map<std::pair<std::string, std::string>, int>& ranks) {
    std::vector<std::string> word;
    for (char c : piece)
        word.emplace_back(1, c);
    while (word.size() > 1) {
        int best = -1;
        std::pair<std::string, std::string> bigram;
        for (std::size_t i = 0; i + 1 < word.size(); ++i) {
            const auto it = ranks.find({word[i], word[i + 1]});
            if (it != ranks.end() && (best < 0 || it->second < best)) {
                best = it->second;
                bigram = it->first;
            }
        }
        if (best < 0)
            break;
        std::vector<std::string> next;
        for (std::size_t i = 0; i < word.size();) {
            if (i + 1 < word.size() && word[i] == bigram.first && word[i + 1] == bigram.second) {
                next.push_back(word[i] + word[i + 1]);
                i += 2;
            } else {
                next.push_back(word[i++]);
            }
        }
        word = std::move(next);
    }
    std::vector<int> ids;
    for (const auto& w : word)
        ids.push_back(*t.token_id(w));
    return ids;
}

std::map<std::pair<std::string, std::string>, int> ranks_of(const gpt2_tokenizer& t) {
    std::map<std::pair<std::string, std::string>, int> ranks;
    for (std::size_t r = 0; r < t.merges().size(); ++r) {
        const auto [a, b] = t.merges()[r];
        ranks.emplace(std::pair{std::string(t.token_bytes(a)), std::string(t.token_bytes(b))},
                      int(r));
    }
    return ranks;
}

struct temp_dir : gptx::test::scratch_dir {
    temp_dir() : scratch_dir("bpe") {}
};

const char* small_corpus =
    "the cat sat on the mat. the dog sat on the log. that's the cat's hat, isn't it?\n"
    "  a   spaced    line\twith\ttabs 123 4567 89\n"
    "naïve café — “quotes” 你好世界 emoji 🙂🚀 and more text, the end.\n";

} // namespace

BOOST_AUTO_TEST_SUITE(text)
BOOST_AUTO_TEST_SUITE(gpt2)

BOOST_AUTO_TEST_CASE(reference_encodings_match_exactly,
                     *utf::label("data") * utf::precondition(gpt2_files)) {
    const gpt2_tokenizer& t = gpt2_vocab();
    BOOST_TEST(t.vocab_size() == 50257);
    BOOST_TEST(t.num_merges() == 50000u);
    BOOST_TEST(t.eot_token() == 50256);
    std::ifstream in(gpt2_dir() / "reference_encodings.jsonl");
    std::string line;
    int cases = 0;
    while (std::getline(in, line)) {
        if (line.empty())
            continue;
        const auto j = nlohmann::json::parse(line);
        const std::string text = j.at("text");
        const auto ids = j.at("ids").get<std::vector<int>>();
        const auto got = t.encode(text);
        BOOST_TEST(got == ids, "encoding of: " << text.substr(0, 80));
        BOOST_TEST(t.decode(ids) == text);
        BOOST_TEST(t.encode(text, specials::as_text, 2) == ids);
        ++cases;
    }
    BOOST_TEST(cases >= 14);
}

BOOST_AUTO_TEST_CASE(tinyshakespeare_has_nanogpts_token_counts,
                     *utf::label("data") *
                         utf::precondition(data_files{
                             {"gpt2/encoder.json", "gpt2/vocab.bpe", "tinyshakespeare.txt"}})) {
    const std::string text = slurp(data_dir() / "tinyshakespeare.txt");
    const gpt2_tokenizer& t = gpt2_vocab();
    const auto all = t.encode(text);
    BOOST_TEST(all.size() == 338025u);
    // nanoGPT's prepare.py splits the *text* 90/10 (by characters; this file is ASCII) and
    // encodes each part.
    const std::size_t cut = text.size() * 9 / 10;
    BOOST_TEST(t.encode(text.substr(0, cut)).size() == 301966u);
    BOOST_TEST(t.encode(text.substr(cut)).size() == 36059u);
    // The multi-threaded path cuts at safe newlines and gives the same ids for any thread count
    // and chunk size (issue #17: a cut inside "\n\n" before "Pedant" once gave 338,024).
    for (int threads : {1, 2, 3, 7})
        for (std::size_t chunk : {std::size_t(1) << 18, std::size_t(4096), std::size_t(1)}) {
            const auto ids = t.encode(text, {.threads = threads, .chunk_bytes = chunk});
            BOOST_TEST((ids == all), threads << " threads, chunks of " << chunk << " bytes");
        }
    BOOST_TEST(t.decode(all) == text);
}

BOOST_AUTO_TEST_CASE(random_bytes_round_trip, *utf::label("data") * utf::precondition(gpt2_files)) {
    const gpt2_tokenizer& t = gpt2_vocab();
    rng r(42);
    for (int i = 0; i < 300; ++i) {
        const std::string s = random_bytes(r, r.below(200));
        const auto ids = t.encode(s);
        BOOST_TEST(t.decode(ids) == s);
        for (int id : ids)
            BOOST_TEST((id >= 0 && id < 50256)); // never <|endoftext|> from text
    }
    // Invalid UTF-8 bytes pre-tokenize as "other" characters, like U+FFFD would.
    BOOST_TEST((pieces_of("a\xFF\xFE!b \x80x") ==
                std::vector<std::string>{"a", "\xFF\xFE!", "b", " \x80", "x"}));
    BOOST_TEST((pieces_of("\xE4\xBD") == std::vector<std::string>{"\xE4\xBD"})); // truncated
}

BOOST_AUTO_TEST_CASE(bpe_matches_gpt2s_literal_algorithm_on_long_pieces,
                     *utf::label("data") * utf::precondition(gpt2_files)) {
    const gpt2_tokenizer& t = gpt2_vocab();
    const auto ranks = ranks_of(t);
    rng r(7);
    std::vector<std::string> samples = {
        std::string(700, 'a'), "abababababababababababababab",
        "你好世界日本語のテキスト한국어你好世界日本語のテキスト한국어"};
    for (int i = 0; i < 40; ++i)
        samples.push_back(random_bytes(r, 1 + r.below(300)));
    gpt2_tokenizer::bpe_scratch scratch;
    for (const auto& s : samples) {
        std::vector<int> got;
        t.bpe(s, got, scratch);
        BOOST_TEST(got == reference_bpe(t, s, ranks));
    }
}

BOOST_AUTO_TEST_CASE(pretokenizer_rules) {
    using v = std::vector<std::string>;
    BOOST_TEST((pieces_of("Hello world") == v{"Hello", " world"}));
    BOOST_TEST((pieces_of("it's we'll they've I'd I'm don't you're") ==
                v{"it", "'s", " we", "'ll", " they", "'ve", " I", "'d", " I", "'m", " don", "'t",
                  " you", "'re"}));
    BOOST_TEST((pieces_of("IT'S") == v{"IT", "'", "S"})); // contractions are case-sensitive
    BOOST_TEST((pieces_of("a   b") == v{"a", "  ", " b"}));
    BOOST_TEST((pieces_of("a \n\nb") == v{"a", " \n", "\n", "b"}));
    BOOST_TEST((pieces_of("x   ") == v{"x", "   "}));
    BOOST_TEST((pieces_of("x\ty") == v{"x", "\t", "y"}));
    BOOST_TEST((pieces_of(" 123abc ?!'s") == v{" 123", "abc", " ?!'", "s"}));
    BOOST_TEST((pieces_of("\u00A0x\u3000\u3000y") == v{"\u00A0", "x", "\u3000", "\u3000", "y"}));
    BOOST_TEST(pieces_of("").empty());
}

#if defined(GPTX_TEST_HAVE_PCRE2_UTF8PROC)

BOOST_AUTO_TEST_CASE(unicode_table_matches_utf8proc_for_every_code_point) {
    const int white_space[] = {0x09,   0x0A,   0x0B,   0x0C,   0x0D,   0x20,   0x85,
                               0xA0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
                               0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028,
                               0x2029, 0x202F, 0x205F, 0x3000};
    int mismatches = 0;
    for (int cp = 0; cp < 0x110000; ++cp) {
        int expected = 0;
        const auto c = utf8proc_category(cp);
        if (std::find(std::begin(white_space), std::end(white_space), cp) != std::end(white_space))
            expected = detail::uc_space;
        else if (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO)
            expected = detail::uc_letter;
        else if (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO)
            expected = detail::uc_number;
        if (detail::unicode_class(std::uint32_t(cp)) != expected && ++mismatches <= 5)
            BOOST_TEST_MESSAGE("U+" << std::hex << cp << ": table "
                                    << int(detail::unicode_class(std::uint32_t(cp)))
                                    << ", utf8proc " << expected);
    }
    BOOST_TEST(mismatches == 0);
    BOOST_TEST_MESSAGE("unicode table: Unicode " << utf8proc_unicode_version()
                                                 << " (utf8proc), 0x110000 code points checked");
}

// GPT-2's pattern in PCRE2 (JIT). \s is spelled out as White_Space, the definition of GPT-2's
// own regex module; PCRE2's \s omits U+0085.
class pcre2_gpt2 {
  public:
    pcre2_gpt2() {
        const char* ws = "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
                         "\\x{202F}\\x{205F}\\x{3000}";
        pattern_ = std::string("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^") + ws +
                   "\\p{L}\\p{N}]+|[" + ws + "]+(?![^" + ws + "])|[" + ws + "]+";
        int err = 0;
        PCRE2_SIZE off = 0;
        code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern_.c_str()), PCRE2_ZERO_TERMINATED,
                              PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
        BOOST_REQUIRE(code_);
        pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
        md_ = pcre2_match_data_create_from_pattern(code_, nullptr);
    }
    ~pcre2_gpt2() {
        pcre2_match_data_free(md_);
        pcre2_code_free(code_);
        for (auto& [pat, c] : classes_)
            pcre2_code_free(c);
    }
    std::vector<std::string> split(std::string_view s) {
        std::vector<std::string> out;
        PCRE2_SIZE at = 0;
        while (at < s.size()) {
            // The subject is valid UTF-8 (checked once by the first call); skipping the check
            // on later calls keeps this linear.
            const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), at,
                                       at ? PCRE2_NO_UTF_CHECK : 0, md_, nullptr);
            if (rc < 0)
                break;
            const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md_);
            out.emplace_back(s.substr(ov[0], ov[1] - ov[0]));
            at = ov[1];
        }
        return out;
    }
    // PCRE2's class of one code point, from the same pattern pieces.
    int cls(std::uint32_t cp) {
        std::string s;
        detail::append_utf8(s, cp);
        auto matches = [&](const char* pat) {
            int err;
            PCRE2_SIZE off;
            auto& c = classes_[pat];
            if (!c)
                c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat), PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
            pcre2_match_data* md = pcre2_match_data_create_from_pattern(c, nullptr);
            const int rc = pcre2_match(c, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0,
                                       PCRE2_ANCHORED, md, nullptr);
            pcre2_match_data_free(md);
            return rc > 0;
        };
        return matches("\\p{L}") ? 1 : matches("\\p{N}") ? 2 : 0;
    }

  private:
    std::string pattern_;
    std::map<std::string, pcre2_code*> classes_; // \p{L}, \p{N} alone, for cls()
    pcre2_code* code_ = nullptr;
    pcre2_match_data* md_ = nullptr;
};

BOOST_AUTO_TEST_CASE(pretokenizer_matches_pcre2) {
    pcre2_gpt2 re;
    // Code points whose letter/number class PCRE2 (Unicode 14 in Debian 12) and the table
    // (Unicode 15) agree on: the newer ones can only be checked against utf8proc (above).
    std::vector<std::uint32_t> palette;
    rng r(3);
    int skipped = 0;
    for (int i = 0; i < 4000; ++i) {
        std::uint32_t cp = std::uint32_t(r.below(0x323B0));
        if (cp >= 0xD800 && cp < 0xE000)
            continue;
        const int t = detail::unicode_class(cp);
        if (t == detail::uc_space)
            palette.push_back(cp);
        else if (re.cls(cp) == t)
            palette.push_back(cp);
        else
            ++skipped;
    }
    for (std::uint32_t cp : {0x85u, 0xA0u, 0x1680u, 0x2000u, 0x2028u, 0x3000u, 0x180Eu, 0x200Bu,
                             0x1Cu, 0x1Fu, 0x0660u, 0x2160u, 0x00BDu, 0x4E00u, 0x1F642u})
        palette.push_back(cp);
    BOOST_TEST_MESSAGE("pretokenizer vs PCRE2: " << palette.size() << " code points, " << skipped
                                                 << " skipped as newer than PCRE2's Unicode");
    BOOST_TEST(skipped < 120); // Unicode 15 added ~4,500 code points, 4,192 of them CJK Ext. H
    for (int i = 0; i < 400; ++i) {
        const std::string s = random_text(r, r.below(60), palette);
        BOOST_TEST((pieces_of(s) == re.split(s)), "text: " << s);
    }
}

BOOST_AUTO_TEST_CASE(pretokenizer_matches_pcre2_on_tinyshakespeare,
                     *utf::label("data") * utf::precondition(data_files{{"tinyshakespeare.txt"}})) {
    pcre2_gpt2 re;
    const std::string sh = slurp(data_dir() / "tinyshakespeare.txt");
    BOOST_TEST((pieces_of(sh) == re.split(sh)));
}

#endif

BOOST_AUTO_TEST_CASE(special_tokens_only_when_allowed,
                     *utf::label("data") * utf::precondition(gpt2_files)) {
    gpt2_tokenizer t = gpt2_vocab();
    const std::string text = "Hi<|endoftext|>there";
    const auto plain = t.encode(text);
    BOOST_TEST(std::count(plain.begin(), plain.end(), 50256) == 0);
    BOOST_TEST(t.decode(plain) == text);
    const auto allowed = t.encode(text, specials::allowed);
    BOOST_TEST((allowed == std::vector<int>{17250, 50256, 8117}));
    BOOST_TEST(t.decode(allowed) == text);

    // Runtime registration: GPT-1 task tokens and chat roles get ids after the vocabulary.
    BOOST_TEST(t.add_special_token("<|im_start|>") == 50257);
    BOOST_TEST(t.add_special_token("<|im_end|>") == 50258);
    BOOST_TEST(t.add_special_token("<|im_start|>") == 50257); // idempotent
    BOOST_TEST(t.vocab_size() == 50259);
    BOOST_TEST(gpt2_vocab().vocab_size() ==
               50257); // copies share the vocabulary, not the additions
    const std::string chat = "<|im_start|>user\nHello<|im_end|><|endoftext|>";
    const auto ids = t.encode(chat, specials::allowed);
    BOOST_TEST(ids.front() == 50257);
    BOOST_TEST(ids[ids.size() - 2] == 50258);
    BOOST_TEST(ids.back() == 50256);
    BOOST_TEST(t.decode(ids) == chat);
    BOOST_TEST(t.decode_token(50258) == "<|im_end|>");
    const auto as_text = t.encode(chat);
    BOOST_TEST(std::none_of(as_text.begin(), as_text.end(), [](int id) { return id >= 50256; }));
    BOOST_TEST(error_of([&] { t.add_special_token("Hello"); }) ==
               "special token 'Hello' is already ordinary token 15496; a special token needs text "
               "of its own");
    BOOST_TEST(error_of([&] { t.decode_token(50259); }) ==
               "token id 50259 is out of range for the gpt2 tokenizer (valid: 0..50258)");

    // The tokenizer value: serialization keeps the additions; the longest special wins.
    tokenizer v(t);
    BOOST_TEST(v.kind() == "gpt2");
    BOOST_TEST(v.vocab_size() == 50259);
    BOOST_TEST(v.add_special_token("<|im_start|>x") == 50259);
    BOOST_TEST((v.encode("<|im_start|>x", "text", specials::allowed) == std::vector<int>{50259}));
    const tokenizer back = tokenizer::deserialize(v.serialize());
    BOOST_TEST((back == v));
    BOOST_TEST(back.vocab_size() == 50260);
    BOOST_TEST(*back.special_token_id("<|im_end|>") == 50258);
    BOOST_TEST(back.encode(chat, "text", specials::allowed) == ids);
}

BOOST_AUTO_TEST_CASE(byte_and_char_kinds_take_special_tokens) {
    tokenizer b = make_tokenizer("byte", "");
    BOOST_TEST(b.add_special_token("<|endoftext|>") == 256);
    BOOST_TEST(b.vocab_size() == 257);
    BOOST_TEST(
        (b.encode("a<|endoftext|>b", "text", specials::allowed) == std::vector<int>{97, 256, 98}));
    BOOST_TEST(b.encode("a<|endoftext|>b").size() == 15u);
    BOOST_TEST(b.decode(std::vector<int>{97, 256, 98}) == "a<|endoftext|>b");
    BOOST_TEST(b.decode_token(256) == "<|endoftext|>");

    tokenizer c = make_tokenizer("char", "abc");
    BOOST_TEST(c.add_special_token("<eot>") == 3);
    BOOST_TEST(c.add_special_token("<sep>") == 4);
    BOOST_TEST(
        (c.encode("ab<sep>c<eot>", "text", specials::allowed) == std::vector<int>{0, 1, 4, 2, 3}));
    BOOST_TEST(error_of([&] { c.encode("a<eot>"); }) ==
               "text character '<' (position 1) is not in the tokenizer's 3-symbol vocabulary");

    for (const tokenizer& t : {b, c}) {
        const std::string blob = t.serialize();
        const tokenizer u = tokenizer::deserialize(blob);
        BOOST_TEST((u == t));
        BOOST_TEST(u.vocab_size() == t.vocab_size());
        BOOST_TEST(u.serialize() == blob);
        // Every truncation of the specials section is caught by the bounds checks.
        for (std::size_t cut = 1; cut < 12; ++cut)
            BOOST_CHECK_THROW(tokenizer::deserialize(blob.substr(0, blob.size() - cut)),
                              gptx::error);
    }
    // Without special tokens the blob is unchanged (version 1, flags 0).
    BOOST_TEST(make_tokenizer("char", "ba").serialize().size() == 23u);
    std::string s = b.serialize();
    s[6] = 0x7f; // unknown flag bits
    BOOST_TEST(error_of([&] { tokenizer::deserialize(s); }).find("unknown flags") !=
               std::string::npos);
}

BOOST_AUTO_TEST_CASE(gpt2_kind_in_checkpoint_blobs,
                     *utf::label("data") * utf::precondition(gpt2_files)) {
    const tokenizer t = make_tokenizer("gpt2", "", gpt2_dir());
    const std::string blob = t.serialize();
    BOOST_TEST(blob.size() < 2'000'000u);
    const tokenizer u = tokenizer::deserialize(blob);
    BOOST_TEST((u == t));
    BOOST_TEST((u.encode("Hello world") == std::vector<int>{15496, 995}));
    BOOST_TEST(error_of([] { make_tokenizer("gpt2", ""); }) ==
               "the gpt2 tokenizer needs a vocabulary folder with encoder.json and vocab.bpe "
               "(--vocab-dir)");
    std::string bad = blob;
    bad[30] ^= 1;
    BOOST_CHECK_THROW(tokenizer::deserialize(bad), gptx::error);
}

BOOST_AUTO_TEST_CASE(saving_gpt2s_vocabulary_reproduces_its_files,
                     *utf::label("data") * utf::precondition(gpt2_files)) {
    temp_dir d;
    gpt2_vocab().save(d.path);
    BOOST_TEST((slurp(d.path / "encoder.json") == slurp(gpt2_dir() / "encoder.json")));
    BOOST_TEST((slurp(d.path / "vocab.bpe") == slurp(gpt2_dir() / "vocab.bpe")));
}

BOOST_AUTO_TEST_CASE(bpe_training_is_deterministic_and_reloads) {
    std::string corpus;
    for (int i = 0; i < 20; ++i)
        corpus += small_corpus;
    bpe_train_options o;
    o.vocab_size = 256 + 60 + 1;
    const gpt2_tokenizer a = train_bpe(corpus, o);
    const gpt2_tokenizer b = train_bpe(corpus, o);
    BOOST_TEST((a == b));
    BOOST_TEST(a.vocab_size() == o.vocab_size);
    BOOST_TEST(a.eot_token() == o.vocab_size - 1);
    // The most frequent pair is learnt first: " t" + "he" style merges of "the".
    BOOST_TEST(a.num_merges() == 60u);
    const auto ids = a.encode(corpus);
    BOOST_TEST(ids.size() < corpus.size() / 2);
    BOOST_TEST(a.decode(ids) == corpus);

    temp_dir d;
    a.save(d.path);
    const gpt2_tokenizer c = gpt2_tokenizer::from_dir(d.path);
    BOOST_TEST((c == a));
    BOOST_TEST(c.encode(corpus) == ids);
    BOOST_TEST(c.eot_token() == a.eot_token());
    rng r(5);
    for (int i = 0; i < 50; ++i) {
        const std::string s = random_bytes(r, r.below(100));
        BOOST_TEST(c.decode(c.encode(s)) == s);
    }
    // Each merge is what the trainer saw most often: replaying GPT-2's literal algorithm on the
    // trained merges gives the same ids.
    const auto ranks = ranks_of(c);
    gpt2_tokenizer::bpe_scratch scratch;
    gpt2_pretokenize(corpus.substr(0, 300), [&](std::string_view p) {
        std::vector<int> got;
        c.bpe(p, got, scratch);
        BOOST_TEST(got == reference_bpe(c, p, ranks));
    });
    o.vocab_size = 100;
    BOOST_TEST(error_of([&] { train_bpe(corpus, o); }) ==
               "train_bpe: vocab_size 100 is below the 256 byte tokens + <|endoftext|>");
    // A corpus with few pairs stops early (min_frequency) with a smaller vocabulary.
    o.vocab_size = 5000;
    BOOST_TEST(train_bpe("abab", o).vocab_size() == 256 + 1 + 1);
}

BOOST_AUTO_TEST_CASE(bad_vocabulary_files_are_rejected) {
    // A minimal valid pair of files: the 256 bytes, one merge "a b" -> "ab".
    std::vector<std::string> toks = detail::gpt2_byte_tokens();
    toks.push_back("ab");
    auto encoder = [&](const std::vector<std::string>& ts) {
        std::string s = "{";
        for (std::size_t i = 0; i < ts.size(); ++i) {
            if (i)
                s += ", ";
            detail::append_json_string(s, detail::gpt2_bytes_to_text(ts[i]));
            s += ": " + std::to_string(i);
        }
        return s + "}";
    };
    const std::string good_enc = encoder(toks), good_bpe = "#version: 0.2\na b\n";
    const gpt2_tokenizer ok = gpt2_tokenizer::from_text(good_enc, good_bpe);
    BOOST_TEST((ok.encode("abab") == std::vector<int>{256, 256}));
    auto err = [](std::string e, std::string b) {
        return error_of([&] { gpt2_tokenizer::from_text(e, b); });
    };
    BOOST_TEST(err("{\"a\": ", good_bpe).starts_with("encoder.json: not valid JSON: "));
    BOOST_TEST(err("[1, 2]", good_bpe) == "encoder.json: expected a JSON object of token -> id");
    BOOST_TEST(err("{\"a\": \"x\"}", good_bpe) == "encoder.json: the id of 'a' is not an integer");
    BOOST_TEST(err("{\"a\": 5}", good_bpe) ==
               "encoder.json: id 5 of 'a' is outside [0, 1): ids must be 0..n-1");
    BOOST_TEST(err("{\"a\": 0, \"b\": 0}", good_bpe) == "encoder.json: id 0 is used twice");
    BOOST_TEST(
        err("{\"\\u4e00\": 0}", good_bpe) ==
        "encoder.json: token '\xE4\xB8\x80' (id 0) has a character outside GPT-2's byte alphabet");
    BOOST_TEST(err("{\"a\": 0}", good_bpe) == "vocab.bpe:2: 'b' is not in encoder.json");
    BOOST_TEST(err(good_enc, "#version: 0.2\na  b\n") ==
               "vocab.bpe:2: expected two tokens separated by one space");
    BOOST_TEST(
        err(good_enc, "#version: 0.2\na c\n") ==
        "encoder.json + vocab.bpe: merge 0 ('a c') makes a token that is not in the vocabulary");
    std::vector<std::string> missing(toks.begin() + 1, toks.end()); // no token for '!'
    missing.push_back("cd");
    BOOST_TEST(err(encoder(missing), "") == "encoder.json + vocab.bpe: no token for byte 33 ('!')");
    BOOST_TEST(error_of([] { gpt2_tokenizer::from_dir("/nonexistent-gptx"); }) ==
               "cannot open encoder '/nonexistent-gptx/encoder.json': no such file");
    // A corrupted payload is caught by its own bounds checks.
    const std::string p = ok.payload();
    for (std::size_t cut : {1u, 5u, 100u})
        BOOST_CHECK_THROW(
            gpt2_tokenizer::from_payload(std::string_view(p).substr(0, p.size() - cut)),
            gptx::error);
    BOOST_TEST((gpt2_tokenizer::from_payload(p) == ok));
}

BOOST_AUTO_TEST_SUITE_END()
BOOST_AUTO_TEST_SUITE_END()

// ---- the threaded encoder's cuts (issue #17) ----------------------------------------------------
namespace {

// A vocabulary that needs no data files, trained on text with every kind of piece.
const gpt2_tokenizer& small_vocab() {
    static const gpt2_tokenizer t = train_bpe(
        "The quick brown fox's tail, they've said: we'll see.\n\n  Indented   text\twith tabs\n"
        "Numbers 0 12 123 1234 3.14 and caf\xc3\xa9 na\xc3\xafve \xce\xb1\xce\xb2\xce\xb3.\n"
        "PEDANT:\nVincentio?\n\nPedant  \n \n\nHe'd 'll it's 2026\r\n\n\n\nA\n\n\nB\n\n\nC\n\n\n",
        {.vocab_size = 256 + 96 + 1, .min_frequency = 2});
    return t;
}

// Texts that put each context-dependent boundary of GPT-2's pattern next to newlines: white-space
// runs before letters, contractions, digits, non-ASCII letters and combining marks.
std::string boundary_text(std::uint64_t seed, std::size_t pieces) {
    static const char* const parts[] = {"\n",
                                        "\n\n",
                                        " \n",
                                        "\n ",
                                        "  \n\n",
                                        "\r\n",
                                        "\t\n",
                                        "a",
                                        "Pedant",
                                        " word",
                                        "'s",
                                        "'ll",
                                        "'",
                                        "?",
                                        "12",
                                        " 345",
                                        "6",
                                        "caf\xc3\xa9",
                                        "\xc3\xa9",
                                        "e\xcc\x81",
                                        "\xce\xb1",
                                        "\xe4\xbd\xa0",
                                        ".",
                                        "!!",
                                        " ",
                                        "   ",
                                        "\n\n\n",
                                        "x\n",
                                        "\xc2\xa0",
                                        "\xc2\x85",
                                        "\xe2\x80\xa8",
                                        "\n'",
                                        "'\n",
                                        "d\n\nP",
                                        "9\n9"};
    rng r(seed);
    std::string out;
    for (std::size_t i = 0; i < pieces; ++i)
        out += parts[r.below(sizeof(parts) / sizeof(parts[0]))];
    return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(text)
BOOST_AUTO_TEST_SUITE(gpt2_cuts)

// Every place safe_cut picks, encoding the halves apart gives the ids of the whole.
BOOST_AUTO_TEST_CASE(every_safe_cut_keeps_the_ids) {
    const gpt2_tokenizer& t = small_vocab();
    int cuts = 0;
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
        const std::string text = boundary_text(seed, 60);
        const std::vector<int> all = t.encode(text);
        for (std::size_t at = gpt2_tokenizer::safe_cut(text, 0); at != std::string::npos;
             at = gpt2_tokenizer::safe_cut(text, at + 1)) {
            BOOST_TEST_REQUIRE(text[at] == '\n');
            std::vector<int> halves = t.encode(std::string_view(text).substr(0, at));
            const std::vector<int> rest = t.encode(std::string_view(text).substr(at));
            halves.insert(halves.end(), rest.begin(), rest.end());
            BOOST_TEST((halves == all), "seed " << seed << ", cut at " << at);
            ++cuts;
        }
    }
    BOOST_TEST(cuts > 400);
}

// The cut the command line used to make (just after a newline that a printable character
// follows) changes the ids: the test above would fail for a rule like it.
BOOST_AUTO_TEST_CASE(a_cut_after_a_newline_run_is_not_safe) {
    const gpt2_tokenizer& t = small_vocab();
    BOOST_TEST_REQUIRE(t.token_id("\n\n").has_value()); // else "\n\n" and "\n" "\n" agree
    const std::string text = "Vincentio?\n\nPedant";
    const std::size_t after = text.find('P');
    std::vector<int> halves = t.encode(std::string_view(text).substr(0, after));
    const std::vector<int> rest = t.encode(std::string_view(text).substr(after));
    halves.insert(halves.end(), rest.begin(), rest.end());
    BOOST_TEST((halves != t.encode(text)));
    BOOST_TEST(gpt2_tokenizer::safe_cut(text, 0) == text.find('\n')); // before the run
    BOOST_TEST(gpt2_tokenizer::safe_cut(text, text.find('\n') + 1) == std::string::npos);
    BOOST_TEST(gpt2_tokenizer::safe_cut("\n\n", 0) == std::string::npos);
    BOOST_TEST(gpt2_tokenizer::safe_cut("a \nb", 0) == std::string::npos);
    BOOST_TEST(gpt2_tokenizer::safe_cut("\xc3\xa9\nb", 0) == std::string::npos); // non-ASCII before
}

// Threads and forced small chunks give the single-threaded, unchunked ids on texts built to put
// every kind of boundary next to a cut, with special tokens split out first or kept as text.
BOOST_AUTO_TEST_CASE(threaded_encode_equals_unthreaded) {
    gpt2_tokenizer t = small_vocab();
    t.add_special_token("<|endoftext|>");
    for (std::uint64_t seed = 1; seed <= 12; ++seed) {
        std::string text = boundary_text(seed, 400);
        text.insert(text.size() / 3, "<|endoftext|>");
        for (const specials mode : {specials::as_text, specials::allowed}) {
            const std::vector<int> want = t.encode(text, mode);
            for (int threads : {1, 2, 3, 7})
                for (std::size_t chunk : {1, 2, 3, 7, 64, 1000}) {
                    std::size_t last = 0;
                    bool forward = true;
                    const std::vector<int> got = t.encode(text, {.mode = mode,
                                                                 .threads = threads,
                                                                 .chunk_bytes = chunk,
                                                                 .on_progress = [&](std::size_t n) {
                                                                     forward = forward && n >= last;
                                                                     last = n;
                                                                 }});
                    BOOST_TEST((got == want), "seed " << seed << ", " << threads
                                                      << " threads, chunks of " << chunk);
                    BOOST_TEST(forward);
                    BOOST_TEST(last == text.size());
                }
        }
    }
}

BOOST_AUTO_TEST_CASE(zero_chunk_bytes_is_an_error) {
    const std::string e = error_of([] { (void)small_vocab().encode("x", {.chunk_bytes = 0}); });
    BOOST_TEST(e.find("chunk_bytes") != std::string::npos, e);
}

BOOST_AUTO_TEST_SUITE_END()
BOOST_AUTO_TEST_SUITE_END()
