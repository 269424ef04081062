// gptx/ops/gemm.hpp: row-major single-precision matrix multiply (placeholder, to be replaced by
// the packed kernel). Tested by tests/ops/test_gemm.cpp.
#pragma once
#include <cstdint>

#include "../core/parallel.hpp"
#include "../simd/simd.hpp"

namespace gptx::ops {

// T is float or double (double serves the gradient checks).
// C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C, all row-major with leading dimensions.
// op(A) = A (M,K) when !trans_a, else A is stored (K,M). op(B) = B (K,N) when !trans_b, else B is
// stored (N,K). beta == 0 overwrites C (NaNs in C are not propagated). Threads split C only, never
// K, so the result is bit-identical for any thread count.
template <class Arch = simd::default_arch, class T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
          int ldb, T beta, T* C, int ldc) {
    parallel_for(M, [&](std::int64_t i) {
        T* c = C + i * ldc;
        for (int j = 0; j < N; ++j) {
            T s = T(0);
            if (!trans_a && trans_b) {
                s = simd::dot<Arch>(A + i * lda, B + std::int64_t(j) * ldb, K);
            } else {
                for (int k = 0; k < K; ++k) {
                    T a = trans_a ? A[std::int64_t(k) * lda + i] : A[i * lda + k];
                    T b = trans_b ? B[std::int64_t(j) * ldb + k] : B[std::int64_t(k) * ldb + j];
                    s += a * b;
                }
            }
            c[j] = beta == T(0) ? alpha * s : alpha * s + beta * c[j];
        }
    });
}

} // namespace gptx::ops
