// Tests for gptx/train/dpo.hpp: the loss against a hand-computed value (K = 2 and K = 3), its
// gradient against central differences in double precision, where responses start after
// truncation, the reference cache, and a behaviour test: DPO on the generic trainer learns the
// preferred responses.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <gptx/gptx.hpp>
#include <gptx/train/dpo.hpp>

#include "support/gradcheck.hpp"
#include "support/shapes.hpp"

using namespace gptx;

namespace {
using test::shapes::grad_pre;
using dmodel = transformer<grad_pre, double>;

// log pi(tokens[s..e] | tokens[..t-1]) of one row, straight from the full logits.
double row_logprob(dmodel& m, const std::vector<int>& tokens, int Tn, int row, int s, int e) {
    const double* h = m.forward(tokens.data(), int(tokens.size()) / Tn, Tn);
    lm_head<dmodel> head;
    const int V = m.vocab();
    std::vector<double> z(V);
    double sum = 0;
    for (int t = s; t <= e; ++t) {
        head.logits(m, h + std::size_t(row * Tn + t - 1) * grad_pre.width, z.data(), 1);
        const double mx = *std::max_element(z.begin(), z.end());
        double se = 0;
        for (double v : z)
            se += std::exp(v - mx);
        sum += z[tokens[std::size_t(row * Tn + t)]] - mx - std::log(se);
    }
    return sum;
}

double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x))); }

// Three responses to one prompt, rows of T = 7: prefix [8, 1, 2], responses of different lengths
// ending with end-of-text 8, padded with 8.
struct three_rows {
    int Tn = 7;
    std::vector<int> tokens{8, 1, 2, 3, 4, 8, 8, //
                            8, 1, 2, 5, 8, 8, 8, //
                            8, 1, 2, 6, 7, 3, 8};
    std::vector<int> starts{3, 3, 3}, ends{5, 4, 6};
};
} // namespace

BOOST_AUTO_TEST_SUITE(dpo)

