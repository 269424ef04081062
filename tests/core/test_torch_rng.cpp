// Tests for gptx/core/torch_rng.hpp against PyTorch 1.13 (Debian's python3-torch). The expected
// values are PyTorch's for the calls named beside them, in that order, after
// torch.manual_seed(1337), as tools/torch_rng_golden.py prints them.
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

BOOST_AUTO_TEST_SUITE_END()
