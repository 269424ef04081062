// tests/ops/test_gemm.cpp: gptx::ops::gemm against a scalar double reference (all transpose
// forms, alpha/beta, tails, leading dimensions, float and double) and thread-count determinism.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <gptx/core/parallel.hpp>
#include <gptx/core/rng.hpp>
#include <gptx/ops/gemm.hpp>

namespace {

// Restores the thread count a test changed.
struct thread_guard {
    int saved = gptx::num_threads();
    ~thread_guard() { gptx::set_num_threads(saved); }
};

template <class T> std::vector<T> random_vec(std::size_t n, gptx::rng& r) {
    std::vector<T> v(n);
    for (auto& x : v)
        x = T(r.uniform() * 2.0f - 1.0f);
    return v;
}

struct problem {
    bool ta, tb;
    int M, N, K;
    int pad = 0; // extra columns in every leading dimension
};

// Runs gemm and compares with a double reference. Inputs are in [-1, 1], so each of the K terms
// is at most 1 and the worst-case rounding error grows linearly in K. Tolerance (absolute):
// float 2e-6 * (K + 1) * (|alpha| + |beta| + 1), about 16 float epsilons per term, far above the
// ~6e-8 * sqrt(K) typical error; double 1e-13 * (K + 1) * (...) likewise.
template <class T> void check(const problem& p, T alpha, T beta, bool nan_c, std::uint64_t seed) {
    gptx::rng r(seed);
    const int lda = (p.ta ? p.M : p.K) + p.pad, ldb = (p.tb ? p.K : p.N) + p.pad;
    const int ldc = p.N + p.pad;
    const auto A = random_vec<T>(std::size_t(p.ta ? p.K : p.M) * lda, r);
    const auto B = random_vec<T>(std::size_t(p.tb ? p.N : p.K) * ldb, r);
    auto C = random_vec<T>(std::size_t(p.M) * ldc, r);
    if (nan_c)
        for (auto& x : C)
            x = std::numeric_limits<T>::quiet_NaN();
    const auto C0 = C;
    gptx::ops::gemm(p.ta, p.tb, p.M, p.N, p.K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(),
                    ldc);
    const double tol = (std::is_same_v<T, float> ? 2e-6 : 1e-13) * (p.K + 1) *
                       (std::abs(double(alpha)) + std::abs(double(beta)) + 1);
    // Big shapes check every 7th row (7 is coprime to the 6- and 8-row register tiles, so every
    // row position within a tile is still covered) and the last row; small shapes check all.
    const int step = double(p.M) * p.N * p.K > 2e7 ? 7 : 1;
    auto next_row = [&](int i) { return i == p.M - 1 ? p.M : std::min(i + step, p.M - 1); };
    double worst = 0;
    for (int i = 0; i < p.M; i = next_row(i)) {
        for (int j = 0; j < p.N; ++j) {
            double s = 0;
            for (int k = 0; k < p.K; ++k) {
                const double a = p.ta ? A[std::size_t(k) * lda + i] : A[std::size_t(i) * lda + k];
                const double b = p.tb ? B[std::size_t(j) * ldb + k] : B[std::size_t(k) * ldb + j];
                s += a * b;
            }
            double ref = double(alpha) * s;
            if (beta != T(0))
                ref += double(beta) * double(C0[std::size_t(i) * ldc + j]);
            const double got = C[std::size_t(i) * ldc + j];
            const double d = std::isfinite(got) ? std::abs(got - ref) : INFINITY;
            worst = std::max(worst, d);
        }
        // Padding past N must be untouched.
        for (int j = p.N; j < ldc; ++j) {
            const T before = C0[std::size_t(i) * ldc + j], after = C[std::size_t(i) * ldc + j];
            BOOST_TEST_REQUIRE((std::isnan(before) ? std::isnan(after) : before == after));
        }
    }
    BOOST_TEST_INFO("ta=" << p.ta << " tb=" << p.tb << " M=" << p.M << " N=" << p.N << " K=" << p.K
                          << " pad=" << p.pad << " alpha=" << alpha << " beta=" << beta
                          << " max diff=" << worst);
    BOOST_TEST_REQUIRE(worst <= tol);
}

const int tail_sizes[] = {1, 2, 3, 5, 7, 8, 9, 13, 16, 17, 20, 31, 32, 33};

} // namespace

BOOST_AUTO_TEST_SUITE(gemm)

BOOST_AUTO_TEST_CASE(tiny_and_tail_sizes_all_forms_float) {
    std::uint64_t seed = 1;
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
            for (int M : tail_sizes)
                for (int N : tail_sizes)
                    for (int K : {1, 4, 7, 33})
                        check<float>({bool(ta), bool(tb), M, N, K}, 1.0f, 0.0f, false, seed++);
}

