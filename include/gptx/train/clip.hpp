// gptx/train/clip.hpp: deterministic global gradient norm and norm clipping over a gradient arena.
// Tested by tests/train/test_optimizer.cpp.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "../core/arena.hpp"
#include "../core/parallel.hpp"
#include "../simd/simd.hpp"

namespace gptx {

// Elements per partial sum. Fixed, so the partials and their (serial, in-order) sum do not depend
// on how many threads computed them.
inline constexpr std::size_t norm_chunk = 4096;

namespace detail {
// Sum of squares of one chunk (n <= norm_chunk): vector accumulation in T, returned in double.
template <class Arch, class T> double sum_squares_chunk(const T* x, std::size_t n) {
    constexpr std::size_t W = simd::lanes<T, Arch>;
    simd::batch<T, Arch> a0(T(0)), a1(T(0)), a2(T(0)), a3(T(0));
    std::size_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        const auto x0 = simd::load<Arch>(x + i), x1 = simd::load<Arch>(x + i + W);
        const auto x2 = simd::load<Arch>(x + i + 2 * W), x3 = simd::load<Arch>(x + i + 3 * W);
        a0 = xsimd::fma(x0, x0, a0);
        a1 = xsimd::fma(x1, x1, a1);
        a2 = xsimd::fma(x2, x2, a2);
        a3 = xsimd::fma(x3, x3, a3);
    }
    for (; i + W <= n; i += W) {
        const auto x0 = simd::load<Arch>(x + i);
        a0 = xsimd::fma(x0, x0, a0);
    }
    // Lanes summed in double through memory: finer than T, and avoids xsimd's avx512 hadd,
    // which trips GCC 12's bogus -Wuninitialized (GCC bug 105593).
    alignas(64) T lane[W];
    ((a0 + a1) + (a2 + a3)).store_aligned(lane);
    double s = 0.0;
    for (std::size_t k = 0; k < W; ++k)
        s += double(lane[k]);
    for (; i < n; ++i)
        s += double(x[i]) * double(x[i]);
    return s;
}

// Scratch for chunk partials, grown on demand and kept per calling thread, so steady-state
// training does not allocate.
inline std::vector<double>& norm_partials() {
    thread_local std::vector<double> partials;
    return partials;
}
// y[i] *= s. Kept local (with qualified simd:: calls) because the committed simd::scale calls
// store<Arch> unqualified, which ADL makes ambiguous with xsimd::store on xsimd 8.1.
template <class Arch, class T> void scale_inplace(T* y, T s, std::size_t n) {
    constexpr std::size_t W = simd::lanes<T, Arch>;
    const simd::batch<T, Arch> vs(s);
    std::size_t i = 0;
    for (; i + W <= n; i += W)
        simd::store<Arch>(y + i, vs * simd::load<Arch>(y + i));
    for (; i < n; ++i)
        y[i] *= s;
}
} // namespace detail

// sum_i x[i]^2 in double; bit-identical for any thread count.
template <class Arch = simd::default_arch, class T> double sum_squares(const T* x, std::size_t n) {
    if (n == 0)
        return 0.0;
    const std::size_t chunks = (n + norm_chunk - 1) / norm_chunk;
    auto& partials = detail::norm_partials();
    if (partials.size() < chunks)
        partials.resize(chunks);
    double* part = partials.data();
    parallel_for(
        static_cast<std::int64_t>(chunks),
        [&](std::int64_t c) {
            const std::size_t b = std::size_t(c) * norm_chunk;
            const std::size_t len = n - b < norm_chunk ? n - b : norm_chunk;
            part[c] = detail::sum_squares_chunk<Arch>(x + b, len);
        },
        4);
    double s = 0.0;
    for (std::size_t c = 0; c < chunks; ++c)
        s += part[c];
    return s;
}

// The L2 norm of all gradients together (the arena's views tile it, so this is the flat buffer).
template <class Arch = simd::default_arch, class T>
double global_norm(const basic_arena<T>& grads) {
    return std::sqrt(sum_squares<Arch>(grads.data(), grads.size()));
}

// torch.nn.utils.clip_grad_norm_: scales every gradient by max_norm / (norm + 1e-6) when that is
// below 1, and returns the norm before clipping. A non-finite norm is returned with the gradients
// left as they are, so the trainer can skip the step or stop.
template <class Arch = simd::default_arch, class T>
double clip_grad_norm(basic_arena<T>& grads, T max_norm) {
    const double norm = global_norm<Arch>(grads);
    if (!std::isfinite(norm))
        return norm;
    const double coef = double(max_norm) / (norm + 1e-6);
    if (coef < 1.0) {
        T* g = grads.data();
        const T s = T(coef);
        parallel_ranges(
            static_cast<std::int64_t>(grads.size()),
            [&](std::int64_t b, std::int64_t e) {
                detail::scale_inplace<Arch>(g + b, s, std::size_t(e - b));
            },
            std::int64_t{1} << 14);
    }
    return norm;
}

// The same over several arenas as one vector (a trunk and its heads): the norm is
// sqrt(sum of every arena's squares) and one coefficient scales them all.
template <class Arch = simd::default_arch, class T>
double clip_grad_norm(std::initializer_list<basic_arena<T>*> arenas, T max_norm) {
    double sq = 0.0;
    for (auto* a : arenas)
        sq += sum_squares<Arch>(a->data(), a->size());
    const double norm = std::sqrt(sq);
    if (!std::isfinite(norm) || max_norm <= T(0))
        return norm;
    const double coef = double(max_norm) / (norm + 1e-6);
    if (coef < 1.0)
        for (auto* a : arenas) {
            T* g = a->data();
            const T s = T(coef);
            parallel_ranges(
                static_cast<std::int64_t>(a->size()),
                [&](std::int64_t b, std::int64_t e) {
                    detail::scale_inplace<Arch>(g + b, s, std::size_t(e - b));
                },
                std::int64_t{1} << 14);
        }
    return norm;
}

} // namespace gptx
