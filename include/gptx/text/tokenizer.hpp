// gptx/text/tokenizer.hpp: `tokenizer`, a value holding any tokenizer kind plus special tokens,
// with a versioned blob form for checkpoints, and make_tokenizer. Tested by
// tests/text/test_tokenizers.cpp and tests/text/test_gpt2_tokenizer.cpp.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "../core/error.hpp"
#include "../core/file.hpp"
#include "byte_tokenizer.hpp"
#include "char_tokenizer.hpp"
#include "gpt2_tokenizer.hpp"
#include "special_tokens.hpp"

namespace gptx {

// A new kind joins by being added to this variant: it needs a static `name`,
// vocab_size/encode/decode/decode_token, payload() and a static from_payload(string_view).
// A kind with its own special tokens (gpt2) provides add_special_token, special() and
// encode(text, specials); for the others (byte, char) this value keeps them, with ids after the
// kind's vocabulary (base vocab + k).
class tokenizer {
  public:
    using variant_type = std::variant<byte_tokenizer, char_tokenizer, gpt2_tokenizer>;

    // Blob layout, little-endian: "GTOK" | u16 version | u16 flags | u8 kind length | kind |
    // u32 payload length | payload | [specials] | u32 FNV-1a of every byte before it.
    // Flag bit 0: a specials section follows the payload: u32 count | count x (u32 len | text),
    // ids base vocab + k. Without special tokens the flags are 0 and the blob is version 1's.
    static constexpr std::string_view blob_magic = "GTOK";
    static constexpr std::uint32_t blob_version = 1;

    tokenizer() = default; // the byte tokenizer
    tokenizer(byte_tokenizer t) : impl_(std::move(t)) {}
    tokenizer(char_tokenizer t) : impl_(std::move(t)) {}
    tokenizer(gpt2_tokenizer t) : impl_(std::move(t)) {}

    std::string_view kind() const {
        return std::visit([](const auto& t) { return t.name; }, impl_);
    }
    int vocab_size() const {
        return std::visit([](const auto& t) { return t.vocab_size(); }, impl_) +
               static_cast<int>(extra_.size());
    }
    // `what` names the text in error messages ("prompt", ...) for kinds that can reject input.
    // mode: whether special-token text in `text` becomes special ids (see specials).
    std::vector<int> encode(std::string_view text, std::string_view what = "text",
                            specials mode = specials::as_text) const {
        return std::visit(
            [&](const auto& t) {
                if constexpr (has_own_specials<std::decay_t<decltype(t)>>) {
                    return t.encode(text, mode);
                } else {
                    if (mode == specials::as_text || extra_.empty())
                        return encode_plain(t, text, what);
                    std::vector<int> out;
                    extra_.split(
                        text,
                        [&](std::string_view piece) {
                            const std::vector<int> ids = encode_plain(t, piece, what);
                            out.insert(out.end(), ids.begin(), ids.end());
                        },
                        [&](int id) { out.push_back(id); });
                    return out;
                }
            },
            impl_);
    }
    std::string decode(std::span<const int> ids) const {
        if (extra_.empty())
            return std::visit([&](const auto& t) { return t.decode(ids); }, impl_);
        std::string out;
        std::size_t run = 0; // ordinary ids decode in runs, so multi-id kinds see whole runs
        for (std::size_t i = 0; i <= ids.size(); ++i) {
            const std::string* special = i < ids.size() ? extra_.text_of(ids[i]) : nullptr;
            if (i == ids.size() || special) {
                out += std::visit(
                    [&](const auto& t) { return t.decode(ids.subspan(run, i - run)); }, impl_);
                if (special)
                    out += *special;
                run = i + 1;
            }
        }
        return out;
    }
    std::string decode_token(int id) const {
        if (const std::string* special = extra_.text_of(id))
            return *special;
        return std::visit([&](const auto& t) { return t.decode_token(id); }, impl_);
    }

