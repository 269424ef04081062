// gptx/core/stats.hpp: win rates of pairwise preferences with a Wilson score interval.
// Tested by tests/core/test_stats.cpp.
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
};

} // namespace gptx
