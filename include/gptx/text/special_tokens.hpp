// gptx/text/special_tokens.hpp: special tokens (<|endoftext|>, GPT-1 task tokens, chat roles) and
// the splitting of text at them. Tested by tests/text/test_gpt2_tokenizer.cpp.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"

namespace gptx {

// How encode treats the text of special tokens found in its input.
enum class specials : std::uint8_t {
    as_text, // ordinary characters: "<|endoftext|>" in a document is 7 tokens (GPT-2's default;
             // the only safe choice for untrusted text)
    allowed, // each registered special token's text becomes its single id
};

// Registered special tokens: (text, id) in registration order. A handful at most, so lookups
// are linear scans.
class special_tokens {
  public:
    void add(std::string text, int id) {
        GPTX_CHECK(!text.empty(), "special token: the text is empty");
        GPTX_CHECK(id >= 0, "special token '", text, "': negative id ", id);
        for (const auto& [t, i] : entries_) {
            GPTX_CHECK(t != text, "special token '", text, "' is already registered (id ", i, ")");
            GPTX_CHECK(i != id, "special token '", text, "': id ", id, " is already '", t, "'");
        }
        entries_.emplace_back(std::move(text), id);
    }

    std::optional<int> id_of(std::string_view text) const {
        for (const auto& [t, i] : entries_)
            if (t == text)
                return i;
        return std::nullopt;
    }
    // Null when `id` is not special.
    const std::string* text_of(int id) const {
        for (const auto& [t, i] : entries_)
            if (i == id)
                return &t;
        return nullptr;
    }
    bool empty() const { return entries_.empty(); }
    std::size_t size() const { return entries_.size(); }
    const std::vector<std::pair<std::string, int>>& entries() const { return entries_; }

    // Calls on_text(piece) for the (possibly empty) text between occurrences and on_special(id)
    // for each occurrence: leftmost first; at one position the longest text wins.
    template <class OnText, class OnSpecial>
    void split(std::string_view text, OnText&& on_text, OnSpecial&& on_special) const {
        constexpr auto npos = std::string_view::npos;
        std::vector<std::size_t> next(entries_.size(), 0);
        for (std::size_t k = 0; k < entries_.size(); ++k)
            next[k] = text.find(entries_[k].first);
        std::size_t pos = 0;
        for (;;) {
            std::size_t best = npos, best_k = 0;
            for (std::size_t k = 0; k < entries_.size(); ++k) {
                if (next[k] != npos && next[k] < pos)
                    next[k] = text.find(entries_[k].first, pos);
                if (next[k] == npos)
                    continue;
                if (best == npos || next[k] < best ||
                    (next[k] == best && entries_[k].first.size() > entries_[best_k].first.size())) {
                    best = next[k];
                    best_k = k;
                }
            }
            if (best == npos) {
                on_text(text.substr(pos));
                return;
            }
            on_text(text.substr(pos, best - pos));
            on_special(entries_[best_k].second);
            pos = best + entries_[best_k].first.size();
        }
    }

    friend bool operator==(const special_tokens&, const special_tokens&) = default;

  private:
    std::vector<std::pair<std::string, int>> entries_;
};

} // namespace gptx