    // Registers a special token (GPT-1 task tokens, chat roles, an end-of-text for byte/char
    // models) with id vocab_size() and returns it; registering known text returns its id. The
    // model's embedding must grow to match (nn/resize.hpp).
    int add_special_token(std::string text) {
        return std::visit(
            [&](auto& t) {
                if constexpr (has_own_specials<std::decay_t<decltype(t)>>) {
                    return t.add_special_token(std::move(text));
                } else {
                    if (const auto id = extra_.id_of(text))
                        return *id;
                    const int id = vocab_size();
                    extra_.add(std::move(text), id);
                    return id;
                }
            },
            impl_);
    }
    std::optional<int> special_token_id(std::string_view text) const {
        return special().id_of(text);
    }
    // Every special token, built-in ones (gpt2's <|endoftext|>) included.
    const special_tokens& special() const {
        if (const auto* g = std::get_if<gpt2_tokenizer>(&impl_))
            return g->special();
        return extra_;
    }

    const variant_type& variant() const { return impl_; }
    template <class T> const T* get_if() const { return std::get_if<T>(&impl_); }

    std::string serialize() const {
        const std::string_view k = kind();
        const std::string payload =
            std::visit([](const auto& t) { return std::string(t.payload()); }, impl_);
        GPTX_CHECK(payload.size() < 0xffffffffu, "tokenizer: the ", k, " payload of ",
                   payload.size(), " bytes is too large for a blob");
        std::string out(blob_magic);
        put_u32(out, blob_version | (extra_.empty() ? 0u : flag_specials << 16));
        out += static_cast<char>(k.size());
        out += k;
        put_u32(out, static_cast<std::uint32_t>(payload.size()));
        out += payload;
        if (!extra_.empty()) {
            put_u32(out, static_cast<std::uint32_t>(extra_.size()));
            for (const auto& [text, id] : extra_.entries()) {
                put_u32(out, static_cast<std::uint32_t>(text.size()));
                out += text;
            }
        }
        put_u32(out, fnv1a(out));
        return out;
    }

    static tokenizer deserialize(std::string_view blob) {
        constexpr std::size_t min_size = 4 + 4 + 1 + 4 + 4;
        GPTX_CHECK(blob.size() >= min_size, "tokenizer blob: too short (", blob.size(),
                   " bytes, expected at least ", min_size, ")");
        GPTX_CHECK(blob.substr(0, 4) == blob_magic,
                   "tokenizer blob: bad magic (expected \"GTOK\"); not a gptx tokenizer");
        const std::uint32_t version = get_u32(blob, 4) & 0xffffu;
        const std::uint32_t flags = get_u32(blob, 4) >> 16;
        GPTX_CHECK(version == blob_version, "tokenizer blob: unsupported version ", version,
                   " (expected ", blob_version, ")");
        GPTX_CHECK((flags & ~flag_specials) == 0, "tokenizer blob: unknown flags ", flags);
        const std::size_t klen = static_cast<unsigned char>(blob[8]);
        GPTX_CHECK(blob.size() >= min_size + klen, "tokenizer blob: truncated in the kind name");
        const std::string_view k = blob.substr(9, klen);
        const std::size_t plen = get_u32(blob, 9 + klen);
        // The specials section's size is only known by walking it: bounds-check every step.
        std::size_t expected = min_size + klen + plen;
        std::vector<std::string> extra;
        if (flags & flag_specials) {
            std::size_t at = 13 + klen + plen;
            auto need = [&](std::size_t n) {
                GPTX_CHECK(at <= blob.size() && blob.size() - at >= n + 4,
                           "tokenizer blob: truncated in the special tokens");
            };
            need(4);
            const std::uint32_t count = get_u32(blob, at);
            at += 4;
            for (std::uint32_t i = 0; i < count; ++i) {
                need(4);
                const std::uint32_t len = get_u32(blob, at);
                at += 4;
                need(len);
                extra.emplace_back(blob.substr(at, len));
                at += len;
            }
            expected = at + 4;
        }
        GPTX_CHECK(blob.size() == expected, "tokenizer blob: size ", blob.size(),
                   " does not match its header (expected ", expected, " bytes)");
        const std::uint32_t sum = get_u32(blob, expected - 4);
        GPTX_CHECK(sum == fnv1a(blob.substr(0, expected - 4)),
                   "tokenizer blob: checksum mismatch (corrupted)");
        tokenizer t = from_kind(k, blob.substr(13 + klen, plen),
                                std::make_index_sequence<std::variant_size_v<variant_type>>{});
        GPTX_CHECK(extra.empty() || !std::holds_alternative<gpt2_tokenizer>(t.impl_),
                   "tokenizer blob: a gpt2 tokenizer keeps its special tokens in its payload");
        for (auto& s : extra)
            t.add_special_token(std::move(s));
        return t;
    }

