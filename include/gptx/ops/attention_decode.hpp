// gptx/ops/attention_decode.hpp: inference kernels for generation with a KV cache: attention of
// new queries over cached keys and values, and a linear layer for a few rows. Tested by
// tests/generate/test_generate.cpp. Legend: B batch, n new positions, C channels, NH heads,
// HS head size, maxT cached positions per sequence (the cache's row count).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "../core/bf16.hpp"
#include "../core/parallel.hpp"
#include "../simd/simd.hpp"
#include "attention.hpp"

namespace gptx::ops {

// For query i of sequence b (absolute position t0 + i) and head h:
//   out = sum_{s <= t0+i} softmax_s(q·k_s / sqrt(HS)) v_s.
// q row (b, i) starts at q + (b*n + i) * ldq (ldq = 3C when q is read in place from qkv);
// kcache, vcache (B, NH, maxT, HS) already hold positions [0, t0 + n). Writes out(B, n, C).
// Head-major caches keep one head's keys contiguous, so each score is one dot over HS and the
// output one axpy over HS. Keys go in chunks of a fixed stack buffer with an online softmax
// (running max and sum), so no scratch is allocated whatever the length.
template <class Arch = simd::default_arch, class T>
void attention_decode_forward(T* out, const T* q, int ldq, const T* kcache, const T* vcache, int B,
                              int n, int t0, int C, int NH, int maxT) {
    constexpr int chunk = 64;
    const int HS = C / NH;
    const T scale = T(1) / std::sqrt(T(HS));
    const std::int64_t tasks = std::int64_t(B) * NH * n;
    // A task costs ~4 HS flops per key; keep a fork for a few thousand keys' worth.
    const std::int64_t min_tasks = std::max<std::int64_t>(1, 16384 / (std::int64_t(HS) * (t0 + n)));
    parallel_for(
        tasks,
        [&](std::int64_t task) {
            const int i = static_cast<int>(task % n);
            const std::int64_t bh = task / n;
            const int b = static_cast<int>(bh / NH), h = static_cast<int>(bh % NH);
            const T* qi = q + (std::int64_t(b) * n + i) * ldq + h * HS;
            const T* k = kcache + bh * maxT * HS;
            const T* v = vcache + bh * maxT * HS;
            T* o = out + (std::int64_t(b) * n + i) * C + h * HS;
            std::fill(o, o + HS, T(0));
            T sc[chunk];
            T m = -std::numeric_limits<T>::infinity(), l = T(0);
            const int keys = t0 + i + 1;
            for (int s0 = 0; s0 < keys; s0 += chunk) {
                const int cnt = std::min(chunk, keys - s0);
                for (int j = 0; j < cnt; ++j)
                    sc[j] = scale * simd::dot<Arch>(qi, k + std::int64_t(s0 + j) * HS, HS);
                const T cm = simd::max<Arch>(sc, cnt);
                if (cm > m) { // rescale what was summed under the old max
                    const T f = std::exp(m - cm);
                    simd::scale<Arch>(o, f, HS);
                    l *= f;
                    m = cm;
                }
                l += detail::exp_shift_sum<Arch>(sc, cnt, m);
                for (int j = 0; j < cnt; ++j)
                    simd::axpy<Arch>(o, sc[j], v + std::int64_t(s0 + j) * HS, HS);
            }
            simd::scale<Arch>(o, T(1) / l, HS);
        },
        min_tasks);
}

namespace detail {

// out[r+j][o+a] for WO weight rows and R input rows in one pass over C, with WO x R accumulators:
// each loaded weight vector serves R rows and each input vector WO weight rows. Every output is
// summed the same way whatever the tile, so results do not depend on N or on threads.
// wrows points at weight row o (rows o .. o+WO-1 follow, C apart).
template <class Arch, int WO, int R, class T>
void rows_tile(T* out, const T* inp, const T* wrows, const T* bias, std::int64_t o, std::int64_t r,
               int C, int OC) {
    using V = simd::batch<T, Arch>;
    constexpr int W = static_cast<int>(V::size);
    const T* w[WO];
    const T* x[R];
    for (int a = 0; a < WO; ++a)
        w[a] = wrows + a * std::int64_t(C);
    for (int j = 0; j < R; ++j)
        x[j] = inp + (r + j) * C;
    V acc[WO][R];
    for (int a = 0; a < WO; ++a)
        for (int j = 0; j < R; ++j)
            acc[a][j] = V(T(0));
    int i = 0;
    for (; i + W <= C; i += W) {
        V wv[WO];
        for (int a = 0; a < WO; ++a)
            wv[a] = simd::load<Arch>(w[a] + i);
        for (int j = 0; j < R; ++j) {
            const V xv = simd::load<Arch>(x[j] + i);
            for (int a = 0; a < WO; ++a)
                acc[a][j] = xsimd::fma(xv, wv[a], acc[a][j]);
        }
    }
    for (int a = 0; a < WO; ++a)
        for (int j = 0; j < R; ++j) {
            T s = simd::reduce_add<Arch>(acc[a][j]);
            for (int k = i; k < C; ++k)
                s += x[j][k] * w[a][k];
            out[(r + j) * OC + o + a] = s + (bias ? bias[o + a] : T(0));
        }
}

template <class Arch, int WO, class T>
void rows_strip(T* out, const T* inp, const T* wrows, const T* bias, std::int64_t o, std::int64_t N,
                int C, int OC) {
    std::int64_t r = 0;
    for (; r + 4 <= N; r += 4)
        rows_tile<Arch, WO, 4>(out, inp, wrows, bias, o, r, C, OC);
    switch (N - r) {
    case 3:
        rows_tile<Arch, WO, 3>(out, inp, wrows, bias, o, r, C, OC);
        break;
    case 2:
        rows_tile<Arch, WO, 2>(out, inp, wrows, bias, o, r, C, OC);
        break;
    case 1:
        rows_tile<Arch, WO, 1>(out, inp, wrows, bias, o, r, C, OC);
        break;
    default:
        break;
    }
}

} // namespace detail

// out(N,OC) = inp(N,C) · weight(OC,C)ᵀ + bias(OC), bias may be null; for the few rows of a
// decode step. Weights stream through memory once, in place; gemm would first pack them, which
// costs more than the product when N is a handful. With bf16 weights (inference from a bf16
// copy: half the bytes per token) each pair of rows is first widened to fp32 in L1 (exact), so
// the result equals, bit for bit, the fp32 kernel's on the rounded weights.
template <class Arch = simd::default_arch, class T, class TW>
void matmul_rows_forward(T* out, const T* inp, const TW* weight, const T* bias, std::int64_t N,
                         int C, int OC) {
    static_assert(std::is_same_v<TW, T> || (std::is_same_v<TW, bf16> && std::is_same_v<T, float>));
    // Whole pairs of weight rows per thread; ~64K multiply-adds pay a fork.
    const std::int64_t pairs = (OC + 1) / 2;
    const std::int64_t min_pairs = std::max<std::int64_t>(1, 32768 / (N * C));
    parallel_ranges(
        pairs,
        [&](std::int64_t p0, std::int64_t p1) {
            std::vector<T> wide(std::is_same_v<TW, T> ? 0 : 2 * std::size_t(C));
            for (std::int64_t p = p0; p < p1; ++p) {
                const int rows = 2 * p + 1 < OC ? 2 : 1;
                const T* wrows;
                if constexpr (std::is_same_v<TW, T>) {
                    wrows = weight + 2 * p * C;
                } else {
                    to_float(wide.data(), weight + 2 * p * C, std::size_t(rows) * C);
                    wrows = wide.data();
                }
                if (rows == 2)
                    detail::rows_strip<Arch, 2>(out, inp, wrows, bias, 2 * p, N, C, OC);
                else
                    detail::rows_strip<Arch, 1>(out, inp, wrows, bias, 2 * p, N, C, OC);
            }
        },
        min_pairs);
}

} // namespace gptx::ops
