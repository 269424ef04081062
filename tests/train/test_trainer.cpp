// Tests for gptx/train/trainer.hpp and objective.hpp: overfitting one batch, gradient
// accumulation, the NaN guard, and the objective concept.
#include <boost/test/unit_test.hpp>

#include <cstring>

#include <gptx/gptx.hpp>

#include "support/shapes.hpp"

using namespace gptx;

namespace {
using test::shapes::tiny;
using model_t = transformer<tiny>;

struct fixed_batch {
    int B, T;
    std::vector<int> x, y;
    fixed_batch(int B_, int T_, int V, std::uint64_t seed) : B(B_), T(T_) {
        rng r(seed);
        std::vector<int> seq(B * (T + 1));
        for (auto& s : seq)
            s = static_cast<int>(r.below(V));
        for (int b = 0; b < B; ++b)
            for (int t = 0; t < T; ++t) {
                x.push_back(seq[b * (T + 1) + t]);
                y.push_back(seq[b * (T + 1) + t + 1]);
            }
    }
    lm_batch rows(int first, int count) const {
        return {x.data() + first * T, y.data() + first * T, nullptr, count, T};
    }
};
} // namespace

BOOST_AUTO_TEST_SUITE(trainer_suite)

static_assert(objective<lm_objective<model_t>, model_t>);

BOOST_AUTO_TEST_CASE(overfits_one_batch) {
    model_t m({32, 32});
    m.init(1);
    lm_objective<model_t> obj;
    adamw<float> opt(
        m.params(),
        {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.0f});
    trainer tr(m, obj, opt, {.grad_accum = 1, .grad_clip = 1.0f, .lr = [](int) { return 3e-3f; }});
    fixed_batch data(4, 16, 32, 2);
    double first = 0, last = 0;
    // 100 steps: the loss is below 0.01 by step 80 (release and sanitizer builds alike).
    for (int i = 0; i < 100; ++i) {
        auto s = tr.step([&](int) { return data.rows(0, 4); });
        if (i == 0)
            first = s.loss;
        last = s.loss;
    }
    BOOST_TEST_MESSAGE("overfit: loss " << first << " -> " << last);
    BOOST_TEST(first > 3.0); // ~ln 32 at init
    BOOST_TEST(last < 0.05);
    BOOST_TEST(tr.step_count() == 100);
}

BOOST_AUTO_TEST_CASE(gradient_accumulation_equals_the_full_batch) {
    fixed_batch data(4, 8, 32, 3);
    auto grads_after = [&](int accum) {
        model_t m({32, 32});
        m.init(5);
        lm_objective<model_t> obj;
        m.zero_grad();
        const int per = 4 / accum;
        for (int i = 0; i < accum; ++i)
            obj.forward_backward(m, data.rows(i * per, per), 1.0 / accum);
        return std::vector<float>(m.grads().data(), m.grads().data() + m.grads().size());
    };
    auto g1 = grads_after(1), g2 = grads_after(2);
    double worst = 0;
    for (std::size_t i = 0; i < g1.size(); ++i)
        worst = std::max(worst, double(std::abs(g1[i] - g2[i])));
    BOOST_TEST(worst < 1e-6); // the same sums in another order: float rounding only
}

BOOST_AUTO_TEST_CASE(nan_stops_before_the_update) {
    model_t m({32, 32});
    m.init(1);
    lm_objective<model_t> obj;
    adamw<float> opt(m.params());
    trainer tr(m, obj, opt, {.grad_accum = 1, .grad_clip = 1.0f, .lr = [](int) { return 1e-3f; }});
    fixed_batch data(2, 8, 32, 4);
    m.param(p_lnfw)[0] = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> before(m.params().data(), m.params().data() + m.params().size());
    BOOST_CHECK_EXCEPTION(
        tr.step([&](int) { return data.rows(0, 2); }), gptx::error, [](const gptx::error& e) {
            return std::string(e.what()).find("step 1: loss is nan") != std::string::npos;
        });
    BOOST_TEST(std::memcmp(before.data(), m.params().data(), before.size() * sizeof(float)) == 0);
    BOOST_TEST(tr.step_count() == 0);
}

// An objective that vetoes every other update: a vetoed step leaves parameters and optimizer
// state as they were and says so; the next step applies as usual.
namespace {
struct vetoing_lm : lm_objective<model_t> {
    bool accept = true;
    bool accept_update() const { return accept; }
};
} // namespace
static_assert(vetoes_updates<vetoing_lm>);
static_assert(!vetoes_updates<lm_objective<model_t>>);

BOOST_AUTO_TEST_CASE(a_vetoed_update_changes_nothing) {
    model_t m({32, 32});
    m.init(1);
    vetoing_lm obj;
    adamw<float> opt(m.params());
    trainer tr(m, obj, opt, {.lr = [](int) { return 1e-3f; }, .name = "test step"});
    fixed_batch data(2, 8, 32, 4);
    std::vector<float> before(m.params().data(), m.params().data() + m.params().size());
    obj.accept = false;
    const step_metrics vetoed = tr.step([&](int) { return data.rows(0, 2); });
    BOOST_TEST(!vetoed.applied);
    BOOST_TEST(vetoed.grad_norm > 0.0);
    BOOST_TEST(std::memcmp(before.data(), m.params().data(), before.size() * sizeof(float)) == 0);
    BOOST_TEST(opt.step_count() == 0);
    obj.accept = true;
    const step_metrics applied = tr.step([&](int) { return data.rows(0, 2); });
    BOOST_TEST(applied.applied);
    BOOST_TEST(applied.loss == vetoed.loss); // the same batch from the same parameters
    BOOST_TEST(std::memcmp(before.data(), m.params().data(), before.size() * sizeof(float)) != 0);
    BOOST_TEST(opt.step_count() == 1);
    // Errors name the trainer.
    m.param(p_lnfw)[0] = std::numeric_limits<float>::quiet_NaN();
    BOOST_CHECK_EXCEPTION(
        tr.step([&](int) { return data.rows(0, 2); }), gptx::error, [](const gptx::error& e) {
            return std::string(e.what()).find("test step 3: loss is nan") != std::string::npos;
        });
}

BOOST_AUTO_TEST_SUITE_END()
