// Tests for gptx/generate/scoring.hpp and gptx/data/prompts.hpp: candidate scores against a
// brute-force sum of token log-probabilities (one full forward per token), the three
// multiple-choice rules, greedy answers with stop strings, Wilson intervals, and few-shot
// packing that never exceeds the context and keeps the test input whole.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <string>
#include <vector>

#include <gptx/data/prompts.hpp>
#include <gptx/generate/scoring.hpp>
#include <gptx/nn/lm_head.hpp>
#include <gptx/nn/transformer.hpp>

#include "support/shapes.hpp"

using namespace gptx;

namespace {
using test::shapes::small_post;
using test::shapes::small_pre;

// log p(seq[i] | seq[0..i)) summed over i in [from, seq.size()), each by its own full forward.
template <class M> double brute_logprob(M& m, const std::vector<int>& seq, std::size_t from) {
    double total = 0;
    const int V = m.vocab();
    std::vector<double> logits(V);
    for (std::size_t i = from; i < seq.size(); ++i) {
        const double* h = m.forward(seq.data(), 1, int(i));
        const double* last = h + (i - 1) * M::C;
        const double* wte = m.param(p_wte);
        double mx = -1e300;
        for (int v = 0; v < V; ++v) {
            double s = 0;
            for (int c = 0; c < M::C; ++c)
                s += last[c] * wte[std::size_t(v) * M::C + c];
            logits[v] = s;
            mx = std::max(mx, s);
        }
        double z = 0;
        for (int v = 0; v < V; ++v)
            z += std::exp(logits[v] - mx);
        total += logits[seq[i]] - mx - std::log(z);
    }
    return total;
}

template <shape S> void check_against_brute_force() {
    transformer<S, double> m({11, 12});
    m.init(5);
    m.set_dropout(0.2f); // scoring must switch it off
    const std::vector<int> ctx{1, 2, 3, 4};
    const std::vector<std::vector<int>> comps{{5}, {6, 7, 8}, {9, 10}};
    const auto scores = score_completions(m, ctx, comps);
    BOOST_TEST(m.training()); // restored
    m.set_training(false);
    for (std::size_t b = 0; b < comps.size(); ++b) {
        std::vector<int> seq = ctx;
        seq.insert(seq.end(), comps[b].begin(), comps[b].end());
        const double want = brute_logprob(m, seq, ctx.size());
        BOOST_TEST(scores[b].logprob == want, boost::test_tools::tolerance(1e-10));
        BOOST_TEST(scores[b].tokens == int(comps[b].size()));
    }
    // A context too long for the window loses its beginning; the completion stays whole.
    const std::vector<int> long_ctx{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2};
    const auto cut = score_completions(m, long_ctx, {{3, 4, 5}});
    std::vector<int> seq(long_ctx.end() - 9, long_ctx.end());
    seq.insert(seq.end(), {3, 4, 5});
    BOOST_TEST(cut[0].logprob == brute_logprob(m, seq, 9), boost::test_tools::tolerance(1e-10));
}
} // namespace

BOOST_AUTO_TEST_SUITE(scoring)

BOOST_AUTO_TEST_CASE(candidate_scores_match_brute_force) {
    check_against_brute_force<small_pre>();
    check_against_brute_force<small_post>();
}

BOOST_AUTO_TEST_CASE(scoring_rules_pick_differently) {
    choice_scores s;
    s.conditional = {{-3.0, 1}, {-4.0, 4}, {-3.5, 2}};
    s.unconditional = {{-2.9, 1}, {-1.0, 4}, {-0.5, 2}};
    BOOST_TEST(pick_choice(s, scoring_rule::total) == 0);         // -3 is the largest
    BOOST_TEST(pick_choice(s, scoring_rule::per_token) == 1);     // -1 per token
    BOOST_TEST(pick_choice(s, scoring_rule::unconditional) == 0); // -0.1 vs -3 vs -3
    s.unconditional = {{-1.0, 1}, {-1.0, 4}, {-0.1, 2}};
    BOOST_TEST(pick_choice(s, scoring_rule::unconditional) == 0); // -2, -3, -3.4
    s.unconditional = {{-0.5, 1}, {-1.9, 4}, {-0.1, 2}};
    BOOST_TEST(pick_choice(s, scoring_rule::unconditional) == 1); // -2.5, -2.1, -3.4
}

BOOST_AUTO_TEST_CASE(score_choices_uses_the_answer_context) {
    transformer<small_pre, double> m({11, 12});
    m.init(9);
    const std::vector<int> ctx{1, 2, 3}, answer{4};
    const std::vector<std::vector<int>> choices{{5, 6}, {7}};
    const auto s = score_choices(m, ctx, choices, answer);
    const auto u = score_completions(m, answer, choices);
    for (int i = 0; i < 2; ++i)
        BOOST_TEST(s.unconditional[i].logprob == u[i].logprob);
    BOOST_CHECK_THROW(score_completions(m, std::vector<int>{}, choices), error);
    BOOST_CHECK_THROW(score_completions(m, ctx, {{}}), error);
}