    // "byte, char": for error messages and --help text.
    static std::string kind_names() {
        return kind_names_impl(std::make_index_sequence<std::variant_size_v<variant_type>>{});
    }

    friend bool operator==(const tokenizer& a, const tokenizer& b) {
        return a.impl_ == b.impl_ && a.extra_ == b.extra_;
    }

  private:
    static constexpr std::uint32_t flag_specials = 1;
    template <class T> static constexpr bool has_own_specials = requires(T& t, std::string s) {
        t.add_special_token(s);
    };
    template <class T>
    static std::vector<int> encode_plain(const T& t, std::string_view text, std::string_view what) {
        if constexpr (requires { t.encode(text, what); })
            return t.encode(text, what);
        else
            return t.encode(text);
    }

    static void put_u32(std::string& out, std::uint32_t v) {
        for (int i = 0; i < 4; ++i)
            out += static_cast<char>((v >> (8 * i)) & 0xff);
    }
    static std::uint32_t get_u32(std::string_view s, std::size_t at) {
        std::uint32_t v = 0;
        for (std::size_t i = 0; i < 4; ++i)
            v |= static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
        return v;
    }
    static std::uint32_t fnv1a(std::string_view s) {
        std::uint32_t h = 2166136261u;
        for (char c : s)
            h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
        return h;
    }
    template <std::size_t... I>
    static tokenizer from_kind(std::string_view k, std::string_view payload,
                               std::index_sequence<I...>) {
        tokenizer out;
        const bool found =
            ((std::variant_alternative_t<I, variant_type>::name == k &&
              (out.impl_ = std::variant_alternative_t<I, variant_type>::from_payload(payload),
               true)) ||
             ...);
        GPTX_CHECK(found, "tokenizer blob: unknown kind '", k, "' (valid: ", kind_names(), ")");
        return out;
    }
    template <std::size_t... I> static std::string kind_names_impl(std::index_sequence<I...>) {
        std::string s;
        ((s += (I ? ", " : ""), s += std::variant_alternative_t<I, variant_type>::name), ...);
        return s;
    }

    variant_type impl_;
    special_tokens extra_; // for kinds without their own
};

// Build a tokenizer of `kind` ("byte" | "char" | "gpt2"); `corpus` defines the char vocabulary;
// gpt2 loads vocab_dir/encoder.json and vocab_dir/vocab.bpe.
inline tokenizer make_tokenizer(std::string_view kind, std::string_view corpus,
                                const std::filesystem::path& vocab_dir = {}) {
    if (kind == byte_tokenizer::name)
        return byte_tokenizer{};
    if (kind == char_tokenizer::name)
        return char_tokenizer::from_corpus(corpus);
    if (kind == gpt2_tokenizer::name) {
        GPTX_CHECK(!vocab_dir.empty(), "the gpt2 tokenizer needs a vocabulary folder with "
                                       "encoder.json and vocab.bpe (--vocab-dir)");
        return gpt2_tokenizer::from_dir(vocab_dir);
    }
    detail::fail("unknown tokenizer kind '", kind, "' (valid: ", tokenizer::kind_names(), ")");
}

// A tokenizer saved by gptx tokenize (PREFIX_tokenizer.gtok); its errors name the file.
inline tokenizer read_tokenizer_file(const std::filesystem::path& path) {
    const std::string blob = read_text_file(path);
    try {
        return tokenizer::deserialize(blob);
    } catch (const error& e) {
        detail::fail(path.string(), ": ", e.what());
    }
}

} // namespace gptx
