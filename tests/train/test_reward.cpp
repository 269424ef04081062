// Tests for the reward model (nn/reward_model.hpp), its objective (train/reward_objective.hpp) and
// comparison data (data/comparisons.hpp): the K-wise loss and its gradients through head and
// trunk against central differences (read at the end-of-text and mean-pooled over the response),
// the reward position, accuracy, readers' errors, batching, the bias normalisation, and a small
// model learning a preference.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <gptx/data/comparisons.hpp>
#include <gptx/nn/copy_params.hpp>
#include <gptx/nn/reward_model.hpp>
#include <gptx/train/ppo_trainer.hpp>
#include <gptx/train/reward_objective.hpp>
#include <gptx/train/trainer.hpp>

#include "support/errors.hpp"
#include "support/gradcheck.hpp"
#include "support/shapes.hpp"

using namespace gptx;

namespace {

constexpr shape tiny_rm = test::shapes::grad_pre;
constexpr shape tiny_rm_post = test::shapes::grad_post;

using test::error_of;

void expect_error(const std::string& jsonl, const std::string& needle) {
    const std::string msg = error_of([&] { parse_comparisons(jsonl, "data.jsonl"); });
    BOOST_TEST(msg.find(needle) != std::string::npos, "expected '" << needle << "' in: " << msg);
}

// Two prompts (K = 3 and K = 2) of different lengths, right-padded with junk after each row's
// end-of-text (token 0); rows of a prompt are best first.
struct small_batch {
    static constexpr int T = 7;
    std::vector<int> tokens{3, 4, 5, 0, 1, 2, 6, // prompt 0, best
                            3, 4, 6, 6, 0, 5, 5, //
                            3, 4, 1, 2, 2, 7, 0, // prompt 0, worst
                            8, 1, 0, 4, 4, 4, 4, // prompt 1, better
                            8, 1, 5, 5, 0, 2, 3};
    std::vector<int> positions{3, 4, 6, 2, 4};
    std::vector<int> starts{1, 2, 3, 1, 2}; // where each response begins (mean pooling)
    std::vector<int> sizes{3, 2};
    reward_batch batch() const {
        return {tokens.data(), positions.data(), sizes.data(), 2, T, starts.data()};
    }
};

template <shape S> void check_kwise_gradients(reward_pooling pool) {
    using model_t = transformer<S, double>;
    reward_model<S, double> rm({9, 8}, pool);
    rm.init(2);
    rng r(3);
    for (std::size_t i = 0; i < rm.head().params().size(); ++i)
        rm.head().params().data()[i] += 0.3 * r.normal();
    reward_objective obj(rm);
    static_assert(objective<decltype(obj), model_t>);
    static_assert(std::is_same_v<decltype(obj), reward_objective<model_t>>);
    model_t& m = rm.trunk();
    small_batch data;
    const reward_batch b = data.batch();
    auto loss = [&] { return obj.evaluate(m, b); };
    m.zero_grad();
    obj.head_grads().zero();
    const double scale = 0.7; // grad_scale multiplies the gradients, not the loss
    const double l0 = obj.forward_backward(m, b, scale);
    BOOST_TEST(std::abs(l0 - loss()) < 1e-12);
    for (std::size_t i = 0; i < m.grads().size(); ++i)
        m.grads().data()[i] /= scale;
    for (std::size_t i = 0; i < obj.head_grads().size(); ++i)
        obj.head_grads().data()[i] /= scale;
    linear_head<double>& h = rm.head();
    test::check_gradient("head weight", h.weight(), 16, h.grads().view(0).data, loss);
    test::check_gradient("head bias", h.bias(), 1, h.grads().view(1).data, loss);
    for (param_id id : {p_wte, p_wpe, p_qkvw, p_attprojw, p_fcw, p_fcprojw, p_ln1w, p_ln2w}) {
        const auto& v = m.params().view(id);
        test::check_gradient(std::string("trunk ") + param_names[id], v.data, v.size,
                             m.grads().view(id).data, loss, v.size > 100 ? 7 : 1);
    }
}

// Each prompt: random prompt tokens, K responses of one length with K-1-i ones in response i
// (best first); other tokens from 2..V-1. The reward model must learn "more 1s is better".
tokenized_comparisons preference_data(int prompts, std::uint64_t seed, int eot, int V) {
    rng r(seed);
    tokenized_comparisons d;
    for (int p = 0; p < prompts; ++p) {
        const int K = 2 + int(r.below(3)), L = 4 + int(r.below(4));
        std::vector<int> prompt(2 + r.below(3));
        for (int& t : prompt)
            t = 2 + int(r.below(std::uint64_t(V - 2)));
        prompt.insert(prompt.begin(), eot); // the prefix: end-of-text, prompt
        ranked_sequences g;
        for (int i = 0; i < K; ++i) {
            std::vector<int> resp(static_cast<std::size_t>(L));
            for (int& t : resp)
                t = 2 + int(r.below(std::uint64_t(V - 2)));
            for (int k = 0; k < K - 1 - i;) { // K-1-i distinct positions hold a 1
                const std::size_t at = r.below(std::size_t(L));
                if (resp[at] != 1)
                    resp[at] = 1, ++k;
            }
            g.responses.push_back(
                reward_sequence(prompt, resp, eot, 64, nullptr, &g.starts.emplace_back()));
        }
        d.groups.push_back(std::move(g));
    }
    return d;
}

} // namespace

