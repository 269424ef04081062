// gptx/ops/softmax.hpp: the shifted exponential sum and the in-place row softmax that attention,
// the LM head's cross-entropy and PPO share. Tested by tests/ops/test_ops.cpp.
#pragma once
#include <cmath>

#include "../simd/simd.hpp"

namespace gptx::ops {

namespace detail {

// x[i] = exp(x[i] - m); returns the sum.
template <class Arch, class T> T exp_shift_sum(T* x, int n, T m) {
    using B = simd::batch<T, Arch>;
    constexpr int W = static_cast<int>(B::size);
    B acc(T(0)), vm(m);
    int i = 0;
    for (; i + W <= n; i += W) {
        B e = xsimd::exp(simd::load<Arch>(x + i) - vm);
        simd::store<Arch>(x + i, e);
        acc += e;
    }
    T s = simd::reduce_add<Arch>(acc);
    for (; i < n; ++i) {
        x[i] = std::exp(x[i] - m);
        s += x[i];
    }
    return s;
}

} // namespace detail

// In place: row = softmax(row); returns log-sum-exp of the original row.
template <class Arch = simd::default_arch, class T> T softmax_inplace(T* row, int V) {
    const T m = simd::max<Arch>(row, V);
    const T s = detail::exp_shift_sum<Arch>(row, V, m);
    simd::scale<Arch>(row, T(1) / s, V);
    return m + std::log(s);
}

} // namespace gptx::ops