BOOST_AUTO_TEST_CASE(every_size_1_to_20_float) {
    std::uint64_t seed = 100;
    for (int n = 1; n <= 20; ++n)
        for (int ta = 0; ta < 2; ++ta)
            for (int tb = 0; tb < 2; ++tb) {
                check<float>({bool(ta), bool(tb), n, n, n}, 1.0f, 0.0f, false, seed++);
                check<float>({bool(ta), bool(tb), n, 21 - n, n + 3}, 1.0f, 1.0f, false, seed++);
            }
}

BOOST_AUTO_TEST_CASE(alpha_beta_variants) {
    std::uint64_t seed = 1000;
    const problem ps[] = {{false, true, 37, 53, 29},
                          {false, false, 19, 101, 67},
                          {true, false, 61, 23, 300},
                          {true, true, 9, 50, 513}};
    for (const auto& p : ps) {
        check<float>(p, 1.0f, 0.0f, true, seed++);  // beta 0 overwrites NaNs
        check<float>(p, 0.5f, 0.0f, true, seed++);  // alpha scales, beta 0 still overwrites
        check<float>(p, 1.0f, 1.0f, false, seed++); // beta 1 accumulates
        check<float>(p, -2.0f, 0.25f, false, seed++);
        check<float>(p, 0.0f, 0.5f, false, seed++); // alpha 0: C = beta * C
        check<float>(p, 0.0f, 0.0f, true, seed++);  // alpha 0, beta 0: C = 0
        check<double>(p, -2.0, 0.25, false, seed++);
        check<double>(p, 1.0, 0.0, true, seed++);
    }
    // K == 0 leaves beta * C.
    check<float>({false, false, 5, 7, 0}, 1.0f, 0.5f, false, seed++);
    check<float>({false, false, 5, 7, 0}, 1.0f, 0.0f, true, seed++);
}

BOOST_AUTO_TEST_CASE(leading_dimensions_and_primes) {
    std::uint64_t seed = 2000;
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
            check<float>({bool(ta), bool(tb), 97, 89, 83, 5}, 1.0f, 1.0f, false, seed++);
            check<float>({bool(ta), bool(tb), 53, 211, 257, 3}, 1.0f, 0.0f, true, seed++);
            check<float>({bool(ta), bool(tb), 131, 49, 769, 1}, 1.0f, 0.5f, false, seed++);
        }
}

BOOST_AUTO_TEST_CASE(double_precision) {
    std::uint64_t seed = 3000;
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
            for (int n : {1, 3, 8, 9, 17, 25, 33}) {
                check<double>({bool(ta), bool(tb), n, n + 2, n + 5, 2}, 1.0, 0.0, true, seed++);
                check<double>({bool(ta), bool(tb), 70, n, 300, 0}, 1.0, 1.0, false, seed++);
            }
}

// The three training forms at GPT-2 small shapes (M = B*T = 256, C = 768), and the odd vocab.
BOOST_AUTO_TEST_CASE(gpt2_shapes) {
    std::uint64_t seed = 4000;
    check<float>({false, true, 256, 2304, 768}, 1.0f, 0.0f, true, seed++);  // qkv forward
    check<float>({false, false, 256, 768, 3072}, 1.0f, 0.0f, true, seed++); // fcproj dinp
    check<float>({true, false, 3072, 768, 256}, 1.0f, 1.0f, false, seed++); // fc dweight
    check<float>({false, true, 64, 50257, 96}, 1.0f, 0.0f, true, seed++);   // odd V forward
    check<float>({true, false, 50257, 40, 64}, 1.0f, 1.0f, false, seed++);  // odd V dweight
}

// Threads split C only, on a fixed tile grid, so the bits must not change with the thread count.
BOOST_AUTO_TEST_CASE(bit_identical_across_thread_counts) {
    thread_guard guard;
    gptx::rng r(5000);
    const problem ps[] = {{false, true, 256, 777, 700},
                          {false, false, 131, 1000, 520},
                          {true, false, 770, 300, 256},
                          {true, true, 67, 65, 1031},
                          {false, true, 3000, 17, 64}};
    for (const auto& p : ps) {
        const int lda = p.ta ? p.M : p.K, ldb = p.tb ? p.K : p.N;
        const auto A = random_vec<float>(std::size_t(p.ta ? p.K : p.M) * lda, r);
        const auto B = random_vec<float>(std::size_t(p.tb ? p.N : p.K) * ldb, r);
        const auto C0 = random_vec<float>(std::size_t(p.M) * p.N, r);
        std::vector<float> want;
        for (int nt : {1, 2, 3}) {
            gptx::set_num_threads(nt);
            auto C = C0;
            gptx::ops::gemm(p.ta, p.tb, p.M, p.N, p.K, 0.75f, A.data(), lda, B.data(), ldb, 1.0f,
                            C.data(), p.N);
            if (want.empty())
                want = C;
            else
                BOOST_TEST_REQUIRE(std::memcmp(want.data(), C.data(), C.size() * sizeof(float)) ==
                                   0);
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
