// Tests for train/reward_training.hpp: train_reward_model learns a preference from ranked
// comparisons, reports the held-out accuracy it reached, and writes its metrics;
// continue_reward_model (iterated RLHF) adds new comparisons without forgetting the old.
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gptx/nn/copy_params.hpp>
#include <gptx/train/reward_training.hpp>

using namespace gptx;

namespace {

// Pairs of one prompt: the better response holds three of `better`, the other three of `worse`
// (-1: none); other tokens are drawn from 3..V-1.
tokenized_comparisons prefer(int better, int worse, int prompts, std::uint64_t seed, int eot,
                             int V) {
    rng r(seed);
    tokenized_comparisons d;
    for (int p = 0; p < prompts; ++p) {
        const std::vector<int> prompt{eot, 3 + int(r.below(std::uint64_t(V - 3)))};
        ranked_sequences g;
        for (int token : {better, worse}) { // best first
            std::vector<int> resp(5);
            for (int& t : resp)
                t = 3 + int(r.below(std::uint64_t(V - 3)));
            for (int k = 0; k < 3 && token >= 0; ++k)
                resp[std::size_t(k)] = token;
            g.responses.push_back(
                reward_sequence(prompt, resp, eot, 16, nullptr, &g.starts.emplace_back()));
        }
        d.groups.push_back(std::move(g));
    }
    return d;
}

// The better response holds three 1s, the other none.
tokenized_comparisons ones_are_better(int prompts, std::uint64_t seed, int eot, int V) {
    return prefer(1, -1, prompts, seed, eot, V);
}

} // namespace

BOOST_AUTO_TEST_SUITE(reward_training)

BOOST_AUTO_TEST_CASE(learns_a_preference_and_returns_its_last_evaluation) {
    constexpr shape sh{16, 2, 1, norm::pre};
    const int V = 6, eot = 0;
    const auto train = ones_are_better(160, 1, eot, V), val = ones_are_better(40, 2, eot, V);
    reward_model<sh> rm({V, 16});
    rm.init(3);
    adamw<float> opt(
        rm.trunk().params(),
        {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.0f});
    const auto metrics = std::filesystem::temp_directory_path() /
                         ("gptx_reward_training_" + std::to_string(::getpid()) + ".jsonl");
    run_options ro;
    ro.metrics = metrics;
    ro.quiet = true;
    const reward_eval e =
        train_reward_model(rm, opt, train, val, eot, {.epochs = 3, .batch = 8, .lr = 3e-3f}, ro);
    BOOST_TEST_MESSAGE("held-out accuracy " << e.accuracy << " over " << e.pairs << " pairs");
    BOOST_TEST(e.pairs == 40u);
    BOOST_TEST(e.accuracy >= 0.9);
    BOOST_TEST(opt.step_count() == 60); // 3 epochs of 160 prompts, 8 per step
    std::ifstream in(metrics);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    BOOST_TEST(all.find("\"val_accuracy\"") != std::string::npos);
    std::filesystem::remove(metrics);
}

BOOST_AUTO_TEST_CASE(copy_params_copies_a_trunk_and_refuses_other_sizes) {
    constexpr shape sh{16, 2, 1, norm::pre};
    transformer<sh> a({6, 16}), b({6, 16}), c({7, 16});
    a.init(1);
    b.init(2);
    copy_params(b, a);
    BOOST_TEST(
        std::equal(a.params().data(), a.params().data() + a.num_parameters(), b.params().data()));
    BOOST_CHECK_THROW(copy_params(c, a), gptx::error);
    // A head too (PPO's value head starts as the RM's).
    linear_head<float> h(16, 1), g(16, 1), wide(16, 2);
    h.init(3, 0.5f);
    copy_params(g, h);
    BOOST_TEST(
        std::equal(h.params().data(), h.params().data() + h.params().size(), g.params().data()));
    BOOST_CHECK_THROW(copy_params(wide, h), gptx::error);
}

// Iterated RLHF's second round: the RM learns the new comparisons, keeps what the first round
// taught it (a replacing step would forget it), and its bias is re-centred on the demonstrations;
// read at the end-of-text or mean-pooled (which needs the demonstrations' starts).
namespace {
void continue_without_forgetting(reward_pooling pool) {
    constexpr shape sh{16, 2, 1, norm::pre};
    const int V = 8, eot = 0;
    const auto first = ones_are_better(160, 1, eot, V), first_val = ones_are_better(40, 2, eot, V);
    // The new comparisons rank 2s above 1s: trained on them alone, the RM would push the 1s down
    // and lose the first preference; over all it has seen, it learns 2 > 1 > the rest.
    const auto fresh = prefer(2, 1, 160, 3, eot, V), fresh_val = prefer(2, 1, 40, 4, eot, V);
    reward_model<sh> rm({V, 16}, pool);
    rm.init(3);
    adamw<float> opt(
        rm.trunk().params(),
        {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.0f});
    run_options ro;
    ro.quiet = true;
    const reward_training_config cfg{.epochs = 3, .batch = 8, .lr = 3e-3f};
    train_reward_model(rm, opt, first, first_val, eot, cfg, ro);
    reward_objective obj(rm);
    auto accuracy = [&](const tokenized_comparisons& d) {
        return evaluate_rewards(rm.trunk(), obj, d, 8, eot).accuracy;
    };
    const double fresh_before = accuracy(fresh_val);
    BOOST_TEST_REQUIRE(accuracy(first_val) >= 0.9);

    std::vector<std::vector<int>> demos; // the preferred responses of both kinds
    std::vector<int> starts;
    for (std::size_t i = 0; i < 20; ++i)
        for (const auto* d : {&first, &fresh}) {
            demos.push_back(d->groups[i].responses[0]);
            starts.push_back(d->groups[i].starts[0]);
        }
    tokenized_comparisons seen = first;
    const reward_eval e =
        continue_reward_model(rm, seen, fresh, fresh_val, demos, starts, eot, cfg, ro);
    BOOST_TEST_MESSAGE("new preference: " << fresh_before << " before, " << e.accuracy
                                          << " after; old one " << accuracy(first_val));
    BOOST_TEST(seen.groups.size() == first.groups.size() + fresh.groups.size());
    BOOST_TEST(fresh_before <= 0.75);
    BOOST_TEST(e.accuracy >= 0.9);
    BOOST_TEST(accuracy(fresh_val) == e.accuracy);
    BOOST_TEST(accuracy(first_val) >= 0.9);
    double mean = 0;
    for (float r : rm.score_sequences(demos, eot, 16, starts))
        mean += double(r);
    BOOST_TEST(std::abs(mean / double(demos.size())) < 1e-4);
    BOOST_CHECK_THROW(continue_reward_model(rm, seen, tokenized_comparisons{}, fresh_val, demos,
                                            starts, eot, cfg, ro),
                      gptx::error);
}
} // namespace

BOOST_AUTO_TEST_CASE(continue_reward_model_adds_comparisons_without_forgetting) {
    continue_without_forgetting(reward_pooling::last);
}

BOOST_AUTO_TEST_CASE(continue_reward_model_adds_comparisons_without_forgetting_mean_pooled) {
    continue_without_forgetting(reward_pooling::mean);
}

BOOST_AUTO_TEST_SUITE_END()
