// Tests for gptx/train/sft.hpp: the SFT loss ignores prompt tokens, SFT learns demonstrations,
// model selection by callback, and resuming continues exactly.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include <gptx/nn/transformer.hpp>
#include <gptx/train/sft.hpp>

#include "support/shapes.hpp"

using namespace gptx;

namespace {
constexpr shape sft_shape = test::shapes::tiny;
using sft_model = transformer<sft_shape>;
constexpr int V = 12, eot = 11;

std::vector<sft_tokens> demos() {
    // prompt: two ids in [0, 5), response: their "sum" mod 5 + 5, then end-of-text
    std::vector<sft_tokens> ex;
    for (int a = 0; a < 5; ++a)
        for (int b = 0; b < 5; ++b)
            ex.push_back({{a, b, 10}, {5 + (a + b) % 5}});
    return ex;
}

std::vector<float> params_of(const sft_model& m) {
    return std::vector<float>(m.params().data(), m.params().data() + m.num_parameters());
}
} // namespace

BOOST_AUTO_TEST_SUITE(sft_suite)

BOOST_AUTO_TEST_CASE(changing_prompt_targets_does_not_change_loss_or_gradients) {
    const auto ex = demos();
    sft_batches data(ex, 4, 16, eot, 1);
    const lm_batch b = data.batch(0);
    const std::size_t n = std::size_t(b.B) * b.T;
    std::vector<int> x(b.inputs, b.inputs + n), y(b.targets, b.targets + n), y2 = y;
    std::vector<std::uint8_t> mask(b.mask, b.mask + n);
    int changed = 0;
    for (std::size_t i = 0; i < n; ++i)
        if (!mask[i]) {
            y2[i] = (y[i] + 3) % V;
            ++changed;
        }
    BOOST_TEST(changed > 0);

    sft_model m({V, 16});
    m.init(3);
    lm_objective<sft_model> obj;
    auto run = [&](const std::vector<int>& targets) {
        m.zero_grad();
        const double loss =
            obj.forward_backward(m, {x.data(), targets.data(), mask.data(), b.B, b.T}, 1.0);
        return std::pair{
            loss, std::vector<float>(m.grads().data(), m.grads().data() + m.num_parameters())};
    };
    const auto [l1, g1] = run(y);
    const auto [l2, g2] = run(y2);
    BOOST_TEST(l1 == l2); // exactly: masked targets never enter the sum
    BOOST_TEST(std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(float)) == 0);
    // while changing a response target does change it
    std::vector<int> y3 = y;
    for (std::size_t i = 0; i < n; ++i)
        if (mask[i]) {
            y3[i] = (y[i] + 1) % V;
            break;
        }
    BOOST_TEST(run(y3).first != l1);
}

BOOST_AUTO_TEST_CASE(learns_the_demonstrations_and_selects_by_callback) {
    const auto ex = demos();
    sft_batches data(ex, 8, 16, eot, 2);
    sft_model m({V, 16});
    m.init(4);
    adamw<float> opt(
        m.params(),
        {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.0f});
    sft_config cfg{.epochs = 100, .lr = 3e-3f, .min_lr = 3e-4f};
    // the score: minus the mean masked loss over every row (the held-out loss of a real run)
    lm_objective<sft_model> obj;
    auto score = [&](sft_model& model) {
        double sum = 0;
        for (int j = 0; j < data.steps_per_epoch(); ++j)
            sum += obj.evaluate(model, data.batch(j));
        return -sum / data.steps_per_epoch();
    };
    std::vector<std::int64_t> best_steps;
    std::vector<double> scores;
    sft_hooks<sft_model> hooks;
    hooks.run.quiet = true;
    hooks.score = [&](sft_model& model) {
        scores.push_back(score(model));
        return scores.back();
    };
    hooks.on_best = [&](sft_model&, std::int64_t step, double) { best_steps.push_back(step); };
    const sft_selection sel = run_sft(m, opt, data, cfg, hooks);
    BOOST_TEST(scores.size() == 101u); // at the start and once per epoch
    BOOST_TEST(-scores.back() < 0.05, "final loss " << -scores.back());
    BOOST_TEST(sel.best_step == best_steps.back());
    BOOST_TEST(sel.best_score == *std::max_element(scores.begin(), scores.end()));
    // greedy decoding reproduces every demonstrated response and end-of-text where they stand
    m.set_training(false);
    lm_head<sft_model> head;
    std::vector<float> logits(V);
    int checked = 0, right = 0;
    for (int j = 0; j < data.steps_per_epoch(); ++j) {
        const lm_batch b = data.batch(j);
        m.forward(b.inputs, b.B, b.T);
        for (int i = 0; i < b.B * b.T; ++i) {
            if (!b.mask[i])
                continue;
            head.logits(m, m.hidden() + std::size_t(i) * sft_shape.width, logits.data(), 1);
            right +=
                std::max_element(logits.begin(), logits.end()) - logits.begin() == b.targets[i];
            ++checked;
        }
    }
    BOOST_TEST(checked == 50);
    BOOST_TEST(right == checked);
}

BOOST_AUTO_TEST_CASE(resume_continues_exactly) {
    const auto ex = demos();
    const sft_config cfg{.epochs = 3, .lr = 1e-3f, .min_lr = 1e-4f, .warmup = 2};
    auto fresh = [] {
        auto m = std::make_unique<sft_model>(model_config{V, 16});
        m->init(5);
        return m;
    };
    // uninterrupted
    auto a = fresh();
    adamw<float> oa(
        a->params(),
        {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f});
    sft_batches da(ex, 8, 16, eot, 6);
    sft_hooks<sft_model> quiet;
    quiet.run.quiet = true;
    run_sft(*a, oa, da, cfg, quiet);
    // stopped after 5 steps, then continued by a new optimizer and data object with copied state
    auto b = fresh();
    adamw<float> ob(
        b->params(),
        {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f});
    sft_batches db(ex, 8, 16, eot, 6);
    sft_hooks<sft_model> stop = quiet;
    stop.stop_at = 5;
    run_sft(*b, ob, db, cfg, stop);
    BOOST_TEST(ob.step_count() == 5);
    sft_batches dc(ex, 8, 16, eot, 6);
    run_sft(*b, ob, dc, cfg, quiet, 5);
    const auto pa = params_of(*a), pb = params_of(*b);
    BOOST_TEST(std::memcmp(pa.data(), pb.data(), pa.size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
