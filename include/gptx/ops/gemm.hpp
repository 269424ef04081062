// gptx/ops/gemm.hpp: packed, cache-blocked, register-tiled matrix multiply (BLIS-style) for float
// and double. Tested by tests/ops/test_gemm.cpp, timed by bench/bench_gemm.cpp.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../core/arena.hpp"
#include "../core/parallel.hpp"
#include "../simd/simd.hpp"

namespace gptx::ops {

namespace detail {

// Register tile MR x NR (NR = NV vectors) and cache blocks. AVX-512 has 32 vector registers:
// 8 x 3 vectors = 24 accumulators + 3 B vectors + a broadcast. Narrower archs have 16: 6 x 2.
template <class T, class Arch> struct gemm_blocking {
    static constexpr bool wide = std::is_base_of_v<xsimd::avx512f, Arch>;
    static constexpr int W = int(simd::lanes<T, Arch>);
    static constexpr int NV = wide ? 3 : 2;
    static constexpr int MR = wide ? 8 : 6;
    static constexpr int NR = NV * W;
    // KC: depth of one pass; the packed A strip (MR x KC) stays in L1.
    static constexpr int KC = 256;
    // NC: the packed B block (KC x NC) is streamed from L2 once per A strip; ~384 KB of it.
    static constexpr int NC = std::max(NR, int(384 * 1024 / (KC * sizeof(T))) / NR * NR);
    // MC: rows of A packed per pass (bounds the buffer; M = B*T fits in one).
    static constexpr int MC = 4096 / MR * MR;
};

// Per-thread scratch for the packed panels (one buffer per Slot).
struct gemm_scratch_tag;
template <class T, int Slot> T* gemm_scratch(std::size_t n) {
    return thread_scratch<T, gemm_scratch_tag, Slot>(n);
}

// Side of the register transpose the packs use: float on AVX-512 (16) and AVX2 (8); 0 means
// the transposing packs fall back to scalar copies (~1 cycle per element).
template <class Arch, class T> constexpr int gemm_transpose_size() {
    if constexpr (!std::is_same_v<T, float>)
        return 0;
    else if constexpr (XSIMD_WITH_AVX512F && std::is_base_of_v<xsimd::avx512f, Arch>)
        return 16;
    else if constexpr (XSIMD_WITH_AVX2 && std::is_base_of_v<xsimd::avx2, Arch>)
        return 8;
    else
        return 0;
}

// Transposes a (rows <= S) x S block (row r at src + r*ld, missing rows read as 0), S =
// gemm_transpose_size, and stores its S columns as the first `width` floats of dst + k*ldd.
// GCC 12's shuffle intrinsics trip -Wuninitialized on their own _mm*_undefined_ps.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
template <class Arch, class T>
void gemm_transpose(const T* src, std::int64_t ld, int rows, T* dst, int ldd, int width) {
#if XSIMD_WITH_AVX512F
    if constexpr (gemm_transpose_size<Arch, T>() == 16) {
        __m512 r[16], t[16];
        for (int i = 0; i < 16; ++i)
            r[i] = i < rows ? _mm512_loadu_ps(src + i * ld) : _mm512_setzero_ps();
        for (int i = 0; i < 16; i += 2) { // per 128-bit lane: rows i, i+1 interleaved
            t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 16; i += 4) { // r[i + c], lane L: column 4L + c of rows i..i+3
            r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
            r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
            r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
            r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
        }
        for (int c = 0; c < 4; ++c) { // gather the four lanes of each column
            const __m512 v0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
            const __m512 v1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
            const __m512 x0 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
            const __m512 x1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
            t[c] = _mm512_shuffle_f32x4(v0, x0, 0x88);
            t[8 + c] = _mm512_shuffle_f32x4(v0, x0, 0xDD);
            t[4 + c] = _mm512_shuffle_f32x4(v1, x1, 0x88);
            t[12 + c] = _mm512_shuffle_f32x4(v1, x1, 0xDD);
        }
        const __mmask16 m = __mmask16((1u << width) - 1);
        for (int k = 0; k < 16; ++k)
            _mm512_mask_storeu_ps(dst + std::size_t(k) * ldd, m, t[k]);
        return;
    }
#endif
#if XSIMD_WITH_AVX2
    if constexpr (gemm_transpose_size<Arch, T>() == 8) {
        __m256 r[8], t[8];
        for (int i = 0; i < 8; ++i)
            r[i] = i < rows ? _mm256_loadu_ps(src + i * ld) : _mm256_setzero_ps();
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) { // r[i + c], lane L: column 4L + c of rows i..i+3
            r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
            r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
            r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
            r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
        }
        for (int c = 0; c < 4; ++c) {
            t[c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x20);
            t[4 + c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x31);
        }
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(width), lane);
        for (int k = 0; k < 8; ++k)
            _mm256_maskstore_ps(dst + std::size_t(k) * ldd, m, t[k]);
        return;
    }
#endif
    (void)src, (void)ld, (void)rows, (void)dst, (void)ldd, (void)width;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Packs rows [i0, i0+mc) x cols [p0, p0+kc) of op(A) into MR-row strips, each k-major
// (strip[k*MR + i]) and zero-padded to MR rows, so the kernel broadcasts contiguous values.
template <class Arch, class T, int MR>
void gemm_pack_a(bool trans_a, const T* A, int lda, int i0, int mc, int p0, int kc, T* dst) {
    for (int s = 0; s < mc; s += MR, dst += std::size_t(kc) * MR) {
        const int mr = std::min(MR, mc - s);
        if (trans_a) { // A stored (K, M): rows of the strip are contiguous at each k
            for (int k = 0; k < kc; ++k) {
                const T* src = A + std::int64_t(p0 + k) * lda + (i0 + s);
                T* d = dst + std::size_t(k) * MR;
                for (int i = 0; i < mr; ++i)
                    d[i] = src[i];
                for (int i = mr; i < MR; ++i)
                    d[i] = T(0);
            }
        } else { // A stored (M, K): register transposes, then scalar for the last k
            constexpr int S = gemm_transpose_size<Arch, T>();
            static_assert(S == 0 || MR <= S);
            const T* src = A + std::int64_t(i0 + s) * lda + p0;
            int k = 0;
            if constexpr (S > 0)
                for (; k + S <= kc; k += S)
                    gemm_transpose<Arch>(src + k, lda, mr, dst + std::size_t(k) * MR, MR, MR);
            for (; k < kc; ++k)
                for (int i = 0; i < MR; ++i)
                    dst[std::size_t(k) * MR + i] = i < mr ? src[std::int64_t(i) * lda + k] : T(0);
        }
    }
}

// Packs rows [p0, p0+kc) x cols [j0, j0+nc) of op(B) into NR-wide panels, each k-major
// (panel[k*NR + j]) and zero-padded to NR columns.
template <class Arch, class T, int NR>
void gemm_pack_b(bool trans_b, const T* B, int ldb, int p0, int kc, int j0, int nc, T* dst) {
    constexpr int W = int(simd::lanes<T, Arch>);
    for (int s = 0; s < nc; s += NR, dst += std::size_t(kc) * NR) {
        const int nr = std::min(NR, nc - s);
        if (!trans_b) { // B stored (K, N): each k is a contiguous row piece
            for (int k = 0; k < kc; ++k) {
                const T* src = B + std::int64_t(p0 + k) * ldb + (j0 + s);
                T* d = dst + std::size_t(k) * NR;
                if (nr == NR) {
                    for (int j = 0; j < NR; j += W)
                        simd::load<Arch>(src + j).store_aligned(d + j);
                } else {
                    for (int j = 0; j < nr; ++j)
                        d[j] = src[j];
                    for (int j = nr; j < NR; ++j)
                        d[j] = T(0);
                }
            }
        } else { // B stored (N, K): register transposes, then scalar for the last k
            constexpr int S = gemm_transpose_size<Arch, T>();
            static_assert(S == 0 || NR % S == 0);
            int k = 0;
            if constexpr (S > 0)
                for (; k + S <= kc; k += S)
                    for (int g = 0; g < NR; g += S)
                        gemm_transpose<Arch>(B + std::int64_t(j0 + s + g) * ldb + p0 + k, ldb,
                                             std::clamp(nr - g, 0, S),
                                             dst + std::size_t(k) * NR + g, NR, S);
            for (int j = 0; j < NR; ++j) {
                const T* src = B + std::int64_t(j0 + s + std::min(j, nr - 1)) * ldb + p0;
                for (int kk = k; kk < kc; ++kk)
                    dst[std::size_t(kk) * NR + j] = j < nr ? src[kk] : T(0);
            }
        }
    }
}

// C tile (mr x nr <= MR x NR) = alpha * a_strip . b_panel + beta * C (beta == 0: overwrite).
// Edge tiles go through a full-size temporary with the same vector arithmetic, so every element
// of C gets the same rounding wherever the tile boundaries fall.
template <class Arch, class T, int MR, int NV>
void gemm_kernel(int kc, const T* __restrict a, const T* __restrict b, T* c, int ldc, int mr,
                 int nr, T alpha, T beta) {
    using batch = simd::batch<T, Arch>;
    constexpr int W = int(batch::size), NR = NV * W;
    // C is touched only after the K loop; start its cache misses now (the LM head's C is cold).
    for (int i = 0; i < mr; ++i)
        for (int j = 0; j < nr; j += 64 / int(sizeof(T)))
            __builtin_prefetch(c + std::int64_t(i) * ldc + j, 1);
    batch acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            acc[i][v] = batch(T(0));

#pragma GCC unroll 2
    for (int k = 0; k < kc; ++k) {
        batch bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            bv[v] = batch::load_aligned(b + k * NR + v * W);
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
            const batch ai(a[k * MR + i]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v)
                acc[i][v] = xsimd::fma(ai, bv[v], acc[i][v]);
        }
    }

