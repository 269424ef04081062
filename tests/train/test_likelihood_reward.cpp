// Tests for gptx/train/likelihood_reward.hpp: the response's mean log-likelihood against
// score_completions (an independent path: one forward per row, the context given apart) in
// double precision, the weighted sum with the base reward and the ablation without it, bad rows
// refused, and reward_fn_scorer ranking held-out comparisons as the reward model itself does.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <span>
#include <vector>

#include <gptx/generate/scoring.hpp>
#include <gptx/nn/reward_model.hpp>
#include <gptx/nn/transformer.hpp>
#include <gptx/train/likelihood_reward.hpp>
#include <gptx/train/ppo_trainer.hpp>
#include <gptx/train/reward_objective.hpp>

using namespace gptx;
namespace tt = boost::test_tools;

namespace {
constexpr shape s{16, 2, 2, norm::pre};
using model_t = transformer<s, double>;
constexpr int eot = 0;

model_t perturbed_model(std::uint64_t seed) {
    model_t m({9, 12});
    m.init(seed);
    rng r(seed + 1);
    for (std::size_t i = 0; i < m.params().size(); ++i)
        m.params().data()[i] += 0.1 * r.normal();
    return m;
}
} // namespace

BOOST_AUTO_TEST_SUITE(likelihood_reward)

BOOST_AUTO_TEST_CASE(mean_log_likelihood_matches_scoring_each_row_alone) {
    model_t m = perturbed_model(3);
    // Rows as the rollouts pass them: end-of-text, prompt, response, end-of-text, padding.
    // Row 0: prompt {3, 4}, response {5, 6} (start 3, end 5); row 1: prompt {7}, response {2}
    // (start 2, end 3).
    const int B = 2, T = 7;
    const std::vector<int> tokens{0, 3, 4, 5, 6, 0, 0, //
                                  0, 7, 2, 0, 0, 0, 0};
    const std::vector<int> starts{3, 2}, ends{5, 3};
    response_likelihood<model_t> like(m);
    const auto ll = like(tokens.data(), B, T, ends.data(), starts.data());
    BOOST_REQUIRE_EQUAL(ll.size(), 2u);
    const std::vector<int> ctx0{0, 3, 4}, ctx1{0, 7};
    const auto s0 = score_completions(m, ctx0, {{5, 6, 0}});
    const auto s1 = score_completions(m, ctx1, {{2, 0}});
    BOOST_TEST(ll[0] == s0[0].logprob / 3, tt::tolerance(1e-12));
    BOOST_TEST(ll[1] == s1[0].logprob / 2, tt::tolerance(1e-12));
    BOOST_TEST(ll[0] < 0.0);

    // The reward: base + alpha * ll; with base weight 0, alpha * ll alone.
    const reward_fn base = [](const int*, int n, int, const int*, const int*) {
        std::vector<float> r;
        for (int b = 0; b < n; ++b)
            r.push_back(float(1.5 + b));
        return r;
    };
    const auto r =
        with_reference_likelihood(base, m, 0.5)(tokens.data(), B, T, ends.data(), starts.data());
    BOOST_TEST(r[0] == float(1.5 + 0.5 * ll[0]), tt::tolerance(1e-6f));
    BOOST_TEST(r[1] == float(2.5 + 0.5 * ll[1]), tt::tolerance(1e-6f));
    const auto only = with_reference_likelihood(base, m, 2.0, 0.0)(tokens.data(), B, T, ends.data(),
                                                                   starts.data());
    BOOST_TEST(only[0] == float(2.0 * ll[0]), tt::tolerance(1e-6f));
    // Weight 0 is the base reward, unchanged.
    const auto same =
        with_reference_likelihood(base, m, 0.0)(tokens.data(), B, T, ends.data(), starts.data());
    BOOST_TEST(same[0] == 1.5f);
    BOOST_TEST(same[1] == 2.5f);

    // A row whose response would start at the first position or end beyond the row is refused.
    const std::vector<int> bad_starts{0, 2}, bad_ends{5, 7};
    BOOST_CHECK_THROW(like(tokens.data(), B, T, ends.data(), bad_starts.data()), gptx::error);
    BOOST_CHECK_THROW(like(tokens.data(), B, T, bad_ends.data(), starts.data()), gptx::error);
    BOOST_CHECK_THROW(like(tokens.data(), B, T, ends.data(), nullptr), gptx::error);
    BOOST_CHECK_THROW(with_reference_likelihood(base, m, -1.0), gptx::error);
}

BOOST_AUTO_TEST_CASE(scorer_ranks_comparisons_as_the_reward_model_does) {
    // A reward model's own pair outcomes and those of its reward_fn seen through
    // reward_fn_scorer agree pair for pair, in batches that split the comparisons unevenly. Mean
    // pooling reads where each response starts, so the starts must reach each batch aligned.
    reward_model<s, double> rm({9, 12}, reward_pooling::mean);
    rm.init(7);
    rng r(8);
    for (std::size_t i = 0; i < rm.trunk().params().size(); ++i)
        rm.trunk().params().data()[i] += 0.1 * r.normal();
    tokenized_comparisons data;
    const std::vector<std::vector<int>> prompts{{0, 3}, {0, 4, 5}, {0, 6}};
    for (std::size_t p = 0; p < prompts.size(); ++p) {
        ranked_sequences g;
        for (int k = 0; k < 3; ++k) {
            std::vector<int> q = prompts[p];
            const int start = int(q.size());
            for (int t = 0; t <= k; ++t)
                q.push_back(1 + (int(p) * 3 + k + t) % 8);
            q.push_back(eot);
            g.responses.push_back(q);
            g.starts.push_back(start);
        }
        data.groups.push_back(g);
    }
    const auto direct = pair_outcomes(rm, data, eot, 4);
    reward_fn_scorer via{reward_of(rm)};
    const auto through = pair_outcomes(via, data, eot, 4);
    BOOST_REQUIRE_EQUAL(direct.size(), 9u);
    BOOST_TEST(direct == through, tt::per_element());
    // Not every pair is a tie, so the comparison says something.
    int decided = 0;
    for (double o : direct)
        decided += o != 0.5 ? 1 : 0;
    BOOST_TEST(decided > 0);
    // A sequence not closed by the end-of-text is refused.
    data.groups[0].responses[0].back() = 5;
    BOOST_CHECK_THROW(pair_outcomes(via, data, eot, 4), gptx::error);
}

BOOST_AUTO_TEST_SUITE_END()
