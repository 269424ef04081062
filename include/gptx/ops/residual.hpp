// gptx/ops/residual.hpp: the residual add and inverted dropout with recomputable masks.
// Tested by tests/ops/test_ops.cpp. Legend: N elements.
#pragma once
#include <cstdint>

#include "../core/parallel.hpp"
#include "../core/rng.hpp"
#include "../simd/simd.hpp"

namespace gptx::ops {

// out = a + b. Its backward is the identity into both inputs, so it has no kernel of its own.
template <class Arch = simd::default_arch, class T>
void residual_forward(T* out, const T* a, const T* b, std::int64_t N) {
    using V = simd::batch<T, Arch>;
    constexpr std::int64_t W = V::size;
    parallel_ranges(
        N,
        [&](std::int64_t s, std::int64_t e) {
            std::int64_t i = s;
            for (; i + W <= e; i += W)
                simd::store<Arch>(out + i, simd::load<Arch>(a + i) + simd::load<Arch>(b + i));
            for (; i < e; ++i)
                out[i] = a[i] + b[i];
        },
        8192);
}

// Inverted dropout in place: x = keep ? x / (1 - rate) : 0, with keep = dropout_keep(seed, i,
// rate). Because the mask is a pure function of (seed, i), the same call is its own backward: dx =
// keep ? dout / (1 - rate) : 0.
template <class T> void dropout_inplace(T* x, std::int64_t N, float rate, std::uint64_t seed) {
    if (rate <= 0.0f)
        return;
    const T scale = T(1) / (T(1) - T(rate));
    parallel_ranges(
        N,
        [&](std::int64_t s, std::int64_t e) {
            for (std::int64_t i = s; i < e; ++i)
                x[i] =
                    dropout_keep(seed, static_cast<std::uint64_t>(i), rate) ? x[i] * scale : T(0);
        },
        8192);
}

// out = dropout(x) without touching x (for gradients that must also flow unmasked elsewhere).
template <class T>
void dropout_copy(T* out, const T* x, std::int64_t N, float rate, std::uint64_t seed) {
    const T scale = rate > 0.0f ? T(1) / (T(1) - T(rate)) : T(1);
    parallel_ranges(
        N,
        [&](std::int64_t s, std::int64_t e) {
            for (std::int64_t i = s; i < e; ++i)
                out[i] = (rate <= 0.0f || dropout_keep(seed, static_cast<std::uint64_t>(i), rate))
                             ? x[i] * scale
                             : T(0);
        },
        8192);
}

} // namespace gptx::ops
