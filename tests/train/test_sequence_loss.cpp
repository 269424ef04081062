// Tests for lm_sequence_loss in gptx/train/objective.hpp: the loss over a whole token sequence.
// (Not in test_trainer.cpp, which also builds against the single header.)
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include <gptx/gptx.hpp>

#include "support/shapes.hpp"

using namespace gptx;

namespace {
using test::shapes::tiny;
using seq_model_t = transformer<tiny>;
} // namespace

BOOST_AUTO_TEST_SUITE(sequence_loss)

// Every prediction of the sequence once: the same as scoring each window on its own, whatever
// the batch, with a shorter last window. Float sums in different orders: 1e-5 relative.
BOOST_AUTO_TEST_CASE(sequence_loss_scores_every_token_once) {
    seq_model_t m({32, 32});
    m.init(5);
    rng r(6);
    // Larger weights than GPT-2's init, so the context changes the predictions visibly.
    for (std::size_t i = 0; i < m.params().size(); ++i)
        m.params().data()[i] += 0.3f * r.normal();
    lm_objective<seq_model_t> obj;
    std::vector<int> tokens(200); // 199 predictions: 12 windows of 16 and one of 7
    for (auto& t : tokens)
        t = static_cast<int>(r.below(32));
    auto by_window = [&](std::size_t len, int T) {
        double sum = 0;
        for (std::size_t s = 0; s + 1 < len; s += T) {
            const int n = int(std::min<std::size_t>(T, len - 1 - s));
            sum += obj.evaluate(m, {tokens.data() + s, tokens.data() + s + 1, nullptr, 1, n}) * n;
        }
        return sum / double(len - 1);
    };
    const std::span<const int> all(tokens);
    const double ref = by_window(200, 16);
    for (int B : {1, 5, 12, 100})
        BOOST_TEST(lm_sequence_loss(obj, m, all, B, 16) == ref, boost::test_tools::tolerance(1e-5));
    // No tail: 1 + 16 * 12 tokens.
    BOOST_TEST(lm_sequence_loss(obj, m, all.first(193), 4, 16) == by_window(193, 16),
               boost::test_tools::tolerance(1e-5));
    // Shorter windows see less context: a different figure.
    BOOST_TEST(std::abs(lm_sequence_loss(obj, m, all, 4, 4) - ref) > 1e-4);
    BOOST_CHECK_THROW(lm_sequence_loss(obj, m, all.first(1), 4, 16), gptx::error);
    BOOST_CHECK_THROW(lm_sequence_loss(obj, m, all, 0, 16), gptx::error);
}

BOOST_AUTO_TEST_SUITE_END()
