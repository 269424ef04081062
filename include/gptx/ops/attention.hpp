// gptx/ops/attention.hpp: causal multi-head self-attention that keeps no T x T probabilities:
// forward saves one log-sum-exp per query row, backward recomputes the probabilities.
// Tested by tests/ops/test_ops.cpp. Legend: B batch, T time, C channels, NH heads, HS head size.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/parallel.hpp"
#include "../core/rng.hpp"
#include "../simd/simd.hpp"

namespace gptx::ops {

namespace detail {

// Grow-once per-thread scratch, so steady-state steps never allocate.
template <class T> T* thread_scratch(std::size_t n, int slot) {
    thread_local std::vector<T> buf[4];
    if (buf[slot].size() < n) buf[slot].resize(n);
    return buf[slot].data();
}

// x[i] = exp(x[i] - m); returns the sum.
template <class Arch, class T> T exp_shift_sum(T* x, int n, T m) {
    using B = simd::batch<T, Arch>;
    constexpr int W = static_cast<int>(B::size);
    B acc(T(0)), vm(m);
    int i = 0;
    for (; i + W <= n; i += W) {
        B e = xsimd::exp(simd::load<Arch>(x + i) - vm);
        simd::store<Arch>(x + i, e);
        acc += e;
    }
    T s = simd::reduce_add<Arch>(acc);
    for (; i < n; ++i) {
        x[i] = std::exp(x[i] - m);
        s += x[i];
    }
    return s;
}

// scores[s] = scale * sum_d q[d] * kt[d][s] for s < n, with kt the head's keys transposed (HS, ld).
template <class Arch, class T> void scores_row(T* sc, const T* q, const T* kt, int HS, int ld, int n, T scale) {
    for (int s = 0; s < n; ++s) sc[s] = T(0);
    for (int d = 0; d < HS; ++d) simd::axpy<Arch>(sc, q[d], kt + std::int64_t(d) * ld, n);
    simd::scale<Arch>(sc, scale, n);
}

inline std::uint64_t att_index(std::int64_t bh, int t, int s, int Tn) {
    return static_cast<std::uint64_t>((bh * Tn + t) * std::int64_t(Tn) + s);
}

} // namespace detail

// For each head: out_t = sum_{s<=t} dropout(softmax_s(q_t·k_s / sqrt(HS))) v_s.
// qkv(B,T,3C) holds [q | k | v] per token; out(B,T,C); lse(B,NH,T) = log sum_s exp(score_s).
template <class Arch = simd::default_arch, class T>
void attention_forward(T* out, T* lse, const T* qkv, int B, int Tn, int C, int NH, float rate = 0.0f,
                       std::uint64_t seed = 0) {
    const int HS = C / NH, C3 = 3 * C;
    const T scale = T(1) / std::sqrt(T(HS));
    const T keep_scale = rate > 0.0f ? T(1) / (T(1) - T(rate)) : T(1);
    parallel_for(std::int64_t(B) * NH, [&](std::int64_t bh) {
        const int b = static_cast<int>(bh / NH), h = static_cast<int>(bh % NH);
        T* kt = detail::thread_scratch<T>(std::size_t(HS) * Tn, 0);
        T* sc = detail::thread_scratch<T>(Tn, 1);
        const T* base = qkv + std::int64_t(b) * Tn * C3;
        for (int s = 0; s < Tn; ++s)
            for (int d = 0; d < HS; ++d) kt[std::int64_t(d) * Tn + s] = base[std::int64_t(s) * C3 + C + h * HS + d];
        for (int t = 0; t < Tn; ++t) {
            const int n = t + 1;
            detail::scores_row<Arch>(sc, base + std::int64_t(t) * C3 + h * HS, kt, HS, Tn, n, scale);
            const T m = simd::max<Arch>(sc, n);
            const T l = detail::exp_shift_sum<Arch>(sc, n, m);
            lse[bh * Tn + t] = m + std::log(l);
            T* o = out + (std::int64_t(b) * Tn + t) * C + h * HS;
            for (int d = 0; d < HS; ++d) o[d] = T(0);
            const T inv = T(1) / l;
            for (int s = 0; s < n; ++s) {
                T w = sc[s] * inv;
                if (rate > 0.0f) w = dropout_keep(seed, detail::att_index(bh, t, s, Tn), rate) ? w * keep_scale : T(0);
                simd::axpy<Arch>(o, w, base + std::int64_t(s) * C3 + 2 * C + h * HS, HS);
            }
        }
    });
}

// With P = softmax(scores), z the dropout scale (0 or 1/(1-rate)), dP_s = z_s dout·v_s and
// D = sum_s P_s dP_s = dout·out (the saved output already holds the dropout):
//   dscore_s = P_s (dP_s - D),  dq_t = sum_s dscore_s k_s / sqrt(HS),
//   dk_s += dscore_s q_t / sqrt(HS),  dv_s += P_s z_s dout_t.
// Writes dqkv(B,T,3C).
template <class Arch = simd::default_arch, class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse, int B, int Tn, int C,
                        int NH, float rate = 0.0f, std::uint64_t seed = 0) {
    const int HS = C / NH, C3 = 3 * C;
    const T scale = T(1) / std::sqrt(T(HS));
    const T keep_scale = rate > 0.0f ? T(1) / (T(1) - T(rate)) : T(1);
    parallel_for(std::int64_t(B) * NH, [&](std::int64_t bh) {
        const int b = static_cast<int>(bh / NH), h = static_cast<int>(bh % NH);
        T* kt = detail::thread_scratch<T>(std::size_t(HS) * Tn, 0);
        T* sc = detail::thread_scratch<T>(Tn, 1);
        T* vt = detail::thread_scratch<T>(std::size_t(HS) * Tn, 2);
        T* dp = detail::thread_scratch<T>(Tn, 3);
        const T* base = qkv + std::int64_t(b) * Tn * C3;
        T* dbase = dqkv + std::int64_t(b) * Tn * C3;
        for (int s = 0; s < Tn; ++s) {
            for (int d = 0; d < HS; ++d) {
                kt[std::int64_t(d) * Tn + s] = base[std::int64_t(s) * C3 + C + h * HS + d];
                vt[std::int64_t(d) * Tn + s] = base[std::int64_t(s) * C3 + 2 * C + h * HS + d];
            }
            for (int part = 0; part < 3; ++part)
                for (int d = 0; d < HS; ++d) dbase[std::int64_t(s) * C3 + part * C + h * HS + d] = T(0);
        }
        for (int t = 0; t < Tn; ++t) {
            const int n = t + 1;
            const T* q = base + std::int64_t(t) * C3 + h * HS;
            const T* dout_t = dout + (std::int64_t(b) * Tn + t) * C + h * HS;
            const T* out_t = out + (std::int64_t(b) * Tn + t) * C + h * HS;
            T* dq = dbase + std::int64_t(t) * C3 + h * HS;
            const T D = simd::dot<Arch>(dout_t, out_t, HS);
            detail::scores_row<Arch>(sc, q, kt, HS, Tn, n, T(1) * scale);
            detail::exp_shift_sum<Arch>(sc, n, lse[bh * Tn + t]); // sc = P
            for (int s = 0; s < n; ++s) dp[s] = T(0);
            for (int d = 0; d < HS; ++d) simd::axpy<Arch>(dp, dout_t[d], vt + std::int64_t(d) * Tn, n);
            for (int s = 0; s < n; ++s) {
                T z = T(1);
                if (rate > 0.0f) z = dropout_keep(seed, detail::att_index(bh, t, s, Tn), rate) ? keep_scale : T(0);
                const T ds = sc[s] * (z * dp[s] - D) * scale;
                simd::axpy<Arch>(dq, ds, base + std::int64_t(s) * C3 + C + h * HS, HS);
                simd::axpy<Arch>(dbase + std::int64_t(s) * C3 + C + h * HS, ds, q, HS);
                simd::axpy<Arch>(dbase + std::int64_t(s) * C3 + 2 * C + h * HS, sc[s] * z, dout_t, HS);
            }
        }
    });
}

} // namespace gptx::ops
