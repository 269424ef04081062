// samples/instructgpt/labeling.hpp: the InstructGPT story's data work around the labeler: prompts
// as tokens, responses scored (the results table's numbers), ranked comparisons of K samples, the
// reward model's sequences and the demonstrations file. Used by `gptx pipeline` and
// samples/instructgpt_in_150_lines.cpp. Tested by tests/cli/test_sft_cli.cpp (pipeline --quick)
// and the story's test in samples/CMakeLists.txt.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <gptx/data/comparisons.hpp>
#include <gptx/data/sft.hpp>
#include <gptx/text/tokenizer.hpp>
#include <gptx/train/policy_eval.hpp>

#include "../tasks/tasks.hpp"

namespace gptx::instructgpt {

using namespace gptx::tasks;
namespace fs = std::filesystem;

// [end-of-text, prompt...]: every prompt follows an end-of-text, in SFT rows and at generation.
inline std::vector<std::vector<int>>
prompt_tokens(const tokenizer& tok, const std::vector<std::string>& prompts, int eot) {
    std::vector<std::vector<int>> out;
    for (const auto& p : prompts) {
        std::vector<int> t{eot};
        const auto ids = tok.encode(p, "prompt");
        t.insert(t.end(), ids.begin(), ids.end());
        out.push_back(std::move(t));
    }
    return out;
}

struct labelled {
    std::vector<double> scores;
    std::vector<bool> exact_each;           // the exact answer, ended
    double mean = 0, exact = 0, padded = 0; // mean score; fractions exact and ended, and padded
};
inline labelled label_responses(const std::vector<std::string>& prompts,
                                const std::vector<generation>& gen, const tokenizer& tok) {
    const labeler lab;
    labelled out;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        const task t = labeler::task_of_prompt(prompts[i]);
        const bool ended = gen[i].reason == stop_reason::end_of_text;
        const std::string r = tok.decode(gen[i].tokens);
        out.scores.push_back(lab.score(t, r, ended));
        out.mean += out.scores.back();
        out.exact_each.push_back(ended && r == t.answer);
        out.exact += out.exact_each.back() ? 1.0 : 0.0;
        out.padded += is_padded(r) ? 1.0 : 0.0;
    }
    out.mean /= double(prompts.size());
    out.exact /= double(prompts.size());
    out.padded /= double(prompts.size());
    return out;
}

inline std::vector<std::string> prompts_of(const std::vector<task>& ts) {
    std::vector<std::string> out;
    for (const auto& t : ts)
        out.push_back(task_prompt(t.instruction));
    return out;
}

// A labeler's ranking of (score, response) pairs: best first, in drawing order among equal
// scores; a response equal to one already kept, or scoring the same as the one before it (a
// tie has no order to learn), is dropped.
inline std::vector<std::string> rank_responses(std::vector<std::pair<double, std::string>> scored) {
    std::stable_sort(scored.begin(), scored.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<std::string> out;
    std::unordered_set<std::string> seen;
    double last = 0;
    for (auto& [s, r] : scored) {
        if ((!out.empty() && std::abs(s - last) < 1e-9) || seen.count(r))
            continue;
        seen.insert(r);
        out.push_back(std::move(r));
        last = s;
    }
    return out;
}

// Ranked comparisons as InstructGPT makes them: K responses for each prompt, ranked by the
// labeler, best first. The paper's comparisons rank outputs of several models; ours come from the
// SFT model at temperature 1 and, for the last `hot` of the K, at `hot_temperature`: a more
// exploratory policy whose mistakes (on tasks SFT nearly always gets right, too) are the ones PPO
// will try, so the RM has seen them ranked. Duplicates and ties are dropped (a tie has no order
// to learn); prompts left with fewer than two responses are skipped.
template <class Model>
std::vector<comparison> make_comparisons(const Model& sft, const tokenizer& tok,
                                         const std::vector<std::string>& prompts, int K,
                                         int max_new, int eot, std::uint64_t seed, int hot = 0,
                                         float hot_temperature = 1.0f) {
    const auto tokens = prompt_tokens(tok, prompts, eot);
    // gen[k][i]: response k to prompt i.
    std::vector<std::vector<generation>> gen;
    for (int k = 0; k < K; ++k) {
        const float t = k >= K - hot ? hot_temperature : 1.0f;
        gen.push_back(sample_responses(sft, tokens, max_new,
                                       {t, 0, 1.0f, mix64(seed + std::uint64_t(k))}, eot));
    }
    const labeler lab;
    std::vector<comparison> out;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        const task t = labeler::task_of_prompt(prompts[i]);
        std::vector<std::pair<double, std::string>> scored;
        for (int k = 0; k < K; ++k) {
            const auto& g = gen[std::size_t(k)][i];
            scored.emplace_back(
                lab.score(t, tok.decode(g.tokens), g.reason == stop_reason::end_of_text),
                tok.decode(g.tokens));
        }
        comparison c{prompts[i], rank_responses(std::move(scored)), 0};
        if (c.responses.size() >= 2)
            out.push_back(std::move(c));
    }
    return out;
}

inline void write_comparisons(const fs::path& file, const std::vector<comparison>& cs) {
    std::vector<std::string> lines;
    for (const auto& c : cs)
        lines.push_back(nlohmann::json{{"prompt", c.prompt}, {"responses", c.responses}}.dump());
    gptx::detail::write_lines_atomically(file, lines);
}

// Reward-model sequences: [end-of-text, prompt, response, end-of-text], as PPO scores them.
inline tokenized_comparisons tokenize_for_rm(const std::vector<comparison>& cs,
                                             const tokenizer& tok, int eot, int context) {
    tokenized_comparisons out;
    for (const auto& c : cs) {
        const std::vector<int> p = prompt_tokens(tok, {c.prompt}, eot)[0];
        ranked_sequences g;
        for (const auto& r : c.responses) {
            bool cut = false;
            g.responses.push_back(
                reward_sequence(p, tok.encode(r, "response"), eot, context, &cut));
            out.truncated += cut;
        }
        out.groups.push_back(std::move(g));
    }
    return out;
}

// Demonstrations of the tasks, a `padded` fraction of them trailed by padding that keeps them
// within `max_chars` (the sampler's cap, so the SFT model can reproduce every one).
inline void write_demonstrations_jsonl(const fs::path& file, const std::vector<task>& ts,
                                       double padded, std::size_t max_chars, std::uint64_t seed) {
    rng r(seed);
    std::vector<sft_example> ex;
    for (const auto& t : ts)
        ex.push_back({task_prompt(t.instruction), demonstration_response(t, r, padded, max_chars)});
    write_sft_jsonl(file, ex);
}

} // namespace gptx::instructgpt
