// gptx/text/gpt2_tokenizer.hpp: GPT-2's byte-level BPE (encoder.json + vocab.bpe), exact to
// GPT-2's encoder.py, with special tokens and a multi-threaded path for large texts.
// Tested by tests/text/test_gpt2_tokenizer.cpp.
#pragma once
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../core/file.hpp"
#include "../core/parallel.hpp" // num_threads
#include "../core/rng.hpp"
#include "special_tokens.hpp"
#include "unicode_classes.hpp"

namespace gptx {

namespace detail {

// ---- Unicode classes and UTF-8 ---------------------------------------------------------------

enum : std::uint8_t { uc_other = 0, uc_letter = 1, uc_number = 2, uc_space = 3 };

// 2 bits per code point below unicode_class_end (51 KB), expanded once from the generated runs.
inline const std::uint8_t* unicode_class_table() {
    static const std::vector<std::uint8_t> table = [] {
        std::vector<std::uint8_t> t((unicode_class_end + 3) / 4, 0);
        constexpr std::size_t n = std::size(unicode_class_runs);
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint32_t first = unicode_class_runs[i] >> 2, cls = unicode_class_runs[i] & 3;
            const std::uint32_t last =
                i + 1 < n ? unicode_class_runs[i + 1] >> 2 : unicode_class_end;
            if (cls != 0)
                for (std::uint32_t cp = first; cp < last && cp < unicode_class_end; ++cp)
                    t[cp >> 2] |= std::uint8_t(cls << ((cp & 3) * 2));
        }
        return t;
    }();
    return table.data();
}

inline std::uint8_t unicode_class(std::uint32_t cp) {
    if (cp >= unicode_class_end)
        return uc_other;
    return (unicode_class_table()[cp >> 2] >> ((cp & 3) * 2)) & 3;
}

inline constexpr std::array<std::uint8_t, 128> ascii_classes = [] {
    std::array<std::uint8_t, 128> a{};
    for (int c = 0; c < 128; ++c)
        a[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? uc_letter
               : (c >= '0' && c <= '9')                         ? uc_number
               : (c == ' ' || (c >= '\t' && c <= '\r'))         ? uc_space
                                                                : uc_other;
    return a;
}();

struct uchar {
    std::uint8_t cls, len;
};

// The class and length of the character at p (p < e). A byte that does not start a
// well-formed UTF-8 sequence is one character of class "other", as U+FFFD would be: invalid
// input pre-tokenizes deterministically and, BPE being byte-level, still round-trips.
inline uchar next_uchar(const unsigned char* p, const unsigned char* e, const std::uint8_t* tab) {
    const unsigned b0 = p[0];
    if (b0 < 0x80)
        return {ascii_classes[b0], 1};
    const std::size_t avail = std::size_t(e - p);
    auto cont = [](unsigned b) { return (b & 0xC0u) == 0x80u; };
    std::uint32_t cp;
    std::uint8_t len;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        if (avail < 2 || !cont(p[1]))
            return {uc_other, 1};
        cp = (b0 & 0x1Fu) << 6 | (p[1] & 0x3Fu);
        len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        const unsigned lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
        if (avail < 3 || p[1] < lo || p[1] > hi || !cont(p[2]))
            return {uc_other, 1};
        cp = (b0 & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
        len = 3;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        const unsigned lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
        if (avail < 4 || p[1] < lo || p[1] > hi || !cont(p[2]) || !cont(p[3]))
            return {uc_other, 1};
        cp = (b0 & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
        len = 4;
    } else {
        return {uc_other, 1};
    }
    if (cp >= unicode_class_end)
        return {uc_other, len};
    return {std::uint8_t((tab[cp >> 2] >> ((cp & 3) * 2)) & 3), len};
}

inline void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

// GPT-2's bytes_to_unicode(): byte -> the printable code point that stands for it in
// encoder.json and vocab.bpe (printable Latin-1 bytes map to themselves, the rest to 256+n).
inline const std::array<std::uint32_t, 256>& gpt2_byte_to_unicode() {
    static const std::array<std::uint32_t, 256> table = [] {
        std::array<std::uint32_t, 256> t{};
        std::uint32_t n = 0;
        for (std::uint32_t b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
            t[b] = printable ? b : 256 + n++;
        }
        return t;
    }();
    return table;
}

// Raw bytes -> their encoder.json / vocab.bpe spelling (UTF-8).
inline std::string gpt2_bytes_to_text(std::string_view raw) {
    std::string out;
    out.reserve(raw.size() * 2);
    for (char c : raw)
        append_utf8(out, gpt2_byte_to_unicode()[static_cast<unsigned char>(c)]);
    return out;
}

// The inverse; nullopt when `text` is not UTF-8 or uses a code point outside the alphabet.
inline std::optional<std::string> gpt2_text_to_bytes(std::string_view text) {
    static const std::unordered_map<std::uint32_t, unsigned char> inverse = [] {
        std::unordered_map<std::uint32_t, unsigned char> m;
        for (int b = 0; b < 256; ++b)
            m[gpt2_byte_to_unicode()[b]] = static_cast<unsigned char>(b);
        return m;
    }();
    std::string out;
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* e = p + text.size();
    while (p < e) {
        std::uint32_t cp;
        if (*p < 0x80) {
            cp = *p++;
        } else if ((*p & 0xE0) == 0xC0 && e - p >= 2 && (p[1] & 0xC0) == 0x80) {
            cp = (p[0] & 0x1Fu) << 6 | (p[1] & 0x3Fu);
            p += 2;
        } else {
            return std::nullopt; // the alphabet is below U+0144: never more than 2 bytes
        }
        const auto it = inverse.find(cp);
        if (it == inverse.end())
            return std::nullopt;
        out += static_cast<char>(it->second);
    }
    return out;
}

// Python's json.dumps(ensure_ascii=True) spelling of a string, so saved files match GPT-2's.
inline void append_json_string(std::string& out, std::string_view utf8) {
    static constexpr char hex[] = "0123456789abcdef";
    auto u4 = [&](std::uint32_t v) {
        out += "\\u";
        for (int s = 12; s >= 0; s -= 4)
            out += hex[(v >> s) & 0xF];
    };
    out += '"';
    const auto* p = reinterpret_cast<const unsigned char*>(utf8.data());
    const auto* e = p + utf8.size();
    while (p < e) {
        std::uint32_t cp = *p;
        int len = 1;
        if (cp >= 0xF0) {
            cp = (p[0] & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
            len = 4;
        } else if (cp >= 0xE0) {
            cp = (p[0] & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
            len = 3;
        } else if (cp >= 0xC0) {
            cp = (p[0] & 0x1Fu) << 6 | (p[1] & 0x3Fu);
            len = 2;
        }
        p += len;
        switch (cp) {
        case '"':
            out += "\\\"";
            continue;
        case '\\':
            out += "\\\\";
            continue;
        case '\n':
            out += "\\n";
            continue;
        case '\r':
            out += "\\r";
            continue;
        case '\t':
            out += "\\t";
            continue;
        case '\b':
            out += "\\b";
            continue;
        case '\f':
            out += "\\f";
            continue;
        default:
            break;
        }
        if (cp >= 0x20 && cp <= 0x7E) {
            out += char(cp);
        } else if (cp >= 0x10000) {
            u4(0xD800 + ((cp - 0x10000) >> 10));
            u4(0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            u4(cp);
        }
    }
    out += '"';
}

inline std::uint64_t hash_bytes(const char* p, std::size_t n) {
    std::uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (; n >= 8; p += 8, n -= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        h = mix64(h ^ w);
    }
    std::uint64_t w = 0;
    std::memcpy(&w, p, n);
    return mix64(h ^ w);
}

// Pair (left id, right id) -> (rank, merged id): open addressing, linear probing.
class merge_table {
  public:
    struct value {
        std::int32_t rank, merged;
    };
    void build(std::span<const std::array<int, 3>> merges) { // (a, b, merged) by rank
        std::size_t cap = 16;
        while (cap < merges.size() * 2 + 16)
            cap *= 2;
        keys_.assign(cap, empty);
        vals_.assign(cap, {-1, -1});
        mask_ = cap - 1;
        for (std::size_t r = 0; r < merges.size(); ++r) {
            const std::uint64_t k = key(merges[r][0], merges[r][1]);
            std::size_t i = mix64(k) & mask_;
            while (keys_[i] != empty && keys_[i] != k)
                i = (i + 1) & mask_;
            if (keys_[i] == empty) { // a repeated pair keeps its first (lowest) rank
                keys_[i] = k;
                vals_[i] = {std::int32_t(r), merges[r][2]};
            }
        }
    }
    value find(int a, int b) const {
        const std::uint64_t k = key(a, b);
        for (std::size_t i = mix64(k) & mask_;; i = (i + 1) & mask_) {
            if (keys_[i] == k)
                return vals_[i];
            if (keys_[i] == empty)
                return {-1, -1};
        }
    }

  private:
    static constexpr std::uint64_t empty = ~std::uint64_t{0};
    static std::uint64_t key(int a, int b) {
        return std::uint64_t(std::uint32_t(a)) << 32 | std::uint32_t(b);
    }
    std::vector<std::uint64_t> keys_;
    std::vector<value> vals_;
    std::size_t mask_ = 0;
};

// Per-call memo of piece -> ids. Keys point into the text being encoded.
class piece_cache {
  public:
    // Returns the cached ids of `piece`, or null.
    const int* find(std::string_view piece, std::uint64_t h, std::uint32_t& count) const {
        if (slots_.empty())
            return nullptr;
        for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
            const slot& s = slots_[i];
            if (s.ptr == nullptr)
                return nullptr;
            if (s.hash == h && s.len == piece.size() &&
                std::memcmp(s.ptr, piece.data(), s.len) == 0) {
                count = s.count;
                return pool_.data() + s.offset;
            }
        }
    }
    void insert(std::string_view piece, std::uint64_t h, std::span<const int> ids) {
        if (used_ * 2 >= slots_.size())
            grow();
        std::size_t i = h & mask_;
        while (slots_[i].ptr != nullptr)
            i = (i + 1) & mask_;
        slots_[i] = {piece.data(), h, std::uint32_t(piece.size()), std::uint32_t(pool_.size()),
                     std::uint32_t(ids.size())};
        pool_.insert(pool_.end(), ids.begin(), ids.end());
        ++used_;
    }
    std::size_t size() const { return used_; }
    void clear() {
        slots_.clear();
        pool_.clear();
        used_ = 0;
    }

  private:
    struct slot {
        const char* ptr = nullptr;
        std::uint64_t hash = 0;
        std::uint32_t len = 0, offset = 0, count = 0;
    };
    void grow() {
        std::vector<slot> old = std::move(slots_);
        slots_.assign(old.empty() ? 1024 : old.size() * 2, slot{});
        mask_ = slots_.size() - 1;
        for (const slot& s : old) {
            if (s.ptr == nullptr)
                continue;
            std::size_t i = s.hash & mask_;
            while (slots_[i].ptr != nullptr)
                i = (i + 1) & mask_;
            slots_[i] = s;
        }
    }
    std::vector<slot> slots_;
    std::vector<int> pool_;
    std::size_t mask_ = 0, used_ = 0;
};

} // namespace detail

// Splits `text` as GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does, calling piece(std::string_view) for every match, in order; the pieces cover the text.
// Hand-written (no regex engine) over a generated class table; tests/text checks it against
// PCRE2 and the table against utf8proc. Invalid UTF-8 bytes count as class "other".
template <class F> void gpt2_pretokenize(std::string_view text, F&& piece) {
    using detail::next_uchar;
    const std::uint8_t* tab = detail::unicode_class_table();
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* const e = p + text.size();
    auto emit = [&](const unsigned char* a, const unsigned char* b) {
        piece(std::string_view(reinterpret_cast<const char*>(a), std::size_t(b - a)));
    };
    // End of the run of class `cls` starting at q.
    auto run = [&](const unsigned char* q, std::uint8_t cls) {
        while (q < e) {
            if (*q < 0x80) { // ASCII fast path
                if (detail::ascii_classes[*q] != cls)
                    break;
                ++q;
                continue;
            }
            const detail::uchar c = next_uchar(q, e, tab);
            if (c.cls != cls)
                break;
            q += c.len;
        }
        return q;
    };
    while (p < e) {
        const unsigned b = *p;
        if (b == '\'' && e - p >= 2) { // contractions, case-sensitive as in GPT-2
            const unsigned c1 = p[1];
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                emit(p, p + 2);
                p += 2;
                continue;
            }
            if (e - p >= 3) {
                const unsigned c2 = p[2];
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') ||
                    (c1 == 'l' && c2 == 'l')) {
                    emit(p, p + 3);
                    p += 3;
                    continue;
                }
            }
        }
        const detail::uchar c = next_uchar(p, e, tab);
        const unsigned char* q;
        if (c.cls == detail::uc_space) {
            if (b == ' ' && p + 1 < e) { //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
                const detail::uchar d = next_uchar(p + 1, e, tab);
                if (d.cls != detail::uc_space) {
                    q = run(p + 1 + d.len, d.cls);
                    emit(p, q);
                    p = q;
                    continue;
                }
            }
            // \s+(?!\S) | \s+ : a run followed by a non-space leaves its last character to the
            // next piece (where " x" may take it), unless the run is that one character.
            const unsigned char* last = p;
            q = p;
            while (q < e) {
                const detail::uchar d = next_uchar(q, e, tab);
                if (d.cls != detail::uc_space)
                    break;
                last = q;
                q += d.len;
            }
            if (q < e && last > p)
                q = last;
            emit(p, q);
            p = q;
            continue;
        }
        q = run(p + c.len, c.cls);
        emit(p, q);
        p = q;
    }
}

// GPT-2's tokenizer. The vocabulary and merges are immutable and shared between copies;
// special tokens registered at runtime get ids after the vocabulary (vocab_size() grows).
class gpt2_tokenizer {
  public:
    static constexpr std::string_view name = "gpt2";
    static constexpr std::string_view end_of_text = "<|endoftext|>";

    // From tokens (raw bytes, id = index) and merges ((left id, right id), rank = index). Every
    // byte needs a one-byte token; every merge's concatenation needs a token. Tokens that are
    // neither a byte nor a merge result (GPT-2: <|endoftext|>) become special tokens.
    static gpt2_tokenizer from_vocab(std::vector<std::string> tokens,
                                     std::vector<std::pair<int, int>> merges,
                                     std::string_view what = "vocabulary") {
        auto d = std::make_shared<data>();
        d->tokens = std::move(tokens);
        const int n = static_cast<int>(d->tokens.size());
        GPTX_CHECK(n >= 256 && d->tokens.size() < (1u << 30), what, ": ", d->tokens.size(),
                   " tokens (expected at least 256, one per byte)");
        d->index.reserve(d->tokens.size() * 2);
        for (int i = 0; i < n; ++i) {
            GPTX_CHECK(!d->tokens[std::size_t(i)].empty(), what, ": token ", i, " is empty");
            const auto [it, fresh] = d->index.emplace(d->tokens[std::size_t(i)], i);
            GPTX_CHECK(fresh, what, ": tokens ", it->second, " and ", i, " are both '",
                       detail::gpt2_bytes_to_text(d->tokens[std::size_t(i)]), "'");
        }
        for (int b = 0; b < 256; ++b) {
            const auto it = d->index.find(std::string(1, static_cast<char>(b)));
            GPTX_CHECK(it != d->index.end(), what, ": no token for byte ", b, " ('",
                       detail::gpt2_bytes_to_text(std::string(1, static_cast<char>(b))), "')");
            d->byte_ids[std::size_t(b)] = it->second;
        }
        std::vector<bool> reachable(std::size_t(n), false);
        for (int id : d->byte_ids)
            reachable[std::size_t(id)] = true;
        std::vector<std::array<int, 3>> table;
        table.reserve(merges.size());
        for (std::size_t r = 0; r < merges.size(); ++r) {
            const auto [a, b] = merges[r];
            GPTX_CHECK(a >= 0 && a < n && b >= 0 && b < n, what, ": merge ", r, " uses id ",
                       (a >= 0 && a < n) ? b : a, " outside the vocabulary [0, ", n, ")");
            const std::string joined = d->tokens[std::size_t(a)] + d->tokens[std::size_t(b)];
            const auto it = d->index.find(joined);
            GPTX_CHECK(it != d->index.end(), what, ": merge ", r, " ('",
                       detail::gpt2_bytes_to_text(d->tokens[std::size_t(a)]), " ",
                       detail::gpt2_bytes_to_text(d->tokens[std::size_t(b)]),
                       "') makes a token that is not in the vocabulary");
            reachable[std::size_t(it->second)] = true;
            table.push_back({a, b, it->second});
        }
        d->merges = std::move(merges);
        d->pairs.build(table);
        d->merged.resize(table.size());
        for (std::size_t r = 0; r < table.size(); ++r)
            d->merged[r] = table[r][2];
        gpt2_tokenizer t;
        for (int i = 0; i < n; ++i)
            if (!reachable[std::size_t(i)])
                t.specials_.add(d->tokens[std::size_t(i)], i);
        t.base_ = std::move(d);
        return t;
    }

    // GPT-2's released files (or any in their format, e.g. bpe_trainer's output).
    static gpt2_tokenizer from_files(const std::filesystem::path& encoder_json,
                                     const std::filesystem::path& vocab_bpe) {
        const std::string encoder = detail::read_whole_file(encoder_json, "encoder");
        const std::string merges = detail::read_whole_file(vocab_bpe, "merges");
        return from_text(encoder, merges, encoder_json.string(), vocab_bpe.string());
    }
    // DIR/encoder.json and DIR/vocab.bpe.
    static gpt2_tokenizer from_dir(const std::filesystem::path& dir) {
        return from_files(dir / "encoder.json", dir / "vocab.bpe");
    }

    // The contents of encoder.json and vocab.bpe; names are for error messages.
    static gpt2_tokenizer from_text(std::string_view encoder_json, std::string_view vocab_bpe,
                                    const std::string& encoder_name = "encoder.json",
                                    const std::string& merges_name = "vocab.bpe") {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(encoder_json);
        } catch (const nlohmann::json::exception& e) {
            detail::fail(encoder_name, ": not valid JSON: ", e.what());
        }
        GPTX_CHECK(j.is_object(), encoder_name, ": expected a JSON object of token -> id");
        std::vector<std::string> tokens(j.size());
        std::vector<bool> seen(j.size(), false);
        for (const auto& [key, value] : j.items()) {
            GPTX_CHECK(value.is_number_integer(), encoder_name, ": the id of '", key,
                       "' is not an integer");
            const auto id = value.get<std::int64_t>();
            GPTX_CHECK(id >= 0 && std::uint64_t(id) < tokens.size(), encoder_name, ": id ", id,
                       " of '", key, "' is outside [0, ", tokens.size(), "): ids must be 0..n-1");
            GPTX_CHECK(!seen[std::size_t(id)], encoder_name, ": id ", id, " is used twice");
            auto raw = detail::gpt2_text_to_bytes(key);
            GPTX_CHECK(raw.has_value(), encoder_name, ": token '", key, "' (id ", id,
                       ") has a character outside GPT-2's byte alphabet");
            seen[std::size_t(id)] = true;
            tokens[std::size_t(id)] = std::move(*raw);
        }
        std::unordered_map<std::string_view, int> index;
        index.reserve(tokens.size() * 2);
        for (std::size_t i = 0; i < tokens.size(); ++i)
            index.emplace(tokens[i], static_cast<int>(i));

        std::vector<std::pair<int, int>> merges;
        std::size_t pos = 0, line_no = 0;
        while (pos < vocab_bpe.size()) {
            std::size_t end = vocab_bpe.find('\n', pos);
            if (end == std::string_view::npos)
                end = vocab_bpe.size();
            std::string_view line = vocab_bpe.substr(pos, end - pos);
            pos = end + 1;
            ++line_no;
            if (!line.empty() && line.back() == '\r')
                line.remove_suffix(1);
            if (line.empty() || (line_no == 1 && line.starts_with("#version")))
                continue;
            const std::size_t sp = line.find(' ');
            GPTX_CHECK(sp != std::string_view::npos && sp > 0 && sp + 1 < line.size() &&
                           line.find(' ', sp + 1) == std::string_view::npos,
                       merges_name, ":", line_no, ": expected two tokens separated by one space");
            int ids[2];
            for (int k = 0; k < 2; ++k) {
                const std::string_view part = k == 0 ? line.substr(0, sp) : line.substr(sp + 1);
                const auto raw = detail::gpt2_text_to_bytes(part);
                GPTX_CHECK(raw.has_value(), merges_name, ":", line_no, ": '", part,
                           "' has a character outside GPT-2's byte alphabet");
                const auto it = index.find(*raw);
                GPTX_CHECK(it != index.end(), merges_name, ":", line_no, ": '", part,
                           "' is not in ", encoder_name);
                ids[k] = it->second;
            }
            merges.emplace_back(ids[0], ids[1]);
        }
        return from_vocab(std::move(tokens), std::move(merges), encoder_name + " + " + merges_name);
    }

    int vocab_size() const { return static_cast<int>(base().tokens.size()) + int(added_); }
    // Tokens of the loaded vocabulary (GPT-2: 50257), without runtime additions.
    int base_vocab_size() const { return static_cast<int>(base().tokens.size()); }
    std::size_t num_merges() const { return base().merges.size(); }
    const std::vector<std::pair<int, int>>& merges() const { return base().merges; }

    // The raw bytes of token `id` (for a special token, its text).
    std::string_view token_bytes(int id) const {
        const int n = base_vocab_size();
        if (id >= 0 && id < n)
            return base().tokens[std::size_t(id)];
        const std::string* s = id >= n ? specials_.text_of(id) : nullptr;
        GPTX_CHECK(s, "token id ", id, " is out of range for the gpt2 tokenizer (valid: 0..",
                   vocab_size() - 1, ")");
        return *s;
    }
    // The id of an ordinary token's raw bytes.
    std::optional<int> token_id(std::string_view bytes) const {
        const auto it = base().index.find(std::string(bytes));
        if (it == base().index.end())
            return std::nullopt;
        return it->second;
    }

    // ---- special tokens ----
    // Registers `text` as a special token with the next id (vocab_size() before the call) and
    // returns it; the model's embedding must grow to match (nn/resize.hpp). Registering a text
    // that is already special returns its id.
    int add_special_token(std::string text) {
        if (const auto id = specials_.id_of(text))
            return *id;
        GPTX_CHECK(!token_id(text), "special token '", text, "' is already ordinary token ",
                   *token_id(text), "; a special token needs text of its own");
        const int id = vocab_size();
        specials_.add(std::move(text), id);
        ++added_;
        return id;
    }
    std::optional<int> special_token_id(std::string_view text) const {
        return specials_.id_of(text);
    }
    const special_tokens& special() const { return specials_; }
    // <|endoftext|> (GPT-2: 50256), or -1 if the vocabulary has none.
    int eot_token() const { return specials_.id_of(end_of_text).value_or(-1); }

    // ---- encode / decode ----
    // How a text is encoded. threads: 1 = this thread, 0 = num_threads(). A text of at least
    // 2 x chunk_bytes is cut into chunks at safe_cut() places and the chunks encode in parallel;
    // the ids are the same for every thread count and chunk size (chunk_bytes exists so tests can
    // force many small chunks). on_progress, if set, is called on the calling thread with the
    // bytes of text encoded so far (special tokens' text included), last with text.size().
    struct encode_options {
        specials mode = specials::as_text;
        int threads = 1;
        std::size_t chunk_bytes = std::size_t(1) << 18;
        std::function<void(std::size_t)> on_progress = {};
    };
    std::vector<int> encode(std::string_view text, const encode_options& o) const {
        GPTX_CHECK(o.chunk_bytes > 0, "gpt2 tokenizer: chunk_bytes must be positive");
        std::vector<int> out;
        std::size_t done = 0;
        auto span = [&](std::string_view piece) {
            encode_text(piece, out, o, done);
            done += piece.size();
        };
        if (o.mode == specials::allowed && !specials_.empty()) {
            specials_.split(text, span, [&](int id) { out.push_back(id); });
        } else {
            span(text);
        }
        if (o.on_progress)
            o.on_progress(text.size());
        return out;
    }
    std::vector<int> encode(std::string_view text, specials mode = specials::as_text,
                            int threads = 1) const {
        return encode(text, encode_options{.mode = mode, .threads = threads});
    }

    // The first place p >= max(at, 1) where `text` can be cut so that encoding the two halves
    // apart gives the ids of the whole: text[p] is '\n' and text[p - 1] an ASCII non-space.
    // Why that is safe, for GPT-2's pattern
    //   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    // whose only look-around is the lookahead (?!\S), and none looks back:
    //  - no piece spans p-1..p: the piece holding text[p-1] is a contraction, letters, digits or
    //    punctuation (text[p-1] is not white space), and none of those takes a '\n';
    //  - no piece before p changes when the text after it is gone: a piece ending at p-1 was
    //    not a white-space run, so (?!\S) never looked at p; a contraction ending in "'" needs a
    //    letter at p, which neither '\n' nor the end of the text is;
    //  - the piece at p starts a white-space run in both, and scans only forward.
    // A cut just after a newline, or inside a white-space run, is not safe: "\n\nPedant" is
    // "\n" "\n" "Pedant", but "\n\n" cut before "P" is one piece, since (?!\S) then sees the
    // end of the text (issue #17). npos if there is no such place.
    static std::size_t safe_cut(std::string_view text, std::size_t at) {
        for (at = std::max<std::size_t>(at, 1); at < text.size(); ++at) {
            at = text.find('\n', at);
            if (at == std::string_view::npos)
                return at;
            const auto prev = static_cast<unsigned char>(text[at - 1]);
            if (prev < 0x80 && detail::ascii_classes[prev] != detail::uc_space)
                return at;
        }
        return std::string_view::npos;
    }

    std::string decode(std::span<const int> ids) const {
        std::string out;
        out.reserve(ids.size() * 4);
        for (int id : ids)
            out += token_bytes(id);
        return out;
    }
    std::string decode_token(int id) const { return std::string(token_bytes(id)); }

    // ---- files ----
    // encoder.json in GPT-2's own spelling (Python's json.dumps): saving GPT-2's vocabulary gives
    // back its files byte for byte. Runtime special tokens are included with their ids.
    std::string encoder_json() const {
        std::string out = "{";
        for (int id = 0; id < vocab_size(); ++id) {
            if (id)
                out += ", ";
            detail::append_json_string(out, detail::gpt2_bytes_to_text(token_bytes(id)));
            out += ": " + std::to_string(id);
        }
        out += "}";
        return out;
    }
    std::string vocab_bpe() const {
        std::string out = "#version: 0.2\n";
        for (const auto& [a, b] : base().merges) {
            out += detail::gpt2_bytes_to_text(base().tokens[std::size_t(a)]);
            out += ' ';
            out += detail::gpt2_bytes_to_text(base().tokens[std::size_t(b)]);
            out += '\n';
        }
        return out;
    }
    // Writes DIR/encoder.json and DIR/vocab.bpe (each atomically); creates DIR.
    void save(const std::filesystem::path& dir) const {
        std::filesystem::create_directories(dir);
        detail::write_whole_file(dir / "encoder.json", encoder_json());
        detail::write_whole_file(dir / "vocab.bpe", vocab_bpe());
    }

    // ---- checkpoint payload (see tokenizer.hpp) ----
    // u32 format (1) | u32 n | n x (u32 len | bytes) | u32 m | m x (u32 left | u32 right) |
    // u32 k | k x (u32 len | text): the vocabulary, merges and runtime special tokens.
    std::string payload() const {
        const data& d = base();
        std::string out;
        std::size_t bytes = 12 + d.merges.size() * 8;
        for (const auto& t : d.tokens)
            bytes += 4 + t.size();
        out.reserve(bytes + 64);
        put(out, 1);
        put(out, std::uint32_t(d.tokens.size()));
        for (const auto& t : d.tokens) {
            put(out, std::uint32_t(t.size()));
            out += t;
        }
        put(out, std::uint32_t(d.merges.size()));
        for (const auto& [a, b] : d.merges) {
            put(out, std::uint32_t(a));
            put(out, std::uint32_t(b));
        }
        put(out, std::uint32_t(added_));
        for (const auto& [text, id] : specials_.entries())
            if (id >= base_vocab_size()) {
                put(out, std::uint32_t(text.size()));
                out += text;
            }
        return out;
    }
    static gpt2_tokenizer from_payload(std::string_view p) {
        std::size_t at = 0;
        auto u32 = [&](const char* what) {
            GPTX_CHECK(p.size() - at >= 4, "gpt2 tokenizer payload: truncated in ", what);
            std::uint32_t v = 0;
            for (int i = 0; i < 4; ++i)
                v |= std::uint32_t(static_cast<unsigned char>(p[at + std::size_t(i)])) << (8 * i);
            at += 4;
            return v;
        };
        auto bytes = [&](const char* what) {
            const std::uint32_t len = u32(what);
            GPTX_CHECK(p.size() - at >= len, "gpt2 tokenizer payload: truncated in ", what);
            std::string s(p.substr(at, len));
            at += len;
            return s;
        };
        const std::uint32_t format = u32("the format");
        GPTX_CHECK(format == 1, "gpt2 tokenizer payload: unsupported format ", format,
                   " (expected 1)");
        const std::uint32_t n = u32("the token count");
        GPTX_CHECK(n <= (p.size() - at) / 4, "gpt2 tokenizer payload: ", n, " tokens do not fit");
        std::vector<std::string> tokens(n);
        for (auto& t : tokens)
            t = bytes("the tokens");
        const std::uint32_t m = u32("the merge count");
        GPTX_CHECK(m <= (p.size() - at) / 8, "gpt2 tokenizer payload: ", m, " merges do not fit");
        std::vector<std::pair<int, int>> merges(m);
        for (auto& [a, b] : merges) {
            a = int(u32("the merges") & 0x7fffffffu);
            b = int(u32("the merges") & 0x7fffffffu);
        }
        const std::uint32_t k = u32("the special token count");
        GPTX_CHECK(k <= (p.size() - at) / 4, "gpt2 tokenizer payload: ", k,
                   " special tokens do not fit");
        std::vector<std::string> added(k);
        for (auto& s : added)
            s = bytes("the special tokens");
        GPTX_CHECK(at == p.size(), "gpt2 tokenizer payload: ", p.size() - at,
                   " unexpected trailing bytes");
        gpt2_tokenizer t =
            from_vocab(std::move(tokens), std::move(merges), "gpt2 tokenizer payload");
        for (auto& s : added)
            t.add_special_token(std::move(s));
        return t;
    }

    friend bool operator==(const gpt2_tokenizer& a, const gpt2_tokenizer& b) {
        return a.added_ == b.added_ && a.specials_ == b.specials_ &&
               (a.base_ == b.base_ ||
                (a.base().tokens == b.base().tokens && a.base().merges == b.base().merges));
    }

    // ---- BPE of one pre-tokenized piece, exactly GPT-2's bpe(): repeatedly take the pair of
    // lowest rank and merge all its occurrences left to right. A heap of (rank, position) makes it
    // O(n log n), so a long piece (a line of CJK text has no spaces) stays fast. ----
    struct bpe_scratch {
        std::vector<int> id, next, prev;
        std::vector<std::uint64_t> heap; // (rank << 32 | position), min-heap
        std::vector<std::uint32_t> batch;
    };
    void bpe(std::string_view piece, std::vector<int>& out, bpe_scratch& s) const {
        const data& d = base();
        const std::size_t n = piece.size();
        if (n == 0)
            return;
        if (n == 1) {
            out.push_back(d.byte_ids[static_cast<unsigned char>(piece[0])]);
            return;
        }
        GPTX_CHECK(n < (std::size_t(1) << 31), "gpt2 tokenizer: a single piece of ", n,
                   " bytes is too long");
        s.id.resize(n);
        s.next.resize(n);
        s.prev.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            s.id[i] = d.byte_ids[static_cast<unsigned char>(piece[i])];
            s.next[i] = int(i + 1);
            s.prev[i] = int(i) - 1;
        }
        const int end = int(n);
        auto greater = std::greater<std::uint64_t>{};
        s.heap.clear();
        auto push = [&](int i) { // the pair starting at symbol i, if it merges
            const int j = s.next[std::size_t(i)];
            if (j >= end)
                return;
            const auto v = d.pairs.find(s.id[std::size_t(i)], s.id[std::size_t(j)]);
            if (v.rank >= 0) {
                s.heap.push_back(std::uint64_t(std::uint32_t(v.rank)) << 32 | std::uint32_t(i));
                std::push_heap(s.heap.begin(), s.heap.end(), greater);
            }
        };
        for (int i = 0; i + 1 < end; ++i)
            push(i);
        while (!s.heap.empty()) {
            const std::uint32_t rank = std::uint32_t(s.heap.front() >> 32);
            s.batch.clear(); // every queued occurrence of this pair, in position order
            while (!s.heap.empty() && std::uint32_t(s.heap.front() >> 32) == rank) {
                s.batch.push_back(std::uint32_t(s.heap.front()));
                std::pop_heap(s.heap.begin(), s.heap.end(), greater);
                s.heap.pop_back();
            }
            const auto [a, b] = d.merges[rank];
            const int merged = d.merged[rank];
            std::size_t kept = 0;
            for (const std::uint32_t i : s.batch) {
                const int j = s.next[i];
                if (s.id[i] != a || j >= end || s.id[std::size_t(j)] != b)
                    continue; // stale: the pair changed since it was queued
                s.id[i] = merged;
                s.id[std::size_t(j)] = -1;
                const int k = s.next[std::size_t(j)];
                s.next[i] = k;
                if (k < end)
                    s.prev[std::size_t(k)] = int(i);
                s.batch[kept++] = i;
            }
            for (std::size_t q = 0; q < kept; ++q) {
                const int i = int(s.batch[q]);
                if (s.prev[std::size_t(i)] >= 0)
                    push(s.prev[std::size_t(i)]);
                push(i);
            }
        }
        for (int i = 0; i < end; i = s.next[std::size_t(i)])
            out.push_back(s.id[std::size_t(i)]);
    }

