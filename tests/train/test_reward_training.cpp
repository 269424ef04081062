// Tests for train/reward_training.hpp: train_reward_model learns a preference from ranked
// comparisons, reports the held-out accuracy it reached, and writes its metrics.
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gptx/nn/copy_params.hpp>
#include <gptx/train/reward_training.hpp>

using namespace gptx;

namespace {

// Pairs of one prompt: the better response holds more 1s (other tokens from 2..V-1).
tokenized_comparisons ones_are_better(int prompts, std::uint64_t seed, int eot, int V) {
    rng r(seed);
    tokenized_comparisons d;
    for (int p = 0; p < prompts; ++p) {
        const std::vector<int> prompt{eot, 2 + int(r.below(std::uint64_t(V - 2)))};
        ranked_sequences g;
        for (int ones : {3, 0}) { // best first
            std::vector<int> resp(5);
            for (int& t : resp)
                t = 2 + int(r.below(std::uint64_t(V - 2)));
            for (int k = 0; k < ones; ++k)
                resp[std::size_t(k)] = 1;
            g.responses.push_back(reward_sequence(prompt, resp, eot, 16));
        }
        d.groups.push_back(std::move(g));
    }
    return d;
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

BOOST_AUTO_TEST_SUITE_END()
