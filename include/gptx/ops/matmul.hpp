// gptx/ops/matmul.hpp: the linear layer out = inp · Wᵀ + bias on top of gemm, forward and backward.
// Tested by tests/ops/test_ops.cpp. Legend: N rows (B*T), C in channels, OC out channels.
#pragma once
#include <cstdint>

#include "../core/parallel.hpp"
#include "../simd/simd.hpp"
#include "gemm.hpp"
#include "gemm_bf16.hpp"

namespace gptx::ops {

// out(N,OC) = inp(N,C) · weight(OC,C)ᵀ + bias(OC); bias may be null.
template <class Arch = simd::default_arch, class T>
void matmul_forward(T* out, const T* inp, const T* weight, const T* bias, std::int64_t N, int C,
                    int OC) {
    gemm_mixed<Arch>(false, true, static_cast<int>(N), OC, C, T(1), inp, C, weight, C, T(0), out,
                     OC);
    if (bias)
        parallel_for(N, [&](std::int64_t r) { simd::add<Arch>(out + r * OC, bias, OC); });
}

// dinp = dout · weight (written when accumulate_dinp is false, added otherwise; dinp may be null),
// dweight += doutᵀ · inp, dbias += sum_rows dout (dbias may be null).
template <class Arch = simd::default_arch, class T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                     std::int64_t N, int C, int OC, bool accumulate_dinp = false) {
    const int n = static_cast<int>(N);
    if (dinp)
        gemm_mixed<Arch>(false, false, n, C, OC, T(1), dout, OC, weight, C,
                         accumulate_dinp ? T(1) : T(0), dinp, C);
    gemm_mixed<Arch>(true, false, OC, C, n, T(1), dout, OC, inp, C, T(1), dweight, C);
    if (dbias) {
        constexpr int W = static_cast<int>(simd::lanes<T, Arch>);
        const int blocks = (OC + W - 1) / W;
        parallel_for(blocks, [&](std::int64_t blk) {
            const int c0 = static_cast<int>(blk) * W, c1 = std::min(OC, c0 + W);
            for (std::int64_t r = 0; r < N; ++r)
                for (int c = c0; c < c1; ++c)
                    dbias[c] += dout[r * OC + c];
        });
    }
}

} // namespace gptx::ops
