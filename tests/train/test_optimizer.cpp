// Tests for gptx/ops/adamw.hpp and gptx/train/{optimizer,clip,schedule}.hpp: AdamW against a
// double reference, SIMD tails, thread-count independence, gradient norm and clipping, schedules.
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gptx/core/arena.hpp>
#include <gptx/core/parallel.hpp>
#include <gptx/core/rng.hpp>
#include <gptx/ops/adamw.hpp>
#include <gptx/train/clip.hpp>
#include <gptx/train/optimizer.hpp>
#include <gptx/train/schedule.hpp>

using namespace gptx;

namespace {

using real_types = boost::mpl::list<float, double>;

// Scalar double AdamW written from the paper's formulas (m_hat, v_hat), not from the kernel's
// PyTorch-ordered algebra: p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p).
struct ref_adamw {
    double lr, beta1, beta2, eps, wd;
    void operator()(double& p, double g, double& m, double& v, int t) const {
        m = beta1 * m + (1 - beta1) * g;
        v = beta2 * v + (1 - beta2) * g * g;
        const double m_hat = m / (1 - std::pow(beta1, t));
        const double v_hat = v / (1 - std::pow(beta2, t));
        p -= lr * (m_hat / (std::sqrt(v_hat) + eps) + wd * p);
    }
};

// A deterministic gradient with some exact zeros (v = 0 exercises the eps guard).
double grad_at(int step, std::size_t i) {
    if (i % 7 == 3)
        return 0.0;
    return std::sin(0.37 * double(i) + 1.3 * step) * (1.0 + double(i % 5)) * 0.1;
}

template <class T> double tol() { return sizeof(T) == 4 ? 2e-6 : 1e-13; }

template <class T> void fill_normal(basic_arena<T>& a, std::uint64_t seed, double sd) {
    rng r(seed);
    for (std::size_t i = 0; i < a.size(); ++i)
        a.data()[i] = T(sd * r.normal());
}

bool same_bits(const void* a, const void* b, std::size_t bytes) {
    return std::memcmp(a, b, bytes) == 0;
}

} // namespace

BOOST_AUTO_TEST_SUITE(adamw_optimizer)

BOOST_AUTO_TEST_CASE_TEMPLATE(kernel_matches_double_reference_over_steps, T, real_types) {
    const std::size_t n = 203;
    const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8;
    for (double wd : {0.0, 0.1}) {
        std::vector<T> p(n), g(n), m(n, T(0)), v(n, T(0));
        std::vector<double> rp(n), rm(n, 0.0), rv(n, 0.0);
        for (std::size_t i = 0; i < n; ++i)
            p[i] = T(std::cos(0.11 * double(i)));
        for (std::size_t i = 0; i < n; ++i)
            rp[i] = double(p[i]);
        const ref_adamw ref{lr, b1, b2, eps, wd};
        for (int t = 1; t <= 6; ++t) {
            for (std::size_t i = 0; i < n; ++i)
                g[i] = T(grad_at(t, i));
            ops::adamw_update(p.data(), g.data(), m.data(), v.data(), n, T(lr), T(b1), T(b2),
                              T(eps), T(wd), t);
            for (std::size_t i = 0; i < n; ++i)
                ref(rp[i], double(g[i]), rm[i], rv[i], t);
        }
        double max_dp = 0, max_dm = 0, max_dv = 0;
        for (std::size_t i = 0; i < n; ++i) {
            max_dp = std::max(max_dp, std::abs(double(p[i]) - rp[i]));
            max_dm = std::max(max_dm, std::abs(double(m[i]) - rm[i]));
            max_dv = std::max(max_dv, std::abs(double(v[i]) - rv[i]));
        }
        BOOST_TEST_MESSAGE("adamw kernel sizeof(T)=" << sizeof(T) << " wd=" << wd
                                                     << " max |dp|=" << max_dp);
        BOOST_TEST(max_dp <= tol<T>());
        BOOST_TEST(max_dm <= tol<T>());
        BOOST_TEST(max_dv <= tol<T>());
    }
}

