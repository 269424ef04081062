// gptx/ops/gemm_bf16.hpp: matrix multiply with bf16 operands and fp32 accumulation on three
// paths chosen at run time (AMX-BF16 tiles, AVX512-BF16 vdpbf16ps, portable fp32 FMA).
// Tested by tests/ops/test_gemm_bf16.cpp, timed by bench/bench_gemm.cpp.
#pragma once
#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string_view>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

#include "../core/arena.hpp"
#include "../core/bf16.hpp"
#include "../core/cpu.hpp"
#include "../core/parallel.hpp"
#include "gemm.hpp"

namespace gptx::ops {

namespace detail {

// Every path reads the same packed panels, laid out as AMX tiles so that one packing serves all:
// a 32-row strip of op(A) is, per step of 32 k, two 16x32 row-major tiles (rows 0-15, 16-31);
// a 32-column panel of op(B) is, per step, two 16x16 "VNNI" tiles of k pairs
// (tile[kp][c][e] = op(B)(2kp+e, c)). Edges are zero-padded, so every kernel computes 32x32.
struct bf16_blocking {
    static constexpr int MR = 32, NR = 32, KS = 32; // C block, k per step
    static constexpr int STEP = 2 * 16 * 32;        // bf16 elements of one strip (or panel) step
    static constexpr int KMAX = 4096;               // k per pass: all of K below this
    static constexpr int A_BYTES = 16 << 20; // packed A block: all rows of a thread in practice
    static constexpr int B_BYTES = 1 << 20;  // packed B block: half of a 2 MB L2
};

struct gemm_bf16_scratch_tag;

// Packs op(A) rows [i0, i0+mc) x k [p0, p0+kc) into strips of ksteps steps each.
template <class TA>
void bf16_pack_a(bool trans_a, const TA* A, int lda, int i0, int mc, int p0, int kc, int ksteps,
                 std::uint16_t* dst) {
    using blk = bf16_blocking;
    for (int s = 0; s < mc; s += blk::MR) {
        std::uint16_t* strip = dst + std::size_t(s / blk::MR) * ksteps * blk::STEP;
        std::memset(strip, 0, sizeof(std::uint16_t) * std::size_t(ksteps) * blk::STEP);
        const int mr = std::min(blk::MR, mc - s);
        for (int i = 0; i < mr; ++i) {
            // row i lives in tile i/16, row i%16 of every step
            std::uint16_t* row = strip + (i / 16) * 512 + (i % 16) * 32;
            const std::int64_t r = i0 + s + i;
            if (!trans_a) { // A stored (M, K): k runs along the row
                const TA* src = A + r * lda + p0;
                for (int k = 0; k < kc; ++k)
                    row[(k / 32) * blk::STEP + k % 32] = bf16_bits(src[k]);
            } else { // A stored (K, M)
                for (int k = 0; k < kc; ++k)
                    row[(k / 32) * blk::STEP + k % 32] =
                        bf16_bits(A[std::int64_t(p0 + k) * lda + r]);
            }
        }
    }
}

// Packs op(B) k [p0, p0+kc) x columns [j0, j0+nc) into panels of ksteps steps each.
template <class TB>
void bf16_pack_b(bool trans_b, const TB* B, int ldb, int p0, int kc, int j0, int nc, int ksteps,
                 std::uint16_t* dst) {
    using blk = bf16_blocking;
    for (int s = 0; s < nc; s += blk::NR) {
        std::uint16_t* panel = dst + std::size_t(s / blk::NR) * ksteps * blk::STEP;
        std::memset(panel, 0, sizeof(std::uint16_t) * std::size_t(ksteps) * blk::STEP);
        const int nr = std::min(blk::NR, nc - s);
        if (trans_b) { // B stored (N, K): column j's k values are contiguous
            for (int j = 0; j < nr; ++j) {
                const TB* src = B + std::int64_t(j0 + s + j) * ldb + p0;
                std::uint16_t* col = panel + (j / 16) * 512 + (j % 16) * 2;
                for (int k = 0; k < kc; ++k)
                    col[(k / 32) * blk::STEP + ((k % 32) / 2) * 32 + (k & 1)] = bf16_bits(src[k]);
            }
        } else { // B stored (K, N): row k is contiguous over the columns
            for (int k = 0; k < kc; ++k) {
                const TB* src = B + std::int64_t(p0 + k) * ldb + j0 + s;
                std::uint16_t* d = panel + (k / 32) * blk::STEP + ((k % 32) / 2) * 32 + (k & 1);
                for (int j = 0; j < nr; ++j)
                    d[(j / 16) * 512 + (j % 16) * 2] = bf16_bits(src[j]);
            }
        }
    }
}

// C(mr x nr) = alpha * acc + beta * C (beta == 0 overwrites); acc is 32x32, row stride 32.
inline void bf16_store_c(const float* acc, float* c, int ldc, int mr, int nr, float alpha,
                         float beta) {
    for (int i = 0; i < mr; ++i) {
        float* row = c + std::int64_t(i) * ldc;
        const float* a = acc + i * 32;
        if (beta == 0.0f)
            for (int j = 0; j < nr; ++j)
                row[j] = alpha * a[j];
        else
            for (int j = 0; j < nr; ++j)
                row[j] = alpha * a[j] + beta * row[j];
    }
}

// The portable path: bf16 -> fp32 (a 16-bit shift) and fp32 multiply-adds, any CPU.
inline void bf16_kernel_portable(int ksteps, const std::uint16_t* a, const std::uint16_t* b,
                                 float* c, int ldc, int mr, int nr, float alpha, float beta) {
    alignas(64) float acc[32 * 32] = {};
    alignas(64) float af[32 * 32], bf[2][16][32]; // af[r][k], bf[e][kp][c]
    for (int t = 0; t < ksteps; ++t, a += bf16_blocking::STEP, b += bf16_blocking::STEP) {
        for (int r = 0; r < 32; ++r)
            for (int k = 0; k < 32; ++k)
                af[r * 32 + k] = std::bit_cast<float>(std::uint32_t(a[r * 32 + k]) << 16);
        for (int h = 0; h < 2; ++h)
            for (int kp = 0; kp < 16; ++kp)
                for (int cc = 0; cc < 16; ++cc)
                    for (int e = 0; e < 2; ++e)
                        bf[e][kp][h * 16 + cc] = std::bit_cast<float>(
                            std::uint32_t(b[h * 512 + kp * 32 + cc * 2 + e]) << 16);
        for (int r = 0; r < 32; ++r)
            for (int kp = 0; kp < 16; ++kp)
                for (int e = 0; e < 2; ++e) {
                    const float x = af[r * 32 + 2 * kp + e];
                    for (int j = 0; j < 32; ++j)
                        acc[r * 32 + j] += x * bf[e][kp][j];
                }
    }
    bf16_store_c(acc, c, ldc, mr, nr, alpha, beta);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GPTX_HAVE_BF16_KERNELS 1

// AVX512-BF16: vdpbf16ps multiplies a broadcast k pair of one A row by a VNNI row of B (16
// columns x 2 k) into 16 fp32 lanes. 8 rows x 32 columns = 16 accumulators per pass over k.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) inline void
bf16_kernel_avx512bf16(int ksteps, const std::uint16_t* a, const std::uint16_t* b, float* c,
                       int ldc, int mr, int nr, float alpha, float beta) {
    alignas(64) float acc[32 * 32];
    for (int g = 0; g < 4; ++g) { // rows 8g .. 8g+7, all in A tile g/2
        __m512 s[8][2];
        for (int i = 0; i < 8; ++i)
            s[i][0] = s[i][1] = _mm512_setzero_ps();
        const std::uint16_t* ag = a + (g / 2) * 512 + (g % 2) * 8 * 32;
        for (int t = 0; t < ksteps; ++t) {
            const std::uint16_t* at = ag + std::size_t(t) * bf16_blocking::STEP;
            const std::uint16_t* bt = b + std::size_t(t) * bf16_blocking::STEP;
            for (int kp = 0; kp < 16; ++kp) {
                const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bt + kp * 32);
                const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bt + 512 + kp * 32);
#pragma GCC unroll 8
                for (int i = 0; i < 8; ++i) {
                    std::uint32_t pair;
                    std::memcpy(&pair, at + i * 32 + 2 * kp, 4);
                    const __m512bh ai = (__m512bh)_mm512_set1_epi32(int(pair));
                    s[i][0] = _mm512_dpbf16_ps(s[i][0], ai, b0);
                    s[i][1] = _mm512_dpbf16_ps(s[i][1], ai, b1);
                }
            }
        }
        for (int i = 0; i < 8; ++i) {
            _mm512_store_ps(acc + (8 * g + i) * 32, s[i][0]);
            _mm512_store_ps(acc + (8 * g + i) * 32 + 16, s[i][1]);
        }
    }
    bf16_store_c(acc, c, ldc, mr, nr, alpha, beta);
}

// AMX: 4 accumulator tiles (tmm0-3: C quarters), 2 A tiles (tmm4-5), 2 B tiles (tmm6-7).
struct alignas(64) amx_tile_config {
    std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
    std::uint16_t colsb[16] = {};
    std::uint8_t rows[16] = {};
};

// GCC 12's _tile_loadconfig tells the compiler it reads 8 bytes (so the rest of the config can be
// optimised away: #GP without -march), and its _tile_loadd/_tile_stored declare no memory access
// at all; these say what they touch.
#define GPTX_TILE_LOADD(t, base, stride)                                                           \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(base), "r"(std::int64_t(stride))        \
                     : "memory")