BOOST_AUTO_TEST_SUITE(reward)

BOOST_AUTO_TEST_CASE(loss_matches_the_formula_and_its_derivative) {
    // K = 2: -log sigmoid(r_w - r_l); K = 3: the mean over its 3 pairs; averaged over prompts.
    const std::vector<double> r{1.5, -0.25, 0.3, 2.0, 0.5};
    const std::vector<int> sizes{2, 3};
    auto nls = [](double x) { return std::log1p(std::exp(-x)); };
    const double expected =
        0.5 * (nls(1.75) + (nls(0.3 - 2.0) + nls(0.3 - 0.5) + nls(2.0 - 0.5)) / 3);
    std::vector<double> dr(5, 99.0);
    const double l = reward_loss(dr.data(), r.data(), sizes.data(), 2);
    BOOST_TEST(std::abs(l - expected) < 1e-14);
    std::vector<double> x = r;
    auto f = [&] { return reward_loss<double>(nullptr, x.data(), sizes.data(), 2); };
    test::check_gradient("d loss / d rewards", x.data(), 5, dr.data(), f);
    // Stable for huge margins either way.
    const std::vector<double> big{800.0, -800.0};
    BOOST_TEST(reward_loss<double>(nullptr, big.data(), sizes.data(), 1) == 0.0);
    const std::vector<double> wrong{-800.0, 800.0};
    BOOST_TEST(std::abs(reward_loss<double>(nullptr, wrong.data(), sizes.data(), 1) - 1600.0) <
               1e-9);
    BOOST_TEST(error_of([&] {
                   const int one = 1;
                   reward_loss<double>(nullptr, r.data(), &one, 1);
               }).find("need at least 2") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(kwise_loss_gradients_through_head_and_trunk) {
    check_kwise_gradients<tiny_rm>(reward_pooling::last);
    check_kwise_gradients<tiny_rm_post>(reward_pooling::last);
}

// d r / d h_p = W / n over the n positions from the response's start to its end-of-text.
BOOST_AUTO_TEST_CASE(mean_pooled_loss_gradients_through_head_and_trunk) {
    check_kwise_gradients<tiny_rm>(reward_pooling::mean);
    check_kwise_gradients<tiny_rm_post>(reward_pooling::mean);
}

BOOST_AUTO_TEST_CASE(mean_pooling_averages_the_head_over_the_response) {
    small_batch a;
    reward_model<tiny_rm, double> last({9, 8}), mean({9, 8}, reward_pooling::mean);
    last.init(4);
    copy_params(mean.trunk(), last.trunk());
    copy_params(mean.head(), last.head());
    BOOST_TEST((mean.pooling() == reward_pooling::mean));
    const double* h = mean.trunk().forward(a.tokens.data(), 5, small_batch::T);
    const std::vector<double> hv(h, h + 5 * small_batch::T * tiny_rm.width);
    const double* w = mean.head().weight();
    const double b = mean.head().bias()[0];
    const auto at = [&](int row, int p) { // W · h + b at position p of row `row`
        double s = b;
        for (int c = 0; c < tiny_rm.width; ++c)
            s += w[c] * hv[(std::size_t(row) * small_batch::T + std::size_t(p)) * tiny_rm.width +
                           std::size_t(c)];
        return s;
    };
    const auto rm =
        mean.score(a.tokens.data(), 5, small_batch::T, a.positions.data(), a.starts.data());
    const auto rl = last.score(a.tokens.data(), 5, small_batch::T, a.positions.data());
    for (int n = 0; n < 5; ++n) {
        double s = 0;
        for (int p = a.starts[n]; p <= a.positions[n]; ++p)
            s += at(n, p);
        BOOST_TEST(std::abs(rm[n] - s / (a.positions[n] - a.starts[n] + 1)) < 1e-12);
        BOOST_TEST(std::abs(rl[n] - at(n, a.positions[n])) < 1e-12);
    }
    // The objective reads the same; padding after the end-of-text changes nothing.
    reward_objective obj(mean);
    small_batch padded = a;
    for (std::size_t i = 0; i < padded.tokens.size(); ++i)
        if (int(i % small_batch::T) > padded.positions[i / small_batch::T])
            padded.tokens[i] = 7;
    obj.evaluate(mean.trunk(), padded.batch());
    for (int n = 0; n < 5; ++n)
        BOOST_TEST(std::abs(obj.rewards()[n] - rm[n]) < 1e-12);
    // score_sequences takes the starts beside the sequences.
    std::vector<std::vector<int>> seqs;
    for (int n = 0; n < 5; ++n)
        seqs.emplace_back(a.tokens.begin() + n * small_batch::T,
                          a.tokens.begin() + n * small_batch::T + a.positions[n] + 1);
    const auto rs = mean.score_sequences(seqs, 0, 2, a.starts);
    for (int n = 0; n < 5; ++n)
        BOOST_TEST(std::abs(rs[n] - rm[n]) < 1e-12);
    // Without starts, or with a start after the end-of-text, mean pooling is an error.
    BOOST_TEST(error_of([&] {
                   mean.score(a.tokens.data(), 5, small_batch::T, a.positions.data());
               }).find("mean pooling needs where each response starts") != std::string::npos);
    BOOST_TEST(error_of([&] {
                   reward_batch nb = a.batch();
                   nb.starts = nullptr;
                   obj.evaluate(mean.trunk(), nb);
               }).find("needs the comparisons' response starts") != std::string::npos);
    std::vector<int> late = a.starts;
    late[2] = 7;
    BOOST_TEST(error_of([&] {
                   mean.score(a.tokens.data(), 5, small_batch::T, a.positions.data(), late.data());
               }).find("row 2's response starts at 7, after its end-of-text at 6") !=
               std::string::npos);
    late[2] = -1;
    BOOST_TEST(error_of([&] {
                   mean.score(a.tokens.data(), 5, small_batch::T, a.positions.data(), late.data());
               }).find("row 2's response start -1 is negative") != std::string::npos);
    BOOST_TEST((parse_reward_pooling("mean") == reward_pooling::mean));
    BOOST_TEST(error_of([] { parse_reward_pooling("max"); }).find("last or mean, got 'max'") !=
               std::string::npos);
}

BOOST_AUTO_TEST_CASE(padding_after_the_end_of_text_changes_nothing) {
    reward_model<tiny_rm, double> rm({9, 8});
    rm.init(5);
    reward_objective obj(rm);
    small_batch a, b;
    for (std::size_t i = 0; i < b.tokens.size(); ++i)
        if (int(i % small_batch::T) > b.positions[i / small_batch::T])
            b.tokens[i] = 7;
    obj.evaluate(rm.trunk(), a.batch());
    const std::vector<double> ra = obj.rewards();
    obj.evaluate(rm.trunk(), b.batch());
    BOOST_TEST(ra == obj.rewards(), boost::test_tools::per_element());
    // score() reads the same position as the objective.
    const std::vector<double> s = rm.score(a.tokens.data(), 5, small_batch::T, a.positions.data());
    for (int i = 0; i < 5; ++i)
        BOOST_TEST(std::abs(s[i] - ra[i]) < 1e-12);
}

namespace {

// After normalize_reward_bias and standardize_reward_scale the demonstrations score mean 0 and
// standard deviation 1, and every other reward moved by the same shift and positive scale.
void check_standardized(reward_pooling pool, std::uint64_t seed) {
    reward_model<tiny_rm, double> rm({9, 8}, pool);
    rm.init(seed);
    const std::vector<std::vector<int>> demos{
        {0, 3, 4, 5, 0}, {0, 3, 6, 0}, {0, 8, 1, 2, 2, 0}, {0, 2, 7, 7, 0}, {0, 5, 5, 1, 0}};
    const std::vector<std::vector<int>> others{{0, 1, 2, 0}, {0, 4, 4, 4, 4, 0}, {0, 6, 0}};
    // Where each response begins (mean pooling averages the head from there).
    const std::vector<int> demo_starts{2, 1, 3, 1, 2}, other_starts{1, 2, 1};
    const std::vector<double> before = rm.score_sequences(others, 0, 16, other_starts);
    const double offset = normalize_reward_bias(rm, demos, 0, 16, demo_starts);
    const double sd = standardize_reward_scale(rm, demos, 0, 16, demo_starts);
    BOOST_TEST(sd > 0.0);
    const std::vector<double> d = rm.score_sequences(demos, 0, 16, demo_starts);
    double mean = 0, var = 0;
    for (double v : d)
        mean += v / double(d.size());
    for (double v : d)
        var += (v - mean) * (v - mean) / double(d.size());
    BOOST_TEST(std::abs(mean) < 1e-12);
    BOOST_TEST(std::sqrt(var) == 1.0, boost::test_tools::tolerance(1e-12));
    const std::vector<double> after = rm.score_sequences(others, 0, 16, other_starts);
    for (std::size_t i = 0; i < others.size(); ++i)
        BOOST_TEST(after[i] == (before[i] - offset) / sd, boost::test_tools::tolerance(1e-12));
    // A model that scores every demonstration alike has no scale.
    const std::vector<std::vector<int>> same{{0, 3, 0}, {0, 3, 0}};
    BOOST_CHECK_THROW(standardize_reward_scale(rm, same, 0, 16, std::vector<int>{1, 1}),
                      gptx::error);
}

} // namespace

BOOST_AUTO_TEST_CASE(standardized_rewards_have_unit_spread_on_the_demonstrations_and_keep_order) {
    check_standardized(reward_pooling::last, 5);
    check_standardized(reward_pooling::mean, 6);
}

BOOST_AUTO_TEST_CASE(an_ensemble_scores_the_members_mean_less_the_penalty_times_their_spread) {
    const std::vector<std::vector<int>> seqs{
        {0, 3, 4, 5, 0}, {0, 3, 6, 0}, {0, 8, 1, 2, 2, 0}, {0, 2, 7, 7, 0}};
    const double penalty = 0.5;
    reward_ensemble<tiny_rm, double> ens(penalty);
    std::vector<std::vector<double>> by;
    for (int k = 0; k < 3; ++k) {
        auto& m = ens.add({9, 8}, reward_pooling::last);
        m.init(10 + std::uint64_t(k));
        by.push_back(m.score_sequences(seqs, 0));
    }
    BOOST_TEST(ens.size() == 3u);
    const std::vector<double> got = ens.score_sequences(seqs, 0);
    // The same through the reward function PPO reads (rows right-padded with end-of-text).
    const int Tn = 6;
    std::vector<int> rows(seqs.size() * Tn, 0), ends, starts;
    for (std::size_t i = 0; i < seqs.size(); ++i) {
        std::copy(seqs[i].begin(), seqs[i].end(), rows.begin() + std::ptrdiff_t(i * Tn));
        ends.push_back(int(seqs[i].size()) - 1);
        starts.push_back(1);
    }
    const std::vector<float> via =
        reward_of(ens)(rows.data(), int(seqs.size()), Tn, ends.data(), starts.data());
    double spread_seen = 0;
    for (std::size_t i = 0; i < seqs.size(); ++i) {
        const double mean = (by[0][i] + by[1][i] + by[2][i]) / 3;
        double var = 0;
        for (const auto& r : by)
            var += (r[i] - mean) * (r[i] - mean) / 3;
        BOOST_TEST(got[i] == mean - penalty * std::sqrt(var), boost::test_tools::tolerance(1e-12));
        BOOST_TEST(double(via[i]) == got[i], boost::test_tools::tolerance(1e-5));
        spread_seen = std::max(spread_seen, std::sqrt(var));
    }
    BOOST_TEST(spread_seen > 1e-3); // differently seeded members disagree: the penalty bites
    // One member is that member.
    reward_ensemble<tiny_rm, double> one;
    one.add({9, 8}, reward_pooling::last).init(10);
    const std::vector<double> single = one.score_sequences(seqs, 0);
    BOOST_TEST(single == by[0], boost::test_tools::per_element());
    BOOST_CHECK_THROW(reward_ensemble<tiny_rm>(-1.0), gptx::error);
    reward_ensemble<tiny_rm, double> none;
    BOOST_CHECK_THROW(none.score_sequences(seqs, 0), gptx::error);
}

BOOST_AUTO_TEST_CASE(reward_position_is_the_end_of_text_after_the_prompt) {
    const int eot = 0;
    // The prompt's own end-of-text (position 0) is not the reward position.
    const std::vector<int> seq{0, 5, 6, 7, 8, 0, 0, 0};
    BOOST_TEST(reward_position(seq, 3, eot) == 5);
    BOOST_TEST(reward_position(seq, 5, eot) == 5); // an empty response
    const std::vector<int> cut{0, 5, 6, 7, 8};
    BOOST_TEST(reward_position(cut, 3, eot) == -1);
    std::vector<int> tokens{0, 5, 6, 0, 0, /**/ 5, 5, 5, 5, 0};
    std::vector<int> plen{1, 2}, pos(2);
    reward_positions(pos.data(), tokens.data(), 2, 5, plen.data(), eot);
    BOOST_TEST(pos[0] == 3);
    BOOST_TEST(pos[1] == 4);
    // prefix, response, end-of-text; a long one keeps its first token and its last ones.
    bool truncated = true;
    BOOST_TEST(
        (reward_sequence({1, 2}, {3, 4}, 9, 8, &truncated) == std::vector<int>{1, 2, 3, 4, 9}));
    BOOST_TEST(!truncated);
    BOOST_TEST(
        (reward_sequence({1, 2, 3}, {4, 5}, 9, 4, &truncated) == std::vector<int>{1, 4, 5, 9}));
    BOOST_TEST(truncated);
    int start = 0; // where the response begins, after any truncation
    reward_sequence({1, 2}, {3, 4}, 9, 8, nullptr, &start);
    BOOST_TEST(start == 2);
    reward_sequence({1, 2, 3}, {4, 5}, 9, 4, nullptr, &start);
    BOOST_TEST(start == 1);
    reward_sequence({1, 2, 3}, {4, 5}, 9, 5, nullptr, &start); // {1, 3, 4, 5, 9}
    BOOST_TEST(start == 2);
    reward_model<tiny_rm, double> rm({9, 8});
    rm.init(1);
    std::vector<int> bad_pos{-1, 4};
    BOOST_TEST(error_of([&] {
                   rm.score(tokens.data(), 2, 5, bad_pos.data());
               }).find("has no reward position") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(pairwise_accuracy_counts_pairs_and_half_ties) {
    // Prompt 0 (K=3): r = 3, 1, 2 -> pairs (0,1) right, (0,2) right, (1,2) wrong.
    // Prompt 1 (K=2): a tie -> 1/2. Prompt 2 (K=2): right.
    const std::vector<float> r{3, 1, 2, 0.5f, 0.5f, 1, 0};
    const std::vector<int> sizes{3, 2, 2};
    const pair_counts c = pairwise_accuracy(r.data(), sizes.data(), 3);
    BOOST_TEST(c.pairs == 5u);
    BOOST_TEST(c.correct == 3.5);
    BOOST_TEST(c.accuracy() == 0.7);
}

// A scorer that reads each sequence's reward off its first token, and checks what it is given.
struct first_token_scorer {
    std::vector<float> score_sequences(std::span<const std::vector<int>> seqs, int eot, int,
                                       std::span<const int> starts) const {
        BOOST_TEST(starts.size() == seqs.size());
        std::vector<float> r;
        for (const auto& q : seqs) {
            BOOST_TEST(q.back() == eot);
            r.push_back(float(q[0]));
        }
        return r;
    }
};

BOOST_AUTO_TEST_CASE(pair_outcomes_follow_pairwise_accuracy_pair_by_pair) {
    // The rankings of pairwise_accuracy_counts_pairs_and_half_ties, as sequences.
    tokenized_comparisons d;
    d.groups.push_back({{{3, 0}, {1, 0}, {2, 0}}, {1, 1, 1}});
    d.groups.push_back({{{5, 0}, {5, 0}}, {1, 1}});
    d.groups.push_back({{{1, 0}, {0, 0}}, {1, 1}});
    first_token_scorer f;
    const std::vector<double> o = pair_outcomes(f, d, 0);
    BOOST_TEST(o == (std::vector<double>{1, 1, 0, 0.5, 1}), boost::test_tools::per_element());
    // Their mean is that test's accuracy.
    BOOST_TEST(std::accumulate(o.begin(), o.end(), 0.0) / double(o.size()) == 0.7,
               boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(shared_error_rate_is_one_for_the_same_errors_and_zero_for_disjoint_ones) {
    const std::vector<double> a{0, 1, 1, 1}, b{1, 0, 1, 1}, c{0, 1, 1, 0}, t{0.5, 1, 1, 1};
    BOOST_TEST(shared_error_rate(std::vector{a, a}) == 1.0);
    BOOST_TEST(shared_error_rate(std::vector{a, b}) == 0.0);
    // a's one error is c's too (1); of c's two, a shares one (1/2): the mean 3/4.
    BOOST_TEST(shared_error_rate(std::vector{a, c}) == 0.75);
    // A tie is half an error: a's error is t's by half (1/2), t's half error a's fully (1).
    BOOST_TEST(shared_error_rate(std::vector{a, t}) == 0.75);
    // Three scorers: the mean over the six ordered pairs, here (1 + 0 + 1 + 0 + 0 + 0) / 6.
    BOOST_TEST(shared_error_rate(std::vector{a, a, b}) == 1.0 / 3.0,
               boost::test_tools::tolerance(1e-12));
    BOOST_TEST(error_of([] {
                   shared_error_rate(std::vector<std::vector<double>>{{1}});
               }).find("needs two scorers") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(reads_pairwise_and_ranked_jsonl) {
    const std::string text =
        "{\"prompt\": \"Q1\", \"chosen\": \"good\", \"rejected\": \"bad\"}\n"
        "\n"
        "{\"prompt\": \"Q2\", \"responses\": [\"a\", \"b\", \"c\", \"d\"], \"id\": 7}\r\n"
        "{\"prompt\": \"\", \"chosen\": \"\", \"rejected\": \"x\"}";
    const auto cs = parse_comparisons(text, "x.jsonl");
    BOOST_TEST_REQUIRE(cs.size() == 3u);
    BOOST_TEST(cs[0].prompt == "Q1");
    BOOST_TEST((cs[0].responses == std::vector<std::string>{"good", "bad"}));
    BOOST_TEST(cs[1].line == 3);
    BOOST_TEST(cs[1].responses.size() == 4u);
    BOOST_TEST(cs[1].responses[3] == "d");
    BOOST_TEST(cs[2].responses[0].empty());
    BOOST_TEST(count_pairs(cs) == 1u + 6u + 1u);

    const tokenizer tok = char_tokenizer::from_corpus("Q12goodbadabcdx");
    const int eot = tok.vocab_size(); // an id past the text vocabulary (a model has vocab + 1)
    const tokenized_comparisons t = tokenize_comparisons(cs, tok, eot, 6, "x.jsonl");
    BOOST_TEST(t.groups.size() == 3u);
    BOOST_TEST(t.pairs() == 8u);
    std::vector<int> want = tok.encode("good");
    want.insert(want.begin(), eot);
    want.push_back(eot);
    BOOST_TEST(t.groups[0].responses[0] == want); // eot "Q1good" eot is 8 > 6: the prompt is cut
    BOOST_TEST(t.groups[2].responses[0] == std::vector<int>(2, eot)); // empty prompt and response
    BOOST_TEST(t.truncated == 2u);                                    // "Q1good" and "Q1bad"
    BOOST_TEST(error_of([&] {
                   tokenize_comparisons(cs, char_tokenizer::from_corpus("Q1"), eot, 64, "x.jsonl");
               }).find("x.jsonl:1: response 0 character 'g'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_lines_name_the_file_the_line_and_the_problem) {
    const std::string ok = "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n";
    expect_error(ok + "{\"prompt\": \"p\", \"chosen\": \"a\"", "data.jsonl:2: invalid JSON");
    // A number too large for a double is nlohmann's out_of_range, not a parse_error (fuzzing).
    expect_error(ok + "{\"prompt\": 1e999}", "data.jsonl:2: invalid JSON");
    expect_error(ok + "[1, 2]\n", "data.jsonl:2: expected a JSON object, got array");
    expect_error(ok + ok + "{\"chosen\": \"a\", \"rejected\": \"b\"}",
                 "data.jsonl:3: missing \"prompt\"");
    expect_error("{\"prompt\": 3, \"chosen\": \"a\", \"rejected\": \"b\"}",
                 "data.jsonl:1: \"prompt\" must be a string, got number");
    expect_error("{\"prompt\": \"p\", \"chosen\": \"a\"}", "data.jsonl:1: missing \"rejected\"");
    expect_error("{\"prompt\": \"p\", \"rejected\": \"a\"}", "data.jsonl:1: missing \"chosen\"");
    expect_error("{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": null}",
                 "data.jsonl:1: \"rejected\" must be a string, got null");
    expect_error("{\"prompt\": \"p\"}",
                 "data.jsonl:1: missing \"chosen\"/\"rejected\" or \"responses\"");
    expect_error("{\"prompt\": \"p\", \"responses\": \"a\"}",
                 "\"responses\" must be an array, got string");
    expect_error("{\"prompt\": \"p\", \"responses\": [\"a\"]}",
                 "data.jsonl:1: \"responses\" has 1 entries; need 2 to 9");
    expect_error("{\"prompt\": \"p\", \"responses\": "
                 "[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}",
                 "has 10 entries; need 2 to 9");
    expect_error("{\"prompt\": \"p\", \"responses\": [\"a\", 5]}",
                 "\"responses[1]\" must be a string");
    expect_error("{\"prompt\": \"p\", \"responses\": [\"a\", \"b\", \"a\"]}",
                 "responses 0 and 2 are identical");
    expect_error("{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"responses\": "
                 "[\"a\", \"b\"]}",
                 "has both");
    expect_error("\n  \n", "data.jsonl: no comparisons");
    BOOST_TEST(error_of([] {
                   read_comparisons("/nonexistent/c.jsonl");
               }).find("cannot open '/nonexistent/c.jsonl'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(batches_are_a_pure_function_of_the_step_and_cover_each_epoch) {
    const tokenized_comparisons d = preference_data(10, 1, 0, 6);
    reward_batcher a(d, 4, 0, 9), b(d, 4, 0, 9);
    // Steps 0..4 make two epochs of 10 prompts: every prompt exactly twice.
    std::multiset<int> seen;
    for (int k = 0; k < 5; ++k) {
        const reward_batch x = a.batch(k);
        BOOST_TEST(x.P == 4);
        // Identify prompts by their first row's tokens.
        for (int p = 0, row = 0; p < x.P; row += x.group_sizes[p++])
            for (std::size_t g = 0; g < d.groups.size(); ++g) {
                const auto& s = d.groups[g].responses[0];
                if (std::equal(s.begin(), s.end(), x.tokens + std::size_t(row) * x.T))
                    seen.insert(int(g));
            }
    }
    for (int g = 0; g < 10; ++g)
        BOOST_TEST(seen.count(g) == 2u);
    // Out of order (a resumed run) gives the same batch.
    const reward_batch x3 = b.batch(3);
    const std::vector<int> t3(x3.tokens, x3.tokens + std::size_t(x3.rows()) * x3.T);
    const reward_batch y3 = a.batch(3);
    BOOST_TEST(t3 == std::vector<int>(y3.tokens, y3.tokens + std::size_t(y3.rows()) * y3.T));
    BOOST_TEST(a.steps_for_epochs(2.0) == 5);
    // Padding is the end-of-text and positions are each row's last token.
    const reward_batch s = a.slice(0, 3);
    for (int n = 0; n < s.rows(); ++n)
        BOOST_TEST(s.tokens[std::size_t(n) * s.T + s.positions[n]] == 0);
}

namespace {
void learn_a_preference(reward_pooling pool) {
    constexpr shape sh{32, 4, 2, norm::pre};
    using model_t = transformer<sh>;
    const int V = 8, eot = 0;
    const tokenized_comparisons train = preference_data(400, 11, eot, V),
                                val = preference_data(100, 12, eot, V);
    reward_model<sh> rm({V, 64}, pool);
    rm.init(3);
    reward_objective obj(rm);
    adamw<float> opt(
        rm.trunk().params(),
        {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.0f});
    trainer tr(rm.trunk(), obj, opt,
               {.grad_accum = 1, .grad_clip = 1.0f, .lr = [](int) { return 3e-3f; }});
    reward_batcher batches(train, 8, eot, 5);
    const reward_eval before = evaluate_rewards<model_t>(rm.trunk(), obj, val, 16, eot);
    for (int i = 0; i < 150; ++i)
        tr.step([&](int) { return batches.batch(tr.step_count()); });
    const reward_eval after = evaluate_rewards<model_t>(rm.trunk(), obj, val, 16, eot);
    BOOST_TEST_MESSAGE("reward model: held-out accuracy "
                       << before.accuracy << " -> " << after.accuracy << " over " << after.pairs
                       << " pairs, loss " << before.loss << " -> " << after.loss);
    BOOST_TEST(after.accuracy >= 0.9);
    BOOST_TEST(after.loss < before.loss);
    BOOST_TEST(tr.head_optimizer().step_count() == 150);

    // The bias makes the demonstrations' rewards average 0; differences are unchanged.
    std::vector<std::vector<int>> demos;
    std::vector<int> starts;
    for (const auto& g : val.groups) {
        demos.push_back(g.responses[0]);
        starts.push_back(g.starts[0]);
    }
    const std::vector<float> r0 = rm.score_sequences(demos, eot, 16, starts);
    const double mean = normalize_reward_bias(rm, demos, eot, 16, starts);
    const std::vector<float> r1 = rm.score_sequences(demos, eot, 7, starts);
    double m1 = 0;
    for (std::size_t i = 0; i < r1.size(); ++i) {
        m1 += r1[i];
        BOOST_TEST(std::abs((r0[i] - r1[i]) - float(mean)) < 1e-4);
    }
    BOOST_TEST(std::abs(m1 / double(r1.size())) < 1e-5);
}
} // namespace

BOOST_AUTO_TEST_CASE(a_bootstrap_resample_draws_whole_groups_with_replacement) {
    // Group g's responses are {g, 1} and {g, 2}, so a drawn group names its source.
    tokenized_comparisons d;
    const int n = 2000;
    for (int g = 0; g < n; ++g)
        d.groups.push_back({{{g, 1}, {g, 2}}, {1, 1}});
    const tokenized_comparisons a = bootstrap_resample(d, 7), b = bootstrap_resample(d, 7),
                                c = bootstrap_resample(d, 8);
    BOOST_TEST(a.groups.size() == d.groups.size());
    std::multiset<int> drawn;
    for (const auto& g : a.groups) {
        const int src = g.responses[0][0];
        BOOST_REQUIRE(src >= 0 && src < n);
        BOOST_TEST(g.responses == d.groups[std::size_t(src)].responses); // kept whole
        BOOST_TEST(g.starts == d.groups[std::size_t(src)].starts);
        drawn.insert(src);
    }
    // With replacement: about 1 - 1/e of the groups appear, some more than once.
    const std::set<int> distinct(drawn.begin(), drawn.end());
    const double share = double(distinct.size()) / n;
    BOOST_TEST(share > 0.60);
    BOOST_TEST(share < 0.665);
    std::size_t repeated = 0;
    for (int g : distinct)
        repeated += drawn.count(g) > 1;
    BOOST_TEST(repeated > 0u);
    // A pure function of the seed.
    const auto sources = [](const tokenized_comparisons& x) {
        std::vector<int> v;
        for (const auto& g : x.groups)
            v.push_back(g.responses[0][0]);
        return v;
    };
    BOOST_TEST(sources(a) == sources(b));
    BOOST_TEST(sources(a) != sources(c));
}

BOOST_AUTO_TEST_CASE(learns_a_preference_to_90_percent_held_out) {
    learn_a_preference(reward_pooling::last);
}

BOOST_AUTO_TEST_CASE(learns_a_preference_to_90_percent_held_out_mean_pooled) {
    learn_a_preference(reward_pooling::mean);
}

BOOST_AUTO_TEST_SUITE_END()