  private:
    struct data {
        std::vector<std::string> tokens;            // id -> raw bytes
        std::unordered_map<std::string, int> index; // raw bytes -> id
        std::vector<std::pair<int, int>> merges;    // rank -> (left, right)
        std::vector<int> merged;                    // rank -> merged id
        detail::merge_table pairs;                  // (left, right) -> (rank, merged)
        std::array<int, 256> byte_ids{};            // byte -> id
    };

    gpt2_tokenizer() = default;
    const data& base() const { return *base_; }

    // reserve() to exactly n would defeat geometric growth when called per special-token span.
    static void grow(std::vector<int>& v, std::size_t n) {
        if (v.capacity() < n)
            v.reserve(std::max(n, 2 * v.capacity()));
    }
    static void put(std::string& out, std::uint32_t v) {
        for (int i = 0; i < 4; ++i)
            out += static_cast<char>((v >> (8 * i)) & 0xff);
    }

    // Pre-tokenize and BPE one span without special tokens, memoizing pieces.
    void encode_span(std::string_view text, std::vector<int>& out, detail::piece_cache& cache,
                     bpe_scratch& scratch) const {
        std::vector<int> ids;
        grow(out, out.size() + text.size() / 3);
        gpt2_pretokenize(text, [&](std::string_view piece) {
            if (piece.size() == 1) {
                out.push_back(base().byte_ids[static_cast<unsigned char>(piece[0])]);
                return;
            }
            const std::uint64_t h = detail::hash_bytes(piece.data(), piece.size());
            std::uint32_t count = 0;
            if (const int* hit = cache.find(piece, h, count)) {
                out.insert(out.end(), hit, hit + count);
                return;
            }
            ids.clear();
            bpe(piece, ids, scratch);
            out.insert(out.end(), ids.begin(), ids.end());
            if (piece.size() <= 256) { // long pieces rarely repeat
                if (cache.size() >= (std::size_t(1) << 20))
                    cache.clear();
                cache.insert(piece, h, ids);
            }
        });
    }

