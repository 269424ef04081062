// gptx/data/dialogue.hpp: dialogue data: the JSONL {"messages":[{"role","content"},...]} reader
// and writer; InstructGPT data (prompt/response, ranked comparisons) converted into dialogues;
// mixing at a ratio; packing formatted dialogues into SFT rows. (The task family's dialogues, their
// generator and labeler, are sample code: samples/tasks/dialogue_tasks.hpp.)
// Tested by tests/data/test_dialogue.cpp. Legend: T time (context), R rows.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "../text/chat_format.hpp"
#include "comparisons.hpp"
#include "sft.hpp"

namespace gptx {

// ---- JSONL ------------------------------------------------------------------------------------

namespace detail {
// A conversation from a parsed JSON object; errors read "name:line: what".
inline conversation dialogue_from_json(const nlohmann::json& j, std::string_view name, int line) {
    auto bad = [&](const auto&... why) { detail::fail(name, ":", line, ": ", why...); };
    if (!j.is_object())
        bad("expected a JSON object, got ", j.type_name());
    const auto it = j.find("messages");
    if (it == j.end())
        bad("missing \"messages\"");
    if (!it->is_array())
        bad("\"messages\" must be an array, got ", it->type_name());
    if (it->empty())
        bad("\"messages\" is empty");
    conversation c;
    for (std::size_t i = 0; i < it->size(); ++i) {
        const auto& m = (*it)[i];
        if (!m.is_object())
            bad("messages[", i, "] must be an object, got ", m.type_name());
        const auto role = m.find("role"), content = m.find("content");
        if (role == m.end() || !role->is_string())
            bad("messages[", i, "] needs a string \"role\"");
        if (content == m.end() || !content->is_string())
            bad("messages[", i, "] needs a string \"content\"");
        const auto r = parse_role(role->get<std::string>());
        if (!r)
            bad("messages[", i, "] has role \"", role->get<std::string>(),
                "\" (valid: system, user, assistant)");
        if (*r == chat_role::system && i != 0)
            bad("messages[", i, "] is a system message; only the first message may be one");
        c.push_back({*r, content->get<std::string>()});
    }
    if (c.size() == 1 && c[0].role == chat_role::system)
        bad("\"messages\" has only a system message");
    return c;
}

inline nlohmann::json dialogue_to_json(const conversation& c) {
    nlohmann::json msgs = nlohmann::json::array();
    for (const auto& m : c)
        msgs.push_back({{"role", std::string(role_name(m.role))}, {"content", m.content}});
    return msgs;
}
} // namespace detail

// One JSONL line (line number `line` of `name`, for errors) as a conversation.
inline conversation parse_dialogue_line(std::string_view text, std::string_view name, int line) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        detail::fail(name, ":", line, ": not valid JSON (", e.what(), ")");
    }
    return detail::dialogue_from_json(j, name, line);
}

// Every non-blank line: {"messages":[{"role":"system"|"user"|"assistant","content":"..."},...]}
// (other keys ignored). Errors name the file and the line.
inline std::vector<conversation> read_dialogues_jsonl(const std::filesystem::path& path) {
    std::vector<conversation> out;
    detail::read_jsonl(path, [&](const nlohmann::json& j, int n) {
        out.push_back(detail::dialogue_from_json(j, path.string(), n));
    });
    GPTX_CHECK(!out.empty(), path.string(), ": no dialogues");
    return out;
}
inline void write_dialogues_jsonl(const std::filesystem::path& path,
                                  std::span<const conversation> ds) {
    std::vector<std::string> lines;
    for (const auto& c : ds)
        lines.push_back(nlohmann::json{{"messages", detail::dialogue_to_json(c)}}.dump());
    detail::write_lines_atomically(path, lines);
}

// ---- conversion and mixing --------------------------------------------------------------------

// A prompt and its demonstrated response as a one-turn dialogue: the prompt is the user's message.
inline conversation dialogue_of(const sft_example& e) {
    return {{chat_role::user, e.prompt}, {chat_role::assistant, e.response}};
}
inline std::vector<conversation> dialogues_of(std::span<const sft_example> es) {
    std::vector<conversation> out;
    for (const auto& e : es)
        out.push_back(dialogue_of(e));
    return out;
}

// A ranked comparison in dialogue form (ChatGPT's): a conversation that ends with a user message,
// and K alternative assistant messages for it, best first.
struct dialogue_comparison {
    conversation context;
    std::vector<std::string> responses;
    int line = 0; // of its JSONL file, for errors
};
inline dialogue_comparison dialogue_comparison_of(const comparison& c) {
    return {{{chat_role::user, c.prompt}}, c.responses, c.line};
}

// JSONL {"messages":[...], "responses":[best, ..., worst]}.
inline void write_dialogue_comparisons(const std::filesystem::path& path,
                                       std::span<const dialogue_comparison> cs) {
    std::vector<std::string> lines;
    for (const auto& c : cs)
        lines.push_back(nlohmann::json{
            {"messages", detail::dialogue_to_json(c.context)},
            {"responses",
             c.responses}}.dump());
    detail::write_lines_atomically(path, lines);
}
inline std::vector<dialogue_comparison>
read_dialogue_comparisons(const std::filesystem::path& path) {
    std::vector<dialogue_comparison> out;
    detail::read_jsonl(path, [&](const nlohmann::json& j, int n) {
        dialogue_comparison c{detail::dialogue_from_json(j, path.string(), n), {}, n};
        GPTX_CHECK(c.context.back().role == chat_role::user, path.string(), ":", n,
                   ": the conversation must end with a user message");
        const auto r = j.find("responses");
        GPTX_CHECK(r != j.end() && r->is_array() && r->size() >= 2 && r->size() <= 9, path.string(),
                   ":", n, ": \"responses\" must be an array of 2 to 9 strings");
        for (const auto& s : *r) {
            GPTX_CHECK(s.is_string(), path.string(), ":", n, ": \"responses\" must hold strings");
            c.responses.push_back(s.get<std::string>());
        }
        out.push_back(std::move(c));
    });
    GPTX_CHECK(!out.empty(), path.string(), ": no comparisons");
    return out;
}

