// Tests for the GELU form in gptx/core/shape.hpp: which presets use which, and that it is part of
// a shape's identity and name. (Not in test_core.cpp, which also builds against the single header.)
#include <boost/test/unit_test.hpp>

#include <gptx/core/shape.hpp>

using namespace gptx;

BOOST_AUTO_TEST_SUITE(core_gelu_kind)

BOOST_AUTO_TEST_CASE(presets_pick_the_gelu_of_their_source) {
    // GPT-1/2 use the tanh approximation; nanoGPT's baby the exact erf GELU.
    for (const char* name : {"gpt1", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "tiny"})
        BOOST_TEST((find_preset(name)->dims.gelu == gelu_kind::tanh), name);
    for (const char* name : {"baby", "baby-bias"})
        BOOST_TEST((find_preset(name)->dims.gelu == gelu_kind::erf), name);
    BOOST_TEST((shape{}.gelu == gelu_kind::tanh)); // the default
}

BOOST_AUTO_TEST_CASE(gelu_is_part_of_the_shape) {
    BOOST_TEST(to_string(presets::baby) == "128/4/4 pre-LN, no bias, erf GELU");
    BOOST_TEST(to_string(presets::gpt2) == "768/12/12 pre-LN");
    BOOST_TEST(!(presets::baby == shape{128, 4, 4, norm::pre, false}));
    BOOST_TEST((presets::baby == shape{128, 4, 4, norm::pre, false, gelu_kind::erf}));
}

BOOST_AUTO_TEST_SUITE_END()
