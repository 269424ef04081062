// gptx/text/char_tokenizer.hpp: the character tokenizer of nanoGPT's shakespeare_char.
// Tested by tests/text/test_tokenizers.cpp.
#pragma once
#include <array>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"

namespace gptx {

namespace detail {
// 'Z' for printable ASCII, '\xNN' otherwise, so an error message stays one readable line.
inline std::string quote_byte(unsigned char c) {
    char buf[8];
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
        std::snprintf(buf, sizeof buf, "'%c'", c);
    else
        std::snprintf(buf, sizeof buf, "'\\x%02X'", c);
    return buf;
}
} // namespace detail

// The vocabulary is the corpus's sorted unique *bytes* (nanoGPT: sorted(set(text))). For ASCII
// text such as tinyshakespeare that is the same as characters; for UTF-8 text a multi-byte
// character becomes several symbols, which still round-trips exactly.
class char_tokenizer {
  public:
    static constexpr std::string_view name = "char";

    // Sorted unique bytes of `corpus`; the id of a symbol is its rank.
    static char_tokenizer from_corpus(std::string_view corpus) {
        std::array<bool, 256> seen{};
        for (char c : corpus)
            seen[static_cast<unsigned char>(c)] = true;
        std::string symbols;
        for (std::size_t b = 0; b < 256; ++b)
            if (seen[b])
                symbols += static_cast<char>(b);
        GPTX_CHECK(!symbols.empty(), "char tokenizer: the corpus is empty");
        return char_tokenizer(std::move(symbols));
    }
    // Rebuild from a saved symbol list (id = position). Order is kept as given, so a checkpoint
    // always decodes with exactly the mapping it was trained with.
    static char_tokenizer from_chars(std::string symbols) {
        GPTX_CHECK(!symbols.empty(), "char tokenizer: the symbol list is empty");
        std::array<bool, 256> seen{};
        for (std::size_t i = 0; i < symbols.size(); ++i) {
            const auto c = static_cast<unsigned char>(symbols[i]);
            GPTX_CHECK(!seen[c], "char tokenizer: symbol ", detail::quote_byte(c),
                       " appears twice in the symbol list (position ", i, ")");
            seen[c] = true;
        }
        return char_tokenizer(std::move(symbols));
    }

    int vocab_size() const { return static_cast<int>(symbols_.size()); }
    const std::string& symbols() const { return symbols_; }
    bool contains(char c) const { return id_of_[static_cast<unsigned char>(c)] >= 0; }

    // `what` names the text in the error message ("prompt", "corpus", ...).
    std::vector<int> encode(std::string_view text, std::string_view what = "text") const {
        std::vector<int> ids(text.size());
        for (std::size_t i = 0; i < text.size(); ++i) {
            const auto c = static_cast<unsigned char>(text[i]);
            const int id = id_of_[c];
            if (id < 0)
                detail::fail(what, " character ", detail::quote_byte(c), " (position ", i,
                             ") is not in the tokenizer's ", symbols_.size(), "-symbol vocabulary");
            ids[i] = id;
        }
        return ids;
    }
    std::string decode(std::span<const int> ids) const {
        std::string out;
        out.reserve(ids.size());
        for (int id : ids)
            out += symbol(id);
        return out;
    }
    std::string decode_token(int id) const { return std::string(1, symbol(id)); }

    // Serialized form (see tokenizer.hpp): the symbol list itself.
    const std::string& payload() const { return symbols_; }
    static char_tokenizer from_payload(std::string_view payload) {
        return from_chars(std::string(payload));
    }

    friend bool operator==(const char_tokenizer& a, const char_tokenizer& b) {
        return a.symbols_ == b.symbols_;
    }

  private:
    explicit char_tokenizer(std::string symbols) : symbols_(std::move(symbols)) {
        id_of_.fill(-1);
        for (std::size_t i = 0; i < symbols_.size(); ++i)
            id_of_[static_cast<unsigned char>(symbols_[i])] = static_cast<int>(i);
    }
    char symbol(int id) const {
        GPTX_CHECK(id >= 0 && id < vocab_size(), "token id ", id,
                   " is out of range for the char tokenizer (valid: 0..", vocab_size() - 1, ")");
        return symbols_[static_cast<std::size_t>(id)];
    }

    std::string symbols_;          // id -> byte
    std::array<int, 256> id_of_{}; // byte -> id, -1 when absent
};

} // namespace gptx
