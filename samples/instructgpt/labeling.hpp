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
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <gptx/core/stats.hpp>
#include <gptx/data/comparisons.hpp>
#include <gptx/data/sft.hpp>
#include <gptx/text/tokenizer.hpp>
#include <gptx/train/policy_eval.hpp>
#include <gptx/train/reward_objective.hpp>

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

// Best of n, as Gao et al. (2022) measure over-optimisation without RL: of the first n of a
// prompt's samples, the one the RM scores highest (and, as the ceiling, the one the labeler
// scores highest) is judged by the labeler against the base model's single sample. Best of n is
// log n - (n-1)/n nats of KL from the sampler, so the curve shows what the RM's ranking is worth
// before any optimiser can exploit it. gold[i][k], exact[i][k], rm[i][k]: sample k of prompt i.
struct best_of_n_curve {
    std::vector<int> n;
    std::vector<win_rate> by_rm, by_labeler;
    std::vector<double> exact_by_rm; // share of the RM's picks that are exact
    static double kl(int n) { return std::log(double(n)) - double(n - 1) / double(n); }
};
inline best_of_n_curve best_of_n(const std::vector<std::vector<double>>& gold,
                                 const std::vector<std::vector<bool>>& exact,
                                 const std::vector<std::vector<float>>& rm,
                                 const std::vector<double>& base, const std::vector<int>& ns) {
    GPTX_CHECK(gold.size() == base.size() && exact.size() == base.size() &&
                   rm.size() == base.size(),
               "best_of_n: ", gold.size(), " labelled, ", rm.size(), " scored, ", base.size(),
               " base samples");
    best_of_n_curve c;
    for (int n : ns) {
        win_rate by_rm, by_lab;
        double ex = 0;
        for (std::size_t i = 0; i < base.size(); ++i) {
            GPTX_CHECK(n >= 1 && std::size_t(n) <= gold[i].size() && gold[i].size() == rm[i].size(),
                       "best_of_n: prompt ", i, " has ", gold[i].size(), " samples, n is ", n);
            std::size_t pick = 0;
            double top = gold[i][0];
            for (std::size_t k = 1; k < std::size_t(n); ++k) {
                if (rm[i][k] > rm[i][pick])
                    pick = k;
                top = std::max(top, gold[i][k]);
            }
            by_rm.add(gold[i][pick], base[i]);
            by_lab.add(top, base[i]);
            ex += exact[i][pick] ? 1 : 0;
        }
        c.n.push_back(n);
        c.by_rm.push_back(by_rm);
        c.by_labeler.push_back(by_lab);
        c.exact_by_rm.push_back(ex / double(std::max<std::size_t>(1, base.size())));
    }
    return c;
}

// "n: RM win% (exact%), labeler win%" for each n of the curve, for the printed diagnosis.
inline std::string describe(const best_of_n_curve& c) {
    std::string out;
    char b[160];
    for (std::size_t j = 0; j < c.n.size(); ++j) {
        const auto r = c.by_rm[j].rate(), l = c.by_labeler[j].rate();
        std::snprintf(b, sizeof b,
                      "%sn=%d (KL %.2f): RM %.1f%% [%.1f, %.1f] (exact %.1f%%), labeler %.1f%%",
                      j ? "; " : "", c.n[j], best_of_n_curve::kl(c.n[j]), 100 * r.p, 100 * r.low,
                      100 * r.high, 100 * c.exact_by_rm[j], 100 * l.p);
        out += b;
    }
    return out;
}

// {"n": [...], "kl": [...], "rm_win_rate": [...], "rm_win_rate_ci": [[lo, hi]...], "rm_exact":
// [...], "labeler_win_rate": [...]}: the curve for `gptx pipeline --json`.
inline nlohmann::json bon_json(const best_of_n_curve& c) {
    nlohmann::json j{{"n", c.n}, {"rm_exact", c.exact_by_rm}};
    for (std::size_t k = 0; k < c.n.size(); ++k) {
        const auto r = c.by_rm[k].rate();
        j["kl"].push_back(best_of_n_curve::kl(c.n[k]));
        j["rm_win_rate"].push_back(r.p);
        j["rm_win_rate_ci"].push_back({r.low, r.high});
        j["labeler_win_rate"].push_back(c.by_labeler[k].rate().p);
    }
    return j;
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
            int start = 0;
            g.responses.push_back(
                reward_sequence(p, tok.encode(r, "response"), eot, context, &cut, &start));
            g.starts.push_back(start);
            out.truncated += cut;
        }
        out.groups.push_back(std::move(g));
    }
    return out;
}

// An instruction's kind: its first word (add, first, last, length, reverse, sort, uppercase).
inline std::string instruction_kind(std::string_view instruction) {
    return std::string(instruction.substr(0, instruction.find(' ')));
}

// Pairwise accuracy per kind of instruction (its first word: add, first, uppercase, ...; the
// by-kind table's names) from pair_outcomes over `cmp`, whose groups give their pairs in order:
// which answers a reward judges and which it cannot.
using kind_accuracy = std::map<std::string, pair_counts>;
inline kind_accuracy accuracy_by_kind(std::span<const double> outcomes,
                                      const tokenized_comparisons& cmp, const tokenizer& tok) {
    kind_accuracy by;
    std::size_t i = 0;
    for (const auto& g : cmp.groups) {
        const auto& seq = g.responses.front(); // end-of-text, prompt, response, ...
        const std::string ins =
            labeler::task_of_prompt(
                tok.decode(std::vector<int>(seq.begin() + 1, seq.begin() + g.starts.front())))
                .instruction;
        pair_counts& c = by[instruction_kind(ins)];
        for (std::size_t n = g.responses.size() * (g.responses.size() - 1) / 2; n > 0; --n) {
            GPTX_CHECK(i < outcomes.size(), "accuracy by kind: ", outcomes.size(),
                       " outcomes for more pairs");
            c.correct += outcomes[i++];
            ++c.pairs;
        }
    }
    GPTX_CHECK(i == outcomes.size(), "accuracy by kind: ", outcomes.size(), " outcomes for ", i,
               " pairs");
    return by;
}
// "add 52% (310), first 97% (12), ...": accuracy and pairs per kind, for the printed diagnosis.
inline std::string describe(const kind_accuracy& by) {
    std::string s;
    for (const auto& [kind, c] : by)
        s += (s.empty() ? "" : ", ") + kind + " " +
             std::to_string(int(std::lround(100 * c.accuracy()))) + "% (" +
             std::to_string(c.pairs) + ")";
    return s;
}
// {"add": {"accuracy": 0.52, "pairs": 310}, ...} for `gptx pipeline --json`.
inline nlohmann::json to_json(const kind_accuracy& by) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [kind, c] : by)
        j[kind] = {{"accuracy", c.accuracy()}, {"pairs", c.pairs}};
    return j;
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