    alignas(64) T tmp[MR * NR];
    const bool full = mr == MR && nr == NR;
    T* ct = full ? c : tmp;
    const int ldt = full ? ldc : NR;
    if (!full && beta != T(0))
        for (int i = 0; i < mr; ++i)
            std::memcpy(tmp + i * NR, c + std::int64_t(i) * ldc, nr * sizeof(T));
    const batch va(alpha), vb(beta);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
        T* row = ct + std::int64_t(i) * ldt;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            const batch r =
                beta == T(0) ? va * acc[i][v]
                             : xsimd::fma(va, acc[i][v], vb * batch::load_unaligned(row + v * W));
            r.store_unaligned(row + v * W);
        }
    }
    if (!full)
        for (int i = 0; i < mr; ++i)
            std::memcpy(c + std::int64_t(i) * ldc, tmp + i * NR, nr * sizeof(T));
}

// One thread's share: C rows [m0, m1) x cols [n0, n1), all of K in fixed KC passes.
template <class Arch, class T>
void gemm_block(bool trans_a, bool trans_b, int m0, int m1, int n0, int n1, int K, T alpha,
                const T* A, int lda, const T* B, int ldb, T beta, T* C, int ldc) {
    using blk = gemm_blocking<T, Arch>;
    constexpr int MR = blk::MR, NR = blk::NR;
    // Equal passes of at most KC; depends on K only, so the sum order is thread-independent.
    const int passes = (K + blk::KC - 1) / blk::KC;
    const int kcmax = (K + passes - 1) / passes;
    const int mcmax = std::min(blk::MC, (m1 - m0 + MR - 1) / MR * MR);
    const int ncmax = std::min(blk::NC, (n1 - n0 + NR - 1) / NR * NR);
    T* apack = gemm_scratch<T, 0>(std::size_t(mcmax) * kcmax);
    T* bpack = gemm_scratch<T, 1>(std::size_t(ncmax) * kcmax);

    for (int p0 = 0; p0 < K; p0 += kcmax) {
        const int kc = std::min(kcmax, K - p0);
        const T beta_p = p0 == 0 ? beta : T(1); // later passes accumulate
        for (int i0 = m0; i0 < m1; i0 += mcmax) {
            const int mc = std::min(mcmax, m1 - i0);
            gemm_pack_a<Arch, T, MR>(trans_a, A, lda, i0, mc, p0, kc, apack);
            for (int j0 = n0; j0 < n1; j0 += ncmax) {
                const int nc = std::min(ncmax, n1 - j0);
                gemm_pack_b<Arch, T, NR>(trans_b, B, ldb, p0, kc, j0, nc, bpack);
                for (int ir = 0; ir < mc; ir += MR) {
                    const T* as = apack + std::size_t(ir) * kc;
                    for (int jr = 0; jr < nc; jr += NR) {
                        gemm_kernel<Arch, T, MR, blk::NV>(
                            kc, as, bpack + std::size_t(jr) * kc,
                            C + std::int64_t(i0 + ir) * ldc + (j0 + jr), ldc, std::min(MR, mc - ir),
                            std::min(NR, nc - jr), alpha, beta_p);
                    }
                }
            }
        }
    }
}

} // namespace detail

