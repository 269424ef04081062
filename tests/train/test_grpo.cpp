// Tests for gptx/train/grpo.hpp and GRPO's form of the policy loss (train/ppo.hpp): advantages of
// a known group under GRPO's and RLOO's baselines, the k3 KL estimator (non-negative, equal to
// the KL in expectation), and the loss with per-sequence means and the k3 penalty against a
// hand-computed value and central differences in double precision; GRPO and RLOO raising a toy
// reward on the generic trainer, a group without signal moving nothing, and exact resume.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <vector>

#include <gptx/nn/transformer.hpp>
#include <gptx/train/grpo.hpp>
#include <gptx/train/ppo.hpp>
#include <gptx/train/ppo_trainer.hpp>

#include "support/gradcheck.hpp"

using namespace gptx;
namespace tt = boost::test_tools;

BOOST_AUTO_TEST_SUITE(grpo)

BOOST_AUTO_TEST_CASE(group_advantages_of_a_known_group) {
    // Rewards 1, 0, 0, 1: mean 1/2, sample sd sqrt(1/3); then 3, 3, 3, 3: no signal.
    const std::vector<double> r{1, 0, 0, 1, 3, 3, 3, 3};
    std::vector<double> a(8);
    group_advantages(a.data(), r.data(), r.size(), 4, group_baseline::group, 0.0);
    const double z = 0.5 / std::sqrt(1.0 / 3.0);
    BOOST_TEST(a[0] == z, tt::tolerance(1e-12));
    BOOST_TEST(a[1] == -z, tt::tolerance(1e-12));
    BOOST_TEST(a[3] == z, tt::tolerance(1e-12));
    for (int i = 4; i < 8; ++i)
        BOOST_TEST(a[i] == 0.0);
    // eps only shrinks: (r - mean) / (sd + eps).
    group_advantages(a.data(), r.data(), r.size(), 4, group_baseline::group, 1e-4);
    BOOST_TEST(a[0] == 0.5 / (std::sqrt(1.0 / 3.0) + 1e-4), tt::tolerance(1e-12));
    // A group's advantages sum to zero.
    const std::vector<double> r2{0.2, -1.5, 4.0};
    std::vector<float> a2(3);
    group_advantages(a2.data(), r2.data(), 3, 3, group_baseline::group);
    BOOST_TEST(a2[0] + a2[1] + a2[2] == 0.0f, tt::tolerance(1e-6f));
}

BOOST_AUTO_TEST_CASE(rloo_baseline_is_the_mean_of_the_others) {
    const std::vector<double> r{1, 2, 3, 6};
    std::vector<double> a(4);
    group_advantages(a.data(), r.data(), 4, 4, group_baseline::loo);
    BOOST_TEST(a[0] == 1.0 - 11.0 / 3, tt::tolerance(1e-12));
    BOOST_TEST(a[1] == 2.0 - 10.0 / 3, tt::tolerance(1e-12));
    BOOST_TEST(a[3] == 6.0 - 6.0 / 3, tt::tolerance(1e-12));
    // G / (G - 1) times GRPO's centred reward, unscaled by the spread.
    BOOST_TEST(a[2] == 4.0 / 3 * (3.0 - 3.0), tt::tolerance(1e-12));
    BOOST_TEST((parse_group_baseline("loo") == group_baseline::loo));
    BOOST_CHECK_THROW(parse_group_baseline("mean"), gptx::error);
    BOOST_CHECK_THROW(group_advantages(a.data(), r.data(), 4, 3, group_baseline::loo), gptx::error);
    BOOST_CHECK_THROW(group_advantages(a.data(), r.data(), 4, 1, group_baseline::loo), gptx::error);
}

BOOST_AUTO_TEST_CASE(k3_is_nonnegative_and_the_kl_in_expectation) {
    rng r(3);
    for (int i = 0; i < 1000; ++i) {
        const double lp = -5 * r.uniform_double(), ref = -5 * r.uniform_double();
        BOOST_TEST(kl_k3(lp, ref) >= 0.0);
    }
    BOOST_TEST(kl_k3(-1.3, -1.3) == 0.0);
    // pi and ref over 5 outcomes: E_pi[k3] = sum pi (ref/pi - log(ref/pi) - 1) = KL(pi || ref).
    const std::vector<double> pi{0.4, 0.3, 0.15, 0.1, 0.05}, ref{0.1, 0.2, 0.3, 0.25, 0.15};
    double expect = 0, kl = 0;
    for (std::size_t x = 0; x < pi.size(); ++x) {
        expect += pi[x] * kl_k3(std::log(pi[x]), std::log(ref[x]));
        kl += pi[x] * std::log(pi[x] / ref[x]);
    }
    BOOST_TEST(expect == kl, tt::tolerance(1e-12));
    // And by sampling: the mean of k3 over draws from pi is within 4 standard errors of the KL.
    const int n = 200000;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; ++i) {
        double u = r.uniform_double();
        std::size_t x = 0;
        while (x + 1 < pi.size() && u >= pi[x])
            u -= pi[x++];
        const double k = kl_k3(std::log(pi[x]), std::log(ref[x]));
        sum += k;
        sq += k * k;
    }
    const double mean = sum / n, se = std::sqrt((sq / n - mean * mean) / n);
    BOOST_TEST(std::abs(mean - kl) < 4 * se,
               "mean " << mean << " vs KL " << kl << " (se " << se << ")");
}

