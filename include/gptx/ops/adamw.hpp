// gptx/ops/adamw.hpp: the elementwise AdamW kernel (PyTorch's torch.optim.AdamW update).
// Tested by tests/train/test_optimizer.cpp.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "../core/parallel.hpp"
#include "../simd/simd.hpp"

namespace gptx::ops {

// Per-step scalars of one AdamW update, computed once (in double) outside the element loop.
template <class T> struct adamw_coeffs {
    T beta1, beta2, eps;
    T decay_factor; // 1 - lr * weight_decay
    T step_size;    // lr / (1 - beta1^t)
    T bc2_sqrt;     // sqrt(1 - beta2^t)
};

template <class T>
adamw_coeffs<T> make_adamw_coeffs(T lr, T beta1, T beta2, T eps, T weight_decay, int step) {
    const double bc1 = 1.0 - std::pow(double(beta1), step);
    const double bc2 = 1.0 - std::pow(double(beta2), step);
    return {beta1,
            beta2,
            eps,
            T(1.0 - double(lr) * double(weight_decay)),
            T(double(lr) / bc1),
            T(std::sqrt(bc2))};
}

namespace detail {
// GCC 12 flags the _mm512_undefined_* inside _mm512_sqrt_* as uninitialized (GCC bug 105593)
// once inlined into our code; the intrinsic never reads it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
template <class Arch, class T> inline simd::batch<T, Arch> sqrt(const simd::batch<T, Arch>& x) {
    return xsimd::sqrt(x);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// One batch of PyTorch's single-tensor AdamW, in its order:
//   p *= 1 - lr*wd                      (decoupled weight decay first)
//   m  = m + (1-beta1) * (g - m)        (exp_avg.lerp_(grad, 1-beta1))
//   v  = beta2*v + (1-beta2) * g*g      (exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1-beta2))
//   p -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
// which is p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p_old), with m_hat = m/(1-beta1^t),
// v_hat = v/(1-beta2^t). Every operation is lane-wise IEEE, so an element's result does not
// depend on its lane, which keeps any split of the range (threads, tails) bit-identical.
template <class Arch, class T>
inline void adamw_batch(T* p, const T* g, T* m, T* v, const adamw_coeffs<T>& c) {
    using B = simd::batch<T, Arch>;
    const B vg = simd::load<Arch>(g);
    B vm = simd::load<Arch>(m);
    B vv = simd::load<Arch>(v);
    B vp = simd::load<Arch>(p) * B(c.decay_factor);
    vm = vm + B(T(1) - c.beta1) * (vg - vm);
    vv = B(c.beta2) * vv + B(T(1) - c.beta2) * (vg * vg);
    const B denom = detail::sqrt<Arch>(vv) / B(c.bc2_sqrt) + B(c.eps);
    vp = vp - B(c.step_size) * (vm / denom);
    simd::store<Arch>(p, vp);
    simd::store<Arch>(m, vm);
    simd::store<Arch>(v, vv);
}
} // namespace detail

// Serial AdamW over n elements. The tail (n not a multiple of the lane count) goes through the
// same vector code on a padded stack copy, so it rounds exactly like the body.
template <class Arch = simd::default_arch, class T>
void adamw_update_serial(T* param, const T* grad, T* m, T* v, std::size_t n,
                         const adamw_coeffs<T>& c) {
    constexpr std::size_t W = simd::lanes<T, Arch>;
    std::size_t i = 0;
    for (; i + W <= n; i += W)
        detail::adamw_batch<Arch>(param + i, grad + i, m + i, v + i, c);
    if (i == n)
        return;
    const std::size_t r = n - i;
    alignas(64) T tp[W] = {}, tg[W] = {}, tm[W] = {}, tv[W] = {};
    for (std::size_t k = 0; k < r; ++k) {
        tp[k] = param[i + k];
        tg[k] = grad[i + k];
        tm[k] = m[i + k];
        tv[k] = v[i + k];
    }
    detail::adamw_batch<Arch>(tp, tg, tm, tv, c);
    for (std::size_t k = 0; k < r; ++k) {
        param[i + k] = tp[k];
        m[i + k] = tm[k];
        v[i + k] = tv[k];
    }
}

// One AdamW step on param (n) given its grad; m and v (n) are the first and second moment
// buffers (zero before step 1). step is 1-based. Threaded; bit-identical for any thread count.
template <class Arch = simd::default_arch, class T>
void adamw_update(T* param, const T* grad, T* m, T* v, std::size_t n, T lr, T beta1, T beta2, T eps,
                  T weight_decay, int step) {
    const auto c = make_adamw_coeffs(lr, beta1, beta2, eps, weight_decay, step);
    parallel_ranges(
        static_cast<std::int64_t>(n),
        [&](std::int64_t b, std::int64_t e) {
            adamw_update_serial<Arch>(param + b, grad + b, m + b, v + b, std::size_t(e - b), c);
        },
        std::int64_t{1} << 14);
}

} // namespace gptx::ops
