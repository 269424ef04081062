// Tests for gptx/nn/nanogpt_init.hpp: nanoGPT's initial weights after torch.manual_seed(1337), and
// the generator left where nanoGPT's is. The expected values are PyTorch 1.13's, as
// tools/torch_rng_golden.py prints them.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <span>
#include <vector>

#include <gptx/gptx.hpp>

using namespace gptx;

namespace {

struct expect {
    param_id id;
    double first, last;
};

// Normals may differ from PyTorch's in the last bits (log, sin and cos are computed differently).
bool near(double got, double want) { return std::abs(got - want) <= 1e-5 * std::abs(want) + 1e-9; }

template <shape S> void check_weights(const transformer<S>& model, std::span<const expect> want) {
    for (const expect& e : want) {
        const float* p = model.param(e.id);
        const std::size_t n = model.params().view(e.id).size;
        BOOST_TEST(near(p[0], e.first), param_names[e.id] << "[0] = " << p[0]);
        BOOST_TEST(near(p[n - 1], e.last), param_names[e.id] << "[last] = " << p[n - 1]);
    }
    for (param_id id : {p_ln1w, p_ln2w, p_lnfw})
        for (std::size_t i = 0; i < model.params().view(id).size; ++i)
            BOOST_TEST_REQUIRE(model.param(id)[i] == 1.0f, param_names[id] << "[" << i << "]");
    for (param_id id : {p_ln1b, p_qkvb, p_attprojb, p_ln2b, p_fcb, p_fcprojb, p_lnfb})
        for (std::size_t i = 0; i < model.params().view(id).size; ++i)
            BOOST_TEST_REQUIRE(model.param(id)[i] == 0.0f, param_names[id] << "[" << i << "]");
}

} // namespace

BOOST_AUTO_TEST_SUITE(nanogpt_init)

// nanoGPT's shakespeare_char CPU run: 4 layers, 4 heads, width 128, no biases, vocab 65, block 64.
BOOST_AUTO_TEST_CASE(baby_draws_nanogpts_weights_then_its_first_batch) {
    transformer<presets::baby> model(model_config{65, 64});
    torch_generator g(1337);
    init_like_nanogpt(model, g);
    const expect want[] = {{p_wte, 0.00025585145340301096, -0.019665686413645744},
                           {p_wpe, 0.012806390412151814, -0.017212867736816406},
                           {p_qkvw, 0.000764419324696064, -0.03193735331296921},
                           {p_attprojw, -0.007922571152448654, -0.008638760074973106},
                           {p_fcw, 0.00042341239168308675, 0.013374965637922287},
                           {p_fcprojw, 0.008658858016133308, 0.0011272338451817632}};
    check_weights(model, want);
    // tiny Shakespeare's training split has 1,003,854 characters; token i here is i, so each
    // row's first input is its start.
    std::vector<int> train(1003854);
    for (std::size_t i = 0; i < train.size(); ++i)
        train[i] = int(i);
    nanogpt_batches batches(g, std::move(train), 12, 64);
    std::vector<int> x(12 * 64), y(12 * 64);
    batches.next(x.data(), y.data());
    const int want_rows[] = {485778, 573436, 991809, 730911, 545111, 732960,
                             656043, 328484, 116521, 817434, 510961, 595837};
    for (int b = 0; b < 12; ++b) {
        BOOST_TEST(x[b * 64] == want_rows[b]);
        BOOST_TEST(y[b * 64 + 63] == want_rows[b] + 64);
    }
}

// Biases (nn.Linear draws them before _init_weights zeroes them) and tensors whose sizes are not
// multiples of 16 (normal_ redoes its tail): width 20, 2 heads, 2 layers, vocab 67, block 9.
BOOST_AUTO_TEST_CASE(biases_and_odd_sizes_draw_as_pytorch_does) {
    constexpr shape odd{20, 2, 2, norm::pre, true, gelu_kind::erf};
    transformer<odd> model(model_config{67, 9});
    torch_generator g(1337);
    init_like_nanogpt(model, g);
    const expect want[] = {{p_wte, 0.02705392986536026, 0.00802797544747591},
                           {p_wpe, -0.021735966205596924, 0.02906813472509384},
                           {p_qkvw, 0.004232423380017281, 0.022848960012197495},
                           {p_attprojw, 0.007596978917717934, 0.014041152782738209},
                           {p_fcw, -0.0354449525475502, 0.02478567510843277},
                           {p_fcprojw, 0.007641546428203583, 0.003751094453036785}};
    check_weights(model, want);
    const std::uint64_t next[] = {99, 627, 322, 177, 260, 49, 471, 237, 849, 929, 105, 578};
    for (std::uint64_t w : next)
        BOOST_TEST(g.randint(1000) == w);
}

BOOST_AUTO_TEST_SUITE_END()