// T is float or double (double serves the gradient checks).
// C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C, all row-major with leading dimensions.
// op(A) = A (M,K) when !trans_a, else A is stored (K,M). op(B) = B (K,N) when !trans_b, else B is
// stored (N,K). beta == 0 overwrites C (NaNs in C are not propagated). Threads split C only, never
// K, so the result is bit-identical for any thread count.
template <class Arch = simd::default_arch, class T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
          int ldb, T beta, T* C, int ldc) {
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0 || alpha == T(0)) { // nothing to multiply: C = beta * C
        for (int i = 0; i < M; ++i) {
            T* c = C + std::int64_t(i) * ldc;
            for (int j = 0; j < N; ++j)
                c[j] = beta == T(0) ? T(0) : beta * c[j];
        }
        return;
    }
    using blk = detail::gemm_blocking<T, Arch>;
    const int strips = (M + blk::MR - 1) / blk::MR, panels = (N + blk::NR - 1) / blk::NR;
    // Split the longer side in whole tiles: each thread packs all of the other operand, so this
    // repeats the smaller pack. Tiles stay on one global grid, so results do not depend on threads.
    const bool split_n = panels * blk::NR >= strips * blk::MR;
    const std::int64_t units = split_n ? panels : strips;
    const double unit_flops = 2.0 * K * (split_n ? double(blk::NR) * M : double(blk::MR) * N);
    const auto min_units = std::int64_t(2e6 / unit_flops) + 1; // ~2 MFLOP per thread pays a fork
    parallel_ranges(
        units,
        [&](std::int64_t b, std::int64_t e) {
            if (split_n)
                detail::gemm_block<Arch, T>(trans_a, trans_b, 0, M, int(b) * blk::NR,
                                            std::min<std::int64_t>(N, e * blk::NR), K, alpha, A,
                                            lda, B, ldb, beta, C, ldc);
            else
                detail::gemm_block<Arch, T>(trans_a, trans_b, int(b) * blk::MR,
                                            std::min<std::int64_t>(M, e * blk::MR), 0, N, K, alpha,
                                            A, lda, B, ldb, beta, C, ldc);
        },
        min_units);
}

} // namespace gptx::ops
