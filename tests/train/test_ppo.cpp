// Tests for gptx/train/{gae,kl_controller,ema,ppo,ppo_trainer}.hpp: GAE against a hand-computed
// example, the KL controller's formula, EMA, the exact KL, central-difference checks of the PPO
// policy loss (with PPO-ptx) and value loss with clipping active, a behaviour test (PPO raises a
// toy reward), the policy's learning-rate warm-up and exact resume.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <gptx/nn/heads.hpp>
#include <gptx/nn/lm_head.hpp>
#include <gptx/nn/transformer.hpp>
#include <gptx/train/ema.hpp>
#include <gptx/train/gae.hpp>
#include <gptx/train/kl_controller.hpp>
#include <gptx/train/ppo.hpp>
#include <gptx/train/ppo_trainer.hpp>

#include "support/gradcheck.hpp"
#include "support/shapes.hpp"

using namespace gptx;

namespace {
using test::shapes::grad_pre;
using test::shapes::toy;
} // namespace

BOOST_AUTO_TEST_SUITE(ppo)

BOOST_AUTO_TEST_CASE(gae_matches_a_hand_computed_example) {
    // rewards 1, 0, 2; values 0.5, 1.0, 1.5; gamma 0.9, lambda 0.8; V after the end is 0.
    //   delta_2 = 2 + 0.9*0   - 1.5 = 0.5    A_2 = 0.5
    //   delta_1 = 0 + 0.9*1.5 - 1.0 = 0.35   A_1 = 0.35 + 0.72*0.5  = 0.71
    //   delta_0 = 1 + 0.9*1.0 - 0.5 = 1.4    A_0 = 1.4  + 0.72*0.71 = 1.9112
    //   returns = A + V = 2.4112, 1.71, 2.0
    const std::vector<double> r{1, 0, 2}, v{0.5, 1.0, 1.5};
    std::vector<double> a(3), ret(3);
    gae(a.data(), ret.data(), r.data(), v.data(), 3, 0.9, 0.8);
    BOOST_TEST(a[0] == 1.9112, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(a[1] == 0.71, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(a[2] == 0.5, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(ret[0] == 2.4112, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(ret[1] == 1.71, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(ret[2] == 2.0, boost::test_tools::tolerance(1e-12));
    // InstructGPT's gamma = 1 with lambda = 1: A_t = (sum of rewards from t) - V_t = 2.5, 1, 0.5.
    gae(a.data(), ret.data(), r.data(), v.data(), 3, 1.0, 1.0);
    BOOST_TEST(a[0] == 2.5, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(a[1] == 1.0, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(a[2] == 0.5, boost::test_tools::tolerance(1e-12));
    // Whitening: mean 0, population std 1.
    std::vector<double> w{1, 2, 3, 4};
    whiten(w.data(), w.size(), 0.0);
    const double s = std::sqrt(1.25);
    BOOST_TEST(w[0] == -1.5 / s, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(w[3] == 1.5 / s, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(kl_controller_follows_its_formula) {
    kl_controller fixed(0.02);
    fixed.update(100.0, 64);
    BOOST_TEST(fixed.beta() == 0.02);
    kl_controller c(0.1, 6.0, 10000.0);
    c.update(9.0, 64); // e = clip(9/6 - 1, -0.2, 0.2) = 0.2
    BOOST_TEST(c.beta() == 0.1 * (1 + 0.2 * 64 / 10000.0), boost::test_tools::tolerance(1e-15));
    const double b = c.beta();
    c.update(5.4, 64); // e = 5.4/6 - 1 = -0.1
    BOOST_TEST(c.beta() == b * (1 - 0.1 * 64 / 10000.0), boost::test_tools::tolerance(1e-15));
    BOOST_CHECK_THROW(kl_controller(-1.0), gptx::error);
}

BOOST_AUTO_TEST_CASE(ema_averages_parameters) {
    basic_arena<double> p({{"a", 3, true}, {"b", 2}});
    for (int i = 0; i < 5; ++i)
        p.data()[i] = i;
    ema<double> e(p, 0.9);
    for (int i = 0; i < 5; ++i)
        p.data()[i] = 10.0 + i;
    e.update(p);
    for (int i = 0; i < 5; ++i)
        BOOST_TEST(e.shadow().data()[i] == 0.9 * i + 0.1 * (10.0 + i),
                   boost::test_tools::tolerance(1e-15));
    e.update(p);
    BOOST_TEST(e.shadow().data()[0] == 0.9 * 1.0 + 0.1 * 10.0, boost::test_tools::tolerance(1e-15));
    BOOST_CHECK_THROW(ema<double>(p, 1.0), gptx::error);
}

BOOST_AUTO_TEST_CASE(exact_kl_is_nonnegative_and_zero_against_itself) {
    using model_t = transformer<grad_pre, double>;
    model_t a({11, 8}), b({11, 8});
    a.init(1);
    b.init(2);
    const int B = 2, T = 6, V = 11, C = 16;
    std::vector<int> x{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1}, y{2, 3, 4, 5, 6, 0, 8, 9, 10, 0, 1, 2};
    std::vector<int> rows(B * T);
    for (int i = 0; i < B * T; ++i)
        rows[i] = i;
    std::vector<double> lp(B * T), ent(B * T), rlp(B * T), kl(B * T), scratch;
    const double* ha = a.forward(x.data(), B, T);
    const double* hb = b.forward(x.data(), B, T);
    policy_token_stats(lp.data(), ent.data(), rlp.data(), kl.data(), ha, a.param(p_wte), hb,
                       b.param(p_wte), rows.data(), y.data(), B * T, C, V, scratch, 5);
    // Against direct sums over the vocabulary.
    std::vector<double> za(V), zb(V);
    for (int i = 0; i < B * T; ++i) {
        ops::lm_logits(za.data(), ha + i * C, a.param(p_wte), 1, C, V);
        ops::lm_logits(zb.data(), hb + i * C, b.param(p_wte), 1, C, V);
        double sa = 0, sb = 0;
        for (int v = 0; v < V; ++v) {
            sa += std::exp(za[v]);
            sb += std::exp(zb[v]);
        }
        double k = 0, h = 0;
        for (int v = 0; v < V; ++v) {
            const double pa = std::exp(za[v]) / sa, pb = std::exp(zb[v]) / sb;
            k += pa * std::log(pa / pb);
            h -= pa * std::log(pa);
        }
        BOOST_TEST(kl[i] >= 0.0);
        BOOST_TEST(kl[i] == k, boost::test_tools::tolerance(1e-10));
        BOOST_TEST(ent[i] == h, boost::test_tools::tolerance(1e-10));
        BOOST_TEST(lp[i] == za[y[i]] - std::log(sa), boost::test_tools::tolerance(1e-10));
        BOOST_TEST(rlp[i] == zb[y[i]] - std::log(sb), boost::test_tools::tolerance(1e-10));
    }
    // The policy against itself: exactly 0.
    policy_token_stats(lp.data(), ent.data(), rlp.data(), kl.data(), ha, a.param(p_wte), ha,
                       a.param(p_wte), rows.data(), y.data(), B * T, C, V, scratch, 64);
    for (int i = 0; i < B * T; ++i) {
        BOOST_TEST(kl[i] == 0.0);
        BOOST_TEST(lp[i] == rlp[i]);
    }
}

BOOST_AUTO_TEST_CASE(policy_loss_gradients_with_clipping_and_ptx) {
    using model_t = transformer<grad_pre, double>;
    static_assert(objective<ppo_policy_objective<model_t>, model_t>);
    model_t m({9, 8});
    m.init(3);
    rng r(5);
    for (std::size_t i = 0; i < m.params().size(); ++i)
        m.params().data()[i] += 0.05 * r.normal();
    const int B = 2, T = 6, V = 9, C = 16;
    std::vector<int> x{1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4}, y{2, 3, 4, 5, 6, 0, 8, 1, 2, 3, 4, 0};
    // Prompts (first two positions of row 0, first position of row 1) and padding carry no loss.
    std::vector<std::uint8_t> mask{0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1};
    std::vector<int> rows;
    detail::set_rows(rows, mask.data(), B * T);
    std::vector<double> lp(rows.size()), ent(rows.size()), scratch;
    policy_token_stats<simd::default_arch, double>(
        lp.data(), ent.data(), nullptr, nullptr, m.forward(x.data(), B, T), m.param(p_wte), nullptr,
        nullptr, rows.data(), y.data(), int(rows.size()), C, V, scratch);
    // Ratios and advantages chosen so both clip branches occur, plus unclipped tokens.
    const double ratio[9] = {1.5, 0.5, 1.05, 0.95, 1.5, 0.5, 1.1, 0.7, 1.3};
    const double adv[9] = {1.0, -1.0, 0.7, -0.4, -1.2, 0.8, 0.3, 2.0, -0.5};
    std::vector<double> old(B * T, 0.0), A(B * T, 0.0);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        old[rows[i]] = lp[i] - std::log(ratio[i]);
        A[rows[i]] = adv[i];
    }
    std::vector<int> px{3, 1, 4, 1, 5, 2, 6, 5}, py{1, 4, 1, 5, 2, 6, 5, 3};
    lm_batch ptx{px.data(), py.data(), nullptr, 2, 4};
    ppo_policy_objective<model_t> obj(0.2, 4); // chunks of 4 rows: several chunks
    ppo_policy_batch<double> b{x.data(), y.data(), mask.data(), old.data(), A.data(),
                               B,        T,        &ptx,        2.5};
    auto loss = [&] { return obj.evaluate(m, b); };
    m.zero_grad();
    const double l0 = obj.forward_backward(m, b, 1.0);
    BOOST_TEST(std::isfinite(l0));
    BOOST_TEST(obj.stats().clip_frac == 6.0 / 9.0,
               boost::test_tools::tolerance(1e-12)); // |r - 1| > 0.2
    BOOST_TEST(obj.stats().ptx_loss > 0.0);
    BOOST_TEST(l0 == obj.stats().ppo_loss + 2.5 * obj.stats().ptx_loss,
               boost::test_tools::tolerance(1e-12));
    test::check_gradient("ppo policy wte (LM head and embedding)", m.param(p_wte),
                         m.params().view(p_wte).size, m.grads().view(p_wte).data, loss, 3);
    test::check_gradient("ppo policy qkvw", m.param(p_qkvw), m.params().view(p_qkvw).size,
                         m.grads().view(p_qkvw).data, loss, 7);
    test::check_gradient("ppo policy fcprojw", m.param(p_fcprojw), m.params().view(p_fcprojw).size,
                         m.grads().view(p_fcprojw).data, loss, 11);
    test::check_gradient("ppo policy lnfw", m.param(p_lnfw), C, m.grads().view(p_lnfw).data, loss);
    test::check_gradient("ppo policy wpe", m.param(p_wpe), m.params().view(p_wpe).size,
                         m.grads().view(p_wpe).data, loss, 5);

    // Without ptx, and with every token clipped the gradient vanishes.
    b.ptx = nullptr;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        old[rows[i]] = lp[i] - std::log(1.5);
        A[rows[i]] = 1.0;
    }
    m.zero_grad();
    obj.forward_backward(m, b, 1.0);
    BOOST_TEST(global_norm(m.grads()) == 0.0);
    BOOST_TEST(obj.stats().ppo_loss == -1.2, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(value_loss_gradients_with_clipping) {
    using model_t = transformer<grad_pre, double>;
    static_assert(objective<ppo_value_objective<model_t>, model_t>);
    model_t m({9, 8});
    m.init(4);
    ppo_value_objective<model_t> obj(0.2);
    obj.head().init(6, 0.5f);
    const int B = 2, T = 5;
    std::vector<int> x{1, 2, 3, 4, 5, 6, 7, 8, 1, 2};
    std::vector<std::uint8_t> mask{0, 1, 1, 1, 0, 1, 1, 1, 1, 1};
    std::vector<int> rows;
    detail::set_rows(rows, mask.data(), B * T);
    const std::vector<double> v = obj.predict(m, x.data(), B, T, rows);
    // offset = v - old; target = R - v. Clipped term wins where |v - old| > 0.2 and R lies beyond.
    const double offset[8] = {0.5, -0.5, 0.05, 0.5, -0.1, -0.6, 0.3, 0.0};
    const double target[8] = {1.0, -1.0, 0.3, -1.0, 0.5, 1.0, 0.7, 0.2};
    std::vector<double> old(B * T, 0.0), R(B * T, 0.0);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        old[rows[i]] = v[i] - offset[i];
        R[rows[i]] = v[i] + target[i];
    }
    ppo_value_batch<double> b{x.data(), mask.data(), old.data(), R.data(), B, T};
    auto loss = [&] { return obj.evaluate(m, b); };
    m.zero_grad();
    obj.head_grads().zero();
    obj.forward_backward(m, b, 1.0);
    BOOST_TEST(obj.stats().clip_frac == 3.0 / 8.0, boost::test_tools::tolerance(1e-12));
    test::check_gradient("value head weight", obj.head().weight(), 16,
                         obj.head_grads().view(0).data, loss);
    test::check_gradient("value head bias", obj.head().bias(), 1, obj.head_grads().view(1).data,
                         loss);
    test::check_gradient("value trunk qkvw", m.param(p_qkvw), m.params().view(p_qkvw).size,
                         m.grads().view(p_qkvw).data, loss, 7);
    test::check_gradient("value trunk wte", m.param(p_wte), m.params().view(p_wte).size,
                         m.grads().view(p_wte).data, loss, 3);
}

namespace {
using toy_t = transformer<toy>;
constexpr int toy_vocab = 6, toy_eot = 0, toy_good = 3, toy_prompt = 2;

// The toy reward: how many times token 3 occurs in the response.
std::vector<float> count_good(const int* tokens, int B, int T, const int* ends, const int*) {
    std::vector<float> s(B, 0.0f);
    for (int b = 0; b < B; ++b)
        for (int t = toy_prompt; t < ends[b]; ++t)
            s[b] += tokens[b * T + t] == toy_good ? 1.0f : 0.0f;
    return s;
}

struct toy_run {
    toy_t policy{{toy_vocab, 16}}, ref{{toy_vocab, 16}}, value{{toy_vocab, 16}};
    linear_head<float> head{16, 1};
    std::vector<std::vector<int>> prompts{{1, 2}, {2, 4}, {5, 1}, {4, 4}};
    std::vector<int> ptx;
    toy_run() {
        policy.init(11);
        ref.init(11);
        value.init(12);
        head.init(13);
        rng r(14);
        for (int i = 0; i < 400; ++i)
            ptx.push_back(1 + int(r.below(5)));
    }
    ppo_trainer<toy_t> make(ppo_config cfg) {
        return ppo_trainer<toy_t>(policy, ref, value, head, count_good, prompts, cfg, ptx);
    }
};

ppo_config toy_config() {
    ppo_config c;
    c.end_of_text = toy_eot;
    c.rollouts = 32;
    c.max_new_tokens = 10;
    c.epochs = 2;
    c.minibatch = 8;
    c.lr = 3e-3f;
    c.kl_coef = 0.01;
    c.lambda = 0.95;
    c.seed = 21;
    return c;
}
} // namespace

BOOST_AUTO_TEST_CASE(ppo_raises_a_toy_reward) {
    toy_run run;
    auto tr = run.make(toy_config());
    double first = 0, last = 0;
    const int iters = 16;
    for (int i = 0; i < iters; ++i) {
        const ppo_metrics m = tr.iteration();
        BOOST_TEST_MESSAGE("iter " << m.iteration << ": score " << m.score << ", kl " << m.kl
                                   << ", exact kl " << m.kl_exact << ", entropy " << m.entropy
                                   << ", clip " << m.clip_frac << ", value loss " << m.value_loss
                                   << ", ev " << m.explained_variance << ", len "
                                   << m.response_length << ", skipped " << m.skipped);
        BOOST_TEST(m.kl_exact >= 0.0);
        BOOST_TEST(m.entropy > 0.0);
        BOOST_TEST(m.updates + m.skipped == 8);
        if (i == 0) {
            first = m.score;
            BOOST_TEST(m.kl == 0.0); // the policy starts as the reference
            BOOST_TEST(m.kl_exact == 0.0);
        }
        if (i >= iters - 3)
            last += m.score / 3;
    }
    BOOST_TEST_MESSAGE("toy reward: " << first << " -> " << last);
    BOOST_TEST(last > first + 2.0);
}

BOOST_AUTO_TEST_CASE(a_stop_token_cuts_the_response_and_the_reward_reads_it_closed) {
    toy_run run;
    const int stop = 5;
    // The reward function records what it is shown: each row up to its read position.
    std::vector<std::vector<int>> shown;
    std::vector<int> starts_shown; // where it is told each response begins
    reward_fn record = [&](const int* tokens, int B, int T, const int* ends, const int* starts) {
        for (int b = 0; b < B; ++b) {
            shown.emplace_back(tokens + std::size_t(b) * T,
                               tokens + std::size_t(b) * T + ends[b] + 1);
            starts_shown.push_back(starts[b]);
        }
        return std::vector<float>(B, 1.0f);
    };
    rollout_buffer<toy_t> buf(run.policy, run.ref, record,
                              {.end_of_text = toy_eot,
                               .max_new_tokens = 10,
                               .missing_eot_penalty = 0.5,
                               .score_batch = 8,
                               .stop_tokens = {stop}});
    std::vector<std::vector<int>> prompts(64, std::vector<int>{1, 2});
    rng r(3);
    buf.collect(prompts, r, [](auto&&...) {});
    int stopped = 0;
    for (std::size_t i = 0; i < buf.sequences().size(); ++i) {
        const auto& s = buf.sequences()[i];
        const std::vector<int> response(s.tokens.begin() + s.prompt, s.tokens.end() - 1);
        // A stop token can only be the response's last token, and is then one of its actions.
        const auto first_stop = std::find(response.begin(), response.end(), stop);
        BOOST_TEST((first_stop == response.end() || first_stop == response.end() - 1));
        BOOST_TEST(s.stopped == (first_stop != response.end()));
        BOOST_TEST(!(s.stopped && s.ended));
        BOOST_TEST(s.actions == int(response.size()) + (s.ended ? 1 : 0));
        // Cut by the stop token or the cap: the missing end-of-text penalty applies.
        BOOST_TEST(buf.scores()[i] == (s.ended ? 1.0 : 0.5));
        // The reward model reads the reply closed by end-of-text in the stop token's place.
        std::vector<int> expect(s.tokens.begin(), s.tokens.end() - (s.stopped ? 2 : 1));
        expect.push_back(toy_eot);
        BOOST_TEST(shown[i] == expect, boost::test_tools::per_element());
        BOOST_TEST(starts_shown[i] == s.prompt); // the response begins after the prompt
        stopped += s.stopped;
    }
    BOOST_TEST_MESSAGE(stopped << " of 64 responses stopped at token " << stop);
    BOOST_TEST(stopped > 0); // the toy policy draws token 5 about one time in six
    BOOST_TEST(stopped < 64);
}

BOOST_AUTO_TEST_CASE(value_warmup_moves_only_the_critic) {
    toy_run run;
    ppo_config c = toy_config();
    c.value_warmup = 2;
    auto tr = run.make(c);
    const std::vector<float> p0(run.policy.params().data(),
                                run.policy.params().data() + run.policy.num_parameters()),
        v0(run.value.params().data(), run.value.params().data() + run.value.num_parameters());
    auto same = [](const auto& m, const std::vector<float>& ref) {
        return std::equal(ref.begin(), ref.end(), m.params().data());
    };
    for (int i = 0; i < 2; ++i) {
        const ppo_metrics m = tr.iteration();
        BOOST_TEST(m.updates == 0);
        BOOST_TEST(m.value_loss > 0.0);
    }
    BOOST_TEST(same(run.policy, p0));
    BOOST_TEST(!same(run.value, v0));
    BOOST_TEST(tr.iteration().updates > 0); // the policy moves from the third iteration on
    BOOST_TEST(!same(run.policy, p0));
}

BOOST_AUTO_TEST_CASE(lr_warmup_ramps_the_policy_step) {
    // One update per iteration, so each iteration's first Adam step moves every weight with a
    // clear gradient by the scheduled rate: |m / sqrt(v)| = 1 on a first step.
    toy_run run;
    ppo_config c = toy_config();
    c.rollouts = c.minibatch = 8;
    c.epochs = 1;
    c.value_warmup = 1;
    c.lr_warmup = 3;
    auto tr = run.make(c);
    const std::vector<float> expect{c.lr / 4, c.lr / 4, c.lr / 2, 3 * c.lr / 4, c.lr, c.lr};
    const auto snap = [&] {
        return std::vector<float>(run.policy.params().data(),
                                  run.policy.params().data() + run.policy.num_parameters());
    };
    std::vector<float> before = snap();
    for (std::size_t i = 0; i < expect.size(); ++i) {
        BOOST_TEST(tr.policy_lr() == expect[i], boost::test_tools::tolerance(1e-6f));
        const ppo_metrics m = tr.iteration();
        if (i == 1) { // the policy's first update
            BOOST_TEST(m.updates == 1);
            const std::vector<float> after = snap();
            float most = 0;
            for (std::size_t k = 0; k < after.size(); ++k)
                most = std::max(most, std::abs(after[k] - before[k]));
            BOOST_TEST(most <= c.lr / 4 * 1.001f);
            BOOST_TEST(most >= c.lr / 4 * 0.99f);
        }
        before = snap();
    }
    // Without the warm-up the first update is the full rate's.
    toy_run full;
    c.lr_warmup = 0;
    auto tf = full.make(c);
    BOOST_TEST(tf.policy_lr() == c.lr);
}

BOOST_AUTO_TEST_CASE(resume_continues_exactly) {
    ppo_config cfg = toy_config();
    cfg.rollouts = 12;
    cfg.minibatch = 5;
    cfg.ema_decay = 0.9;
    cfg.ptx_coef = 0.5;
    cfg.ptx_batch = 2;
    cfg.ptx_context = 8;
    cfg.kl_target = 0.5;
    cfg.kl_horizon = 100;
    toy_run a;
    auto ta = a.make(cfg);
    for (int i = 0; i < 3; ++i)
        ta.iteration();

    toy_run b;
    auto tb = b.make(cfg);
    tb.iteration();
    tb.iteration();
    // Everything a checkpoint holds.
    const auto snap = [](const basic_arena<float>& x) {
        return std::vector<float>(x.data(), x.data() + x.size());
    };
    const auto pol = snap(b.policy.params()), val = snap(b.value.params()),
               head = snap(tb.value_head().params());
    const auto pm = snap(tb.policy_optimizer().m()), pv = snap(tb.policy_optimizer().v());
    const auto vm = snap(tb.value_optimizer().m()), vv = snap(tb.value_optimizer().v());
    const auto hm = snap(tb.value_head_optimizer().m()), hv = snap(tb.value_head_optimizer().v());
    const auto em = snap(tb.policy_ema()->shadow());
    const ppo_state st = tb.state();
    const int ps = tb.policy_optimizer().step_count(), vs = tb.value_optimizer().step_count();

    toy_run c;
    auto tc = c.make(cfg);
    const auto load = [](basic_arena<float>& x, const std::vector<float>& v) {
        std::copy(v.begin(), v.end(), x.data());
    };
    load(c.policy.params(), pol);
    load(c.value.params(), val);
    load(tc.value_head().params(), head);
    load(tc.policy_optimizer().m(), pm);
    load(tc.policy_optimizer().v(), pv);
    load(tc.value_optimizer().m(), vm);
    load(tc.value_optimizer().v(), vv);
    load(tc.value_head_optimizer().m(), hm);
    load(tc.value_head_optimizer().v(), hv);
    load(tc.policy_ema()->shadow(), em);
    tc.policy_optimizer().set_step_count(ps);
    tc.value_optimizer().set_step_count(vs);
    tc.value_head_optimizer().set_step_count(vs);
    tc.set_state(st);
    tc.iteration();

    BOOST_TEST(tc.iteration_count() == 3);
    BOOST_TEST(tc.kl().beta() == ta.kl().beta());
    BOOST_TEST(snap(c.policy.params()) == snap(a.policy.params()));
    BOOST_TEST(snap(c.value.params()) == snap(a.value.params()));
    BOOST_TEST(snap(tc.value_head().params()) == snap(ta.value_head().params()));
    BOOST_TEST(snap(tc.policy_ema()->shadow()) == snap(ta.policy_ema()->shadow()));
    BOOST_TEST(ta.kl().beta() != 0.01); // the adaptive controller moved
}

BOOST_AUTO_TEST_CASE(guards_skip_exploding_updates_and_stop_on_nan) {
    toy_run run;
    ppo_config cfg = toy_config();
    cfg.guard_kl = 1e-12; // any move away from the rollout policy counts as an explosion
    auto tr = run.make(cfg);
    const ppo_metrics m = tr.iteration();
    BOOST_TEST(m.updates >= 1); // the first minibatch sees ratio 1 exactly
    BOOST_TEST(m.skipped >= 1);
    BOOST_TEST(m.updates + m.skipped == 8);

    // A non-finite reward stops the run before any update.
    toy_run bad;
    auto nan_reward = [](const int*, int B, int, const int*, const int*) {
        return std::vector<float>(B, std::numeric_limits<float>::quiet_NaN());
    };
    ppo_trainer<toy_t> tn(bad.policy, bad.ref, bad.value, bad.head, nan_reward, bad.prompts,
                          toy_config());
    const std::vector<float> before(bad.policy.params().data(),
                                    bad.policy.params().data() + bad.policy.params().size());
    BOOST_CHECK_THROW(tn.iteration(), gptx::error);
    BOOST_TEST(std::equal(before.begin(), before.end(), bad.policy.params().data()));
    // A non-finite loss stops the run before the update that would apply it.
    toy_run inf;
    inf.value.params().data()[inf.value.params().view(p_wte).size + 3] =
        std::numeric_limits<float>::infinity(); // values, returns and advantages become NaN
    auto ti = inf.make(toy_config());
    BOOST_CHECK_THROW(ti.iteration(), gptx::error);
    BOOST_TEST(ti.policy_optimizer().step_count() == 0);
}

BOOST_AUTO_TEST_CASE(keep_trains_on_the_rollouts_with_the_largest_advantages) {
    // keep = rollouts is the default, to the last bit.
    toy_run all_run, same_run;
    ppo_config c = toy_config();
    auto all = all_run.make(c);
    c.keep = c.rollouts;
    auto same = same_run.make(c);
    BOOST_TEST(all.trained_rollouts().empty()); // no iteration yet
    for (int i = 0; i < 2; ++i) {
        BOOST_TEST(all.iteration().kept_advantage == 1.0);
        BOOST_TEST(same.iteration().kept_advantage == 1.0); // nothing dropped
    }
    BOOST_TEST(std::equal(all_run.policy.params().data(),
                          all_run.policy.params().data() + all_run.policy.num_parameters(),
                          same_run.policy.params().data()));
    BOOST_TEST(int(all.trained_rollouts().size()) == c.rollouts);

    // keep = 8 of 32: the updates use the eight whose largest |advantage| is largest.
    toy_run run;
    c.keep = 8;
    auto tr = run.make(c);
    for (int it = 0; it < 3; ++it) {
        const ppo_metrics m = tr.iteration();
        BOOST_TEST(m.updates + m.skipped == c.epochs * 1); // one minibatch of 8 per epoch
        const auto kept = tr.trained_rollouts();
        BOOST_REQUIRE(kept.size() == 8u);
        BOOST_TEST(std::is_sorted(kept.begin(), kept.end()));
        std::vector<double> key;
        double sum_all = 0, sum_kept = 0;
        for (const auto& s : tr.rollouts()) {
            double k = 0, a = 0;
            for (int j = 0; j < s.actions; ++j) {
                k = std::max(k, std::abs(double(tr.advantages()[s.offset + j])));
                a += std::abs(double(tr.advantages()[s.offset + j]));
            }
            key.push_back(k);
            sum_all += a;
            if (std::binary_search(kept.begin(), kept.end(), int(key.size()) - 1))
                sum_kept += a;
        }
        double least_kept = 1e300, most_dropped = 0;
        for (int i = 0; i < c.rollouts; ++i) {
            if (std::binary_search(kept.begin(), kept.end(), i))
                least_kept = std::min(least_kept, key[i]);
            else
                most_dropped = std::max(most_dropped, key[i]);
        }
        BOOST_TEST(least_kept >= most_dropped);
        BOOST_TEST(m.kept_advantage == sum_kept / sum_all, boost::test_tools::tolerance(1e-12));
        BOOST_TEST(m.kept_advantage < 1.0); // these rollouts' dropped ones have advantages too
    }
}

BOOST_AUTO_TEST_CASE(bad_configurations_are_clear_errors) {
    toy_run run;
    ppo_config cfg = toy_config();
    cfg.end_of_text = -1;
    BOOST_CHECK_THROW(run.make(cfg), gptx::error);
    cfg = toy_config();
    run.prompts.push_back(std::vector<int>(15, 1)); // no room for a response in a context of 16
    BOOST_CHECK_THROW(run.make(cfg), gptx::error);
    run.prompts.pop_back();
    cfg.keep = cfg.rollouts + 1; // more than it samples
    BOOST_CHECK_THROW(run.make(cfg), gptx::error);
    cfg.keep = -1;
    BOOST_CHECK_THROW(run.make(cfg), gptx::error);
    cfg.keep = 0;
    cfg.ptx_coef = 1.0;
    run.ptx.clear();
    BOOST_CHECK_THROW(run.make(cfg), gptx::error);
}

BOOST_AUTO_TEST_SUITE_END()
