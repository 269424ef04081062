// gptx/core/bf16.hpp: the bfloat16 storage type (fp32's top 16 bits) and its conversions with
// round-to-nearest-even. Tested by tests/ops/test_gemm_bf16.cpp.
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>

namespace gptx {

// A distinct type (not a bare uint16_t) so that overloads on float / bf16 operands stay apart.
struct bf16 {
    std::uint16_t bits;
};

// Round to nearest, ties to even; NaN stays NaN (quiet), overflow rounds to infinity.
inline std::uint16_t bf16_bits(float f) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return std::uint16_t((u >> 16) | 0x40u);
    return std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline std::uint16_t bf16_bits(bf16 b) { return b.bits; }

inline bf16 to_bf16(float f) { return bf16{bf16_bits(f)}; }
inline float to_float(bf16 b) { return std::bit_cast<float>(std::uint32_t(b.bits) << 16); }

// dst[i] = bf16(src[i]), for the bf16 copies of weights and activations.
inline void to_bf16(bf16* dst, const float* src, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        dst[i].bits = bf16_bits(src[i]);
}

// dst[i] = float(src[i]), exact (a shift; compilers vectorize it).
inline void to_float(float* dst, const bf16* src, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        dst[i] = std::bit_cast<float>(std::uint32_t(src[i].bits) << 16);
}

} // namespace gptx