BOOST_AUTO_TEST_CASE(sequence_means_and_k3_penalty_value_and_gradients) {
    constexpr shape s{16, 2, 2, norm::pre};
    using model_t = transformer<s, double>;
    model_t m({9, 8});
    m.init(3);
    rng r(5);
    for (std::size_t i = 0; i < m.params().size(); ++i)
        m.params().data()[i] += 0.05 * r.normal();
    const int B = 3, T = 5, C = 16;
    std::vector<int> x{1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7};
    std::vector<int> y{2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 0};
    // One sequence per row, of 3, 1 and 4 response tokens.
    std::vector<std::uint8_t> mask{0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1};
    std::vector<int> rows;
    detail::set_rows(rows, mask.data(), B * T);
    std::vector<double> lp(rows.size());
    {
        lm_head<model_t> head;
        std::vector<int> tok(rows.size());
        for (std::size_t i = 0; i < rows.size(); ++i)
            tok[i] = y[std::size_t(rows[i])];
        m.forward(x.data(), B, T);
        head.chosen_logprobs(m, rows.data(), tok.data(), int(rows.size()), lp.data());
    }
    const double ratio[8] = {1.5, 0.9, 1.05, 0.95, 1.3, 0.6, 1.1, 1.0};
    const double adv[3] = {0.8, -1.1, 0.4}; // per sequence, as GRPO assigns them
    const double ref_shift[8] = {0.3, -0.2, 0.1, 0.5, -0.4, 0.2, 0.0, -0.1};
    std::vector<double> old(B * T, 0.0), A(B * T, 0.0), ref(B * T, 0.0);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        old[std::size_t(rows[i])] = lp[i] - std::log(ratio[i]);
        A[std::size_t(rows[i])] = adv[rows[i] / T];
        ref[std::size_t(rows[i])] = lp[i] + ref_shift[i];
    }
    const double beta = 0.04, eps = 0.2;
    ppo_policy_objective<model_t> obj(eps, 3);
    obj.set_kl_penalty(beta);
    obj.set_sequence_mean(true);
    ppo_policy_batch<double> b{x.data(), y.data(), mask.data(), old.data(), A.data(), B, T};
    b.ref_logp = ref.data();

    // (1/3) sum_s (1/n_s) sum_t [-min(r A, clip(r) A) + beta k3]
    const int n_s[3] = {3, 1, 4};
    double want = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const int seq = rows[i] / T;
        const double a = adv[seq], rc = std::clamp(ratio[i], 1 - eps, 1 + eps);
        const double term =
            -std::min(ratio[i] * a, rc * a) + beta * kl_k3(lp[i], lp[i] + ref_shift[i]);
        want += term / (3.0 * n_s[seq]);
    }
    BOOST_TEST(obj.evaluate(m, b) == want, tt::tolerance(1e-10));
    BOOST_TEST(obj.stats().kl_k3 > 0.0);

    auto loss = [&] { return obj.evaluate(m, b); };
    m.zero_grad();
    obj.forward_backward(m, b, 1.0);
    test::check_gradient("grpo wte", m.param(p_wte), m.params().view(p_wte).size,
                         m.grads().view(p_wte).data, loss, 3);
    test::check_gradient("grpo qkvw", m.param(p_qkvw), m.params().view(p_qkvw).size,
                         m.grads().view(p_qkvw).data, loss, 7);
    test::check_gradient("grpo lnfw", m.param(p_lnfw), C, m.grads().view(p_lnfw).data, loss);

    // Without the reference's log-probabilities the penalty cannot be computed.
    b.ref_logp = nullptr;
    BOOST_CHECK_THROW(obj.evaluate(m, b), gptx::error);
}

