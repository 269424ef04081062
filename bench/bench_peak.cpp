// bench/bench_peak.cpp: the physical peaks of this CPU, so every other figure reads as a fraction
// of them: the clock (a chain of dependent adds), fp32 FMA on zmm, AVX512-BF16 vdpbf16ps and
// AMX-BF16 tdpbf16ps, per core and on N threads. Register-only loops: no memory traffic.
// Usage: bench_peak [threads (default 2)]. One JSON line per measurement, best of 5 runs.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include <gptx/core/cpu.hpp>
#include <gptx/ops/gemm_bf16.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// 1000 dependent register adds per iteration (an add of an immediate can be folded away by
// the renamer on recent Intel cores; a register operand cannot): adds / seconds = the clock.
double clock_ghz_once(std::int64_t iters) {
    std::uint64_t x = 0, one = 1;
    const auto t0 = clock_type::now();
    for (std::int64_t i = 0; i < iters; ++i)
        __asm__ volatile(".rept 1000\n\taddq %1, %0\n\t.endr" : "+r"(x) : "r"(one));
    return double(iters) * 1000 / seconds_since(t0) / 1e9;
}

// 12 independent accumulators (zmm0-11) hide the 4-cycle latency on two ports; written in asm so
// that nothing but the measured instruction is in the loop. 10 x 12 instructions per iteration.
#define GPTX_PEAK_12(op)                                                                           \
    op " %%zmm30, %%zmm31, %%zmm0\n\t" op " %%zmm30, %%zmm31, %%zmm1\n\t" op                       \
       " %%zmm30, %%zmm31, %%zmm2\n\t" op " %%zmm30, %%zmm31, %%zmm3\n\t" op                       \
       " %%zmm30, %%zmm31, %%zmm4\n\t" op " %%zmm30, %%zmm31, %%zmm5\n\t" op                       \
       " %%zmm30, %%zmm31, %%zmm6\n\t" op " %%zmm30, %%zmm31, %%zmm7\n\t" op                       \
       " %%zmm30, %%zmm31, %%zmm8\n\t" op " %%zmm30, %%zmm31, %%zmm9\n\t" op                       \
       " %%zmm30, %%zmm31, %%zmm10\n\t" op " %%zmm30, %%zmm31, %%zmm11\n\t"

#define GPTX_PEAK_CLOBBERS                                                                         \
    "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10",       \
        "zmm11", "zmm30", "zmm31"

// fp32 FMA: 16 lanes x (multiply + add). Returns FLOP/s.
__attribute__((target("avx512f"))) double fma_fp32_once(std::int64_t iters) {
    const auto t0 = clock_type::now();
    for (std::int64_t it = 0; it < iters; ++it)
        __asm__ volatile(".rept 10\n\t" GPTX_PEAK_12("vfmadd231ps") ".endr" ::: GPTX_PEAK_CLOBBERS);
    return double(iters) * 120 * 16 * 2 / seconds_since(t0);
}

// vdpbf16ps: 16 lanes x 2 bf16 products each, accumulated in fp32.
__attribute__((target("avx512f,avx512bf16"))) double dp_bf16_once(std::int64_t iters) {
    const auto t0 = clock_type::now();
    for (std::int64_t it = 0; it < iters; ++it)
        __asm__ volatile(".rept 10\n\t" GPTX_PEAK_12("vdpbf16ps") ".endr" ::: GPTX_PEAK_CLOBBERS);
    return double(iters) * 120 * 32 * 2 / seconds_since(t0);
}

// tdpbf16ps on four independent 16x16 fp32 accumulators (tmm0-3) from 16x32 bf16 sources
// (tmm4-7), as the 2x2 register-blocked GEMM kernel issues them.
__attribute__((target("amx-tile,amx-bf16"))) double amx_bf16_once(std::int64_t iters) {
    gptx::ops::detail::amx_begin();
    alignas(64) static thread_local std::uint16_t src[16 * 32];
    std::fill(std::begin(src), std::end(src), std::uint16_t(0x3c00)); // small bf16: no overflow
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    GPTX_TILE_LOADD(4, src, 64);
    GPTX_TILE_LOADD(5, src, 64);
    GPTX_TILE_LOADD(6, src, 64);
    GPTX_TILE_LOADD(7, src, 64);
    const auto t0 = clock_type::now();
    for (std::int64_t it = 0; it < iters; ++it) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    const double s = seconds_since(t0);
    alignas(64) static thread_local float out[16 * 16];
    GPTX_TILE_STORED(0, out, 64);
    gptx::ops::detail::amx_end();
    volatile float sink = out[0];
    (void)sink;
    return double(iters) * 4 * (16.0 * 16 * 32 * 2) / s;
}

// Best of 5 runs of f(iters) on each of n threads at once; returns the sum over threads.
double best_on_threads(int n, const std::function<double(std::int64_t)>& f, std::int64_t iters) {
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
        std::vector<double> r(static_cast<std::size_t>(n));
        std::vector<std::thread> ts;
        for (int t = 0; t < n; ++t)
            ts.emplace_back([&, t] { r[std::size_t(t)] = f(iters); });
        for (auto& t : ts)
            t.join();
        double sum = 0;
        for (double v : r)
            sum += v;
        best = std::max(best, sum);
    }
    return best;
}

void report(const char* what, int threads, double gflops, double ghz) {
    std::printf(
        "{\"peak\":\"%s\",\"threads\":%d,\"gflops\":%.1f,\"flops_per_cycle_per_core\":%.1f}\n",
        what, threads, gflops, gflops / ghz / threads);
}

} // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : 2;
    const gptx::cpu_features& f = gptx::cpu();
    const double ghz = best_on_threads(1, clock_ghz_once, 200000);
    const double ghz_n = best_on_threads(threads, clock_ghz_once, 200000) / threads;
    std::printf("{\"clock_ghz_1thread\":%.3f,\"clock_ghz_per_thread_%d\":%.3f}\n", ghz, threads,
                ghz_n);
    for (int n : {1, threads}) {
        if (f.avx512f)
            report("fp32_fma_zmm", n, best_on_threads(n, fma_fp32_once, 2000000) / 1e9, ghz);
        else
            std::printf("{\"peak\":\"fp32_fma_zmm\",\"skipped\":\"no AVX-512F\"}\n");
        if (f.avx512bf16)
            report("avx512bf16_vdpbf16ps", n, best_on_threads(n, dp_bf16_once, 1000000) / 1e9, ghz);
        else
            std::printf("{\"peak\":\"avx512bf16_vdpbf16ps\",\"skipped\":\"no AVX512-BF16\"}\n");
        const std::string amx = gptx::isa_missing(gptx::bf16_isa::amx);
        if (amx.empty())
            report("amx_tdpbf16ps", n, best_on_threads(n, amx_bf16_once, 2000000) / 1e9, ghz);
        else
            std::printf("{\"peak\":\"amx_tdpbf16ps\",\"skipped\":\"no %s\"}\n", amx.c_str());
        if (n == threads)
            break;
    }
}
