// samples/tasks/dialogue_tasks.hpp: multi-turn dialogues of the task family whose later turns
// refer to earlier ones, their generator, and the labeler that reads them (the ChatGPT stage's
// data and judge). Sample code, not the library. Tested by tests/data/test_dialogue.cpp.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <gptx/core/error.hpp>
#include <gptx/core/rng.hpp>
#include <gptx/data/dialogue.hpp>

#include "tasks.hpp"

namespace gptx::tasks {

// ---- the dialogue task family -----------------------------------------------------------------
// Turns of the family (words are lowercase):
//   "reverse kopa"                         an instruction of the task family (tasks.hpp)
//   "now do the same to tiba"              the last operation on a new word
//   "now do the same to the second word"   the last operation on a word mentioned earlier
//   "now uppercase it"                     another operation on the last word
//   "same for tiba", "same for the second word"   compact forms of the two "same" turns
// The answer to a turn follows from the user messages alone, so model-written replies in the
// history never change what is correct.

namespace detail {
inline constexpr std::array<std::string_view, 5> dialogue_ops = {
    "reverse ", "uppercase ", "length of ", "first letter of ", "last letter of "};
inline constexpr std::array<std::string_view, 4> ordinals = {"first", "second", "third", "fourth"};

struct dialogue_state {
    std::vector<std::string> words; // mentioned, in order
    int op = -1;                    // the last operation
    std::string last_word;
};

inline std::optional<std::string> apply_op(int op, const std::string& word) {
    return solve_instruction(std::string(dialogue_ops[std::size_t(op)]) + word);
}

// Reads one user message, updates the state and returns the answer (nullopt: not of the family).
inline std::optional<std::string> dialogue_step(dialogue_state& s, std::string_view msg) {
    if (const auto ins = instruction_of_prompt(msg)) // converted InstructGPT prompts
        msg = *ins;
    std::string longer;
    if (auto rest = after(msg, "same for ")) { // the compact phrasing
        longer = "now do the same to ";
        longer += *rest;
        msg = longer;
    }
    if (auto rest = after(msg, "now do the same to the ")) {
        for (std::size_t k = 0; k < ordinals.size(); ++k)
            if (*rest == std::string(ordinals[k]) + " word") {
                if (s.op < 0 || k >= s.words.size())
                    return std::nullopt;
                s.last_word = s.words[k];
                return apply_op(s.op, s.last_word);
            }
        return std::nullopt;
    }
    if (auto w = after(msg, "now do the same to "); w && all_lower(*w)) {
        if (s.op < 0)
            return std::nullopt;
        s.words.emplace_back(*w);
        s.last_word = std::string(*w);
        return apply_op(s.op, s.last_word);
    }
    if (auto rest = after(msg, "now ")) {
        for (std::size_t k = 0; k < dialogue_ops.size(); ++k)
            if (*rest == std::string(dialogue_ops[k]) + "it") {
                if (s.last_word.empty())
                    return std::nullopt;
                s.op = int(k);
                return apply_op(s.op, s.last_word);
            }
        return std::nullopt;
    }
    for (std::size_t k = 0; k < dialogue_ops.size(); ++k)
        if (auto w = after(msg, dialogue_ops[k]); w && all_lower(*w)) {
            s.op = int(k);
            s.words.emplace_back(*w);
            s.last_word = std::string(*w);
            return apply_op(s.op, s.last_word);
        }
    return std::nullopt;
}
} // namespace detail

// The correct answer to each user message of a conversation (nullopt where the message is not
// of the family), read from the user messages alone, as a labeler would.
inline std::vector<std::optional<std::string>> solve_dialogue(const conversation& c) {
    detail::dialogue_state s;
    std::vector<std::optional<std::string>> out;
    for (const auto& m : c)
        if (m.role == chat_role::user)
            out.push_back(detail::dialogue_step(s, m.content));
    return out;
}

// The labeler of dialogues: tasks.hpp's labeler applied to the answer of the last user
// message. `context` ends with the user message the response answers.
struct dialogue_labeler {
    static task task_of(const conversation& context) {
        GPTX_CHECK(!context.empty() && context.back().role == chat_role::user,
                   "dialogue labeler: the conversation must end with a user message");
        const auto answers = solve_dialogue(context);
        GPTX_CHECK(answers.back().has_value(), "dialogue labeler: '", context.back().content,
                   "' is not a turn of the dialogue task family");
        return {context.back().content, *answers.back()};
    }
    double score(const conversation& context, std::string_view response, bool ended) const {
        return labeler{}.score(task_of(context), response, ended);
    }
};

// A dialogue of the family with `exchanges` user messages (1..4), each answered correctly.
// compact: "same for tiba", "same for the second word" instead of "now do the same to ...", for
// small contexts.
inline conversation make_dialogue(rng& r, int exchanges, bool compact = false) {
    GPTX_CHECK(exchanges >= 1 && exchanges <= 4, "make_dialogue: exchanges must be 1..4, got ",
               exchanges);
    detail::dialogue_state s;
    conversation c;
    const std::string same = compact ? "same for " : "now do the same to ";
    auto word = [&] {
        for (;;) { // a word not mentioned yet, so ordinal references are unambiguous
            std::string w = detail::random_word(r, 3, 5);
            if (std::find(s.words.begin(), s.words.end(), w) == s.words.end())
                return w;
        }
    };
    for (int i = 0; i < exchanges; ++i) {
        std::string msg;
        const std::uint64_t kind = i == 0 ? 3 : r.below(10);
        if (kind < 3 && s.words.size() >= 2) { // an earlier word by its ordinal
            std::size_t k;
            do
                k = std::size_t(r.below(s.words.size()));
            while (s.words[k] == s.last_word);
            msg = same + "the " + std::string(detail::ordinals[k]) + " word";
        } else if (kind < 6 && i > 0) {
            msg = same + word();
        } else if (kind < 8 && i > 0) {
            int op;
            do
                op = int(r.below(detail::dialogue_ops.size()));
            while (op == s.op);
            msg = "now " + std::string(detail::dialogue_ops[std::size_t(op)]) + "it";
        } else {
            msg = std::string(detail::dialogue_ops[r.below(detail::dialogue_ops.size())]) + word();
        }
        const auto ans = detail::dialogue_step(s, msg);
        GPTX_CHECK(ans.has_value(), "make_dialogue: generated an unsolvable turn '", msg, "'");
        c.push_back({chat_role::user, msg});
        c.push_back({chat_role::assistant, *ans});
    }
    return c;
}

// n dialogues of min..max exchanges from seed, none of whose first user message is in `exclude`.
// `how` as for make_tasks: iid for training sets; distinct for held-out sets, where it means no
// whole conversation twice (two may open alike).
inline std::vector<conversation> make_dialogues(std::uint64_t seed, int n, int min_exchanges,
                                                int max_exchanges,
                                                const std::unordered_set<std::string>& exclude = {},
                                                bool compact = false, draws how = draws::distinct) {
    GPTX_CHECK(min_exchanges >= 1 && min_exchanges <= max_exchanges && max_exchanges <= 4,
               "make_dialogues: exchanges must satisfy 1 <= min <= max <= 4");
    rng r(seed);
    std::vector<conversation> out;
    std::unordered_set<std::string> seen;
    for (int tries = 0; int(out.size()) < n; ++tries) {
        GPTX_CHECK(tries < 100 * n + 1000, "make_dialogues: cannot find ", n, " dialogues outside ",
                   exclude.size(), " excluded openings");
        const int k =
            min_exchanges + int(r.below(std::uint64_t(max_exchanges - min_exchanges + 1)));
        conversation c = make_dialogue(r, k, compact);
        if (exclude.count(c[0].content))
            continue;
        if (how == draws::distinct) {
            std::string key;
            for (const auto& m : c)
                key += m.content + "\n";
            if (!seen.insert(key).second)
                continue;
        }
        out.push_back(std::move(c));
    }
    return out;
}

// The instruction stage's demonstrations or ranked comparisons (prompts "Q: <instruction>\nA: ")
// whose instruction is not in `openings`: what the dialogue stage may train on beside
// conversations held out by their first user message. Other prompts are kept.
template <class Example>
requires requires(const Example& x) { std::string_view(x.prompt); }
std::vector<Example> without_openings(std::vector<Example> xs,
                                      const std::unordered_set<std::string>& openings) {
    std::erase_if(xs, [&](const Example& x) {
        const auto ins = instruction_of_prompt(x.prompt);
        return ins && openings.contains(std::string(*ins));
    });
    return xs;
}

} // namespace gptx::tasks
