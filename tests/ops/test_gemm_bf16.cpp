// tests/ops/test_gemm_bf16.cpp: gptx::ops::gemm_bf16 on every path (AMX-BF16, AVX512-BF16,
// portable) against an fp64 reference, at GPT-2 training shapes and odd sizes; bf16 rounding;
// the GPTX_ISA parser. Paths this CPU lacks are skipped by a precondition naming the feature.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <gptx/core/bf16.hpp>
#include <gptx/core/cpu.hpp>
#include <gptx/core/parallel.hpp>
#include <gptx/core/rng.hpp>
#include <gptx/ops/crossentropy.hpp>
#include <gptx/ops/gemm_bf16.hpp>

namespace utf = boost::unit_test;
using gptx::bf16_isa;

namespace {

// A precondition: the CPU (and OS) run this path; else the case is skipped and says what is
// missing.
struct isa_available {
    bf16_isa isa;
    boost::test_tools::assertion_result operator()(utf::test_unit_id) const {
        const std::string missing = gptx::isa_missing(isa);
        boost::test_tools::assertion_result r(missing.empty());
        if (!missing.empty())
            r.message() << "bf16 path " << gptx::isa_name(isa) << " needs " << missing
                        << ", which this CPU lacks";
        return r;
    }
};

struct bf16_problem {
    bool ta, tb;
    int M, N, K;
    int pad = 0; // extra columns in every leading dimension
};

std::vector<float> random_vec(std::size_t n, gptx::rng& r) {
    std::vector<float> v(n);
    for (auto& x : v)
        x = r.uniform() * 2.0f - 1.0f;
    return v;
}

double rounded(float x) { return double(gptx::to_float(gptx::to_bf16(x))); }

// Error bounds, per element, with S = sum_k |a_k b_k| (inputs as given, fp32) and u = 2^-24:
// - against fp64 of the bf16-rounded inputs (what the kernel is asked to compute): products of two
//   8-bit significands are exact in fp32, so only the fp32 sums round; K terms (pairs summed first
//   on the hardware paths) give at most (K + 2) u S; we allow 2 (K + 2) u S, plus u per rounding of
//   the alpha/beta epilogue.
// - against fp64 of the fp32 inputs: each input moves by at most 2^-8 relative (bf16 keeps 8
//   significant bits, round-to-nearest), so each product by at most (2^-7 + 2^-16); that adds
//   (2^-7 + 2^-16) S on top.
// Random inputs make the typical error ~sqrt(K) smaller; a wrong element or a dropped k step
// (|a b| ~ 1/3 on average) is far outside either bound.
struct worst_ratio {
    double bf16_inputs = 0, fp32_inputs = 0; // largest error / bound seen
    void add(const worst_ratio& o) {
        bf16_inputs = std::max(bf16_inputs, o.bf16_inputs);
        fp32_inputs = std::max(fp32_inputs, o.fp32_inputs);
    }
};

worst_ratio check(const bf16_problem& p, float alpha, float beta, bf16_isa isa,
                  std::uint64_t seed) {
    gptx::rng r(seed);
    const int lda = (p.ta ? p.M : p.K) + p.pad, ldb = (p.tb ? p.K : p.N) + p.pad;
    const int ldc = p.N + p.pad;
    const auto A = random_vec(std::size_t(p.ta ? p.K : p.M) * lda, r);
    const auto B = random_vec(std::size_t(p.tb ? p.N : p.K) * ldb, r);
    auto C = random_vec(std::size_t(p.M) * ldc, r);
    const auto C0 = C;
    gptx::ops::gemm_bf16(p.ta, p.tb, p.M, p.N, p.K, alpha, A.data(), lda, B.data(), ldb, beta,
                         C.data(), ldc, isa);
    // Also through bf16 storage: must give the very same bits as rounding while packing.
    std::vector<gptx::bf16> Ab(A.size()), Bb(B.size());
    gptx::to_bf16(Ab.data(), A.data(), A.size());
    gptx::to_bf16(Bb.data(), B.data(), B.size());
    auto Cb = C0;
    gptx::ops::gemm_bf16(p.ta, p.tb, p.M, p.N, p.K, alpha, Ab.data(), lda, Bb.data(), ldb, beta,
                         Cb.data(), ldc, isa);

    auto a_at = [&](int i, int k) {
        return A[p.ta ? std::size_t(k) * lda + i : std::size_t(i) * lda + k];
    };
    auto b_at = [&](int k, int j) {
        return B[p.tb ? std::size_t(j) * ldb + k : std::size_t(k) * ldb + j];
    };
    const double u = std::ldexp(1.0, -24);
    const double input_rel = std::ldexp(1.0, -7) + std::ldexp(1.0, -16);
    // Big shapes check every 7th row and 5th column (coprime to the 16- and 32-wide tiles, so every
    // position within a tile is still covered) and the last ones.
    const int step = double(p.M) * p.N * p.K > 2e7 ? 7 : 1, cstep = step > 1 ? 5 : 1;
    double worst = 0, worst_inputs = 0;
    int bad = 0, bad_storage = 0;
    for (int i = 0; i < p.M; i = i == p.M - 1 ? p.M : std::min(i + step, p.M - 1))
        for (int j = 0; j < p.N; j = j == p.N - 1 ? p.N : std::min(j + cstep, p.N - 1)) {
            double ref = 0, ref32 = 0, S = 0;
            for (int k = 0; k < p.K; ++k) {
                const float a = a_at(i, k), b = b_at(k, j);
                ref += rounded(a) * rounded(b);
                ref32 += double(a) * b;
                S += std::abs(double(a) * b);
            }
            const double c0 = beta == 0.0f ? 0.0 : double(beta) * C0[std::size_t(i) * ldc + j];
            const double want = double(alpha) * ref + c0;
            const double want32 = double(alpha) * ref32 + c0;
            const double epilogue = 2 * u * (std::abs(double(alpha) * ref) + std::abs(c0));
            const double tol = std::abs(alpha) * 2 * (p.K + 2) * u * S + epilogue;
            const double tol32 = tol + std::abs(alpha) * input_rel * S;
            const float got = C[std::size_t(i) * ldc + j];
            const double err = std::abs(got - want), err32 = std::abs(got - want32);
            worst = std::max(worst, tol > 0 ? err / tol : err);
            worst_inputs = std::max(worst_inputs, tol32 > 0 ? err32 / tol32 : err32);
            bad += !(err <= tol) + !(err32 <= tol32);
            bad_storage += std::bit_cast<std::uint32_t>(got) !=
                           std::bit_cast<std::uint32_t>(Cb[std::size_t(i) * ldc + j]);
        }
    BOOST_TEST_CONTEXT(gptx::isa_name(isa) << " ta=" << p.ta << " tb=" << p.tb << " M=" << p.M
                                           << " N=" << p.N << " K=" << p.K << " pad=" << p.pad
                                           << " alpha=" << alpha << " beta=" << beta) {
        BOOST_TEST(bad == 0);
        BOOST_TEST(bad_storage == 0);
    }
    // Outside the tile: the padding columns of C are untouched.
    for (int i = 0; i < p.M; ++i)
        for (int j = p.N; j < ldc; ++j)
            BOOST_TEST(C[std::size_t(i) * ldc + j] == C0[std::size_t(i) * ldc + j]);
    return {worst, worst_inputs};
}

void report(bf16_isa isa, const char* what, const worst_ratio& w) {
    BOOST_TEST_MESSAGE(gptx::isa_name(isa)
                       << " " << what << ": worst error / bound " << w.bf16_inputs
                       << " (vs bf16 inputs), " << w.fp32_inputs << " (vs fp32 inputs)");
}

// The three products of a linear layer y(M,OC) = x(M,IC) W(OC,IC)^T, as matmul calls them.
void check_linear(int M, int IC, int OC, bf16_isa isa, std::uint64_t seed) {
    worst_ratio w;
    w.add(check({false, true, M, OC, IC}, 1.0f, 0.0f, isa, seed));      // forward: x W^T
    w.add(check({false, false, M, IC, OC}, 1.0f, 0.0f, isa, seed + 1)); // dx = dy W
    w.add(check({true, false, OC, IC, M}, 1.0f, 1.0f, isa, seed + 2));  // dW += dy^T x
    const std::string what = "linear " + std::to_string(IC) + " -> " + std::to_string(OC);
    report(isa, what.c_str(), w);
}

void check_odd(bf16_isa isa) {
    // Sizes off the 16/32 tiles and the 32-k step; K = 300 and 513 take 2 and 3 passes, each
    // padded; pads give leading dimensions that are not the width.
    const int sizes[] = {1, 17, 33, 47};
    std::uint64_t seed = 7;
    worst_ratio w;
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (int M : sizes)
                for (int N : sizes)
                    w.add(check({ta, tb, M, N, 31 + M % 5, M % 2}, 1.0f, 0.0f, isa, seed++));
    for (int K : {1, 32, 33, 300, 513})
        for (bool ta : {false, true})
            for (bool tb : {false, true})
                w.add(check({ta, tb, 37, 45, K, 3}, 0.75f, 0.5f, isa, seed++));
    // Many panels and a last partial one (GPT-2's vocabulary), threads splitting N.
    w.add(check({false, true, 3, 50257, 64}, 1.0f, 0.0f, isa, seed++));
    // K over KMAX (4096): equal passes, the later ones accumulating into C.
    for (bool tb : {false, true})
        w.add(check({false, tb, 20, 40, 5000, 1}, 1.0f, 0.5f, isa, seed++));
    // Many strips: threads split M.
    w.add(check({true, false, 1001, 40, 70}, 1.0f, 1.0f, isa, seed++));
    report(isa, "odd sizes", w);
}

void check_gpt2(bf16_isa isa) {
    // GPT-2 small at B*T = 256: qkv (768 -> 2304), fc (768 -> 3072), fc proj (3072 -> 768).
    check_linear(256, 768, 2304, isa, 100);
    check_linear(256, 768, 3072, isa, 200);
    check_linear(256, 3072, 768, isa, 300);
}

} // namespace

