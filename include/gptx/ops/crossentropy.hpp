// gptx/ops/crossentropy.hpp: the tied LM head fused with softmax cross-entropy and a loss mask,
// processed in row chunks so the full (N, V) logits never exist at once.
// Tested by tests/ops/test_ops.cpp. Legend: N rows (B*T), C channels, V vocab.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../core/parallel.hpp"
#include "../simd/simd.hpp"
#include "gemm.hpp"
#include "gemm_bf16.hpp"
#include "softmax.hpp"

namespace gptx::ops {

// logits(N,V) = hidden(N,C) · wte(V,C)ᵀ
template <class Arch = simd::default_arch, class T>
void lm_logits(T* logits, const T* hidden, const T* wte, std::int64_t N, int C, int V) {
    gemm_mixed<Arch>(false, true, static_cast<int>(N), V, C, T(1), hidden, C, wte, C, T(0), logits,
                     V);
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
    // With bf16 GEMMs over several chunks, wte is packed once per call in each of its two uses
    // (logits: wteᵀ; dhidden: wte) instead of once per chunk. Kept for reuse: 4·V·C bytes.
    static bf16_packed_b wte_t, wte_n;
    bool packed = false;
    if constexpr (std::is_same_v<T, float>) {
        packed = matmul_precision() == precision::bf16 && N > chunk_rows && chunk_rows >= 16 &&
                 C >= 16 && V >= 16;
        if (packed) {
            pack_bf16(wte_t, true, C, V, wte, C);
            if (dhidden)
                pack_bf16(wte_n, false, V, C, wte, C);
        }
    }
    for (std::int64_t r0 = 0; r0 < N; r0 += chunk_rows) {
        const int n = static_cast<int>(std::min<std::int64_t>(chunk_rows, N - r0));
        [&] {
            if constexpr (std::is_same_v<T, float>)
                if (packed && n >= 16)
                    return gemm_bf16(false, n, 1.0f, hidden + r0 * C, C, wte_t, 0.0f, scratch, V);
            lm_logits<Arch>(scratch, hidden + r0 * C, wte, n, C, V);
        }();
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
            [&] {
                if constexpr (std::is_same_v<T, float>)
                    if (packed && n >= 16)
                        return gemm_bf16(false, n, 1.0f, scratch, V, wte_n, 0.0f, dhidden + r0 * C,
                                         C);
                gemm_mixed<Arch>(false, false, n, C, V, T(1), scratch, V, wte, C, T(0),
                                 dhidden + r0 * C, C);
            }();
            gemm_mixed<Arch>(true, false, V, C, n, T(1), scratch, V, hidden + r0 * C, C, T(1), dwte,
                             C);
        }
        for (int i = 0; i < n; ++i)
            total += double(losses[r0 + i]);
    }
    return total;
}

// ---- log-probabilities of chosen tokens: the building block of policy objectives (PPO, DPO,
// GRPO) and of completion scoring. rows[i] names a row of hidden (flat b * T + t) and tokens[i]
// the token chosen there; logits exist for `chunk` rows at a time. Scratch sizes in T values:
// chunk * (V + C) for the forward, chunk * (V + 2C) for the backward. ----

// logp[i] = log softmax(hidden[rows[i]] · wteᵀ)[tokens[i]]; entropy[i] = -sum_v pi_v log pi_v
// when entropy is non-null (summed in double).
template <class Arch = simd::default_arch, class T>
void chosen_logprobs_forward(T* logp, T* entropy, const T* hidden, const T* wte, const int* rows,
                             const int* tokens, int N, int C, int V, T* scratch, int chunk) {
    T* z = scratch;                          // (chunk, V)
    T* h = scratch + std::size_t(chunk) * V; // (chunk, C)
    for (int r0 = 0; r0 < N; r0 += chunk) {
        const int n = std::min(chunk, N - r0);
        for (int i = 0; i < n; ++i)
            std::copy_n(hidden + std::int64_t(rows[r0 + i]) * C, C, h + std::size_t(i) * C);
        lm_logits<Arch>(z, h, wte, n, C, V);
        parallel_for(n, [&](std::int64_t i) {
            T* row = z + i * V;
            const T za = row[tokens[r0 + i]];
            const T lse = softmax_inplace<Arch>(row, V); // row becomes pi
            logp[r0 + i] = za - lse;
            if (entropy) {
                double e = 0;
                for (int v = 0; v < V; ++v)
                    if (row[v] > T(0))
                        e -= double(row[v]) * std::log(double(row[v]));
                entropy[r0 + i] = T(e);
            }
        });
    }
}

// The backward of logp for given dlogp[i] = dL/dlogp_i. With pi = softmax(z_i), d logp_i / d z_i
// = onehot(tokens[i]) - pi, so dz_i = dlogp_i (onehot - pi), and
//   dhidden[rows[i]] += dz_i · wte (added: rows may repeat across calls), dwte += dz_iᵀ · h_i.
// The logits are recomputed rather than kept from the forward: (N, V) would not fit for GPT-2.
template <class Arch = simd::default_arch, class T>
void chosen_logprobs_backward(T* dhidden, T* dwte, const T* dlogp, const T* hidden, const T* wte,
                              const int* rows, const int* tokens, int N, int C, int V, T* scratch,
                              int chunk) {
    T* z = scratch;                     // (chunk, V)
    T* h = z + std::size_t(chunk) * V;  // (chunk, C)
    T* dh = h + std::size_t(chunk) * C; // (chunk, C)
    for (int r0 = 0; r0 < N; r0 += chunk) {
        const int n = std::min(chunk, N - r0);
        for (int i = 0; i < n; ++i)
            std::copy_n(hidden + std::int64_t(rows[r0 + i]) * C, C, h + std::size_t(i) * C);
        lm_logits<Arch>(z, h, wte, n, C, V);
        parallel_for(n, [&](std::int64_t i) {
            T* row = z + i * V;
            softmax_inplace<Arch>(row, V);
            const T g = dlogp[r0 + i];
            simd::scale<Arch>(row, -g, V);
            row[tokens[r0 + i]] += g;
        });
        gemm_mixed<Arch>(false, false, n, C, V, T(1), z, V, wte, C, T(0), dh, C);
        gemm_mixed<Arch>(true, false, V, C, n, T(1), z, V, h, C, T(1), dwte, C);
        for (int i = 0; i < n; ++i) {
            T* d = dhidden + std::int64_t(rows[r0 + i]) * C;
            const T* src = dh + std::size_t(i) * C;
            for (int c = 0; c < C; ++c)
                d[c] += src[c];
        }
    }
}

} // namespace gptx::ops
