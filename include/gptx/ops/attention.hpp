// gptx/ops/attention.hpp: causal multi-head self-attention that keeps no T x T probabilities:
// forward saves one log-sum-exp per query row, backward recomputes the probabilities.
// Tested by tests/ops/test_ops.cpp. Legend: B batch, T time, C channels, NH heads, HS head size.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../core/arena.hpp"
#include "../core/parallel.hpp"
#include "../core/rng.hpp"
#include "../simd/simd.hpp"
#include "softmax.hpp"

namespace gptx::ops {

namespace detail {

inline std::uint64_t att_index(std::int64_t bh, int t, int s, int Tn) {
    return static_cast<std::uint64_t>((bh * Tn + t) * std::int64_t(Tn) + s);
}

// Blocked attention: per (batch, head), queries go in blocks of QB rows; each block's scores
// against its causal prefix of keys live in a (QB, T) scratch, and the products around them run
// on register tiles. Operands are packed once per head, padded with zeros to whole tiles, so the
// tile kernels have no tails.
template <class T, class Arch> struct att_blocking {
    static constexpr bool wide = std::is_base_of_v<xsimd::avx512f, Arch>;
    static constexpr int W = static_cast<int>(simd::lanes<T, Arch>);
    static constexpr int SR = wide ? 8 : 4; // score tiles: SR query rows x 2 vectors of keys
    static constexpr int SC = 2 * W;
    static constexpr int HR = 4;  // head-size tiles: HR rows x up to 4 vectors
    static constexpr int QB = 32; // query rows per block (a multiple of SR and HR)
};

inline std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

// c[r][0 .. NV*W) (+)= sum_k a[r*ars + k*aks] * b[k*ldb + 0 .. NV*W) for r < R: a register tile
// of R x NV vectors, B rows loaded once per k and A broadcast.
template <class Arch, int R, int NV, bool Acc, class T>
inline void att_tile(T* c, std::int64_t ldc, const T* a, std::int64_t ars, std::int64_t aks,
                     const T* b, std::int64_t ldb, int K) {
    using V = simd::batch<T, Arch>;
    constexpr int W = static_cast<int>(V::size);
    V acc[R][NV];
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v)
            acc[r][v] = Acc ? simd::load<Arch>(c + r * ldc + v * W) : V(T(0));
    for (int k = 0; k < K; ++k) {
        V bv[NV];
        for (int v = 0; v < NV; ++v)
            bv[v] = simd::load<Arch>(b + k * ldb + v * W);
        for (int r = 0; r < R; ++r) {
            const V av(a[r * ars + k * aks]);
            for (int v = 0; v < NV; ++v)
                acc[r][v] = xsimd::fma(av, bv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v)
            simd::store<Arch>(c + r * ldc + v * W, acc[r][v]);
}

// C(rows, cols) (+)= A(rows, K) B(K, cols) with A strided (ars, aks) and B row-major (ldb); rows a
// multiple of R, cols of NV*W.
template <class Arch, int R, int NV, bool Acc, class T>
void att_product(T* c, std::int64_t ldc, const T* a, std::int64_t ars, std::int64_t aks, const T* b,
                 std::int64_t ldb, int rows, int cols, int K) {
    constexpr int P = NV * static_cast<int>(simd::lanes<T, Arch>);
    for (int j = 0; j < cols; j += P)
        for (int r = 0; r < rows; r += R)
            att_tile<Arch, R, NV, Acc>(c + r * ldc + j, ldc, a + r * ars, ars, aks, b + j, ldb, K);
}

// The same with cols = HSp (the padded head size), in panels of 4, 2 or 1 vectors.
template <class Arch, bool Acc, class T>
void att_product_hs(T* c, std::int64_t ldc, const T* a, std::int64_t ars, std::int64_t aks,
                    const T* b, std::int64_t ldb, int rows, int HSp, int K) {
    using blk = att_blocking<T, Arch>;
    constexpr int W = blk::W;
    int j = 0;
    if constexpr (blk::wide)
        for (; j + 4 * W <= HSp; j += 4 * W)
            att_product<Arch, blk::HR, 4, Acc>(c + j, ldc, a, ars, aks, b + j, ldb, rows, 4 * W, K);
    for (; j + 2 * W <= HSp; j += 2 * W)
        att_product<Arch, blk::HR, 2, Acc>(c + j, ldc, a, ars, aks, b + j, ldb, rows, 2 * W, K);
    for (; j < HSp; j += W)
        att_product<Arch, blk::HR, 1, Acc>(c + j, ldc, a, ars, aks, b + j, ldb, rows, W, K);
}

// Per-thread scratch for the packed operands of one head.
struct att_scratch_tag;
template <class T> T* att_scratch(std::size_t n) { return thread_scratch<T, att_scratch_tag>(n); }

// Packs rows [0, Tn) of one head's slice (HS wide, row stride C3) into dst (Tp, HSp), zero-padded.
template <class T>
void att_pack_rows(T* dst, const T* src, std::int64_t ld, int Tn, int Tp, int HS, int HSp) {
    for (int s = 0; s < Tp; ++s) {
        T* d = dst + std::int64_t(s) * HSp;
        if (s < Tn) {
            std::copy(src + s * ld, src + s * ld + HS, d);
            std::fill(d + HS, d + HSp, T(0));
        } else {
            std::fill(d, d + HSp, T(0));
        }
    }
}
// Packs the same slice transposed into dst (HS, Tp), zero-padded past Tn.
template <class T>
void att_pack_cols(T* dst, const T* src, std::int64_t ld, int Tn, int Tp, int HS) {
    for (int d = 0; d < HS; ++d) {
        T* o = dst + std::int64_t(d) * Tp;
        for (int s = 0; s < Tn; ++s)
            o[s] = src[s * ld + d];
        std::fill(o + Tn, o + Tp, T(0));
    }
}

} // namespace detail

// For each head: out_t = sum_{s<=t} dropout(softmax_s(q_t·k_s / sqrt(HS))) v_s.
// qkv(B,T,3C) holds [q | k | v] per token; out(B,T,C); lse(B,NH,T) = log sum_s exp(score_s).
template <class Arch = simd::default_arch, class T>
void attention_forward(T* out, T* lse, const T* qkv, int B, int Tn, int C, int NH,
                       float rate = 0.0f, std::uint64_t seed = 0) {
    using blk = detail::att_blocking<T, Arch>;
    const int HS = C / NH, C3 = 3 * C;
    const int HSp = static_cast<int>(detail::round_up(HS, blk::W));
    const int Tp = static_cast<int>(detail::round_up(Tn, std::max(blk::SC, blk::QB)));
    const T scale = T(1) / std::sqrt(T(HS));
    const T keep_scale = rate > 0.0f ? T(1) / (T(1) - T(rate)) : T(1);
    parallel_for(std::int64_t(B) * NH, [&](std::int64_t bh) {
        const int b = static_cast<int>(bh / NH), h = static_cast<int>(bh % NH);
        const std::size_t panel = std::size_t(Tp) * HSp;
        T* qp = detail::att_scratch<T>(3 * panel + std::size_t(blk::QB) * (Tp + HSp)); // (Tp, HSp)
        T* kt = qp + panel;                                                            // (HS, Tp)
        T* vp = kt + panel;                                                            // (Tp, HSp)
        T* sc = vp + panel;                                                            // (QB, Tp)
        T* ob = sc + std::size_t(blk::QB) * Tp;                                        // (QB, HSp)
        const T* base = qkv + std::int64_t(b) * Tn * C3 + h * HS;
        detail::att_pack_rows(qp, base, C3, Tn, Tp, HS, HSp);
        detail::att_pack_cols(kt, base + C, C3, Tn, Tp, HS);
        detail::att_pack_rows(vp, base + 2 * C, C3, Tn, Tp, HS, HSp);
        for (int i0 = 0; i0 < Tn; i0 += blk::QB) {
            const int rows = std::min(blk::QB, Tn - i0);
            const int nk = i0 + rows; // keys this block can see
            const int nkp = static_cast<int>(detail::round_up(nk, blk::SC));
            // Scores of the block, all QB rows (rows past Tn are zero queries).
            detail::att_product<Arch, blk::SR, 2, false>(sc, Tp, qp + std::size_t(i0) * HSp, HSp, 1,
                                                         kt, Tp, blk::QB, nkp, HS);
            for (int r = 0; r < blk::QB; ++r) {
                T* row = sc + std::size_t(r) * Tp;
                const int t = i0 + r, n = t + 1;
                if (r >= rows) {
                    std::fill(row, row + nkp, T(0));
                    continue;
                }
                simd::scale<Arch>(row, scale, n);
                const T m = simd::max<Arch>(row, n);
                const T l = detail::exp_shift_sum<Arch>(row, n, m);
                lse[bh * Tn + t] = m + std::log(l);
                simd::scale<Arch>(row, T(1) / l, n);
                if (rate > 0.0f)
                    for (int s = 0; s < n; ++s)
                        row[s] = dropout_keep(seed, detail::att_index(bh, t, s, Tn), rate)
                                     ? row[s] * keep_scale
                                     : T(0);
                std::fill(row + n, row + nkp, T(0));
            }
            // out rows = P · V over the visible keys.
            detail::att_product_hs<Arch, false>(ob, HSp, sc, Tp, 1, vp, HSp, blk::QB, HSp, nk);
            for (int r = 0; r < rows; ++r)
                std::copy(ob + std::size_t(r) * HSp, ob + std::size_t(r) * HSp + HS,
                          out + (std::int64_t(b) * Tn + i0 + r) * C + h * HS);
        }
    });
}

// With P = softmax(scores), z the dropout scale (0 or 1/(1-rate)), dP_s = z_s dout·v_s and
// D = sum_s P_s dP_s = dout·out (the saved output already holds the dropout):
//   dscore_s = P_s (dP_s - D),  dq_t = sum_s dscore_s k_s / sqrt(HS),
//   dk_s += dscore_s q_t / sqrt(HS),  dv_s += P_s z_s dout_t.
// Writes dqkv(B,T,3C).
template <class Arch = simd::default_arch, class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse, int B,
                        int Tn, int C, int NH, float rate = 0.0f, std::uint64_t seed = 0) {
    using blk = detail::att_blocking<T, Arch>;
    const int HS = C / NH, C3 = 3 * C;
    const int HSp = static_cast<int>(detail::round_up(HS, blk::W));
    const int Tp = static_cast<int>(detail::round_up(Tn, std::max(blk::SC, blk::QB)));
    const T scale = T(1) / std::sqrt(T(HS));
    const T keep_scale = rate > 0.0f ? T(1) / (T(1) - T(rate)) : T(1);
    parallel_for(std::int64_t(B) * NH, [&](std::int64_t bh) {
        const int b = static_cast<int>(bh / NH), h = static_cast<int>(bh % NH);
        const std::size_t panel = std::size_t(Tp) * HSp, block = std::size_t(blk::QB) * Tp;
        T* qp =
            detail::att_scratch<T>(7 * panel + 3 * block + std::size_t(blk::QB) * HSp); // (Tp, HSp)
        T* kt = qp + panel;                                                             // (HS, Tp)
        T* kp = kt + panel;                                                             // (Tp, HSp)
        T* vt = kp + panel;                                                             // (HS, Tp)
        T* dop = vt + panel;                                                            // (Tp, HSp)
        T* dkp = dop + panel;                                                           // (Tp, HSp)
        T* dvp = dkp + panel;                                                           // (Tp, HSp)
        T* pz = dvp + panel;         // (QB, Tp): P z, then dV's left factor
        T* ds = pz + block;          // (QB, Tp): dP, then dscores
        T* dqb = ds + block + block; // (QB, HSp)
        const T* base = qkv + std::int64_t(b) * Tn * C3 + h * HS;
        const T* dbase_out = dout + std::int64_t(b) * Tn * C + h * HS;
        detail::att_pack_rows(qp, base, C3, Tn, Tp, HS, HSp);
        detail::att_pack_cols(kt, base + C, C3, Tn, Tp, HS);
        detail::att_pack_rows(kp, base + C, C3, Tn, Tp, HS, HSp);
        detail::att_pack_cols(vt, base + 2 * C, C3, Tn, Tp, HS);
        detail::att_pack_rows(dop, dbase_out, C, Tn, Tp, HS, HSp);
        std::fill(dkp, dkp + 2 * panel, T(0)); // dkp and dvp
        for (int i0 = 0; i0 < Tn; i0 += blk::QB) {
            const int rows = std::min(blk::QB, Tn - i0);
            const int nk = i0 + rows;
            const int nkp = static_cast<int>(detail::round_up(nk, blk::SC));
            detail::att_product<Arch, blk::SR, 2, false>(pz, Tp, qp + std::size_t(i0) * HSp, HSp, 1,
                                                         kt, Tp, blk::QB, nkp, HS);
            detail::att_product<Arch, blk::SR, 2, false>(ds, Tp, dop + std::size_t(i0) * HSp, HSp,
                                                         1, vt, Tp, blk::QB, nkp, HS);
            for (int r = 0; r < blk::QB; ++r) {
                T* p = pz + std::size_t(r) * Tp;
                T* g = ds + std::size_t(r) * Tp;
                const int t = i0 + r, n = t + 1;
                if (r >= rows) {
                    std::fill(p, p + nkp, T(0));
                    std::fill(g, g + nkp, T(0));
                    continue;
                }
                const std::int64_t row = std::int64_t(b) * Tn + t;
                const T D = simd::dot<Arch>(dout + row * C + h * HS, out + row * C + h * HS, HS);
                simd::scale<Arch>(p, scale, n);
                detail::exp_shift_sum<Arch>(p, n, lse[bh * Tn + t]); // p = P
                if (rate > 0.0f) {
                    for (int s = 0; s < n; ++s) {
                        const T z = dropout_keep(seed, detail::att_index(bh, t, s, Tn), rate)
                                        ? keep_scale
                                        : T(0);
                        g[s] = p[s] * (z * g[s] - D) * scale;
                        p[s] *= z;
                    }
                } else {
                    using V = simd::batch<T, Arch>;
                    constexpr int W = blk::W;
                    const V vD(D), vs(scale);
                    int s = 0;
                    for (; s + W <= n; s += W) {
                        const V pv = simd::load<Arch>(p + s);
                        simd::store<Arch>(g + s, pv * (simd::load<Arch>(g + s) - vD) * vs);
                    }
                    for (; s < n; ++s)
                        g[s] = p[s] * (g[s] - D) * scale;
                }
                std::fill(p + n, p + nkp, T(0));
                std::fill(g + n, g + nkp, T(0));
            }
            // dq rows = dS · K;  dK += dSᵀ · Q;  dV += (P z)ᵀ · dout.
            detail::att_product_hs<Arch, false>(dqb, HSp, ds, Tp, 1, kp, HSp, blk::QB, HSp, nk);
            const int nkr = static_cast<int>(detail::round_up(nk, blk::HR));
            detail::att_product_hs<Arch, true>(dkp, HSp, ds, 1, Tp, qp + std::size_t(i0) * HSp, HSp,
                                               nkr, HSp, rows);
            detail::att_product_hs<Arch, true>(dvp, HSp, pz, 1, Tp, dop + std::size_t(i0) * HSp,
                                               HSp, nkr, HSp, rows);
            for (int r = 0; r < rows; ++r)
                std::copy(dqb + std::size_t(r) * HSp, dqb + std::size_t(r) * HSp + HS,
                          dqkv + (std::int64_t(b) * Tn + i0 + r) * C3 + h * HS);
        }
        T* dbase = dqkv + std::int64_t(b) * Tn * C3 + h * HS;
        for (int s = 0; s < Tn; ++s) {
            std::copy(dkp + std::size_t(s) * HSp, dkp + std::size_t(s) * HSp + HS,
                      dbase + std::int64_t(s) * C3 + C);
            std::copy(dvp + std::size_t(s) * HSp, dvp + std::size_t(s) * HSp + HS,
                      dbase + std::int64_t(s) * C3 + 2 * C);
        }
    });
}

} // namespace gptx::ops