BOOST_AUTO_TEST_SUITE(gemm_bf16)

BOOST_AUTO_TEST_CASE(rounds_to_nearest_even) {
    using gptx::bf16_bits;
    BOOST_TEST(bf16_bits(1.0f) == 0x3f80);
    BOOST_TEST(bf16_bits(std::ldexp(1.0f, -8) + 1.0f) == 0x3f80);     // tie -> even (down)
    BOOST_TEST(bf16_bits(3 * std::ldexp(1.0f, -8) + 1.0f) == 0x3f82); // tie -> even (up)
    BOOST_TEST(bf16_bits(std::nextafter(1.0f + std::ldexp(1.0f, -8), 2.0f)) == 0x3f81);
    BOOST_TEST(bf16_bits(-2.5f) == 0xc020);
    BOOST_TEST(bf16_bits(std::numeric_limits<float>::max()) == 0x7f80); // rounds to infinity
    BOOST_TEST(bf16_bits(std::numeric_limits<float>::infinity()) == 0x7f80);
    BOOST_TEST(bf16_bits(std::numeric_limits<float>::denorm_min()) == 0x0000);
    const std::uint16_t nan = bf16_bits(std::numeric_limits<float>::quiet_NaN());
    BOOST_TEST(((nan & 0x7f80) == 0x7f80 && (nan & 0x7f) != 0));
    // A NaN whose payload sits only in the low 16 bits must not become infinity.
    const std::uint16_t low_nan = bf16_bits(std::bit_cast<float>(0x7f800001u));
    BOOST_TEST(((low_nan & 0x7f80) == 0x7f80 && (low_nan & 0x7f) != 0));
    for (float x : {0.1f, -3.14159f, 1e-20f, 6.5e4f})
        BOOST_TEST(std::abs(gptx::to_float(gptx::to_bf16(x)) - x) <=
                   std::ldexp(std::abs(x), -8)); // half an ulp of an 8-bit significand
}

