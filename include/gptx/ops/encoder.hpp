// gptx/ops/encoder.hpp: token + position embedding, forward and backward.
// Tested by tests/ops/test_ops.cpp. Legend: B batch, T time, C channels, V vocab.
#pragma once
#include <cstdint>

#include "../core/parallel.hpp"
#include "../simd/simd.hpp"

namespace gptx::ops {

// out(B,T,C) = wte[tokens[b,t]] + wpe[t]
template <class Arch = simd::default_arch, class T>
void encoder_forward(T* out, const int* tokens, const T* wte, const T* wpe, int B, int Tn, int C) {
    parallel_for(std::int64_t(B) * Tn, [&](std::int64_t bt) {
        const int t = static_cast<int>(bt % Tn);
        T* o = out + bt * C;
        const T* e = wte + std::int64_t(tokens[bt]) * C;
        const T* p = wpe + std::int64_t(t) * C;
        for (int i = 0; i < C; ++i)
            o[i] = e[i] + p[i];
    });
}

// d/d wte[v] = sum of dout over rows whose token is v; d/d wpe[t] = sum of dout over the batch.
// Adds into dwte and dwpe. Threads split channels, so rows sharing a token never race and the
// summation order is fixed.
template <class Arch = simd::default_arch, class T>
void encoder_backward(T* dwte, T* dwpe, const T* dout, const int* tokens, int B, int Tn, int C) {
    constexpr int W = static_cast<int>(simd::lanes<T, Arch>);
    const int blocks = (C + W - 1) / W;
    parallel_for(blocks, [&](std::int64_t blk) {
        const int c0 = static_cast<int>(blk) * W, c1 = std::min(C, c0 + W);
        for (std::int64_t bt = 0; bt < std::int64_t(B) * Tn; ++bt) {
            const int t = static_cast<int>(bt % Tn);
            const T* d = dout + bt * C;
            T* dw = dwte + std::int64_t(tokens[bt]) * C;
            T* dp = dwpe + std::int64_t(t) * C;
            for (int c = c0; c < c1; ++c) {
                dw[c] += d[c];
                dp[c] += d[c];
            }
        }
    });
}

} // namespace gptx::ops
