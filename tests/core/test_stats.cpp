// Tests for gptx/core/stats.hpp: the Wilson interval and win rates with ties.
#include <boost/test/unit_test.hpp>

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

BOOST_AUTO_TEST_SUITE_END()
