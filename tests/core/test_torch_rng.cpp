// Tests for gptx/core/torch_rng.hpp against PyTorch 1.13 (Debian's python3-torch). The expected
// values were printed by PyTorch for the calls named beside them, in that order, after
// torch.manual_seed(1337).
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <vector>

#include <gptx/gptx.hpp>

using namespace gptx;

BOOST_AUTO_TEST_SUITE(torch_rng)

// Floats may differ from torch's in the last bits (torch vectorises log, sin and cos).
static bool near(double got, double want, double rel = 2e-6) {
    return std::abs(got - want) <= rel * std::abs(want) + 1e-9;
}

BOOST_AUTO_TEST_CASE(draws_what_pytorch_draws_after_manual_seed) {
    torch_generator g(1337);
    // torch.empty(40).normal_(0.5, 2.0): two blocks of 16, then a tail redone over the last 16.
    std::vector<float> a(40);
    g.normal_(a, 0.5f, 2.0f);
    const int at[] = {0, 7, 8, 15, 23, 24, 39};
    const double want_a[] = {0.8615431785583496, 0.6286970376968384, 1.2223011255264282,
                             3.5865941047668457, 1.6820659637451172, 2.797999382019043,
                             -2.396040678024292};
    for (int k = 0; k < 7; ++k)
        BOOST_TEST(near(a[at[k]], want_a[k]), "normal_ element " << at[k] << ": " << a[at[k]]);
    BOOST_TEST(g.draws() == 56u); // 40 uniforms, then 16 for the tail

    // torch.empty(3).normal_(1.0, 0.5), then torch.empty(1).normal_(): double Box-Muller; the
    // second call takes the value the first cached.
    std::vector<float> b(3), c(1);
    g.normal_(b, 1.0f, 0.5f);
    g.normal_(c, 0.0f, 1.0f);
    const double want_b[] = {1.6762751340866089, 0.6302676200866699, 0.4134261906147003};
    for (int k = 0; k < 3; ++k)
        BOOST_TEST(near(b[k], want_b[k]), "small normal_ " << k << ": " << b[k]);
    BOOST_TEST(near(c[0], 0.9226407408714294), "cached normal: " << c[0]);

    // torch.empty(4).uniform_(-0.25, 0.75): exact.
    std::vector<float> u(4);
    g.uniform_(u, -0.25f, 0.75f);
    const float want_u[] = {0.6561533212661743f, 0.025921106338500977f, -0.22419768571853638f,
                            -0.0326838493347168f};
    for (int k = 0; k < 4; ++k)
        BOOST_TEST(u[k] == want_u[k]);

    // torch.randint(1003790, (6,)) and torch.randint(2**33 + 5, (2,)): exact.
    const std::uint64_t want_r[] = {178654, 121024, 569817, 269144, 722225, 847940};
    for (std::uint64_t w : want_r)
        BOOST_TEST(g.randint(1003790) == w);
    BOOST_TEST(g.randint((std::uint64_t{1} << 33) + 5) == 5075937881u);
    BOOST_TEST(g.randint((std::uint64_t{1} << 33) + 5) == 216976409u);
}

BOOST_AUTO_TEST_CASE(restore_continues_the_stream) {
    torch_generator g(42), h(7);
    for (int i = 0; i < 1000; ++i)
        g.random();
    h.restore(42, 1000);
    BOOST_TEST(h.draws() == 1000u);
    for (int i = 0; i < 50; ++i)
        BOOST_TEST(g.random() == h.random());
    BOOST_CHECK_THROW(g.randint(0), gptx::error);
}

// nanoGPT's GPT(config) for shakespeare_char's CPU run (4 layers, 4 heads, width 128, no biases,
// vocab 65, block 64) after torch.manual_seed(1337): the first and last value of every tensor,
// and the rows the first get_batch draws. Printed by
//   bench/nanogpt_baby_reference.py --seed 1337 --dump-init FILE
BOOST_AUTO_TEST_CASE(nanogpt_init_draws_nanogpts_weights_then_its_first_batch) {
    transformer<presets::baby> model(model_config{65, 64});
    torch_generator g(1337);
    init_like_nanogpt(model, g);
    struct expect {
        param_id id;
        double first, last;
    };
    const expect want[] = {{p_wte, 0.00025585145340301096, -0.019665686413645744},
                           {p_wpe, 0.012806390412151814, -0.017212867736816406},
                           {p_ln1w, 1.0, 1.0},
                           {p_qkvw, 0.000764419324696064, -0.03193735331296921},
                           {p_attprojw, -0.007922571152448654, -0.008638760074973106},
                           {p_ln2w, 1.0, 1.0},
                           {p_fcw, 0.00042341239168308675, 0.013374965637922287},
                           {p_fcprojw, 0.008658858016133308, 0.0011272338451817632},
                           {p_lnfw, 1.0, 1.0}};
    for (const expect& e : want) {
        const float* p = model.param(e.id);
        const std::size_t n = model.params().view(e.id).size;
        BOOST_TEST(near(p[0], e.first, 1e-5), param_names[e.id] << "[0] = " << p[0]);
        BOOST_TEST(near(p[n - 1], e.last, 1e-5), param_names[e.id] << "[last] = " << p[n - 1]);
    }
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

BOOST_AUTO_TEST_SUITE_END()
