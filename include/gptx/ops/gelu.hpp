// gptx/ops/gelu.hpp: GELU forward and backward, in the tanh form GPT-2 uses (the default) and the
// exact erf form (PyTorch's nn.GELU(), nanoGPT). Tested by tests/ops/test_ops.cpp. Legend: N
// elements.
#pragma once
#include <cmath>
#include <cstdint>

#include "../core/parallel.hpp"
#include "../core/shape.hpp"
#include "../simd/simd.hpp"

namespace gptx::ops {

namespace detail {
inline constexpr double gelu_k = 0.7978845608028654; // sqrt(2/pi)
inline constexpr double gelu_c = 0.044715;
inline constexpr double inv_sqrt2 = 0.7071067811865476;   // 1/sqrt(2)
inline constexpr double inv_sqrt2pi = 0.3989422804014327; // 1/sqrt(2 pi)
} // namespace detail

// out = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
template <class Arch = simd::default_arch, class T>
void gelu_erf_forward(T* out, const T* inp, std::int64_t N) {
    using B = simd::batch<T, Arch>;
    constexpr std::int64_t W = B::size;
    parallel_ranges(
        N,
        [&](std::int64_t b, std::int64_t e) {
            const B r = B(T(detail::inv_sqrt2)), h = B(T(0.5)), one = B(T(1));
            std::int64_t i = b;
            for (; i + W <= e; i += W) {
                B x = simd::load<Arch>(inp + i);
                simd::store<Arch>(out + i, h * x * (one + xsimd::erf(x * r)));
            }
            for (; i < e; ++i)
                out[i] = T(0.5) * inp[i] * (T(1) + std::erf(inp[i] * T(detail::inv_sqrt2)));
        },
        4096);
}

// d/dx [x Phi(x)] = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi).
// Writes dinp = dout * gelu'(inp).
template <class Arch = simd::default_arch, class T>
void gelu_erf_backward(T* dinp, const T* inp, const T* dout, std::int64_t N) {
    using B = simd::batch<T, Arch>;
    constexpr std::int64_t W = B::size;
    parallel_ranges(
        N,
        [&](std::int64_t b, std::int64_t e) {
            const B r = B(T(detail::inv_sqrt2)), p = B(T(detail::inv_sqrt2pi)), h = B(T(0.5)),
                    one = B(T(1)), mh = B(T(-0.5));
            std::int64_t i = b;
            for (; i + W <= e; i += W) {
                B x = simd::load<Arch>(inp + i);
                B g = xsimd::fma(x * p, xsimd::exp(mh * x * x), h * (one + xsimd::erf(x * r)));
                simd::store<Arch>(dinp + i, g * simd::load<Arch>(dout + i));
            }
            for (; i < e; ++i) {
                T x = inp[i];
                T g = T(0.5) * (T(1) + std::erf(x * T(detail::inv_sqrt2))) +
                      x * T(detail::inv_sqrt2pi) * std::exp(T(-0.5) * x * x);
                dinp[i] = g * dout[i];
            }
        },
        4096);
}

// out = 0.5 x (1 + tanh(k (x + c x^3)))
template <class Arch = simd::default_arch, class T>
void gelu_tanh_forward(T* out, const T* inp, std::int64_t N) {
    using B = simd::batch<T, Arch>;
    constexpr std::int64_t W = B::size;
    parallel_ranges(
        N,
        [&](std::int64_t b, std::int64_t e) {
            const B k = B(T(detail::gelu_k)), c = B(T(detail::gelu_c)), h = B(T(0.5)),
                    one = B(T(1));
            std::int64_t i = b;
            for (; i + W <= e; i += W) {
                B x = simd::load<Arch>(inp + i);
                B u = k * xsimd::fma(c * x, x * x, x);
                simd::store<Arch>(out + i, h * x * (one + xsimd::tanh(u)));
            }
            // The tail holds fewer than W values; an int count keeps GCC's loop analysis from
            // imagining 2^62 iterations (-Waggressive-loop-optimizations, a false positive).
            for (int k = 0, tail = int(e - i); k < tail; ++k, ++i) {
                T x = inp[i];
                out[i] =
                    T(0.5) * x *
                    (T(1) + std::tanh(T(detail::gelu_k) * (x + T(detail::gelu_c) * x * x * x)));
            }
        },
        4096);
}

// d gelu/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3 c x^2), u = k (x + c x^3).
// Writes dinp = dout * gelu'(inp).
template <class Arch = simd::default_arch, class T>
void gelu_tanh_backward(T* dinp, const T* inp, const T* dout, std::int64_t N) {
    using B = simd::batch<T, Arch>;
    constexpr std::int64_t W = B::size;
    parallel_ranges(
        N,
        [&](std::int64_t b, std::int64_t e) {
            const B k = B(T(detail::gelu_k)), c = B(T(detail::gelu_c)),
                    c3 = B(T(3 * detail::gelu_c));
            const B h = B(T(0.5)), one = B(T(1));
            std::int64_t i = b;
            for (; i + W <= e; i += W) {
                B x = simd::load<Arch>(inp + i);
                B x2 = x * x;
                B th = xsimd::tanh(k * xsimd::fma(c * x, x2, x));
                B g = h * (one + th) + h * x * (one - th * th) * k * xsimd::fma(c3, x2, one);
                simd::store<Arch>(dinp + i, g * simd::load<Arch>(dout + i));
            }
            for (; i < e; ++i) {
                T x = inp[i];
                T th = std::tanh(T(detail::gelu_k) * (x + T(detail::gelu_c) * x * x * x));
                T g = T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * T(detail::gelu_k) *
                                                 (T(1) + T(3 * detail::gelu_c) * x * x);
                dinp[i] = g * dout[i];
            }
        },
        4096);
}

// The GELU of a shape, chosen at compile time: gelu_of<S.gelu>::forward(out, inp, N).
template <gelu_kind K> struct gelu_of {
    template <class Arch = simd::default_arch, class T>
    static void forward(T* out, const T* inp, std::int64_t N) {
        if constexpr (K == gelu_kind::erf)
            gelu_erf_forward<Arch>(out, inp, N);
        else
            gelu_tanh_forward<Arch>(out, inp, N);
    }
    template <class Arch = simd::default_arch, class T>
    static void backward(T* dinp, const T* inp, const T* dout, std::int64_t N) {
        if constexpr (K == gelu_kind::erf)
            gelu_erf_backward<Arch>(dinp, inp, dout, N);
        else
            gelu_tanh_backward<Arch>(dinp, inp, dout, N);
    }
};

// The same chosen at run time; tanh (GPT-2's) unless told.
template <class Arch = simd::default_arch, class T>
void gelu_forward(T* out, const T* inp, std::int64_t N, gelu_kind kind = gelu_kind::tanh) {
    if (kind == gelu_kind::erf)
        gelu_erf_forward<Arch>(out, inp, N);
    else
        gelu_tanh_forward<Arch>(out, inp, N);
}
template <class Arch = simd::default_arch, class T>
void gelu_backward(T* dinp, const T* inp, const T* dout, std::int64_t N,
                   gelu_kind kind = gelu_kind::tanh) {
    if (kind == gelu_kind::erf)
        gelu_erf_backward<Arch>(dinp, inp, dout, N);
    else
        gelu_tanh_backward<Arch>(dinp, inp, dout, N);
}

} // namespace gptx::ops