BOOST_AUTO_TEST_CASE(greedy_answer_stops_at_the_stop_string_and_exact_match_trims) {
    transformer<small_pre> m({11, 64}); // a short prompt + answer in a long context
    m.init(3);
    auto decode = [](std::span<const int> ids) {
        std::string s;
        for (int id : ids)
            s += id == 10 ? '\n' : char('a' + id);
        return s;
    };
    const std::string full = greedy_answer(m, {1, 2}, 10, {}, decode);
    const std::string cut = greedy_answer(m, {1, 2}, 10, {"\n"}, decode);
    BOOST_TEST(full.substr(0, cut.size()) == cut);
    BOOST_TEST(cut.find('\n') == std::string::npos);
    // The answer stops at the context: a 60-token prompt leaves room for 4.
    BOOST_TEST(greedy_answer(m, std::vector<int>(60, 1), 10, {}, decode).size() <= 4u);
    BOOST_TEST(exact_match("  cba\n", "cba"));
    BOOST_TEST(!exact_match("cb", "cba"));
}

BOOST_AUTO_TEST_CASE(wilson_interval_values) {
    // 8 of 10: the textbook 95% interval [0.490, 0.943].
    const auto [lo, hi] = wilson_interval(8, 10);
    BOOST_TEST(lo == 0.4902, boost::test_tools::tolerance(1e-3));
    BOOST_TEST(hi == 0.9433, boost::test_tools::tolerance(1e-3));
    const auto [z0, z1] = wilson_interval(0, 20);
    BOOST_TEST(z0 == 0.0);
    BOOST_TEST(z1 > 0.1);
    BOOST_TEST(z1 < 0.2);
}

BOOST_AUTO_TEST_CASE(prompt_formats_write_the_task_into_the_text) {
    const auto eq = named_prompt_format("equals");
    BOOST_TEST(eq.demonstration("cheese", "fromage") == "cheese = fromage");
    BOOST_TEST(eq.query("dog") == "dog = ");
    const auto qa = named_prompt_format("qa");
    BOOST_TEST(qa.demonstration("who?", "me") == "Q: who?\nA: me");
    BOOST_TEST(named_prompt_format("tldr").query("long text") == "long text\nTL;DR: ");
    BOOST_CHECK_THROW(named_prompt_format("nope"), error);
}

BOOST_AUTO_TEST_CASE(few_shot_packing_fits_and_keeps_the_input_whole) {
    rng r(11);
    const std::vector<int> delim{0};
    for (int trial = 0; trial < 300; ++trial) {
        const int n_train = 5 + int(r.below(20));
        const int k = int(r.below(std::uint64_t(n_train)));
        std::vector<std::vector<int>> train(n_train);
        for (auto& d : train)
            d.assign(1 + r.below(12), 7);
        const auto idx = draw_demonstrations(r, n_train, k, int(r.below(n_train)));
        BOOST_REQUIRE(int(idx.size()) == k);
        std::vector<std::vector<int>> demos;
        for (int i : idx)
            demos.push_back(train[i]);
        std::vector<int> desc(r.below(4), 3), query(1 + r.below(10), 9);
        const int budget = int(query.size() + desc.size() + 1 + r.below(60));
        const auto p = pack_few_shot(desc, demos, delim, query, budget);
        BOOST_TEST(int(p.tokens.size()) <= budget);
        BOOST_TEST(p.demonstrations <= k);
        BOOST_TEST(p.tokens.size() - p.query_at == query.size());
        BOOST_TEST(std::equal(query.begin(), query.end(), p.tokens.begin() + p.query_at));
        // Maximal: the next demonstration would not have fitted.
        if (p.demonstrations < k)
            BOOST_TEST(p.tokens.size() + demos[p.demonstrations].size() + 1 > std::size_t(budget));
    }
    // Exact layout: description, demos and the input joined by the delimiter.
    const auto p =
        pack_few_shot(std::vector<int>{1}, {{2, 2}, {3}}, delim, std::vector<int>{4, 5}, 100);
    BOOST_TEST(p.tokens == (std::vector<int>{1, 0, 2, 2, 0, 3, 0, 4, 5}),
               boost::test_tools::per_element());
    BOOST_TEST(p.demonstrations == 2);
    // The input must fit whole.
    BOOST_CHECK_THROW(pack_few_shot({}, {}, delim, std::vector<int>(20, 1), 19), error);
    // Demonstrations are distinct and avoid the excluded one.
    rng r2(3);
    const auto all = draw_demonstrations(r2, 6, 5, 2);
    std::vector<int> sorted = all;
    std::sort(sorted.begin(), sorted.end());
    BOOST_TEST(sorted == (std::vector<int>{0, 1, 3, 4, 5}), boost::test_tools::per_element());
    BOOST_CHECK_THROW(draw_demonstrations(r2, 6, 6, 2), error);
}

BOOST_AUTO_TEST_SUITE_END()
