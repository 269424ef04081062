// Tests for gptx/core/stats.hpp: the Wilson interval, win rates with ties and the sign test.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <vector>

#include <gptx/core/stats.hpp>

using namespace gptx;
namespace tt = boost::test_tools;

BOOST_AUTO_TEST_SUITE(stats)

BOOST_AUTO_TEST_CASE(wilson_score_matches_hand_computed_values) {
    // 65 of 100, z = 1.96: centre (0.65 + 0.019208) / 1.038416, half-width 0.0921...
    const auto w = wilson_score(65, 100);
    BOOST_TEST(w.p == 0.65);
    BOOST_TEST(w.low == 0.5525, tt::tolerance(1e-3));
    BOOST_TEST(w.high == 0.7364, tt::tolerance(1e-3));
    // all successes: the interval touches 1 but the lower end stays below
    const auto all = wilson_score(10, 10);
    BOOST_TEST(all.high == 1.0);
    BOOST_TEST(all.low == 0.7225, tt::tolerance(1e-3));
    const auto none = wilson_score(0, 10);
    BOOST_TEST(none.low == 0.0);
    BOOST_TEST(none.high == 0.2775, tt::tolerance(1e-3));
    BOOST_CHECK_THROW(wilson_score(1, 0), gptx::error);
    BOOST_CHECK_THROW(wilson_score(3, 2), gptx::error);
}

BOOST_AUTO_TEST_CASE(win_rate_counts_ties_as_half) {
    win_rate w;
    w.add(1.0, 0.5);
    w.add(0.2, 0.2);
    w.add(0.0, 0.3);
    w.add(0.9, 0.1);
    BOOST_TEST(w.wins == 2u);
    BOOST_TEST(w.ties == 1u);
    BOOST_TEST(w.losses == 1u);
    BOOST_TEST(w.rate().p == 2.5 / 4);
}

// C(n, k) by Pascal's triangle, in double (exact for these sizes): an independent route to the
// binomial tail that sign_test_p sums from log-gamma terms.
static double binomial(int n, int k) {
    std::vector<double> row{1.0};
    for (int i = 1; i <= n; ++i) {
        std::vector<double> next(std::size_t(i) + 1, 1.0);
        for (int j = 1; j < i; ++j)
            next[std::size_t(j)] = row[std::size_t(j) - 1] + row[std::size_t(j)];
        row = std::move(next);
    }
    return row[std::size_t(k)];
}

BOOST_AUTO_TEST_CASE(sign_test_is_the_two_sided_binomial_tail_of_wins_against_losses) {
    // 5 wins and no loss: 2 * (1/2)^5
    BOOST_TEST(sign_test_p(5, 0) == 0.0625, tt::tolerance(1e-12));
    BOOST_TEST(sign_test_p(0, 5) == 0.0625, tt::tolerance(1e-12));
    // 24 wins, 4 losses: 2 * sum_{i <= 4} C(28, i) / 2^28
    double tail = 0;
    for (int i = 0; i <= 4; ++i)
        tail += binomial(28, i);
    BOOST_TEST(sign_test_p(24, 4) == 2 * tail / std::ldexp(1.0, 28), tt::tolerance(1e-9));
    BOOST_TEST(sign_test_p(4, 24) == sign_test_p(24, 4), tt::tolerance(1e-12));
    // An even split, or nothing that differs: no evidence either way.
    BOOST_TEST(sign_test_p(3, 3) == 1.0);
    BOOST_TEST(sign_test_p(0, 0) == 1.0);
    BOOST_TEST(sign_test_p(11, 10) == 1.0, tt::tolerance(1e-12));
    // Large n: the normal approximation with continuity correction, z = (60 - 1) / sqrt(1000)
    BOOST_TEST(sign_test_p(530, 470) == std::erfc(59 / std::sqrt(1000.0) / std::sqrt(2.0)),
               tt::tolerance(0.02));
    // The more lopsided, the smaller, and ties do not enter.
    BOOST_TEST(sign_test_p(40, 20) < sign_test_p(35, 25));
    win_rate w;
    for (int i = 0; i < 24; ++i)
        w.add(1, 0);
    for (int i = 0; i < 4; ++i)
        w.add(0, 1);
    for (int i = 0; i < 272; ++i)
        w.add(0.5, 0.5);
    BOOST_TEST(w.sign_test_p() == sign_test_p(24, 4), tt::tolerance(1e-12));
    BOOST_TEST(w.rate().low < 0.5); // the Wilson interval of the same outcomes reaches below 1/2
}

BOOST_AUTO_TEST_SUITE_END()
