// gptx/data/comparisons.hpp: reward-model comparisons, pairwise {"prompt","chosen","rejected"} and
// ranked {"prompt","responses":[best, ..., worst]} JSONL, and their token sequences.
// Tested by tests/train/test_reward.cpp.
#pragma once
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../core/file.hpp"
#include "../core/rng.hpp"
#include "../text/tokenizer.hpp"

namespace gptx {

// InstructGPT's labelers ranked K = 4..9 responses; a pair is K = 2.
inline constexpr int min_ranked_responses = 2, max_ranked_responses = 9;

// One prompt and its K responses, best first: every (i < j) is a pair "i preferred over j".
struct comparison {
    std::string prompt;
    std::vector<std::string> responses;
    int line = 0; // 1-based line of its JSONL file, for error messages (0: not from a file)
};

// Parses JSONL text (`name` is the file named in errors). Blank lines are skipped and unknown
// keys ignored. A bad line is an error "name:line: what is wrong". Responses of a line must be
// distinct: a tie has no order to learn (deduplicate sampled responses before ranking them).
inline std::vector<comparison> parse_comparisons(std::string_view text, std::string_view name) {
    std::vector<comparison> out;
    std::size_t pos = 0;
    int line_no = 0;
    while (pos <= text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos)
            end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (line.find_first_not_of(" \t") == std::string_view::npos) {
            if (end == text.size())
                break;
            continue;
        }
        auto bad = [&](const auto&... why) { detail::fail(name, ":", line_no, ": ", why...); };
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) { // parse_error, or out_of_range (1e999)
            std::string msg = e.what();
            if (const auto k = msg.find("] ");
                msg.rfind("[json.exception", 0) == 0 && k != msg.npos)
                msg = msg.substr(k + 2);
            bad("invalid JSON (", msg, ")");
        }
        if (!j.is_object())
            bad("expected a JSON object, got ", j.type_name());
        auto text_of = [&](const nlohmann::json& v, const std::string& key) {
            if (!v.is_string())
                bad("\"", key, "\" must be a string, got ", v.type_name());
            return v.get<std::string>();
        };
        comparison c;
        c.line = line_no;
        if (!j.contains("prompt"))
            bad("missing \"prompt\"");
        c.prompt = text_of(j["prompt"], "prompt");
        const bool pairwise = j.contains("chosen") || j.contains("rejected");
        if (pairwise && j.contains("responses"))
            bad("has both \"chosen\"/\"rejected\" and \"responses\" (use one format per line)");
        if (pairwise) {
            if (!j.contains("chosen"))
                bad("missing \"chosen\" (a pairwise line needs both)");
            if (!j.contains("rejected"))
                bad("missing \"rejected\" (a pairwise line needs both)");
            c.responses = {text_of(j["chosen"], "chosen"), text_of(j["rejected"], "rejected")};
        } else {
            if (!j.contains("responses"))
                bad("missing \"chosen\"/\"rejected\" or \"responses\" (a ranked list, best first)");
            const auto& r = j["responses"];
            if (!r.is_array())
                bad("\"responses\" must be an array, got ", r.type_name());
            if (r.size() < std::size_t(min_ranked_responses) ||
                r.size() > std::size_t(max_ranked_responses))
                bad("\"responses\" has ", r.size(), " entries; need ", min_ranked_responses, " to ",
                    max_ranked_responses);
            for (std::size_t i = 0; i < r.size(); ++i)
                c.responses.push_back(text_of(r[i], "responses[" + std::to_string(i) + "]"));
        }
        for (std::size_t i = 0; i < c.responses.size(); ++i)
            for (std::size_t k = i + 1; k < c.responses.size(); ++k)
                if (c.responses[i] == c.responses[k])
                    bad("responses ", i, " and ", k,
                        " are identical (a tie cannot be ranked; deduplicate first)");
        out.push_back(std::move(c));
        if (end == text.size())
            break;
    }
    GPTX_CHECK(!out.empty(), name, ": no comparisons (every line is blank)");
    return out;
}

inline std::vector<comparison> read_comparisons(const std::filesystem::path& file) {
    return parse_comparisons(read_text_file(file), file.string());
}

// Pairs a list of comparisons holds: sum over prompts of C(K, 2).
inline std::size_t count_pairs(const std::vector<comparison>& cs) {
    std::size_t n = 0;
    for (const auto& c : cs)
        n += c.responses.size() * (c.responses.size() - 1) / 2;
    return n;
}

