// gptx/core/stats.hpp: win rates of pairwise preferences with a Wilson score interval, and the
// sign test of wins against losses. Tested by tests/core/test_stats.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "error.hpp"

namespace gptx {

struct proportion_interval {
    double p = 0, low = 0, high = 0; // the estimate and its confidence interval
};

// Wilson score interval for `successes` out of n trials (successes may be fractional: a tie
// counts one half), z = 1.96 for 95%. Unlike the normal interval it stays inside [0, 1] and is
// sensible near 0 and 1 and for small n.
inline proportion_interval wilson_score(double successes, std::size_t n, double z = 1.96) {
    GPTX_CHECK(n > 0, "wilson_score: no trials");
    GPTX_CHECK(successes >= 0 && successes <= double(n), "wilson_score: ", successes,
               " successes out of ", n, " trials");
    const double nn = double(n), p = successes / nn, z2 = z * z;
    const double centre = (p + z2 / (2 * nn)) / (1 + z2 / nn);
    const double half = z / (1 + z2 / nn) * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
    return {p, std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

// Two-sided exact sign test: if neither side were preferred, each untied comparison would be a
// fair coin; the probability of a split of wins and losses at least as uneven as this one. Ties
// are dropped, so it asks only whether the comparisons that differ lean one way, which the
// Wilson interval of a win rate with ties counted as halves answers conservatively when most
// comparisons tie (each tie then counts as a coin toss). 1 when none differs.
inline double sign_test_p(std::size_t wins, std::size_t losses) {
    const std::size_t n = wins + losses, k = std::min(wins, losses);
    if (n == 0)
        return 1.0;
    // 2 P(X <= k), X ~ Binomial(n, 1/2), each term in log space so that n may be thousands
    const double nn = double(n), log_norm = std::lgamma(nn + 1) - nn * std::log(2.0);
    double tail = 0;
    for (std::size_t i = 0; i <= k; ++i)
        tail += std::exp(log_norm - std::lgamma(double(i) + 1) - std::lgamma(nn - double(i) + 1));
    return std::min(1.0, 2 * tail);
}

// Head-to-head preferences of A over B: wins, ties (counted as half a win) and losses.
struct win_rate {
    std::size_t wins = 0, ties = 0, losses = 0;

    // a and b are the two scores of one comparison; |a - b| <= tie_eps is a tie.
    void add(double a, double b, double tie_eps = 1e-9) {
        if (std::abs(a - b) <= tie_eps)
            ++ties;
        else if (a > b)
            ++wins;
        else
            ++losses;
    }
    std::size_t n() const { return wins + ties + losses; }
    // (wins + ties / 2) / n with its 95% Wilson interval.
    proportion_interval rate(double z = 1.96) const {
        return wilson_score(double(wins) + 0.5 * double(ties), n(), z);
    }
    // The sign test of wins against losses (ties dropped).
    double sign_test_p() const { return gptx::sign_test_p(wins, losses); }
};

} // namespace gptx
