// Tests for gptx/nn/heads.hpp: the linear head's gradients through the trunk against central
// differences, and a user-defined objective with a head plugged into the unchanged trainer.
#include <boost/test/unit_test.hpp>

#include <cmath>

#include <gptx/gptx.hpp>

#include "support/gradcheck.hpp"
#include "support/shapes.hpp"

using namespace gptx;

namespace {
using test::shapes::grad_post;
}

BOOST_AUTO_TEST_SUITE(heads)

BOOST_AUTO_TEST_CASE(head_and_trunk_gradients) {
    transformer<grad_post, double> m({9, 6});
    m.init(2);
    linear_head<double> head(16, 3);
    head.init(3, 0.5f);
    rng r(4);
    for (std::size_t i = 0; i < head.params().size(); ++i)
        head.params().data()[i] += 0.1 * r.normal();
    const int B = 2, T = 5;
    std::vector<int> tokens{1, 2, 3, 4, 5, 6, 7, 8, 0, 1};
    std::vector<int> rows{4, 7, 9, 4}; // a row may be read twice
    auto proj = test::normal_vector<double>(rows.size() * 3, r);
    std::vector<double> out(rows.size() * 3);
    auto loss = [&] {
        const double* h = m.forward(tokens.data(), B, T);
        head.forward(out.data(), h, rows.data(), static_cast<int>(rows.size()));
        double s = 0;
        for (std::size_t i = 0; i < out.size(); ++i)
            s += out[i] * proj[i];
        return s;
    };
    m.zero_grad();
    head.zero_grad();
    loss();
    std::fill(m.dhidden(), m.dhidden() + B * T * 16, 0.0);
    head.backward(m.dhidden(), proj.data());
    m.backward();
    test::check_gradient("head weight", head.weight(), 48, head.grads().view(0).data, loss);
    test::check_gradient("head bias", head.bias(), 3, head.grads().view(1).data, loss);
    // Every 13th entry: 119 of qkvw's 1,536, spread over both layers and q, k and v.
    test::check_gradient("trunk qkvw through head", m.param(p_qkvw), m.params().view(p_qkvw).size,
                         m.grads().view(p_qkvw).data, loss, 13);
    test::check_gradient("trunk wte through head", m.param(p_wte), m.params().view(p_wte).size,
                         m.grads().view(p_wte).data, loss, 3);
}

namespace {
// A user-defined objective: classify whether a sequence contains token 1, read at its last token.
// It is not part of gptx; it only has to satisfy the objective concept.
template <class Model> struct contains_one_objective {
    struct batch_type {
        const int* tokens;
        const int* labels;
        int B, T;
    };
    linear_head<float> head{Model::C, 2};
    std::vector<float> logits;
    std::vector<int> rows;
    contains_one_objective() { head.init(5); }
    basic_arena<float>& head_params() { return head.params(); }
    basic_arena<float>& head_grads() { return head.grads(); }

    double run(Model& m, const batch_type& b, double scale, bool grads) {
        const float* h = m.forward(b.tokens, b.B, b.T);
        rows.resize(b.B);
        for (int i = 0; i < b.B; ++i)
            rows[i] = i * b.T + b.T - 1;
        logits.resize(2 * b.B);
        head.forward(logits.data(), h, rows.data(), b.B);
        double loss = 0;
        for (int i = 0; i < b.B; ++i) {
            float* z = logits.data() + 2 * i;
            const float mx = std::max(z[0], z[1]);
            const float e0 = std::exp(z[0] - mx), e1 = std::exp(z[1] - mx), s = e0 + e1;
            loss -= std::log((b.labels[i] ? e1 : e0) / s);
            z[0] = float(scale / b.B) * (e0 / s - (b.labels[i] == 0)); // d loss / d logits
            z[1] = float(scale / b.B) * (e1 / s - (b.labels[i] == 1));
        }
        if (grads) {
            std::fill(m.dhidden(), m.dhidden() + std::size_t(b.B) * b.T * Model::C, 0.0f);
            head.backward(m.dhidden(), logits.data());
            m.backward();
        }
        return loss / b.B;
    }
    double forward_backward(Model& m, const batch_type& b, double scale) {
        return run(m, b, scale, true);
    }
    double evaluate(Model& m, const batch_type& b) { return run(m, b, 1.0, false); }
};
} // namespace

BOOST_AUTO_TEST_CASE(user_defined_objective_plugs_into_the_trainer) {
    using model_t = transformer<shape{32, 4, 2, norm::pre}>;
    static_assert(objective<contains_one_objective<model_t>, model_t>);
    model_t m({8, 8});
    m.init(6);
    contains_one_objective<model_t> obj;
    adamw<float> opt(
        m.params(),
        {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.0f});
    trainer tr(m, obj, opt, {.grad_accum = 1, .grad_clip = 1.0f, .lr = [](int) { return 3e-3f; }});
    rng r(7);
    const int B = 8, T = 8;
    std::vector<int> tokens(B * T), labels(B);
    auto make = [&] {
        for (int b = 0; b < B; ++b) {
            labels[b] = static_cast<int>(r.below(2));
            for (int t = 0; t < T; ++t)
                tokens[b * T + t] = 2 + static_cast<int>(r.below(6));
            if (labels[b])
                tokens[b * T + r.below(T)] = 1;
        }
        return typename contains_one_objective<model_t>::batch_type{tokens.data(), labels.data(), B,
                                                                    T};
    };
    const std::vector<float> head_before(obj.head.weight(), obj.head.weight() + 64);
    double first = 0, last = 0;
    // 70 steps: the smoothed loss is below 0.1 by step 50 and 0.02 by step 70.
    for (int i = 0; i < 70; ++i) {
        auto s = tr.step([&](int) { return make(); });
        if (i == 0)
            first = s.loss;
        last = 0.9 * last + 0.1 * s.loss;
    }
    BOOST_TEST_MESSAGE("custom objective: loss " << first << " -> " << last);
    BOOST_TEST(first > 0.5);
    BOOST_TEST(last < 0.2);
    BOOST_TEST(tr.head_optimizer().step_count() == 70); // the trainer stepped the head too
    BOOST_TEST(!std::equal(head_before.begin(), head_before.end(), obj.head.weight()));
}

BOOST_AUTO_TEST_SUITE_END()