    // Encodes one span without special tokens; `before` is the bytes of the whole text done
    // before this span, for on_progress.
    void encode_text(std::string_view text, std::vector<int>& out, const encode_options& o,
                     std::size_t before) const {
        const int threads = o.threads <= 0 ? num_threads() : o.threads;
        if ((threads <= 1 && !o.on_progress) || text.size() / 2 < o.chunk_bytes) {
            detail::piece_cache cache;
            bpe_scratch scratch;
            encode_span(text, out, cache, scratch);
            return;
        }
        // Chunks of at least chunk_bytes, about 4 per thread so uneven ones even out (and up to
        // 64 when someone watches the progress).
        const auto most = std::size_t(o.on_progress ? std::max(64, threads * 4) : threads * 4);
        const std::size_t want = std::min(most, text.size() / o.chunk_bytes);
        std::vector<std::size_t> cuts{0};
        for (std::size_t k = 1; k < want; ++k) {
            const std::size_t at =
                safe_cut(text, std::max(cuts.back() + 1, text.size() * k / want));
            if (at == std::string_view::npos)
                break;
            cuts.push_back(at);
        }
        cuts.push_back(text.size());
        const std::size_t chunks = cuts.size() - 1;
        std::vector<std::vector<int>> parts(chunks);
        std::atomic<std::size_t> next_chunk{0};
        std::exception_ptr failure;
        std::mutex failure_mutex;
        std::atomic<std::size_t> bytes_done{0};
        auto work = [&](bool caller) { // one memo per thread, kept across its chunks
            detail::piece_cache cache;
            bpe_scratch scratch;
            for (std::size_t c; (c = next_chunk.fetch_add(1)) < chunks;) {
                try {
                    encode_span(text.substr(cuts[c], cuts[c + 1] - cuts[c]), parts[c], cache,
                                scratch);
                    const std::size_t now = bytes_done += cuts[c + 1] - cuts[c];
                    if (caller && o.on_progress)
                        o.on_progress(before + now);
                } catch (...) {
                    std::lock_guard lock(failure_mutex);
                    failure = std::current_exception();
                }
            }
        };
        std::vector<std::thread> pool;
        for (int t = 1; t < std::min<int>(threads, int(chunks)); ++t)
            pool.emplace_back(work, false);
        work(true);
        for (auto& t : pool)
            t.join();
        if (failure)
            std::rethrow_exception(failure);
        std::size_t total = 0;
        for (const auto& p : parts)
            total += p.size();
        grow(out, out.size() + total);
        for (const auto& p : parts)
            out.insert(out.end(), p.begin(), p.end());
    }

    std::shared_ptr<const data> base_;
    special_tokens specials_; // built-in (unreachable vocabulary entries) and runtime ones
    std::size_t added_ = 0;   // runtime special tokens, ids base_vocab_size() + k
};

} // namespace gptx