#define GPTX_TILE_STORED(t, base, stride)                                                          \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(base), "r"(std::int64_t(stride))    \
                     : "memory")

// Tile registers are per thread: configure before a thread's first tile instruction, release
// after (so the kernel need not save 8 KB of tile state on every context switch).
inline void amx_begin() {
    amx_tile_config cfg;
    for (int t = 0; t < 8; ++t) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
}
inline void amx_end() { __asm__ volatile("tilerelease" ::: "memory"); }

__attribute__((target("avx512f,avx512bw,avx512bf16,amx-tile,amx-bf16"))) inline void
bf16_kernel_amx(int ksteps, const std::uint16_t* a, const std::uint16_t* b, float* c, int ldc,
                int mr, int nr, float alpha, float beta) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int t = 0; t < ksteps; ++t) {
        const std::uint16_t* at = a + std::size_t(t) * bf16_blocking::STEP;
        const std::uint16_t* bt = b + std::size_t(t) * bf16_blocking::STEP;
        GPTX_TILE_LOADD(4, at, 64);
        GPTX_TILE_LOADD(6, bt, 64);
        GPTX_TILE_LOADD(7, bt + 512, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        GPTX_TILE_LOADD(5, at + 512, 64);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    alignas(64) float acc[32 * 32];
    GPTX_TILE_STORED(0, acc, 128);
    GPTX_TILE_STORED(1, acc + 16, 128);
    GPTX_TILE_STORED(2, acc + 16 * 32, 128);
    GPTX_TILE_STORED(3, acc + 16 * 32 + 16, 128);
    bf16_store_c(acc, c, ldc, mr, nr, alpha, beta);
}
#else
#define GPTX_HAVE_BF16_KERNELS 0
#endif

#if GPTX_HAVE_BF16_KERNELS
// Packing with AVX-512 for the two hardware paths (the portable path packs with the scalar loops
// above; both give the same bits). Rounding to bf16 is the integer form of bf16_bits, so that it
// matches it exactly (vcvtne2ps2bf16 would flush denormals).
#define GPTX_PACK_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))

// 16 values -> 16 x u32 with the bf16 bits in the low half; lanes not in `m` read as 0.
GPTX_PACK_TARGET inline __m512i bf16_lanes(const float* p, __mmask16 m) {
    const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, p));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
}
GPTX_PACK_TARGET inline __m512i bf16_lanes(const bf16* p, __mmask16 m) {
    return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
}
inline __mmask16 first_lanes(int n) {
    return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// Transposes 16 rows of 16 x 32-bit (row i in r[i]) in place: r[k] becomes column k.
GPTX_PACK_TARGET inline void transpose16x16(__m512i* x) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i)
        r[i] = _mm512_castsi512_ps(x[i]);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int c = 0; c < 4; ++c) {
        const __m512 v0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
        const __m512 v1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
        const __m512 x0 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        const __m512 x1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
        t[c] = _mm512_shuffle_f32x4(v0, x0, 0x88);
        t[8 + c] = _mm512_shuffle_f32x4(v0, x0, 0xDD);
        t[4 + c] = _mm512_shuffle_f32x4(v1, x1, 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(v1, x1, 0xDD);
    }
    for (int i = 0; i < 16; ++i)
        x[i] = _mm512_castps_si512(t[i]);
}

