// Test support: central-difference gradient checks in double precision and random fills.
#pragma once
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <string>
#include <vector>

#include <gptx/gptx.hpp>

namespace gptx::test {

template <class T> void fill_normal(T* x, std::size_t n, rng& r, double scale = 1.0) {
    for (std::size_t i = 0; i < n; ++i)
        x[i] = T(scale * r.normal());
}
template <class T> std::vector<T> normal_vector(std::size_t n, rng& r, double scale = 1.0) {
    std::vector<T> v(n);
    fill_normal(v.data(), n, r, scale);
    return v;
}

// Compares analytic[i] with (f(x + h e_i) - f(x - h e_i)) / 2h for the given indices of x (all
// when `stride` is 1). Error measure: |a - n| / max(1, |a|, |n|). Doubles with h = 1e-5 give
// about 1e-9 of truncation and rounding error, so tol = 1e-6 has a wide margin yet catches any
// wrong term in a derivative.
template <class F>
double check_gradient(const std::string& name, double* x, std::size_t n, const double* analytic,
                      F&& f, std::size_t stride = 1, double tol = 1e-6, double h = 1e-5) {
    double worst = 0.0;
    for (std::size_t i = 0; i < n; i += stride) {
        const double xi = x[i];
        x[i] = xi + h;
        const double fp = f();
        x[i] = xi - h;
        const double fm = f();
        x[i] = xi;
        const double num = (fp - fm) / (2 * h);
        const double err =
            std::abs(num - analytic[i]) / std::max({1.0, std::abs(num), std::abs(analytic[i])});
        worst = std::max(worst, err);
        if (err > tol) {
            BOOST_TEST(err <= tol, name << "[" << i << "]: analytic " << analytic[i]
                                        << " vs numeric " << num << " (err " << err << ")");
            return err;
        }
    }
    BOOST_TEST(worst <= tol, name << ": max gradient error " << worst);
    BOOST_TEST_MESSAGE(name << ": max gradient error " << worst);
    return worst;
}

// The stride for checking a tensor of n entries: every entry up to 128, else about 60 entries at
// an odd stride that spreads them over the tensor's rows, columns and heads (a wrong term in a
// derivative moves many entries, so a spread sample finds it at a fraction of the cost).
inline std::size_t sampled_stride(std::size_t n) { return n > 128 ? (n / 60) | 1 : 1; }

} // namespace gptx::test
