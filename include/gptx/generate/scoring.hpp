// gptx/generate/scoring.hpp: scoring completions by log-likelihood (multiple choice: total,
// per-token, and GPT-3's normalisation by the unconditional probability), greedy answers with
// exact match, and Wilson intervals for accuracies. Tested by tests/generate/test_scoring.cpp.
// Legend: B candidates, T time, C channels, V vocab.
#pragma once
#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../nn/lm_head.hpp"
#include "generate.hpp"

namespace gptx {

struct completion_score {
    double logprob = 0; // sum over the completion's tokens of log p(token | everything before)
    int tokens = 0;
};

// log p(completion_i | context) for every completion, by one forward of B = #completions rows
// (context + completion, padded). When a row exceeds the model's context the context loses its
// beginning; the completion is always scored whole. Runs in eval mode (no dropout).
template <class Model>
std::vector<completion_score> score_completions(Model& m, std::span<const int> context,
                                                const std::vector<std::vector<int>>& completions) {
    using T = typename Model::value_type;
    const int B = int(completions.size()), ctx = m.context();
    GPTX_CHECK(B > 0, "scoring: no completions");
    GPTX_CHECK(!context.empty(),
               "scoring: the context is empty (nothing predicts the first token)");
    std::vector<int> keep(B), len(B);
    int Tn = 0;
    for (int b = 0; b < B; ++b) {
        const int n = int(completions[b].size());
        GPTX_CHECK(n > 0, "scoring: completion ", b, " is empty");
        GPTX_CHECK(n < ctx, "scoring: completion ", b, " has ", n,
                   " tokens; the model's context of ", ctx, " leaves no room for a context");
        keep[b] = std::min(int(context.size()), ctx - n);
        len[b] = keep[b] + n;
        Tn = std::max(Tn, len[b]);
    }
    std::vector<int> tokens(std::size_t(B) * Tn, context.back());
    for (int b = 0; b < B; ++b) {
        int* row = tokens.data() + std::size_t(b) * Tn;
        std::copy(context.end() - keep[b], context.end(), row);
        std::copy(completions[b].begin(), completions[b].end(), row + keep[b]);
    }
    const bool was = m.training();
    m.set_training(false);
    m.forward(tokens.data(), B, Tn);
    m.set_training(was);
    // Every completion token at once: the row that predicts it and the token.
    std::vector<int> rows, chosen;
    for (int b = 0; b < B; ++b)
        for (int i = 0; i < int(completions[b].size()); ++i) {
            rows.push_back(b * Tn + keep[b] + i - 1);
            chosen.push_back(completions[b][i]);
        }
    std::vector<T> logp(rows.size());
    lm_head<Model> head;
    head.chosen_logprobs(m, rows.data(), chosen.data(), int(rows.size()), logp.data());
    std::vector<completion_score> out(B);
    std::size_t at = 0;
    for (int b = 0; b < B; ++b) {
        out[b].tokens = int(completions[b].size());
        for (int i = 0; i < out[b].tokens; ++i)
            out[b].logprob += double(logp[at++]);
    }
    return out;
}

// GPT-3's multiple-choice rules: the total log-likelihood, the per-token average, and
// log p(completion | context) - log p(completion | answer context) (e.g. "Answer:").
enum class scoring_rule { total, per_token, unconditional };
inline constexpr scoring_rule all_scoring_rules[] = {scoring_rule::total, scoring_rule::per_token,
                                                     scoring_rule::unconditional};
inline std::string_view to_string(scoring_rule r) {
    switch (r) {
    case scoring_rule::total:
        return "total";
    case scoring_rule::per_token:
        return "per-token";
    case scoring_rule::unconditional:
        return "unconditional";
    }
    return "?";
}

struct choice_scores {
    std::vector<completion_score> conditional;   // given the task context
    std::vector<completion_score> unconditional; // given the answer context only
};

template <class Model>
choice_scores score_choices(Model& m, std::span<const int> context,
                            const std::vector<std::vector<int>>& choices,
                            std::span<const int> answer_context) {
    return {score_completions(m, context, choices), score_completions(m, answer_context, choices)};
}

// The index of the best choice under `rule` (ties: the first).
inline int pick_choice(const choice_scores& s, scoring_rule rule) {
    int best = 0;
    double best_v = -std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < s.conditional.size(); ++i) {
        const auto& c = s.conditional[i];
        double v = c.logprob;
        if (rule == scoring_rule::per_token)
            v /= c.tokens;
        else if (rule == scoring_rule::unconditional)
            v -= s.unconditional.at(i).logprob;
        if (v > best_v) {
            best_v = v;
            best = int(i);
        }
    }
    return best;
}

// The greedy continuation of prompt, cut at the first stop string, within the model's context.
template <class Model>
std::string greedy_answer(const Model& m, const std::vector<int>& prompt, int max_new_tokens,
                          const std::vector<std::string>& stop_strings,
                          std::function<std::string(std::span<const int>)> decode) {
    GPTX_CHECK(int(prompt.size()) < m.context(), "greedy answer: the prompt of ", prompt.size(),
               " tokens leaves no room in the model's context of ", m.context());
    generate_options opt;
    opt.stop_strings = stop_strings;
    opt.decode = std::move(decode);
    // The cache spans the whole context (written when generate refused a cache shorter than its
    // prefill chunk; fixed since in 3c7bad6); the cap below keeps the window from ever sliding.
    opt.slide_context = true;
    sampling_config greedy;
    greedy.temperature = 0.0f;
    const int n = std::min(max_new_tokens, m.context() - int(prompt.size()));
    return generate(m, prompt, n, greedy, opt).text;
}

// Exact match after trimming surrounding whitespace.
inline bool exact_match(std::string_view answer, std::string_view expected) {
    auto trim = [](std::string_view s) {
        while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
            s.remove_prefix(1);
        while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
            s.remove_suffix(1);
        return s;
    };
    return trim(answer) == trim(expected);
}

// The Wilson score interval for `successes` of n at normal quantile z (1.96: 95%).
inline std::pair<double, double> wilson_interval(int successes, int n, double z = 1.96) {
    if (n <= 0)
        return {0.0, 1.0};
    const double p = double(successes) / n, z2 = z * z;
    const double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
    const double half = z * std::sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / (1 + z2 / n);
    return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

} // namespace gptx