BOOST_AUTO_TEST_CASE(paths_on_this_cpu) {
    // The dispatch picks the highest path that runs, and names what blocks the others.
    const bf16_isa best = gptx::best_bf16_isa();
    BOOST_TEST(gptx::isa_missing(best).empty());
    for (bf16_isa i : {bf16_isa::portable, bf16_isa::avx512bf16, bf16_isa::amx}) {
        const std::string missing = gptx::isa_missing(i);
        BOOST_TEST_MESSAGE("bf16 path " << gptx::isa_name(i) << ": "
                                        << (missing.empty() ? "runs here" : "lacks " + missing));
        BOOST_TEST(missing.empty() == (i <= best));
    }
    BOOST_TEST(gptx::isa_missing(bf16_isa::portable).empty());
}

BOOST_AUTO_TEST_CASE(gptx_isa_values) {
    BOOST_CHECK_EXCEPTION(gptx::parse_bf16_isa("avx9"), gptx::error, [](const gptx::error& e) {
        return std::string(e.what()) == "GPTX_ISA='avx9' is not one of amx, avx512bf16, portable";
    });
    for (bf16_isa i : {bf16_isa::portable, bf16_isa::avx512bf16, bf16_isa::amx}) {
        const std::string name(gptx::isa_name(i)), missing = gptx::isa_missing(i);
        if (missing.empty())
            BOOST_TEST((gptx::parse_bf16_isa(name) == i));
        else
            BOOST_CHECK_EXCEPTION(gptx::parse_bf16_isa(name), gptx::error,
                                  [&](const gptx::error& e) {
                                      return std::string(e.what()) ==
                                             "GPTX_ISA=" + name + ": this CPU lacks " + missing;
                                  });
    }
}

