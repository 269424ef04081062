// gptx/text/tokenizer.hpp: `tokenizer`, a value holding any tokenizer kind, with a versioned blob
// form for checkpoints, and make_tokenizer. Tested by tests/text/test_tokenizers.cpp.
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "../core/error.hpp"
#include "byte_tokenizer.hpp"
#include "char_tokenizer.hpp"

namespace gptx {

// A new kind (e.g. gpt2 BPE) joins by being added to this variant: it needs a static `name`,
// vocab_size/encode/decode/decode_token, payload() and a static from_payload(string_view).
class tokenizer {
  public:
    using variant_type = std::variant<byte_tokenizer, char_tokenizer>;

    // Blob layout, little-endian: "GTOK" | u32 version | u8 kind length | kind |
    // u32 payload length | payload | u32 FNV-1a of every byte before it.
    static constexpr std::string_view blob_magic = "GTOK";
    static constexpr std::uint32_t blob_version = 1;

    tokenizer() = default; // the byte tokenizer
    tokenizer(byte_tokenizer t) : impl_(std::move(t)) {}
    tokenizer(char_tokenizer t) : impl_(std::move(t)) {}

    std::string_view kind() const {
        return std::visit([](const auto& t) { return t.name; }, impl_);
    }
    int vocab_size() const {
        return std::visit([](const auto& t) { return t.vocab_size(); }, impl_);
    }
    // `what` names the text in error messages ("prompt", ...) for kinds that can reject input.
    std::vector<int> encode(std::string_view text, std::string_view what = "text") const {
        return std::visit(
            [&](const auto& t) {
                if constexpr (requires { t.encode(text, what); })
                    return t.encode(text, what);
                else
                    return t.encode(text);
            },
            impl_);
    }
    std::string decode(std::span<const int> ids) const {
        return std::visit([&](const auto& t) { return t.decode(ids); }, impl_);
    }
    std::string decode_token(int id) const {
        return std::visit([&](const auto& t) { return t.decode_token(id); }, impl_);
    }

    const variant_type& variant() const { return impl_; }
    template <class T> const T* get_if() const { return std::get_if<T>(&impl_); }

    std::string serialize() const {
        const std::string_view k = kind();
        const std::string payload =
            std::visit([](const auto& t) { return std::string(t.payload()); }, impl_);
        std::string out(blob_magic);
        put_u32(out, blob_version);
        out += static_cast<char>(k.size());
        out += k;
        put_u32(out, static_cast<std::uint32_t>(payload.size()));
        out += payload;
        put_u32(out, fnv1a(out));
        return out;
    }

    static tokenizer deserialize(std::string_view blob) {
        constexpr std::size_t min_size = 4 + 4 + 1 + 4 + 4;
        GPTX_CHECK(blob.size() >= min_size, "tokenizer blob: too short (", blob.size(),
                   " bytes, expected at least ", min_size, ")");
        GPTX_CHECK(blob.substr(0, 4) == blob_magic,
                   "tokenizer blob: bad magic (expected \"GTOK\"); not a gptx tokenizer");
        const std::uint32_t version = get_u32(blob, 4);
        GPTX_CHECK(version == blob_version, "tokenizer blob: unsupported version ", version,
                   " (expected ", blob_version, ")");
        const std::size_t klen = static_cast<unsigned char>(blob[8]);
        GPTX_CHECK(blob.size() >= min_size + klen, "tokenizer blob: truncated in the kind name");
        const std::string_view k = blob.substr(9, klen);
        const std::size_t plen = get_u32(blob, 9 + klen);
        const std::size_t expected = min_size + klen + plen;
        GPTX_CHECK(blob.size() == expected, "tokenizer blob: size ", blob.size(),
                   " does not match its header (expected ", expected, " bytes)");
        const std::uint32_t sum = get_u32(blob, expected - 4);
        GPTX_CHECK(sum == fnv1a(blob.substr(0, expected - 4)),
                   "tokenizer blob: checksum mismatch (corrupted)");
        return from_kind(k, blob.substr(13 + klen, plen),
                         std::make_index_sequence<std::variant_size_v<variant_type>>{});
    }

    // "byte, char": for error messages and --help text.
    static std::string kind_names() {
        return kind_names_impl(std::make_index_sequence<std::variant_size_v<variant_type>>{});
    }

    friend bool operator==(const tokenizer& a, const tokenizer& b) { return a.impl_ == b.impl_; }

  private:
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
};

// Build a tokenizer of `kind` ("byte" | "char"); `corpus` defines the char vocabulary.
inline tokenizer make_tokenizer(std::string_view kind, std::string_view corpus) {
    if (kind == byte_tokenizer::name)
        return byte_tokenizer{};
    if (kind == char_tokenizer::name)
        return char_tokenizer::from_corpus(corpus);
    detail::fail("unknown tokenizer kind '", kind, "' (valid: ", tokenizer::kind_names(), ")");
}

} // namespace gptx
