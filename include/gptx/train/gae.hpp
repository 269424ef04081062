// gptx/train/gae.hpp: generalised advantage estimation (Schulman et al. 2016) over one response,
// and advantage whitening. Tested by tests/train/test_ppo.cpp. Legend: n response tokens.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "../core/communicator.hpp"
#include "../core/error.hpp"

namespace gptx {

// delta_t = r_t + gamma V_{t+1} - V_t (V_n = 0: the episode ends with the response),
// A_t = delta_t + gamma lambda A_{t+1}, returns_t = A_t + V_t. Sums run in double.
template <class T>
void gae(T* advantages, T* returns, const T* rewards, const T* values, int n, double gamma,
         double lambda) {
    GPTX_CHECK(n >= 0, "gae: negative length ", n);
    double next_value = 0.0, next_adv = 0.0;
    for (int t = n - 1; t >= 0; --t) {
        const double delta = double(rewards[t]) + gamma * next_value - double(values[t]);
        next_adv = delta + gamma * lambda * next_adv;
        next_value = double(values[t]);
        advantages[t] = T(next_adv);
        returns[t] = T(next_adv + double(values[t]));
    }
}

// x = (x - mean) / (std + eps) over the n values (population std).
template <class T> void whiten(T* x, std::size_t n, double eps = 1e-8) {
    if (n == 0)
        return;
    double mean = 0.0;
    for (std::size_t i = 0; i < n; ++i)
        mean += double(x[i]);
    mean /= double(n);
    double var = 0.0;
    for (std::size_t i = 0; i < n; ++i)
        var += (double(x[i]) - mean) * (double(x[i]) - mean);
    const double inv = 1.0 / (std::sqrt(var / double(n)) + eps);
    for (std::size_t i = 0; i < n; ++i)
        x[i] = T((double(x[i]) - mean) * inv);
}

// The same over the global batch of a data-parallel job: every rank whitens its n values with
// the mean and population std of all ranks' values (one all-reduce of count, sum and sum of
// squares, in double). Collective.
template <class T> void whiten(T* x, std::size_t n, communicator& comm, double eps = 1e-8) {
    double s[3] = {double(n), 0.0, 0.0};
    for (std::size_t i = 0; i < n; ++i) {
        s[1] += double(x[i]);
        s[2] += double(x[i]) * double(x[i]);
    }
    comm.allreduce_sum(s, 3);
    if (s[0] == 0)
        return;
    const double mean = s[1] / s[0];
    const double var = std::max(0.0, s[2] / s[0] - mean * mean);
    const double inv = 1.0 / (std::sqrt(var) + eps);
    for (std::size_t i = 0; i < n; ++i)
        x[i] = T((double(x[i]) - mean) * inv);
}

} // namespace gptx