BOOST_AUTO_TEST_CASE(degenerate_sizes) {
    // K = 0 scales C by beta; M or N = 0 touches nothing.
    std::vector<float> C{1, 2, 3, 4};
    const float* none = nullptr;
    gptx::ops::gemm_bf16(false, false, 2, 2, 0, 1.0f, none, 1, none, 2, 0.5f, C.data(), 2);
    BOOST_TEST(C == (std::vector<float>{0.5f, 1, 1.5f, 2}), boost::test_tools::per_element());
    gptx::ops::gemm_bf16(false, false, 0, 2, 3, 1.0f, none, 3, none, 2, 0.0f, C.data(), 2);
    BOOST_TEST(C[0] == 0.5f);
}

BOOST_AUTO_TEST_CASE(portable_odd_sizes) { check_odd(bf16_isa::portable); }
BOOST_AUTO_TEST_CASE(portable_gpt2_shapes) { check_gpt2(bf16_isa::portable); }

BOOST_AUTO_TEST_CASE(avx512bf16_odd_sizes,
                     *utf::precondition(isa_available{bf16_isa::avx512bf16})) {
    check_odd(bf16_isa::avx512bf16);
}
BOOST_AUTO_TEST_CASE(avx512bf16_gpt2_shapes,
                     *utf::precondition(isa_available{bf16_isa::avx512bf16})) {
    check_gpt2(bf16_isa::avx512bf16);
}

BOOST_AUTO_TEST_CASE(amx_odd_sizes, *utf::precondition(isa_available{bf16_isa::amx})) {
    check_odd(bf16_isa::amx);
}
BOOST_AUTO_TEST_CASE(amx_gpt2_shapes, *utf::precondition(isa_available{bf16_isa::amx})) {
    check_gpt2(bf16_isa::amx);
}