// 32 consecutive values (n valid) -> 16 u32 k pairs, as one tile row of 32 bf16.
template <class T> GPTX_PACK_TARGET inline __m512i bf16_pairs(const T* p, int n) {
    const __m256i lo = _mm512_cvtepi32_epi16(bf16_lanes(p, first_lanes(n)));
    const __m256i hi = _mm512_cvtepi32_epi16(bf16_lanes(p + 16, first_lanes(n - 16)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// Both packs below visit their source in one of two orders: when k runs along a source row
// (A (M,K), B (N,K)), each row is read along k; when k runs down the rows (A (K,M), B (K,N)),
// the k step is outermost so that each group of 32 rows is read along its length once, not as
// 64-byte pieces a row apart (which no prefetcher follows: half of the time in dinp went there).
template <class TA>
GPTX_PACK_TARGET void bf16_pack_a_avx512(bool trans_a, const TA* A, int lda, int i0, int mc, int p0,
                                         int kc, int ksteps, std::uint16_t* dst) {
    using blk = bf16_blocking;
    auto tile_of = [&](int s, int h, int t) {
        return dst + (std::size_t(s / blk::MR) * ksteps + t) * blk::STEP + h * 512;
    };
    auto rows_of = [&](int s, int h) {
        return std::clamp(std::min(blk::MR, mc - s) - 16 * h, 0, 16);
    };
    __m512i v[16];
    if (!trans_a) { // row r: 32 contiguous k per step
        for (int s = 0; s < mc; s += blk::MR)
            for (int h = 0; h < 2; ++h) {
                const int rows = rows_of(s, h);
                const std::int64_t r0 = i0 + s + 16 * h;
                for (int t = 0; t < ksteps; ++t) {
                    const int k0 = 32 * t, kn = std::min(32, kc - k0);
                    std::uint16_t* tile = tile_of(s, h, t);
                    for (int r = 0; r < 16; ++r)
                        _mm512_storeu_si512(tile + r * 32,
                                            r < rows ? bf16_pairs(A + (r0 + r) * lda + p0 + k0, kn)
                                                     : _mm512_setzero_si512());
                }
            }
        return;
    }
    for (int t = 0; t < ksteps; ++t) // k pair kp: two rows of A, 16 contiguous m; then transpose
        for (int s = 0; s < mc; s += blk::MR)
            for (int h = 0; h < 2; ++h) {
                const __mmask16 m = first_lanes(rows_of(s, h));
                const std::int64_t r0 = i0 + s + 16 * h;
                for (int kp = 0; kp < 16; ++kp) {
                    const int k = 32 * t + 2 * kp;
                    const TA* src = A + std::int64_t(p0 + k) * lda + r0;
                    const __m512i x = k < kc ? bf16_lanes(src, m) : _mm512_setzero_si512();
                    const __m512i y =
                        k + 1 < kc ? bf16_lanes(src + lda, m) : _mm512_setzero_si512();
                    v[kp] = _mm512_or_si512(x, _mm512_slli_epi32(y, 16));
                }
                transpose16x16(v);
                std::uint16_t* tile = tile_of(s, h, t);
                for (int r = 0; r < 16; ++r)
                    _mm512_storeu_si512(tile + r * 32, v[r]);
            }
}

template <class TB>
GPTX_PACK_TARGET void bf16_pack_b_avx512(bool trans_b, const TB* B, int ldb, int p0, int kc, int j0,
                                         int nc, int ksteps, std::uint16_t* dst) {
    using blk = bf16_blocking;
    auto tile_of = [&](int s, int h, int t) {
        return dst + (std::size_t(s / blk::NR) * ksteps + t) * blk::STEP + h * 512;
    };
    auto cols_of = [&](int s, int h) {
        return std::clamp(std::min(blk::NR, nc - s) - 16 * h, 0, 16);
    };
    __m512i v[16];
    if (trans_b) { // column c: 32 contiguous k = 16 pairs per step; then transpose
        for (int s = 0; s < nc; s += blk::NR)
            for (int h = 0; h < 2; ++h) {
                const int cols = cols_of(s, h);
                const std::int64_t c0 = j0 + s + 16 * h;
                for (int t = 0; t < ksteps; ++t) {
                    const int k0 = 32 * t, kn = std::min(32, kc - k0);
                    for (int c = 0; c < 16; ++c)
                        v[c] = c < cols ? bf16_pairs(B + (c0 + c) * ldb + p0 + k0, kn)
                                        : _mm512_setzero_si512();
                    transpose16x16(v);
                    std::uint16_t* tile = tile_of(s, h, t);
                    for (int kp = 0; kp < 16; ++kp)
                        _mm512_storeu_si512(tile + kp * 32, v[kp]);
                }
            }
        return;
    }
    for (int t = 0; t < ksteps; ++t) // k pair kp: two rows of B, 16 contiguous columns each
        for (int kp = 0; kp < 16; ++kp) {
            const int k = 32 * t + 2 * kp;
            const TB* src = B + std::int64_t(p0 + k) * ldb + j0;
            for (int s = 0; s < nc; s += blk::NR)
                for (int h = 0; h < 2; ++h) {
                    const __mmask16 m = first_lanes(cols_of(s, h));
                    const TB* sc = src + s + 16 * h;
                    const __m512i x = k < kc ? bf16_lanes(sc, m) : _mm512_setzero_si512();
                    const __m512i y = k + 1 < kc ? bf16_lanes(sc + ldb, m) : _mm512_setzero_si512();
                    _mm512_storeu_si512(tile_of(s, h, t) + kp * 32,
                                        _mm512_or_si512(x, _mm512_slli_epi32(y, 16)));
                }
        }
}
#undef GPTX_PACK_TARGET
#endif

using bf16_kernel_fn = void (*)(int, const std::uint16_t*, const std::uint16_t*, float*, int, int,
                                int, float, float);

inline bf16_kernel_fn bf16_kernel_for(bf16_isa isa) {
#if GPTX_HAVE_BF16_KERNELS
    if (isa == bf16_isa::amx)
        return bf16_kernel_amx;
    if (isa == bf16_isa::avx512bf16)
        return bf16_kernel_avx512bf16;
#endif
    (void)isa;
    return bf16_kernel_portable;
}

// One thread's share: C rows [m0, m1) x cols [n0, n1). Each 32x32 block of C takes all of K in
// one kernel call when K <= KMAX, so C is read and written once (with K split in passes of 256,
// re-reading a C larger than L2 cost a third of the time). A larger K (the LM head's dinp, K =
// 50257) goes in equal passes of at most KMAX, fixed by K alone, so that the packed strips stay
// in L2. The packs hold a pass of K: A once per pass, B in blocks of ~1 MB.
template <class TA, class TB>
void gemm_bf16_block(bf16_isa isa, bool trans_a, bool trans_b, int m0, int m1, int n0, int n1,
                     int K, float alpha, const TA* A, int lda, const TB* B, int ldb, float beta,
                     float* C, int ldc, const std::uint16_t* bpre = nullptr) {
    using blk = bf16_blocking;
    const bf16_kernel_fn kernel = bf16_kernel_for(isa);
    const int kstot = (K + blk::KS - 1) / blk::KS; // steps of all of K (bpre's panel length)
    const int passes = (K + blk::KMAX - 1) / blk::KMAX;
    const int kcmax = ((K + passes - 1) / passes + blk::KS - 1) / blk::KS * blk::KS;
    const int ksmax = kcmax / blk::KS;
    const std::size_t kbytes = std::size_t(kcmax) * sizeof(std::uint16_t);
    auto rounded = [](int n, int to) { return std::max(to, n / to * to); };
    const int mcmax = std::min(rounded(int(std::size_t(blk::A_BYTES) / kbytes), blk::MR),
                               (m1 - m0 + blk::MR - 1) / blk::MR * blk::MR);
    const int ncmax = std::min(rounded(int(std::size_t(blk::B_BYTES) / kbytes), blk::NR),
                               (n1 - n0 + blk::NR - 1) / blk::NR * blk::NR);
    std::uint16_t* apack = thread_scratch<std::uint16_t, gemm_bf16_scratch_tag, 0>(
        std::size_t(mcmax / blk::MR) * ksmax * blk::STEP);
    std::uint16_t* bown = bpre ? nullptr
                               : thread_scratch<std::uint16_t, gemm_bf16_scratch_tag, 1>(
                                     std::size_t(ncmax / blk::NR) * ksmax * blk::STEP);
#if GPTX_HAVE_BF16_KERNELS
    if (isa == bf16_isa::amx)
        amx_begin();
#endif
    for (int p0 = 0; p0 < K; p0 += kcmax) {
        const int kc = std::min(kcmax, K - p0), ksteps = (kc + blk::KS - 1) / blk::KS;
        const float beta_p = p0 == 0 ? beta : 1.0f; // later passes accumulate
        // Elements from one B panel to the next: bpre's panels hold all of K.
        const std::size_t bstride = std::size_t(bpre ? kstot : ksteps) * blk::STEP;
        for (int i0 = m0; i0 < m1; i0 += mcmax) {
            const int mc = std::min(mcmax, m1 - i0);
#if GPTX_HAVE_BF16_KERNELS
            if (isa != bf16_isa::portable)
                bf16_pack_a_avx512(trans_a, A, lda, i0, mc, p0, kc, ksteps, apack);
            else
#endif
                bf16_pack_a(trans_a, A, lda, i0, mc, p0, kc, ksteps, apack);
            for (int j0 = n0; j0 < n1; j0 += ncmax) {
                const int nc = std::min(ncmax, n1 - j0);
                const std::uint16_t* bpack = bown;
                if (bpre) // packed once for all calls (j0 and p0 are on the 32 grid)
                    bpack = bpre + std::size_t(j0 / blk::NR) * bstride +
                            std::size_t(p0 / blk::KS) * blk::STEP;
#if GPTX_HAVE_BF16_KERNELS
                else if (isa != bf16_isa::portable)
                    bf16_pack_b_avx512(trans_b, B, ldb, p0, kc, j0, nc, ksteps, bown);
#endif
                else
                    bf16_pack_b(trans_b, B, ldb, p0, kc, j0, nc, ksteps, bown);
                // A strip outer: it stays in L1/L2 while the B panels of the block (L2) pass by.
                for (int ir = 0; ir < mc; ir += blk::MR) {
                    const std::uint16_t* as =
                        apack + std::size_t(ir / blk::MR) * ksteps * blk::STEP;
                    for (int jr = 0; jr < nc; jr += blk::NR)
                        kernel(ksteps, as, bpack + std::size_t(jr / blk::NR) * bstride,
                               C + std::int64_t(i0 + ir) * ldc + (j0 + jr), ldc,
                               std::min(blk::MR, mc - ir), std::min(blk::NR, nc - jr), alpha,
                               beta_p);
                }
            }
        }
    }
#if GPTX_HAVE_BF16_KERNELS
    if (isa == bf16_isa::amx)
        amx_end();
#endif
}

} // namespace detail

namespace detail {
template <class TA, class TB>
void gemm_bf16_run(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const TA* A,
                   int lda, const TB* B, int ldb, float beta, float* C, int ldc, bf16_isa isa,
                   const std::uint16_t* bpre) {
    if (M <= 0 || N <= 0)
        return;
    const std::string missing = isa_missing(isa);
    GPTX_CHECK(missing.empty(), "gemm_bf16: path ", isa_name(isa), " needs ", missing);
    if (K <= 0 || alpha == 0.0f) { // nothing to multiply: C = beta * C
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
                float& c = C[std::int64_t(i) * ldc + j];
                c = beta == 0.0f ? 0.0f : beta * c;
            }
        return;
    }
    using blk = bf16_blocking;
    const int strips = (M + blk::MR - 1) / blk::MR, panels = (N + blk::NR - 1) / blk::NR;
    const bool split_n = panels >= strips; // each thread packs all of the other operand
    const std::int64_t units = split_n ? panels : strips;
    const double unit_flops = 2.0 * K * 32 * (split_n ? M : N);
    const auto min_units = std::int64_t(4e6 / unit_flops) + 1;
    parallel_ranges(
        units,
        [&](std::int64_t b, std::int64_t e) {
            if (split_n)
                gemm_bf16_block(isa, trans_a, trans_b, 0, M, int(b) * blk::NR,
                                int(std::min<std::int64_t>(N, e * blk::NR)), K, alpha, A, lda, B,
                                ldb, beta, C, ldc, bpre);
            else
                gemm_bf16_block(isa, trans_a, trans_b, int(b) * blk::MR,
                                int(std::min<std::int64_t>(M, e * blk::MR)), 0, N, K, alpha, A, lda,
                                B, ldb, beta, C, ldc, bpre);
        },
        min_units);
}
} // namespace detail

// C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C, the layout contract of gemm(): row-major,
// op(A) = A (M,K) or, with trans_a, A stored (K,M); op(B) = B (K,N) or, with trans_b, B stored
// (N,K); beta == 0 overwrites C. A and B are float (rounded to bf16, nearest-even, as they are
// packed) or bf16; products are exact in fp32 and sums accumulate in fp32. isa picks the path
// (default: the process's dispatch, active_bf16_isa()); a path the CPU lacks is an error. Threads
// split C only, so results do not depend on the thread count.
template <class TA, class TB>
void gemm_bf16(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const TA* A, int lda,
               const TB* B, int ldb, float beta, float* C, int ldc,
               bf16_isa isa = active_bf16_isa()) {
    detail::gemm_bf16_run(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, isa,
                          nullptr);
}

// op(B) (K,N) packed once, for a B that several products share (the tied LM head's wte across
// row chunks): the same bits gemm_bf16 would pack on every call.
struct bf16_packed_b {
    int K = 0, N = 0;
    std::vector<std::uint16_t> panels; // 32-column panels of all K, in detail::bf16_pack_b's layout
};

// Wall time and FLOPs of the products run through gemm_mixed and the prepacked gemm_bf16 (the
// LM head's, packing included), so `gptx bench` can report what share of a step its GEMMs take and
// at what rate, in all and per shape (which product loses the rate). Off unless turned on; not
// thread-safe when on, which is fine: the one thread driving the model calls the GEMMs, each
// threaded inside.
struct gemm_tally {
    struct total {
        double seconds = 0, flops = 0;
        std::int64_t calls = 0;
    };
    bool on = false;
    double seconds = 0, flops = 0;
    std::int64_t calls = 0;
    std::map<std::array<int, 5>, total> by_shape; // (trans_a, trans_b, M, N, K) of the products
};
inline gemm_tally& gemm_tally_now() {
    static gemm_tally t;
    return t;
}
// Runs f, a product of 2·M·N·K FLOPs of the given shape (0 FLOPs: packing), and adds it to the
// tally when it is on. The timed path is kept out of line so that the usual one inlines exactly
// as f alone would.
template <class F>
[[gnu::noinline]] void tallied_timed(double flops, const std::array<int, 5>& shape, F& f) {
    gemm_tally& t = gemm_tally_now();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t.seconds += s;
    t.flops += flops;
    t.calls += flops > 0;
    if (flops > 0) {
        gemm_tally::total& e = t.by_shape[shape];
        e.seconds += s;
        e.flops += flops;
        ++e.calls;
    }
}
template <class F> void tallied(double flops, const std::array<int, 5>& shape, F&& f) {
    if (gemm_tally_now().on)
        tallied_timed(flops, shape, f);
    else
        f();
}

template <class TB>
void pack_bf16(bf16_packed_b& out, bool trans_b, int K, int N, const TB* B, int ldb,
               bf16_isa isa = active_bf16_isa()) {
    using blk = detail::bf16_blocking;
    const int ksteps = (K + blk::KS - 1) / blk::KS, panels = (N + blk::NR - 1) / blk::NR;
    out.K = K;
    out.N = N;
    out.panels.resize(std::size_t(panels) * ksteps * blk::STEP);
    tallied(0, {}, [&] {
        parallel_ranges(panels, [&](std::int64_t b, std::int64_t e) {
            const int j0 = int(b) * blk::NR, nc = std::min(N, int(e) * blk::NR) - j0;
            std::uint16_t* dst = out.panels.data() + std::size_t(b) * ksteps * blk::STEP;
#if GPTX_HAVE_BF16_KERNELS
            if (isa != bf16_isa::portable)
                return detail::bf16_pack_b_avx512(trans_b, B, ldb, 0, K, j0, nc, ksteps, dst);
#endif
            (void)isa;
            detail::bf16_pack_b(trans_b, B, ldb, 0, K, j0, nc, ksteps, dst);
        });
    });
}

// gemm_bf16 with op(B) packed by pack_bf16 (its K and N).
template <class TA>
void gemm_bf16(bool trans_a, int M, float alpha, const TA* A, int lda, const bf16_packed_b& B,
               float beta, float* C, int ldc, bf16_isa isa = active_bf16_isa()) {
    tallied(2.0 * M * B.N * B.K, {trans_a, 0, M, B.N, B.K}, [&] {
        detail::gemm_bf16_run(trans_a, false, M, B.N, B.K, alpha, A, lda,
                              static_cast<const float*>(nullptr), 0, beta, C, ldc, isa,
                              B.panels.data());
    });
}

// Which arithmetic the float GEMMs of the linear layers and the tied LM head use: fp32, or bf16
// operands with fp32 accumulation (mixed precision: fp32 master weights, gradients and optimizer;
// the bf16 copies of weights and activations are made as the GEMM packs them, which rounds
// exactly as a separate copy would). Process-wide, set once before training starts.
enum class precision { fp32, bf16 };

inline precision& matmul_precision_setting() {
    static precision p = precision::fp32;
    return p;
}
inline precision matmul_precision() { return matmul_precision_setting(); }
inline void set_matmul_precision(precision p) { matmul_precision_setting() = p; }
inline std::string_view precision_name(precision p) {
    return p == precision::bf16 ? "bf16" : "fp32";
}
inline precision parse_precision(std::string_view s) {
    if (s == "fp32")
        return precision::fp32;
    GPTX_CHECK(s == "bf16", "precision '", s, "' is not one of fp32, bf16");
    return precision::bf16;
}

// gemm() in the arithmetic matmul_precision() names. Products with a side under 16 (decoding
// one token) stay fp32: packing the weights would cost more than the product.
template <class Arch = simd::default_arch, class T>
void gemm_mixed(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
                const T* B, int ldb, T beta, T* C, int ldc) {
    tallied(2.0 * M * N * K, {trans_a, trans_b, M, N, K}, [&] {
        if constexpr (std::is_same_v<T, float>)
            if (matmul_precision() == precision::bf16 && std::min({M, N, K}) >= 16)
                return gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        gemm<Arch>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    });
}

} // namespace gptx::ops
