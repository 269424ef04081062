// gptx/core/cpu.hpp: which bf16 matrix path this CPU runs (CPUID, the OS's register state, Linux's
// AMX permission), chosen once at run time; GPTX_ISA forces a lower one. Tested by
// tests/ops/test_gemm_bf16.cpp.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "error.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define GPTX_X86_64 1
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#else
#define GPTX_X86_64 0
#endif

namespace gptx {

// The bf16 GEMM paths, lowest first: a higher one needs every feature of the lower ones.
enum class bf16_isa { portable = 0, avx512bf16 = 1, amx = 2 };

inline std::string_view isa_name(bf16_isa i) {
    return i == bf16_isa::amx ? "amx" : i == bf16_isa::avx512bf16 ? "avx512bf16" : "portable";
}

// What the hardware and OS offer, each flag on its own (for messages naming what is missing).
struct cpu_features {
    bool avx512f = false, avx512bw = false, avx512bf16 = false; // with zmm state enabled by the OS
    bool amx_tile = false, amx_bf16 = false; // CPUID and XCR0 (tile config + data)
    bool amx_permitted = false;              // Linux granted XTILEDATA to this process
};

namespace detail {

#if GPTX_X86_64
inline std::uint64_t xgetbv0() {
    std::uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (std::uint64_t(hi) << 32) | lo;
}
#endif

// Linux hides AMX tile data until the process asks (kernel 5.16+): arch_prctl(ARCH_REQ_XCOMP_PERM,
// XFEATURE_XTILEDATA). Asked once; refusal (old kernel, seccomp) means no AMX.
inline bool request_amx_permission() {
#if GPTX_X86_64 && defined(__linux__)
    constexpr int arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
    return ::syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
#else
    return false;
#endif
}

inline cpu_features detect_cpu_features() {
    cpu_features f;
#if GPTX_X86_64
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) // OSXSAVE: xgetbv is usable
        return f;
    const std::uint64_t xcr0 = xgetbv0();
    const bool zmm_state = (xcr0 & 0xE6) == 0xE6;              // SSE, AVX, opmask, ZMM_Hi256/Hi16
    const bool tile_state = (xcr0 & (3u << 17)) == (3u << 17); // XTILECFG, XTILEDATA
    if (__get_cpuid_max(0, nullptr) < 7)
        return f;
    __cpuid_count(7, 0, a, b, c, d);
    f.avx512f = zmm_state && (b & (1u << 16));
    f.avx512bw = f.avx512f && (b & (1u << 30));
    f.amx_bf16 = tile_state && (d & (1u << 22));
    f.amx_tile = tile_state && (d & (1u << 24));
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512bf16 = f.avx512bw && (a & (1u << 5));
    if (f.amx_tile && f.amx_bf16)
        f.amx_permitted = request_amx_permission();
#endif
    return f;
}

} // namespace detail

inline const cpu_features& cpu() {
    static const cpu_features f = detail::detect_cpu_features();
    return f;
}

// Why `want` cannot run here ("" when it can): the first missing feature, by name.
inline std::string isa_missing(bf16_isa want) {
    const cpu_features& f = cpu();
    if (want >= bf16_isa::avx512bf16) {
        if (!f.avx512f)
            return "AVX-512F";
        if (!f.avx512bw)
            return "AVX-512BW";
        if (!f.avx512bf16)
            return "AVX512-BF16";
    }
    if (want >= bf16_isa::amx) {
        if (!f.amx_tile)
            return "AMX-TILE";
        if (!f.amx_bf16)
            return "AMX-BF16";
        if (!f.amx_permitted)
            return "AMX tile data (Linux refused arch_prctl(ARCH_REQ_XCOMP_PERM))";
    }
    return "";
}

// The best path this CPU runs.
inline bf16_isa best_bf16_isa() {
    for (bf16_isa i : {bf16_isa::amx, bf16_isa::avx512bf16})
        if (isa_missing(i).empty())
            return i;
    return bf16_isa::portable;
}

// Parses GPTX_ISA's value; a path the CPU lacks is an error naming the missing feature.
inline bf16_isa parse_bf16_isa(std::string_view s) {
    bf16_isa want;
    if (s == "amx")
        want = bf16_isa::amx;
    else if (s == "avx512bf16")
        want = bf16_isa::avx512bf16;
    else if (s == "portable")
        want = bf16_isa::portable;
    else
        detail::fail("GPTX_ISA='", s, "' is not one of amx, avx512bf16, portable");
    const std::string missing = isa_missing(want);
    GPTX_CHECK(missing.empty(), "GPTX_ISA=", s, ": this CPU lacks ", missing);
    return want;
}

// The one dispatch point: GPTX_ISA when set, else the best path. Read once per process.
inline bf16_isa active_bf16_isa() {
    static const bf16_isa i = [] {
        const char* e = std::getenv("GPTX_ISA");
        return e && *e ? parse_bf16_isa(e) : best_bf16_isa();
    }();
    return i;
}

} // namespace gptx
