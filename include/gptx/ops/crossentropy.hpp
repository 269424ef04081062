// gptx/ops/crossentropy.hpp: the tied LM head fused with softmax cross-entropy and a loss mask,
// processed in row chunks so the full (N, V) logits never exist at once.
// Tested by tests/ops/test_ops.cpp. Legend: N rows (B*T), C channels, V vocab.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../core/parallel.hpp"
#include "../simd/simd.hpp"
#include "attention.hpp"
#include "gemm.hpp"

namespace gptx::ops {

// In place: row = softmax(row); returns log-sum-exp of the original row.
template <class Arch = simd::default_arch, class T> T softmax_inplace(T* row, int V) {
    const T m = simd::max<Arch>(row, V);
    const T s = detail::exp_shift_sum<Arch>(row, V, m);
    simd::scale<Arch>(row, T(1) / s, V);
    return m + std::log(s);
}

// logits(N,V) = hidden(N,C) · wte(V,C)ᵀ
template <class Arch = simd::default_arch, class T>
void lm_logits(T* logits, const T* hidden, const T* wte, std::int64_t N, int C, int V) {
    gemm<Arch>(false, true, static_cast<int>(N), V, C, T(1), hidden, C, wte, C, T(0), logits, V);
}

// losses[i] = -log softmax(hidden_i · wteᵀ)[targets_i] for unmasked rows, 0 for masked ones.
// When dhidden is non-null, with g = grad_scale * mask_i * (softmax - onehot(target)):
//   dhidden = g · wte (written),  dwte += gᵀ · hidden.
// scratch holds chunk_rows * V values. Returns the sum of losses (in double, fixed order).
template <class Arch = simd::default_arch, class T>
double lm_head_loss(T* dhidden, T* dwte, T* losses, const T* hidden, const T* wte,
                    const int* targets, const std::uint8_t* mask, std::int64_t N, int C, int V,
                    T grad_scale, T* scratch, int chunk_rows) {
    double total = 0.0;
    for (std::int64_t r0 = 0; r0 < N; r0 += chunk_rows) {
        const int n = static_cast<int>(std::min<std::int64_t>(chunk_rows, N - r0));
        lm_logits<Arch>(scratch, hidden + r0 * C, wte, n, C, V);
        parallel_for(n, [&](std::int64_t i) {
            T* row = scratch + i * V;
            const std::int64_t r = r0 + i;
            if (mask && !mask[r]) {
                losses[r] = T(0);
                if (dhidden)
                    std::fill(row, row + V, T(0));
                return;
            }
            const T target_logit = row[targets[r]];
            const T lse = softmax_inplace<Arch>(row, V);
            losses[r] = lse - target_logit;
            if (dhidden) {
                simd::scale<Arch>(row, grad_scale, V);
                row[targets[r]] -= grad_scale;
            }
        });
        if (dhidden) {
            gemm<Arch>(false, false, n, C, V, T(1), scratch, V, wte, C, T(0), dhidden + r0 * C, C);
            gemm<Arch>(true, false, V, C, n, T(1), scratch, V, hidden + r0 * C, C, T(1), dwte, C);
        }
        for (int i = 0; i < n; ++i)
            total += double(losses[r0 + i]);
    }
    return total;
}

} // namespace gptx::ops