BOOST_AUTO_TEST_CASE(loss_equals_a_hand_computed_value) {
    static_assert(objective<dpo_objective<dmodel>, dmodel>);
    dmodel m({9, 8});
    m.init(3);
    three_rows d;
    double pi[3];
    for (int k = 0; k < 3; ++k)
        pi[k] = row_logprob(m, d.tokens, d.Tn, k, d.starts[k], d.ends[k]);
    const double beta = 0.3, ref[3] = {-6.0, -3.5, -8.25};
    double r[3];
    for (int k = 0; k < 3; ++k)
        r[k] = beta * (pi[k] - ref[k]);

    // K = 2: the first two rows. -log sigmoid(beta ((pi_w - ref_w) - (pi_l - ref_l))).
    dpo_objective<dmodel> obj(beta, 2);
    const int two[] = {2}, three[] = {3};
    dpo_batch b{{d.tokens.data(), d.ends.data(), two, 1, d.Tn, d.starts.data()}, ref};
    const double l2 = obj.evaluate(m, b);
    BOOST_TEST(l2 == softplus(-(r[0] - r[1])), boost::test_tools::tolerance(1e-12));
    BOOST_TEST(obj.stats().pairs == 1u);
    BOOST_TEST(obj.stats().chosen_reward == r[0], boost::test_tools::tolerance(1e-12));
    BOOST_TEST(obj.stats().rejected_reward == r[1], boost::test_tools::tolerance(1e-12));
    BOOST_TEST(obj.stats().margin == r[0] - r[1], boost::test_tools::tolerance(1e-12));
    BOOST_TEST(obj.stats().accuracy == (r[0] > r[1] ? 1.0 : 0.0));
    BOOST_TEST(obj.response_logprobs()[1] == pi[1], boost::test_tools::tolerance(1e-12));

    // K = 3: the mean over its three pairs.
    b.rows.group_sizes = three;
    const double l3 = obj.evaluate(m, b);
    const double want =
        (softplus(-(r[0] - r[1])) + softplus(-(r[0] - r[2])) + softplus(-(r[1] - r[2]))) / 3;
    BOOST_TEST(l3 == want, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(obj.stats().pairs == 3u);

    // The reference itself as policy: every implicit reward is 0 and the loss is log 2.
    const double self[3] = {pi[0], pi[1], pi[2]};
    b.ref_logp = self;
    BOOST_TEST(obj.evaluate(m, b) == std::log(2.0), boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(gradients_match_central_differences) {
    dmodel m({9, 8});
    m.init(4);
    rng r(9);
    for (std::size_t i = 0; i < m.params().size(); ++i)
        m.params().data()[i] += 0.05 * r.normal();
    three_rows d;
    const double ref[3] = {-5.0, -4.0, -9.0};
    const int three[] = {3};
    dpo_objective<dmodel> obj(0.5, 3); // chunks of 3 token rows: several chunks
    const dpo_batch b{{d.tokens.data(), d.ends.data(), three, 1, d.Tn, d.starts.data()}, ref};
    auto loss = [&] { return obj.evaluate(m, b); };
    m.zero_grad();
    const double l = obj.forward_backward(m, b, 1.0);
    BOOST_TEST(l == loss(), boost::test_tools::tolerance(1e-12));
    test::check_gradient("dpo wte", m.param(p_wte), m.params().view(p_wte).size,
                         m.grads().view(p_wte).data, loss, 3);
    test::check_gradient("dpo qkvw", m.param(p_qkvw), m.params().view(p_qkvw).size,
                         m.grads().view(p_qkvw).data, loss, 7);
    test::check_gradient("dpo fcprojw", m.param(p_fcprojw), m.params().view(p_fcprojw).size,
                         m.grads().view(p_fcprojw).data, loss, 11);
    test::check_gradient("dpo wpe", m.param(p_wpe), m.params().view(p_wpe).size,
                         m.grads().view(p_wpe).data, loss, 5);
    // Prefix tokens carry no gradient: only positions 2.. (which predict the responses) and the
    // rows after them see any; wpe of position 6 is read only by the third row's last token.
    BOOST_TEST(global_norm(m.grads()) > 0.0);
}

BOOST_AUTO_TEST_CASE(responses_start_after_the_prefix_even_when_truncated) {
    tokenizer tok = make_tokenizer("char", "abcdefgh");
    const int eot = tok.add_special_token("<|endoftext|>");
    const std::vector<comparison> cs{{"ab", {"cde", "f"}, 1}, {"abcdefg", {"hhhh", "h"}, 2}};
    const tokenized_comparisons t = tokenize_comparisons(cs, tok, eot, 8, "test");
    // [eot a b] c d e [eot]: the response starts at 3.
    BOOST_TEST(t.groups[0].starts == (std::vector<int>{3, 3}), boost::test_tools::per_element());
    // [eot a b c d e f g] h h h h [eot] is 13 long: 5 prompt tokens go, the response starts at 3.
    BOOST_TEST(t.groups[1].responses[0].size() == 8u);
    BOOST_TEST(t.groups[1].starts[0] == 3);
    BOOST_TEST(t.groups[1].responses[0][3] == t.groups[1].responses[1][6]); // an 'h'
    BOOST_TEST(t.groups[1].starts[1] == 6);                                 // 10 long: 2 go
}

BOOST_AUTO_TEST_CASE(dpo_on_the_generic_trainer_learns_the_preferences) {
    using model_t = transformer<grad_pre>;
    const tokenizer tok = make_tokenizer("char", "abcdefghijklmnopqrstuvwxyz");
    tokenizer t2 = tok;
    const int eot = t2.add_special_token("<|endoftext|>");
    // The preferred response repeats the prompt's last letter; the rejected one does not.
    std::vector<comparison> cs;
    const std::string letters = "abcdefghijklmnop";
    for (int i = 0; i < 12; ++i) {
        const std::string p = letters.substr(std::size_t(i), 3);
        cs.push_back(
            {p, {std::string(2, p.back()), std::string(2, letters[std::size_t(i + 4)])}, i + 1});
    }
    const tokenized_comparisons data = tokenize_comparisons(cs, t2, eot, 16, "test");
    model_t policy({t2.vocab_size(), 16}), reference({t2.vocab_size(), 16});
    policy.init(1);
    reference.init(1);
    const auto ref = reference_logprobs(reference, data, 4, eot);
    dpo_batcher batches(data, ref, 4, eot, 7);
    dpo_objective<model_t> obj(0.5);
    const dpo_stats before = evaluate_dpo(policy, obj, batches, 4);
    BOOST_TEST(before.loss == std::log(2.0), boost::test_tools::tolerance(1e-5)); // policy == ref
    adamw<float> opt(policy.params(), {.lr = 3e-3f, .weight_decay = 0.0f});
    trainer tr(policy, obj, opt, {.lr = [](int) { return 3e-3f; }});
    for (std::int64_t k = 0; k < 60; ++k)
        tr.step([&](int) { return batches.batch(k); });
    const dpo_stats after = evaluate_dpo(policy, obj, batches, 4);
    BOOST_TEST_MESSAGE("dpo: loss " << before.loss << " -> " << after.loss << ", accuracy "
                                    << after.accuracy << ", margin " << after.margin);
    BOOST_TEST(after.loss < 0.2);
    BOOST_TEST(after.accuracy == 1.0);
    BOOST_TEST(after.margin > 2.0);
    BOOST_TEST(after.chosen_reward > 0.0); // the preferred responses became more likely
}

BOOST_AUTO_TEST_CASE(bad_batches_are_clear_errors) {
    dmodel m({9, 8});
    m.init(1);
    three_rows d;
    const int two[] = {2};
    dpo_objective<dmodel> obj;
    const dpo_batch no_ref{{d.tokens.data(), d.ends.data(), two, 1, d.Tn, d.starts.data()},
                           nullptr};
    BOOST_CHECK_EXCEPTION(obj.evaluate(m, no_ref), gptx::error, [](const gptx::error& e) {
        return std::string(e.what()).find("no reference log-probabilities") != std::string::npos;
    });
    const double ref[2] = {0, 0};
    const dpo_batch no_starts{{d.tokens.data(), d.ends.data(), two, 1, d.Tn, nullptr}, ref};
    BOOST_CHECK_EXCEPTION(obj.evaluate(m, no_starts), gptx::error, [](const gptx::error& e) {
        return std::string(e.what()).find("where responses start") != std::string::npos;
    });
    BOOST_CHECK_THROW(dpo_objective<dmodel>(0.0), gptx::error);
}

BOOST_AUTO_TEST_SUITE_END()