BOOST_AUTO_TEST_CASE(first_step_moves_every_nonzero_grad_by_lr) {
    // At t = 1 bias correction makes m_hat = g and v_hat = g^2, so the step is lr * sign(g)
    // (up to eps), whatever the gradient's scale: a check of the correction with no reference.
    const std::size_t n = 9;
    std::vector<double> p(n, 1.0), g = {3.0, -1e-3, 250.0, -7.0, 0.5, 1e2, -1e-2, 2.0, -4.0};
    std::vector<double> m(n, 0.0), v(n, 0.0);
    ops::adamw_update(p.data(), g.data(), m.data(), v.data(), n, 0.01, 0.9, 0.95, 1e-12, 0.0, 1);
    for (std::size_t i = 0; i < n; ++i)
        BOOST_TEST(p[i] == 1.0 - 0.01 * (g[i] > 0 ? 1.0 : -1.0),
                   boost::test_tools::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(simd_tails_match_reference_and_stay_in_bounds, T, real_types) {
    const double lr = 3e-3, b1 = 0.8, b2 = 0.99, eps = 1e-8, wd = 0.05;
    const ref_adamw ref{lr, b1, b2, eps, wd};
    for (std::size_t n = 1; n <= 37; ++n) {
        const std::size_t pad = 8; // sentinels past the end must survive
        std::vector<T> p(n + pad, T(7)), g(n + pad, T(7)), m(n + pad, T(7)), v(n + pad, T(7));
        std::vector<double> rp(n), rm(n, 0.0), rv(n, 0.0);
        for (std::size_t i = 0; i < n; ++i) {
            p[i] = T(0.5 - 0.03 * double(i));
            rp[i] = double(p[i]);
            m[i] = v[i] = T(0);
        }
        for (int t = 1; t <= 3; ++t) {
            for (std::size_t i = 0; i < n; ++i)
                g[i] = T(grad_at(t + int(n), i));
            ops::adamw_update(p.data(), g.data(), m.data(), v.data(), n, T(lr), T(b1), T(b2),
                              T(eps), T(wd), t);
            for (std::size_t i = 0; i < n; ++i)
                ref(rp[i], double(g[i]), rm[i], rv[i], t);
        }
        for (std::size_t i = 0; i < n; ++i)
            BOOST_TEST(std::abs(double(p[i]) - rp[i]) <= tol<T>());
        for (std::size_t i = n; i < n + pad; ++i) {
            BOOST_TEST(p[i] == T(7));
            BOOST_TEST(m[i] == T(7));
            BOOST_TEST(v[i] == T(7));
        }
    }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(optimizer_decays_only_flagged_tensors, T, real_types) {
    // Two decayed weights and two undecayed vectors, odd sizes, lr from a schedule.
    const std::vector<typename basic_arena<T>::entry> layout = {
        {"w1", 37, true}, {"b1", 5, false}, {"w2", 64, true}, {"g", 3, false}};
    basic_arena<T> params(layout), grads(layout);
    fill_normal(params, 1, 0.5);
    adamw_config cfg;
    cfg.weight_decay = 0.2f;
    adamw<T> opt(params, cfg);
    BOOST_TEST(opt.state_size() == 2 * params.size());
    BOOST_TEST(opt.m().views().size() == layout.size());
    BOOST_TEST(opt.v().view(2).decay);

    std::vector<double> rp(params.size()), rm(params.size(), 0.0), rv(params.size(), 0.0);
    for (std::size_t i = 0; i < rp.size(); ++i)
        rp[i] = double(params.data()[i]);
    const cosine_schedule sched{1e-2f, 1e-3f, 2, 8};
    for (int it = 0; it < 6; ++it) {
        for (std::size_t i = 0; i < grads.size(); ++i)
            grads.data()[i] = T(grad_at(it, i));
        const float lr = sched(it);
        opt.step(params, grads, lr);
        BOOST_TEST(opt.step_count() == it + 1);
        std::size_t off = 0;
        for (const auto& view : params.views()) {
            const ref_adamw ref{double(T(lr)), double(T(cfg.beta1)), double(T(cfg.beta2)),
                                double(T(cfg.eps)), view.decay ? double(T(cfg.weight_decay)) : 0};
            for (std::size_t i = off; i < off + view.size; ++i)
                ref(rp[i], double(grads.data()[i]), rm[i], rv[i], it + 1);
            off += view.size;
        }
    }
    double max_dp = 0;
    for (std::size_t i = 0; i < rp.size(); ++i)
        max_dp = std::max(max_dp, std::abs(double(params.data()[i]) - rp[i]));
    BOOST_TEST_MESSAGE("adamw optimizer sizeof(T)=" << sizeof(T) << " max |dp|=" << max_dp);
    BOOST_TEST(max_dp <= tol<T>());

    // Zero gradients isolate the decay: undecayed tensors keep their values exactly only if the
    // moments are zero too, so use a fresh optimizer.
    adamw<T> fresh(params, cfg);
    basic_arena<T> before(layout);
    std::memcpy(before.data(), params.data(), params.size() * sizeof(T));
    grads.zero();
    fresh.step(params, grads, 0.5f);
    for (std::size_t k = 0; k < layout.size(); ++k) {
        const auto& pv = params.view(k);
        const auto& bv = before.view(k);
        for (std::size_t i = 0; i < pv.size; ++i) {
            const T expect = pv.decay ? T(bv.data[i] * T(1 - 0.5 * 0.2)) : bv.data[i];
            BOOST_TEST(double(pv.data[i]) == double(expect), boost::test_tools::tolerance(1e-6));
        }
    }
}

BOOST_AUTO_TEST_CASE(resume_from_moments_and_step_count_is_exact) {
    const std::vector<arena::entry> layout = {{"w", 50, true}, {"b", 11, false}};
    arena pa(layout), pb(layout), grads(layout);
    fill_normal(pa, 3, 1.0);
    adamw<float> a(pa);
    for (int t = 0; t < 3; ++t) {
        fill_normal(grads, 100 + t, 0.1);
        a.step(pa, grads, 1e-3f);
    }
    // What a checkpoint holds: parameters, m, v, the step count.
    adamw<float> b(pb);
    std::memcpy(pb.data(), pa.data(), pa.size() * sizeof(float));
    std::memcpy(b.m().data(), a.m().data(), a.m().size() * sizeof(float));
    std::memcpy(b.v().data(), a.v().data(), a.v().size() * sizeof(float));
    b.set_step_count(a.step_count());
    fill_normal(grads, 200, 0.1);
    a.step(pa, grads, 1e-3f);
    b.step(pb, grads, 1e-3f);
    BOOST_TEST(b.step_count() == 4);
    BOOST_TEST(same_bits(pa.data(), pb.data(), pa.size() * sizeof(float)));
    BOOST_TEST(same_bits(a.v().data(), b.v().data(), pa.size() * sizeof(float)));
    b.reset();
    BOOST_TEST(b.step_count() == 0);
    BOOST_TEST(b.m().data()[0] == 0.0f);
}

BOOST_AUTO_TEST_CASE(mismatched_layouts_are_rejected) {
    arena params({{"w", 10, true}, {"b", 4}});
    arena other({{"w", 4, true}, {"b", 10}});
    arena small({{"w", 10, true}});
    adamw<float> opt(params);
    BOOST_CHECK_THROW(opt.step(params, small, 1e-3f), gptx::error);
    BOOST_CHECK_THROW(opt.step(other, other, 1e-3f), gptx::error);
    BOOST_TEST(opt.step_count() == 0); // a rejected step does not count
}

BOOST_AUTO_TEST_CASE(thread_count_does_not_change_a_single_bit) {
#if !defined(_OPENMP)
    BOOST_TEST_MESSAGE("built without OpenMP: every thread count runs serially");
#endif
    // Large enough that every thread count really splits (kernels use >= 16384 per thread), with
    // view boundaries that fall inside thread slices and inside SIMD batches.
    const std::vector<arena::entry> layout = {
        {"a", 100003, true}, {"b", 17, false}, {"c", 65536, true}, {"d", 33}, {"e", 40001, true}};
    std::vector<std::vector<float>> params_out, m_out, v_out;
    std::vector<double> norms;
    for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        arena params(layout), grads(layout);
        fill_normal(params, 5, 0.02);
        adamw<float> opt(params);
        for (int it = 0; it < 3; ++it) {
            fill_normal(grads, 50 + it, it == 1 ? 10.0 : 0.01); // step 1 clips
            norms.push_back(clip_grad_norm(grads, 1.0f));
            opt.step(params, grads, 6e-4f);
        }
        params_out.emplace_back(params.data(), params.data() + params.size());
        m_out.emplace_back(opt.m().data(), opt.m().data() + opt.m().size());
        v_out.emplace_back(opt.v().data(), opt.v().data() + opt.v().size());
    }
    set_num_threads(2);
    const std::size_t bytes = params_out[0].size() * sizeof(float);
    for (std::size_t k = 1; k < 3; ++k) {
        BOOST_TEST(same_bits(params_out[0].data(), params_out[k].data(), bytes));
        BOOST_TEST(same_bits(m_out[0].data(), m_out[k].data(), bytes));
        BOOST_TEST(same_bits(v_out[0].data(), v_out[k].data(), bytes));
        for (int it = 0; it < 3; ++it)
            BOOST_TEST(norms[it] == norms[3 * k + it]);
    }
    BOOST_TEST(norms[1] > 1.0); // the clipping path really ran
}

BOOST_AUTO_TEST_CASE(adamw_minimises_a_quadratic) {
    // f(x) = 1/2 sum_i a_i (x_i - c_i)^2 on an undecayed tensor (minimum c) and a decayed one
    // whose target is 0 (decay agrees with the gradient there), so both reach their minimum.
    const std::vector<basic_arena<double>::entry> layout = {{"x", 37, false}, {"y", 19, true}};
    basic_arena<double> params(layout), grads(layout);
    std::vector<double> a(params.size()), c(params.size(), 0.0);
    rng r(11);
    for (std::size_t i = 0; i < a.size(); ++i) {
        a[i] = 0.5 + 4.5 * r.uniform_double();
        if (i < 37)
            c[i] = 2.0 * r.uniform_double() - 1.0;
        params.data()[i] = i < 37 ? 0.0 : 1.5;
    }
    auto loss = [&] {
        double f = 0;
        for (std::size_t i = 0; i < a.size(); ++i) {
            const double d = params.data()[i] - c[i];
            f += 0.5 * a[i] * d * d;
        }
        return f;
    };
    const double f0 = loss();
    adamw<double> opt(params); // weight_decay 0.1 from the defaults
    const cosine_schedule sched{0.05f, 1e-5f, 20, 1500};
    for (int it = 0; it < 1500; ++it) {
        for (std::size_t i = 0; i < a.size(); ++i)
            grads.data()[i] = a[i] * (params.data()[i] - c[i]);
        opt.step(params, grads, sched(it));
    }
    const double f1 = loss();
    BOOST_TEST_MESSAGE("quadratic: f0=" << f0 << " f_final=" << f1);
    BOOST_TEST(f1 < 1e-8 * f0);
    for (std::size_t i = 0; i < a.size(); ++i)
        BOOST_TEST(std::abs(params.data()[i] - c[i]) < 1e-4);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(grad_clip)

BOOST_AUTO_TEST_CASE_TEMPLATE(global_norm_matches_double_reference, T, real_types) {
    // Sizes straddle the 4096-element chunk and the lane count.
    basic_arena<T> g({{"a", 4095, true}, {"b", 1}, {"c", 9000, true}, {"d", 13}});
    fill_normal(g, 9, 0.3);
    double ref = 0;
    for (std::size_t i = 0; i < g.size(); ++i)
        ref += double(g.data()[i]) * double(g.data()[i]);
    ref = std::sqrt(ref);
    BOOST_TEST(global_norm(g) == ref, boost::test_tools::tolerance(sizeof(T) == 4 ? 1e-6 : 1e-13));
    basic_arena<T> empty;
    BOOST_TEST(global_norm(empty) == 0.0);
}

BOOST_AUTO_TEST_CASE(clip_scales_to_max_norm) {
    arena g({{"w", 1000, true}, {"b", 7}});
    fill_normal(g, 21, 1.0);
    const std::vector<float> before(g.data(), g.data() + g.size());
    const double norm0 = global_norm(g);
    BOOST_TEST(norm0 > 20.0);
    const double returned = clip_grad_norm(g, 1.0f);
    BOOST_TEST(returned == norm0); // the norm before clipping
    const float coef = float(1.0 / (norm0 + 1e-6));
    for (std::size_t i = 0; i < g.size(); ++i)
        BOOST_TEST(g.data()[i] == before[i] * coef);
    BOOST_TEST(global_norm(g) == 1.0, boost::test_tools::tolerance(1e-6));
}

BOOST_AUTO_TEST_CASE(clip_leaves_small_gradients_untouched) {
    arena g({{"w", 100, true}, {"b", 3}});
    fill_normal(g, 22, 0.05); // norm ~ 0.5
    const std::vector<float> before(g.data(), g.data() + g.size());
    const double norm0 = global_norm(g);
    BOOST_TEST(norm0 < 1.0);
    BOOST_TEST(clip_grad_norm(g, 1.0f) == norm0);
    BOOST_TEST(same_bits(before.data(), g.data(), g.size() * sizeof(float)));
}

BOOST_AUTO_TEST_CASE(non_finite_norm_is_reported_not_applied) {
    for (float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
        arena g({{"w", 64, true}});
        fill_normal(g, 23, 10.0);
        g.data()[17] = bad;
        const std::vector<float> before(g.data(), g.data() + g.size());
        const double norm = clip_grad_norm(g, 1.0f);
        BOOST_TEST(!std::isfinite(norm));
        BOOST_TEST(same_bits(before.data(), g.data(), g.size() * sizeof(float)));
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(lr_schedule)

BOOST_AUTO_TEST_CASE(cosine_matches_nanogpt_at_known_points) {
    namespace tt = boost::test_tools;
    // Hand values: warmup 1/11, 10/11; ratio 1/4 -> 0.1 + 0.9 * (1 + cos(pi/4)) / 2.
    const cosine_schedule s{1.0f, 0.1f, 10, 110};
    BOOST_TEST(s(0) == 0.09090909f, tt::tolerance(1e-6f));
    BOOST_TEST(s(9) == 0.90909091f, tt::tolerance(1e-6f));
    BOOST_TEST(s(10) == 1.0f, tt::tolerance(1e-6f));
    BOOST_TEST(s(35) == 0.86819805f, tt::tolerance(1e-6f));
    BOOST_TEST(s(60) == 0.55f, tt::tolerance(1e-6f));
    BOOST_TEST(s(110) == 0.1f, tt::tolerance(1e-6f));
    BOOST_TEST(s(111) == 0.1f);
    BOOST_TEST(s(100000) == 0.1f);
    for (int it = 11; it <= 110; ++it)
        BOOST_TEST(s(it) <= s(it - 1)); // monotone decay

    // nanoGPT's GPT-2 config: 6e-4 / 2001 at it 0; the midpoint is (6e-4 + 6e-5) / 2.
    const cosine_schedule g{6e-4f, 6e-5f, 2000, 600000};
    BOOST_TEST(g(0) == 2.9985007e-7f, tt::tolerance(1e-6f));
    BOOST_TEST(g(1999) == 5.9970015e-4f, tt::tolerance(1e-6f));
    BOOST_TEST(g(2000) == 6e-4f, tt::tolerance(1e-6f));
    BOOST_TEST(g(301000) == 3.3e-4f, tt::tolerance(1e-6f));
    BOOST_TEST(g(600001) == 6e-5f);
}

BOOST_AUTO_TEST_CASE(linear_warms_up_then_decays_to_the_floor) {
    namespace tt = boost::test_tools;
    const linear_schedule s{1.0f, 0.0f, 10, 110};
    BOOST_TEST(s(0) == 0.09090909f, tt::tolerance(1e-6f));
    BOOST_TEST(s(10) == 1.0f, tt::tolerance(1e-6f));
    BOOST_TEST(s(60) == 0.5f, tt::tolerance(1e-6f));
    BOOST_TEST(s(85) == 0.25f, tt::tolerance(1e-6f));
    BOOST_TEST(s(110) == 0.0f);
    BOOST_TEST(s(500) == 0.0f);
    const linear_schedule f{1.0f, 0.2f, 0, 100};
    BOOST_TEST(f(0) == 1.0f, tt::tolerance(1e-6f));
    BOOST_TEST(f(50) == 0.6f, tt::tolerance(1e-6f));
    BOOST_TEST(f(100) == 0.2f);
    BOOST_TEST(f(1000) == 0.2f);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(adamw_settings)

// Settings no step can use (a beta of 1 never forgets, NaN poisons every step, a negative decay
// grows the weights) are refused when the optimizer is made, naming the flag.
BOOST_AUTO_TEST_CASE(adamw_refuses_unusable_settings) {
    const basic_arena<float> params({{"w", 4, true}});
    const float nan = std::numeric_limits<float>::quiet_NaN();
    auto refused = [&](adamw_config c, const std::string& flag) {
        BOOST_CHECK_EXCEPTION(adamw<float>(params, c), gptx::error, [&](const gptx::error& e) {
            return std::string(e.what()).find(flag) != std::string::npos;
        });
    };
    refused({.beta1 = 1.0f}, "--beta1");
    refused({.beta1 = nan}, "--beta1");
    refused({.beta2 = -0.1f}, "--beta2");
    refused({.eps = 0.0f}, "eps");
    refused({.weight_decay = -1.0f}, "--weight-decay");
    refused({.weight_decay = nan}, "--weight-decay");
    BOOST_CHECK_NO_THROW(adamw<float>(params, {.lr = 0.0f, .beta1 = 0.0f, .weight_decay = 0.0f}));
}

BOOST_AUTO_TEST_SUITE_END()
