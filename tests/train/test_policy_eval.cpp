// Tests for gptx/train/policy_eval.hpp: sampling prompts of mixed lengths, the exact KL of
// responses, and the fixed-text LM loss.
#include <boost/test/unit_test.hpp>

#include <gptx/nn/transformer.hpp>
#include <gptx/train/policy_eval.hpp>

#include "support/shapes.hpp"

using namespace gptx;

namespace {
constexpr shape pe_shape = test::shapes::tiny;
using pe_model = transformer<pe_shape>;
} // namespace

BOOST_AUTO_TEST_SUITE(policy_eval)

BOOST_AUTO_TEST_CASE(sampling_kl_and_loss) {
    pe_model a({16, 40}), b({16, 40}); // generate needs P + new - 1 >= context / 2
    a.init(1);
    b.init(2);
    const std::vector<std::vector<int>> prompts{
        {15, 1, 2}, {15, 3}, {15, 4, 5}, {15, 6}, {15, 7, 8}};
    const sampling_config sc{1.0f, 0, 1.0f, 9};
    const auto g1 = sample_responses(a, prompts, 20, sc, 15);
    const auto g2 = sample_responses(a, prompts, 20, sc, 15, 1); // batch size does not matter
    BOOST_TEST(g1.size() == prompts.size());
    for (std::size_t i = 0; i < g1.size(); ++i) {
        BOOST_TEST(g1[i].tokens == g2[i].tokens, boost::test_tools::per_element());
        BOOST_TEST(g1[i].tokens.size() <= 20u);
    }
    // KL of a model to itself is zero; to another model it is positive
    for (double k : response_kl(a, a, prompts, g1, 15))
        BOOST_TEST(k == 0.0, boost::test_tools::tolerance(1e-6));
    for (double k : response_kl(a, b, prompts, g1, 15, 2))
        BOOST_TEST(k > 0.0);
    std::vector<int> text(500);
    for (std::size_t i = 0; i < text.size(); ++i)
        text[i] = int(i * 7 % 16);
    const double l = lm_loss_on(a, text, 2, 8, 3);
    BOOST_TEST(l == lm_loss_on(a, text, 2, 8, 3)); // the same windows every call
    BOOST_TEST(l > 0.0);
}

BOOST_AUTO_TEST_SUITE_END()