// Native data mixed with converted data so that a fraction `native_fraction` of the result is
// native: as many as the scarcer side allows, each side a random subset, the whole shuffled (same
// seed, same mix). 0 keeps only converted data, 1 only native. For dialogues (SFT) and dialogue
// comparisons (the reward model) alike.
template <class T>
std::vector<T> mix_native(std::span<const T> native, std::span<const T> converted,
                          double native_fraction, std::uint64_t seed) {
    GPTX_CHECK(native_fraction >= 0.0 && native_fraction <= 1.0,
               "mix_dialogues: the native fraction must be in [0, 1], got ", native_fraction);
    const double a = double(native.size()), b = double(converted.size());
    double n = native_fraction >= 1.0   ? a
               : native_fraction <= 0.0 ? b
                                        : std::min(a / native_fraction, b / (1 - native_fraction));
    const std::size_t take_a = std::min(native.size(), std::size_t(n * native_fraction + 1e-9));
    const std::size_t take_b =
        std::min(converted.size(), std::size_t(n * (1 - native_fraction) + 1e-9));
    GPTX_CHECK(take_a + take_b > 0, "mix_dialogues: nothing to mix");
    rng r(seed);
    auto pick = [&](std::span<const T> from, std::size_t k, std::vector<T>& out) {
        std::vector<std::size_t> idx(from.size());
        std::iota(idx.begin(), idx.end(), std::size_t(0));
        for (std::size_t i = 0; i < k; ++i) // partial Fisher-Yates
            std::swap(idx[i], idx[i + std::size_t(r.below(idx.size() - i))]);
        for (std::size_t i = 0; i < k; ++i)
            out.push_back(from[idx[i]]);
    };
    std::vector<T> out;
    pick(native, take_a, out);
    pick(converted, take_b, out);
    for (std::size_t i = out.size(); i > 1; --i)
        std::swap(out[i - 1], out[std::size_t(r.below(i))]);
    return out;
}
inline std::vector<conversation> mix_dialogues(std::span<const conversation> native,
                                               std::span<const conversation> converted,
                                               double native_fraction, std::uint64_t seed) {
    return mix_native(native, converted, native_fraction, seed);
}
inline std::vector<dialogue_comparison>
mix_dialogue_comparisons(std::span<const dialogue_comparison> native,
                         std::span<const dialogue_comparison> converted, double native_fraction,
                         std::uint64_t seed) {
    return mix_native(native, converted, native_fraction, seed);
}

// ---- packing for dialogue SFT -----------------------------------------------------------------

// Formats every dialogue in at most T + 1 tokens (a row's inputs and targets); dialogues that
// cannot fit even after truncation are an error naming them.
inline std::vector<chat_tokens> format_dialogues(std::span<const conversation> ds,
                                                 const tokenizer& tok, const chat_format& fmt,
                                                 int T, std::string_view source = "dialogues") {
    std::vector<chat_tokens> out;
    out.reserve(ds.size());
    for (std::size_t i = 0; i < ds.size(); ++i) {
        try {
            out.push_back(fmt.format(tok, ds[i], {.max_tokens = T + 1}));
        } catch (const error& e) {
            detail::fail(source, ": dialogue ", i + 1, ": ", e.what());
        }
    }
    return out;
}

// Rows of T + 1 tokens holding whole formatted dialogues back to back, greedily in `order`, padded
// with `pad` (mask 0). mask[t] of a row says whether target t = tokens[t + 1] counts: the
// formatter's mask shifted by one, so the loss covers assistant content and its <|end|> only.
inline packed_rows pack_dialogues(std::span<const chat_tokens> ds, std::span<const int> order,
                                  int T, int pad) {
    GPTX_CHECK(T >= 2, "pack_dialogues: T must be >= 2, got ", T);
    packed_rows out;
    out.T = T;
    std::size_t used = 0;
    for (int idx : order) {
        const chat_tokens& d = ds[std::size_t(idx)];
        GPTX_CHECK(d.tokens.size() <= std::size_t(T) + 1, "pack_dialogues: dialogue ", idx + 1,
                   " has ", d.tokens.size(), " tokens; a row holds ", T + 1);
        if (out.rows() == 0 || used + d.tokens.size() > std::size_t(T) + 1) {
            out.tokens.resize(out.tokens.size() + std::size_t(T) + 1, pad);
            out.mask.resize(out.mask.size() + std::size_t(T), 0);
            used = 0;
        }
        const std::size_t row = std::size_t(out.rows() - 1);
        int* tok = out.tokens.data() + row * (std::size_t(T) + 1);
        std::uint8_t* m = out.mask.data() + row * std::size_t(T);
        for (std::size_t k = 0; k < d.tokens.size(); ++k) {
            tok[used + k] = d.tokens[k];
            if (used + k > 0)
                m[used + k - 1] = d.mask[k];
        }
        used += d.tokens.size();
    }
    return out;
}

} // namespace gptx