namespace {
constexpr shape toy{16, 2, 1, norm::pre};
using toy_t = transformer<toy>;
constexpr int toy_vocab = 6, toy_eot = 0, toy_good = 3, toy_prompt = 2;

// The toy reward (as PPO's test): how many times token 3 occurs in the response.
std::vector<float> count_good(const int* tokens, int B, int T, const int* ends, const int*) {
    std::vector<float> s(std::size_t(B), 0.0f);
    for (int b = 0; b < B; ++b)
        for (int t = toy_prompt; t < ends[b]; ++t)
            s[std::size_t(b)] += tokens[b * T + t] == toy_good ? 1.0f : 0.0f;
    return s;
}

struct toy_run {
    toy_t policy{{toy_vocab, 16}}, ref{{toy_vocab, 16}};
    std::vector<std::vector<int>> prompts{{1, 2}, {2, 4}, {5, 1}, {4, 4}};
    toy_run() {
        policy.init(11);
        ref.init(11);
    }
    grpo_trainer<toy_t> make(grpo_config cfg, reward_fn reward = count_good) {
        return grpo_trainer<toy_t>(policy, ref, std::move(reward), prompts, cfg);
    }
};

grpo_config toy_config(group_baseline baseline) {
    return {.end_of_text = toy_eot,
            .prompts = 8,
            .group_size = 4,
            .max_new_tokens = 10,
            .epochs = 2,
            .minibatch = 8,
            .lr = 3e-3f,
            .kl_coef = 0.01,
            .baseline = baseline,
            .seed = 21};
}

double toy_gain(group_baseline baseline) {
    toy_run run;
    auto tr = run.make(toy_config(baseline));
    double first = 0, last = 0;
    const int iters = 16;
    for (int i = 0; i < iters; ++i) {
        const grpo_metrics m = tr.iteration();
        BOOST_TEST_MESSAGE(to_string(baseline)
                           << " iter " << m.iteration << ": score " << m.score << ", kl " << m.kl
                           << ", k3 " << m.kl_k3 << ", entropy " << m.entropy << ", clip "
                           << m.clip_frac << ", flat " << m.flat_groups << ", len "
                           << m.response_length);
        BOOST_TEST(m.updates + m.skipped == 8); // 32 sequences, minibatches of 8, 2 epochs
        BOOST_TEST(m.kl_exact >= 0.0);
        if (i == 0) {
            first = m.score;
            BOOST_TEST(m.kl == 0.0); // the policy starts as the reference
        }
        if (i >= iters - 3)
            last += m.score / 3;
    }
    BOOST_TEST_MESSAGE(to_string(baseline) << " toy reward: " << first << " -> " << last);
    return last - first;
}
} // namespace

BOOST_AUTO_TEST_CASE(grpo_and_rloo_raise_a_toy_reward) {
    BOOST_TEST(toy_gain(group_baseline::group) > 2.0);
    BOOST_TEST(toy_gain(group_baseline::loo) > 2.0);
}

BOOST_AUTO_TEST_CASE(groups_without_signal_move_nothing) {
    // A constant reward: every group is flat, every advantage 0, and at the reference the k3
    // penalty's gradient is 0 too, so the first iteration leaves the policy as it was.
    toy_run run;
    auto tr = run.make(toy_config(group_baseline::group),
                       [](const int*, int B, int, const int*, const int*) {
                           return std::vector<float>(std::size_t(B), 1.0f);
                       });
    const std::vector<float> before(run.policy.params().data(),
                                    run.policy.params().data() + run.policy.params().size());
    const grpo_metrics m = tr.iteration();
    BOOST_TEST(m.flat_groups == 1.0);
    BOOST_TEST(m.grad_norm == 0.0);
    BOOST_TEST(std::equal(before.begin(), before.end(), run.policy.params().data()));
}

BOOST_AUTO_TEST_CASE(resume_continues_exactly) {
    grpo_config cfg = toy_config(group_baseline::loo);
    cfg.prompts = 3;
    cfg.minibatch = 5;
    toy_run a;
    auto ta = a.make(cfg);
    for (int i = 0; i < 3; ++i)
        ta.iteration();

    toy_run b;
    auto tb = b.make(cfg);
    tb.iteration();
    tb.iteration();
    const auto snap = [](const basic_arena<float>& x) {
        return std::vector<float>(x.data(), x.data() + x.size());
    };
    const auto pol = snap(b.policy.params()), m = snap(tb.policy_optimizer().m()),
               v = snap(tb.policy_optimizer().v());
    const grpo_state st = tb.state();
    const int steps = tb.policy_optimizer().step_count();

    toy_run c;
    auto tc = c.make(cfg);
    const auto load = [](basic_arena<float>& x, const std::vector<float>& from) {
        std::copy(from.begin(), from.end(), x.data());
    };
    load(c.policy.params(), pol);
    load(tc.policy_optimizer().m(), m);
    load(tc.policy_optimizer().v(), v);
    tc.policy_optimizer().set_step_count(steps);
    tc.set_state(st);
    tc.iteration();
    BOOST_TEST(tc.iteration_count() == 3);
    BOOST_TEST(snap(c.policy.params()) == snap(a.policy.params()));
}

BOOST_AUTO_TEST_CASE(bad_configurations_are_clear_errors) {
    toy_run run;
    grpo_config cfg = toy_config(group_baseline::group);
    cfg.group_size = 1;
    BOOST_CHECK_THROW(run.make(cfg), gptx::error);
    cfg = toy_config(group_baseline::group);
    cfg.end_of_text = toy_vocab;
    BOOST_CHECK_THROW(run.make(cfg), gptx::error);
    cfg = toy_config(group_baseline::group);
    cfg.ptx_coef = 1.0; // without pre-training tokens
    BOOST_CHECK_THROW(run.make(cfg), gptx::error);
}

BOOST_AUTO_TEST_SUITE_END()
