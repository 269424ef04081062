// gptx/simd/simd.hpp: the thin layer over xsimd 8.1 that kernels use (loads, reductions, dot,
// axpy) plus scalar references. Tested through its kernels: tests/ops/test_ops.cpp, test_gemm.cpp.
#pragma once
#include <cstddef>

#include <xsimd/xsimd.hpp>

namespace gptx::simd {

using default_arch = xsimd::default_arch;
// Kernels are templates on the element type T (float for speed, double for gradient checks)
// and on Arch, so objects built with different -march flags never clash (ODR).
template <class T, class Arch> using batch = xsimd::batch<T, Arch>;
template <class T, class Arch> inline constexpr std::size_t lanes = batch<T, Arch>::size;

template <class Arch, class T> inline batch<T, Arch> load(const T* p) {
    return batch<T, Arch>::load_unaligned(p);
}
template <class Arch, class T> inline void store(T* p, const batch<T, Arch>& b) {
    b.store_unaligned(p);
}

// xsimd 8.1 names the horizontal sum hadd (later versions: reduce_add).
template <class Arch, class T> inline T reduce_add(const batch<T, Arch>& b) {
    return xsimd::hadd(b);
}
template <class Arch, class T> inline T reduce_max(const batch<T, Arch>& b) {
    alignas(64) T tmp[lanes<T, Arch>];
    b.store_aligned(tmp);
    T m = tmp[0];
    for (std::size_t i = 1; i < lanes<T, Arch>; ++i)
        m = tmp[i] > m ? tmp[i] : m;
    return m;
}

// sum_i a[i] * b[i]
template <class Arch = default_arch, class T> inline T dot(const T* a, const T* b, std::size_t n) {
    constexpr std::size_t W = lanes<T, Arch>;
    batch<T, Arch> acc0(T(0)), acc1(T(0));
    std::size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        acc0 = xsimd::fma(simd::load<Arch>(a + i), simd::load<Arch>(b + i), acc0);
        acc1 = xsimd::fma(simd::load<Arch>(a + i + W), simd::load<Arch>(b + i + W), acc1);
    }
    for (; i + W <= n; i += W)
        acc0 = xsimd::fma(simd::load<Arch>(a + i), simd::load<Arch>(b + i), acc0);
    T s = reduce_add<Arch>(acc0 + acc1);
    for (; i < n; ++i)
        s += a[i] * b[i];
    return s;
}

// y[i] += alpha * x[i]
template <class Arch = default_arch, class T>
inline void axpy(T* y, T alpha, const T* x, std::size_t n) {
    constexpr std::size_t W = lanes<T, Arch>;
    const batch<T, Arch> va(alpha);
    std::size_t i = 0;
    for (; i + W <= n; i += W)
        simd::store<Arch>(y + i, xsimd::fma(va, simd::load<Arch>(x + i), simd::load<Arch>(y + i)));
    for (; i < n; ++i)
        y[i] += alpha * x[i];
}

// y[i] = alpha * y[i]
template <class Arch = default_arch, class T> inline void scale(T* y, T alpha, std::size_t n) {
    constexpr std::size_t W = lanes<T, Arch>;
    const batch<T, Arch> va(alpha);
    std::size_t i = 0;
    for (; i + W <= n; i += W)
        simd::store<Arch>(y + i, va * simd::load<Arch>(y + i));
    for (; i < n; ++i)
        y[i] *= alpha;
}

// y[i] += x[i]
template <class Arch = default_arch, class T> inline void add(T* y, const T* x, std::size_t n) {
    constexpr std::size_t W = lanes<T, Arch>;
    std::size_t i = 0;
    for (; i + W <= n; i += W)
        simd::store<Arch>(y + i, simd::load<Arch>(y + i) + simd::load<Arch>(x + i));
    for (; i < n; ++i)
        y[i] += x[i];
}

// max_i a[i] (n >= 1)
template <class Arch = default_arch, class T> inline T max(const T* a, std::size_t n) {
    constexpr std::size_t W = lanes<T, Arch>;
    T m = a[0];
    std::size_t i = 0;
    if (n >= W) {
        batch<T, Arch> vm = simd::load<Arch>(a);
        for (i = W; i + W <= n; i += W)
            vm = xsimd::max(vm, simd::load<Arch>(a + i));
        m = reduce_max<Arch>(vm);
    }
    for (; i < n; ++i)
        m = a[i] > m ? a[i] : m;
    return m;
}

namespace scalar {
template <class T> double dot(const T* a, const T* b, std::size_t n) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i)
        s += double(a[i]) * double(b[i]);
    return s;
}
} // namespace scalar

} // namespace gptx::simd