BOOST_AUTO_TEST_CASE(amx_thread_count_independent,
                     *utf::precondition(isa_available{bf16_isa::amx})) {
    // Threads split C, never K: 1 and 2 threads give the same bits.
    const int saved = gptx::num_threads();
    gptx::rng r(5);
    const auto A = random_vec(std::size_t(300) * 200, r), B = random_vec(std::size_t(200) * 333, r);
    std::vector<float> C1(std::size_t(300) * 333), C2(C1.size());
    gptx::set_num_threads(1);
    gptx::ops::gemm_bf16(false, false, 300, 333, 200, 1.0f, A.data(), 200, B.data(), 333, 0.0f,
                         C1.data(), 333, bf16_isa::amx);
    gptx::set_num_threads(2);
    gptx::ops::gemm_bf16(false, false, 300, 333, 200, 1.0f, A.data(), 200, B.data(), 333, 0.0f,
                         C2.data(), 333, bf16_isa::amx);
    gptx::set_num_threads(saved);
    BOOST_TEST(C1 == C2, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(prepacked_b_gives_the_same_bits) {
    // B packed once (the LM head's wte across row chunks) equals packing on every call, both forms,
    // with K in one pass and in several (K > 4096).
    gptx::rng r(9);
    for (int K : {70, 4500}) {
        const int M = 45, N = 77;
        const auto A = random_vec(std::size_t(M) * K, r), B = random_vec(std::size_t(N) * K, r);
        for (bool tb : {false, true}) {
            std::vector<float> C1(std::size_t(M) * N), C2(C1.size());
            gptx::ops::gemm_bf16(false, tb, M, N, K, 1.0f, A.data(), K, B.data(), tb ? K : N, 0.0f,
                                 C1.data(), N);
            gptx::ops::bf16_packed_b packed;
            gptx::ops::pack_bf16(packed, tb, K, N, B.data(), tb ? K : N);
            gptx::ops::gemm_bf16(false, M, 1.0f, A.data(), K, packed, 0.0f, C2.data(), N);
            BOOST_TEST(C1 == C2, boost::test_tools::per_element());
        }
    }
}

BOOST_AUTO_TEST_CASE(bf16_precision_lm_head_matches_fp32) {
    // --precision bf16 through the LM head (several chunks: wte packed once) stays within bf16's
    // rounding of fp32: logits move by at most ~2^-7 of sum |h||w| (see check()).
    gptx::rng r(11);
    const int N = 80, C = 48, V = 101, chunk = 32;
    const auto h = random_vec(std::size_t(N) * C, r), w = random_vec(std::size_t(V) * C, r);
    std::vector<int> targets(N);
    for (int i = 0; i < N; ++i)
        targets[std::size_t(i)] = int(r.below(V));
    auto run = [&](gptx::ops::precision p, std::vector<float>& dh, std::vector<float>& dw) {
        gptx::ops::set_matmul_precision(p);
        std::vector<float> losses(N), scratch(std::size_t(chunk) * V);
        dh.assign(std::size_t(N) * C, 0.0f);
        dw.assign(std::size_t(V) * C, 0.0f);
        const double l = gptx::ops::lm_head_loss(dh.data(), dw.data(), losses.data(), h.data(),
                                                 w.data(), targets.data(), nullptr, N, C, V,
                                                 1.0f / N, scratch.data(), chunk);
        gptx::ops::set_matmul_precision(gptx::ops::precision::fp32);
        return l;
    };
    std::vector<float> dh32, dw32, dh16, dw16;
    const double l32 = run(gptx::ops::precision::fp32, dh32, dw32);
    const double l16 = run(gptx::ops::precision::bf16, dh16, dw16);
    // |logit| <= C = 48 with inputs in [-1, 1]; each logit moves by <= 2^-7 * 48 = 0.375 in the
    // worst case, ~0.01 typically; the mean loss moves by less than twice that.
    BOOST_TEST(std::abs(l16 - l32) / N < 0.05);
    BOOST_TEST(l16 != l32); // the bf16 path did run
    // dhidden: within 5% of its largest element (bf16 moves each product by <= 2^-7 relative).
    double worst = 0, largest = 0;
    for (std::size_t i = 0; i < dh32.size(); ++i) {
        worst = std::max(worst, double(std::abs(dh16[i] - dh32[i])));
        largest = std::max(largest, double(std::abs(dh32[i])));
    }
    BOOST_TEST(worst < 0.05 * largest);
}

BOOST_AUTO_TEST_SUITE_END()
