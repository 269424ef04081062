// gptx/train/grpo.hpp: the critic-free baselines of GRPO (Shao et al. 2024, DeepSeekMath) and
// RLOO (Ahmadian et al. 2024): advantages of G responses sampled for the same prompt, from their
// rewards alone. Their policy loss is ppo_policy_objective with per-sequence means and a k3 KL
// penalty in the loss (train/ppo.hpp). Tested by tests/train/test_grpo.cpp.
// Legend: G responses per prompt, n rewards in all (n = groups x G).
#pragma once
#include <cmath>
#include <cstddef>
#include <string_view>

#include "../core/error.hpp"

namespace gptx {

enum class group_baseline {
    group, // GRPO: (r_i - mean) / (std + eps), the group's sample standard deviation
    loo    // RLOO: r_i - mean of the other G - 1 rewards, no scaling
};

inline group_baseline parse_group_baseline(std::string_view s) {
    if (s == "group")
        return group_baseline::group;
    if (s == "loo")
        return group_baseline::loo;
    detail::fail("unknown baseline '", s, "' (choose group or loo)");
}

// advantages[i] for n rewards in consecutive groups of G (G >= 2; n a multiple of G). A group
// whose rewards are all equal gets advantage 0 under both baselines: it says nothing about which
// response is better. eps keeps GRPO's division finite for nearly equal rewards.
template <class T>
void group_advantages(T* advantages, const double* rewards, std::size_t n, int G,
                      group_baseline baseline, double eps = 1e-4) {
    GPTX_CHECK(G >= 2, "group advantages: a group needs at least 2 responses, got ", G);
    GPTX_CHECK(n % std::size_t(G) == 0, "group advantages: ", n,
               " rewards do not make whole groups of ", G);
    for (std::size_t g0 = 0; g0 < n; g0 += std::size_t(G)) {
        const double* r = rewards + g0;
        double sum = 0;
        for (int i = 0; i < G; ++i)
            sum += r[i];
        const double mean = sum / G;
        if (baseline == group_baseline::loo) {
            // r_i - (sum - r_i) / (G - 1) = G / (G - 1) (r_i - mean)
            for (int i = 0; i < G; ++i)
                advantages[g0 + std::size_t(i)] = T(r[i] - (sum - r[i]) / (G - 1));
            continue;
        }
        double ss = 0;
        for (int i = 0; i < G; ++i)
            ss += (r[i] - mean) * (r[i] - mean);
        const double sd = std::sqrt(ss / (G - 1));
        for (int i = 0; i < G; ++i)
            advantages[g0 + std::size_t(i)] = T(ss > 0 ? (r[i] - mean) / (sd + eps) : 0.0);
    }
}

} // namespace gptx
