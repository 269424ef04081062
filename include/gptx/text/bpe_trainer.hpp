// gptx/text/bpe_trainer.hpp: learn a GPT-2-style byte-level BPE vocabulary from a corpus, with
// GPT-2's pre-tokenization; the result saves as encoder.json + vocab.bpe (gpt2_tokenizer::save).
// Tested by tests/text/test_gpt2_tokenizer.cpp.
#pragma once
#include <algorithm>
#include <cstdint>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "gpt2_tokenizer.hpp"

namespace gptx {

struct bpe_train_options {
    int vocab_size = 50257;         // final vocabulary: 256 bytes + merges (+ <|endoftext|>)
    bool end_of_text = true;        // append <|endoftext|> as the last id, as GPT-2 does
    std::int64_t min_frequency = 2; // stop early when the best pair is rarer than this
};

namespace detail {

// GPT-2's order of the 256 byte tokens (ids 0..255): bytes_to_unicode's list, printable first.
inline std::vector<std::string> gpt2_byte_tokens() {
    std::vector<std::string> out;
    std::vector<bool> used(256, false);
    for (int b = 0; b < 256; ++b)
        if (gpt2_byte_to_unicode()[std::size_t(b)] == std::uint32_t(b)) {
            out.emplace_back(1, static_cast<char>(b));
            used[std::size_t(b)] = true;
        }
    for (int b = 0; b < 256; ++b)
        if (!used[std::size_t(b)])
            out.emplace_back(1, static_cast<char>(b));
    return out;
}

} // namespace detail

// Learns merges until the vocabulary has opts.vocab_size tokens or no pair occurs
// min_frequency times. Deterministic: the most frequent pair wins; ties go to the pair whose
// (left bytes, right bytes) sorts first. Pairs never cross pre-tokenized pieces (as in GPT-2).
inline gpt2_tokenizer train_bpe(std::span<const std::string_view> corpus,
                                const bpe_train_options& opts = {}) {
    const int reserved = opts.end_of_text ? 1 : 0;
    GPTX_CHECK(opts.vocab_size >= 256 + reserved, "train_bpe: vocab_size ", opts.vocab_size,
               " is below the 256 byte tokens", opts.end_of_text ? " + <|endoftext|>" : "");
    GPTX_CHECK(opts.min_frequency >= 1, "train_bpe: min_frequency must be >= 1, got ",
               opts.min_frequency);

    // 1. Unique pieces with counts, sorted so the result never depends on hash order.
    std::unordered_map<std::string_view, std::int64_t> counts;
    for (std::string_view text : corpus)
        gpt2_pretokenize(text, [&](std::string_view piece) { ++counts[piece]; });
    std::vector<std::pair<std::string_view, std::int64_t>> pieces(counts.begin(), counts.end());
    std::sort(pieces.begin(), pieces.end());

    std::vector<std::string> tokens = detail::gpt2_byte_tokens();
    std::unordered_map<std::string, int> index;
    for (int i = 0; i < 256; ++i)
        index.emplace(tokens[std::size_t(i)], i);
    std::array<int, 256> byte_id{};
    for (int i = 0; i < 256; ++i)
        byte_id[static_cast<unsigned char>(tokens[std::size_t(i)][0])] = i;

    struct word {
        std::vector<int> syms;
        std::int64_t count;
    };
    std::vector<word> words;
    words.reserve(pieces.size());
    for (const auto& [piece, n] : pieces) {
        if (piece.size() < 2)
            continue;
        word w{{}, n};
        for (char c : piece)
            w.syms.push_back(byte_id[static_cast<unsigned char>(c)]);
        words.push_back(std::move(w));
    }

    // 2. Pair counts and where each pair occurs.
    auto key = [](int a, int b) {
        return std::uint64_t(std::uint32_t(a)) << 32 | std::uint32_t(b);
    };
    std::unordered_map<std::uint64_t, std::int64_t> pair_count;
    std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> where;
    for (std::uint32_t w = 0; w < words.size(); ++w) {
        const auto& s = words[w].syms;
        for (std::size_t i = 0; i + 1 < s.size(); ++i) {
            const auto k = key(s[i], s[i + 1]);
            pair_count[k] += words[w].count;
            auto& list = where[k];
            if (list.empty() || list.back() != w)
                list.push_back(w);
        }
    }

    // 3. A max-heap of (count, pair) with lazy updates: an entry whose count is stale is
    // re-queued with the current count when it surfaces.
    struct entry {
        std::int64_t count;
        std::uint64_t pair;
    };
    auto worse = [&](const entry& x, const entry& y) { // true when x ranks below y
        if (x.count != y.count)
            return x.count < y.count;
        const auto& xa = tokens[std::size_t(x.pair >> 32)];
        const auto& ya = tokens[std::size_t(y.pair >> 32)];
        if (xa != ya)
            return xa > ya;
        return tokens[std::size_t(x.pair & 0xffffffffu)] >
               tokens[std::size_t(y.pair & 0xffffffffu)];
    };
    std::priority_queue<entry, std::vector<entry>, decltype(worse)> heap(worse);
    for (const auto& [k, n] : pair_count)
        heap.push({n, k});

    std::vector<std::pair<int, int>> merges;
    std::vector<std::uint32_t> stamp(words.size(), 0); // de-duplicates `where` lists per merge
    const std::size_t target = std::size_t(opts.vocab_size - reserved);
    while (tokens.size() < target && !heap.empty()) {
        const entry top = heap.top();
        heap.pop();
        const auto it = pair_count.find(top.pair);
        const std::int64_t now = it == pair_count.end() ? 0 : it->second;
        if (now != top.count) {
            if (now > 0)
                heap.push({now, top.pair});
            continue;
        }
        if (now < opts.min_frequency)
            break;
        const int a = int(top.pair >> 32), b = int(top.pair & 0xffffffffu);
        const std::string joined = tokens[std::size_t(a)] + tokens[std::size_t(b)];
        int merged;
        if (const auto found = index.find(joined); found != index.end()) {
            merged = found->second; // the same bytes were already made by another merge
        } else {
            merged = int(tokens.size());
            tokens.push_back(joined);
            index.emplace(joined, merged);
        }
        merges.emplace_back(a, b);
        const std::uint32_t mark = std::uint32_t(merges.size());

        // Re-count each word that holds the pair: remove its pairs, merge left to right (as
        // encoding does), add its pairs back.
        std::unordered_set<std::uint64_t> touched;
        const std::vector<std::uint32_t> list = std::move(where[top.pair]);
        where.erase(top.pair);
        for (const std::uint32_t w : list) {
            if (stamp[w] == mark)
                continue;
            stamp[w] = mark;
            auto& s = words[w].syms;
            const std::int64_t n = words[w].count;
            bool has = false;
            for (std::size_t i = 0; i + 1 < s.size() && !has; ++i)
                has = s[i] == a && s[i + 1] == b;
            if (!has)
                continue;
            for (std::size_t i = 0; i + 1 < s.size(); ++i) {
                const auto k = key(s[i], s[i + 1]);
                pair_count[k] -= n;
                touched.insert(k);
            }
            std::size_t out = 0;
            for (std::size_t i = 0; i < s.size();) {
                if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
                    s[out++] = merged;
                    i += 2;
                } else {
                    s[out++] = s[i++];
                }
            }
            s.resize(out);
            for (std::size_t i = 0; i + 1 < s.size(); ++i) {
                const auto k = key(s[i], s[i + 1]);
                pair_count[k] += n;
                touched.insert(k);
                auto& l = where[k];
                if (l.empty() || l.back() != w)
                    l.push_back(w);
            }
        }
        // Queue changed counts in a fixed order, so ties resolve the same on every run.
        std::vector<std::uint64_t> changed(touched.begin(), touched.end());
        std::sort(changed.begin(), changed.end());
        for (const std::uint64_t k : changed) {
            const auto c = pair_count.find(k);
            if (c == pair_count.end())
                continue;
            if (c->second <= 0)
                pair_count.erase(c);
            else
                heap.push({c->second, k});
        }
    }
    if (opts.end_of_text)
        tokens.emplace_back(gpt2_tokenizer::end_of_text);
    return gpt2_tokenizer::from_vocab(std::move(tokens), std::move(merges), "train_bpe");
}

inline gpt2_tokenizer train_bpe(std::string_view corpus, const bpe_train_options& opts = {}) {
    return train_bpe(std::span<const std::string_view>(&corpus, 1), opts);
}

} // namespace gptx