// The sequence a reward model scores: prefix, response, end_of_text, where prefix is everything
// before the response: in gptx's layout (SFT's, and what generation is prompted with) the
// end-of-text that starts a prompt, then the prompt's tokens (reward_prefix). The reward is read
// at the final end-of-text (see nn/reward_model.hpp). A sequence longer than `context` keeps its
// first token (the leading end-of-text) and its last context - 1 tokens: the prompt loses its
// start, the response and the closing end-of-text survive. *truncated reports it, and *start
// where the response begins after truncation (at least 1: the leading end-of-text stays).
inline std::vector<int> reward_sequence(const std::vector<int>& prefix,
                                        const std::vector<int>& response, int end_of_text,
                                        int context, bool* truncated = nullptr,
                                        int* start = nullptr) {
    GPTX_CHECK(context >= 2, "reward_sequence: context must be at least 2, got ", context);
    GPTX_CHECK(end_of_text >= 0, "reward_sequence: end-of-text id must be >= 0, got ", end_of_text);
    std::vector<int> seq;
    seq.reserve(prefix.size() + response.size() + 1);
    seq.insert(seq.end(), prefix.begin(), prefix.end());
    seq.insert(seq.end(), response.begin(), response.end());
    seq.push_back(end_of_text);
    const bool cut = seq.size() > std::size_t(context);
    if (cut)
        seq.erase(seq.begin() + 1, seq.end() - (context - 1));
    if (truncated)
        *truncated = cut;
    if (start) {
        // Truncation removes tokens after the first: the prefix loses that many.
        const std::size_t removed = prefix.size() + response.size() + 1 - seq.size();
        *start =
            int(std::max<std::size_t>(1, prefix.size() > removed ? prefix.size() - removed : 1));
    }
    return seq;
}

// The prefix of a prompt: end-of-text, then the prompt's tokens (as SFT and generation see it).
inline std::vector<int> reward_prefix(const tokenizer& tok, std::string_view prompt,
                                      int end_of_text) {
    std::vector<int> p{end_of_text};
    const std::vector<int> ids = tok.encode(prompt, "prompt");
    p.insert(p.end(), ids.begin(), ids.end());
    return p;
}

// The K token sequences of one prompt, best first, each ending with end-of-text. starts[k], when
// filled (tokenize_comparisons does), is where response k begins in its sequence: the prefix's
// length after any truncation (at least 1: the leading end-of-text always stays).
struct ranked_sequences {
    std::vector<std::vector<int>> responses;
    std::vector<int> starts;
};

struct tokenized_comparisons {
    std::vector<ranked_sequences> groups;
    std::size_t truncated = 0; // sequences that lost tokens to the context
    std::size_t pairs() const {
        std::size_t n = 0;
        for (const auto& g : groups)
            n += g.responses.size() * (g.responses.size() - 1) / 2;
        return n;
    }
};

// Encodes every comparison with reward_sequence(reward_prefix(prompt), response). `name` is the
// file named in errors (a character the tokenizer does not know, an end-of-text id outside its
// vocabulary).
inline tokenized_comparisons tokenize_comparisons(const std::vector<comparison>& cs,
                                                  const tokenizer& tok, int end_of_text,
                                                  int context, std::string_view name) {
    tokenized_comparisons out;
    out.groups.reserve(cs.size());
    for (const auto& c : cs) {
        try {
            const std::vector<int> prompt = reward_prefix(tok, c.prompt, end_of_text);
            ranked_sequences g;
            for (std::size_t i = 0; i < c.responses.size(); ++i) {
                bool cut = false;
                int start = 0;
                const std::string what = "response " + std::to_string(i);
                g.responses.push_back(reward_sequence(prompt, tok.encode(c.responses[i], what),
                                                      end_of_text, context, &cut, &start));
                g.starts.push_back(start);
                out.truncated += cut;
            }
            out.groups.push_back(std::move(g));
        } catch (const error& e) {
            detail::fail(name, ":", c.line, ": ", e.what());
        }
    }
    return out;
}

// A bootstrap resample: as many groups as `cs`, drawn uniformly with replacement (a group is one
// prompt's ranking, so its pairs stay together). Members of a reward-model ensemble trained on
// different resamples differ in their data, not only in their seed (Lakshminarayanan et al. 2017
// found seeds alone enough for image classifiers; here members sharing their comparisons share
// more of their errors: docs/pipeline.md).
inline tokenized_comparisons bootstrap_resample(const tokenized_comparisons& cs,
                                                std::uint64_t seed) {
    tokenized_comparisons out;
    out.groups.reserve(cs.groups.size());
    rng r(mix64(seed ^ 0xb0075ea9));
    for (std::size_t i = 0; i < cs.groups.size(); ++i)
        out.groups.push_back(cs.groups[r.below(cs.groups.size())]);
    return out;
}

} // namespace gptx
