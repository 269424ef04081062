// gptx/data/prompts.hpp: prompt formats that write a task into the text (GPT-2) and few-shot
// contexts of k demonstrations packed into the model's context (GPT-3).
// Tested by tests/generate/test_scoring.cpp.
#pragma once
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"

namespace gptx {

// A demonstration reads prefix + input + infix + output + suffix; the test input reads
// prefix + input + infix and the model continues. The description states the task in words once,
// before everything; the delimiter separates the description, the demonstrations and the input.
struct prompt_format {
    std::string description;
    std::string prefix, infix, suffix;
    std::string delimiter = "\n";

    std::string demonstration(std::string_view input, std::string_view output) const {
        return prefix + std::string(input) + infix + std::string(output) + suffix;
    }
    std::string query(std::string_view input) const { return prefix + std::string(input) + infix; }
};

inline constexpr std::string_view prompt_format_names = "arrow, equals, qa, tldr, plain";

// arrow `x => y`; equals `english = french` (GPT-2's translation); qa `Q: x\nA: y` (GPT-2's
// question answering); tldr `x\nTL;DR: y` (GPT-2's summarisation); plain: the input is the
// whole context (multiple-choice lines that carry their own format).
inline prompt_format named_prompt_format(std::string_view name) {
    prompt_format f;
    if (name == "arrow")
        f.infix = " => ";
    else if (name == "equals")
        f.infix = " = ";
    else if (name == "qa") {
        f.prefix = "Q: ";
        f.infix = "\nA: ";
        f.delimiter = "\n\n";
    } else if (name == "tldr") {
        f.infix = "\nTL;DR: ";
        f.delimiter = "\n\n";
    } else if (name != "plain")
        detail::fail("unknown prompt format '", name, "' (valid: ", prompt_format_names, ")");
    return f;
}

// k distinct indices of [0, n) drawn at random, none equal to `exclude` (-1: none).
inline std::vector<int> draw_demonstrations(rng& r, int n, int k, int exclude = -1) {
    const int pool = n - (exclude >= 0 && exclude < n ? 1 : 0);
    GPTX_CHECK(k >= 0 && k <= pool, "few-shot: cannot draw ", k, " demonstrations from ", pool,
               " training examples");
    std::vector<int> idx;
    idx.reserve(n);
    for (int i = 0; i < n; ++i)
        if (i != exclude)
            idx.push_back(i);
    for (int i = 0; i < k; ++i) // partial Fisher-Yates
        std::swap(idx[i], idx[i + int(r.below(std::uint64_t(pool - i)))]);
    idx.resize(k);
    return idx;
}

struct packed_prompt {
    std::vector<int> tokens;
    int demonstrations = 0;   // kept, in order from the first
    std::size_t query_at = 0; // where the test input starts in tokens
};

// description, demonstrations and the test input, joined by the delimiter, in at most `budget`
// tokens (the model's context less the room the answer needs). The test input is kept whole and
// demonstrations are dropped from the end until the rest fits; a test input that cannot fit
// with the description is an error. Pieces come tokenized (byte and char tokenizations of a
// concatenation are the concatenation of the pieces').
inline packed_prompt pack_few_shot(std::span<const int> description,
                                   const std::vector<std::vector<int>>& demonstrations,
                                   std::span<const int> delimiter, std::span<const int> query,
                                   int budget) {
    const std::size_t d = delimiter.size();
    std::size_t used = query.size() + (description.empty() ? 0 : description.size() + d);
    GPTX_CHECK(used <= std::size_t(std::max(budget, 0)), "few-shot: the test input (", query.size(),
               " tokens", description.empty() ? "" : " with the description", ") does not fit the ",
               budget, " tokens available");
    packed_prompt out;
    int keep = 0;
    for (const auto& demo : demonstrations) {
        if (used + demo.size() + d > std::size_t(budget))
            break;
        used += demo.size() + d;
        ++keep;
    }
    out.demonstrations = keep;
    auto put = [&](std::span<const int> s) {
        out.tokens.insert(out.tokens.end(), s.begin(), s.end());
    };
    if (!description.empty()) {
        put(description);
        put(delimiter);
    }
    for (int i = 0; i < keep; ++i) {
        put(demonstrations[i]);
        put(delimiter);
    }
    out.query_at = out.tokens.size();
    put(query);
    return out;
}

} // namespace gptx
