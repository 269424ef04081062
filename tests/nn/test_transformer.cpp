// Tests for gptx/nn: the whole tiny model's loss gradient against central differences for every
// parameter tensor (pre-LN and post-LN, with and without dropout, tanh and erf GELU), float vs
// double agreement, thread-count independence, and overfitting one batch.
#include <boost/test/unit_test.hpp>

#include <gptx/nn/lm_head.hpp>
#include <gptx/nn/transformer.hpp>

#include "support/gradcheck.hpp"
#include "support/shapes.hpp"

using namespace gptx;

namespace {
using test::shapes::grad_post;
using test::shapes::grad_pre;
constexpr shape tiny_post_nobias{16, 2, 2, norm::post, false};
constexpr shape tiny_pre_nobias{16, 2, 2, norm::pre, false};
constexpr shape tiny_pre_erf{16, 2, 2, norm::pre, false, gelu_kind::erf}; // nanoGPT's form
constexpr shape tiny_post_erf{16, 2, 2, norm::post, true, gelu_kind::erf};

struct batch_data {
    int B = 2, T = 5;
    std::vector<int> inputs, targets;
    std::vector<std::uint8_t> mask;
    explicit batch_data(int V, std::uint64_t seed) {
        rng r(seed);
        for (int i = 0; i < B * T; ++i) {
            inputs.push_back(static_cast<int>(r.below(V)));
            targets.push_back(static_cast<int>(r.below(V)));
            mask.push_back(i % 4 != 1); // some tokens masked out
        }
    }
};

template <shape S> void check_model_gradients(float dropout) {
    transformer<S, double> m({11, 8});
    m.init(3);
    // Larger than GPT-2's init so every path carries signal the check can see.
    rng r(4);
    for (std::size_t i = 0; i < m.params().size(); ++i)
        m.params().data()[i] += 0.3 * r.normal();
    m.set_dropout(dropout);
    m.set_training(true);
    lm_head<transformer<S, double>> head(3);
    batch_data d(11, 5);
    const std::uint64_t counter = m.dropout_counter();
    auto loss = [&] {
        m.set_dropout_counter(counter); // the same dropout masks at every evaluation
        m.forward(d.inputs.data(), d.B, d.T);
        return head.loss(m, d.targets.data(), d.mask.data());
    };
    m.zero_grad();
    m.set_dropout_counter(counter);
    m.forward(d.inputs.data(), d.B, d.T);
    head.forward_backward(m, d.targets.data(), d.mask.data());
    m.backward();
    for (int i = 0; i < num_param_tensors; ++i) {
        const auto& v = m.params().view(i);
        if (v.size == 0)
            continue;
        const std::size_t stride = test::sampled_stride(v.size);
        test::check_gradient(std::string(v.name) +
                                 (S.placement == norm::pre ? " (pre-LN" : " (post-LN") +
                                 (dropout > 0 ? ", dropout)" : ")"),
                             v.data, v.size, m.grads().view(i).data, loss, stride);
    }
}
} // namespace

BOOST_AUTO_TEST_SUITE(transformer_model)

BOOST_AUTO_TEST_CASE(gradients_pre_ln) { check_model_gradients<grad_pre>(0.0f); }
BOOST_AUTO_TEST_CASE(gradients_post_ln) { check_model_gradients<grad_post>(0.0f); }
BOOST_AUTO_TEST_CASE(gradients_pre_ln_dropout) { check_model_gradients<grad_pre>(0.2f); }
BOOST_AUTO_TEST_CASE(gradients_post_ln_dropout) { check_model_gradients<grad_post>(0.2f); }
BOOST_AUTO_TEST_CASE(gradients_without_biases) {
    check_model_gradients<tiny_pre_nobias>(0.0f);
    check_model_gradients<tiny_post_nobias>(0.1f);
}

BOOST_AUTO_TEST_CASE(gradients_with_erf_gelu) {
    check_model_gradients<tiny_pre_erf>(0.0f);
    check_model_gradients<tiny_post_erf>(0.1f);
}

BOOST_AUTO_TEST_CASE(parameter_layout_follows_llm_c) {
    transformer<presets::gpt2> m({50257, 1024});
    BOOST_TEST(m.num_parameters() == 124439808u); // GPT-2 small (124M) with the unpadded vocabulary
    const auto& v = m.params().views();
    BOOST_TEST(v[p_wte].name == "wte");
    BOOST_TEST(v[p_lnfb].name == "lnfb");
    BOOST_TEST(v[p_qkvw].data == v[p_ln1b].data + v[p_ln1b].size);
    transformer<presets::gpt1> g1({40478, 512});
    BOOST_TEST(g1.params().view(p_lnfw).size == 0u); // post-LN has no final LayerNorm
    BOOST_TEST(g1.param(p_lnfw) == nullptr);
    transformer<presets::baby> nb({65, 64}); // nanoGPT's bias-free baby
    BOOST_TEST(nb.param(p_qkvb) == nullptr);
    BOOST_TEST(nb.params().view(p_ln1b).size == 0u);
    BOOST_TEST(nb.param(p_lnfb) == nullptr);
    BOOST_TEST(nb.num_parameters() ==
               65u * 128 + 64u * 128 + 4u * (12 * 128 * 128 + 2 * 128) + 128u);
}

BOOST_AUTO_TEST_CASE(init_statistics) {
    transformer<presets::baby_bias> m({65, 64});
    m.init(1337);
    auto stats = [&](param_id id) {
        const auto& v = m.params().view(id);
        double s = 0, s2 = 0;
        for (std::size_t i = 0; i < v.size; ++i) {
            s += v.data[i];
            s2 += double(v.data[i]) * v.data[i];
        }
        return std::pair{s / v.size, std::sqrt(s2 / v.size)};
    };
    BOOST_TEST(stats(p_qkvw).second == 0.02, boost::test_tools::tolerance(0.03));
    BOOST_TEST(stats(p_fcprojw).second == 0.02 / std::sqrt(8.0),
               boost::test_tools::tolerance(0.03));
    BOOST_TEST(stats(p_ln1w).first == 1.0);
    BOOST_TEST(stats(p_qkvb).second == 0.0);
}

BOOST_AUTO_TEST_CASE(float_matches_double_and_threads_do_not_matter) {
    constexpr shape s{32, 4, 2, norm::pre};
    transformer<s, double> md({23, 16});
    transformer<s, float> mf({23, 16});
    md.init(9);
    mf.init(9);
    batch_data d(23, 10);
    lm_head<transformer<s, double>> hd;
    lm_head<transformer<s, float>> hf;
    md.forward(d.inputs.data(), d.B, d.T);
    const double ld = hd.forward_backward(md, d.targets.data(), nullptr);
    md.backward();
    std::vector<std::vector<float>> grads;
    for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        mf.zero_grad();
        mf.forward(d.inputs.data(), d.B, d.T);
        const double lf = hf.forward_backward(mf, d.targets.data(), nullptr);
        mf.backward();
        BOOST_TEST(lf == ld, boost::test_tools::tolerance(1e-5));
        grads.emplace_back(mf.grads().data(), mf.grads().data() + mf.grads().size());
    }
    set_num_threads(2);
    BOOST_TEST(grads[0] == grads[1]); // bit-identical across thread counts
    BOOST_TEST(grads[0] == grads[2]);
    double worst = 0;
    for (std::size_t i = 0; i < grads[0].size(); ++i)
        worst = std::max(worst, std::abs(grads[0][i] - md.grads().data()[i]));
    BOOST_TEST(worst < 1e-5); // gradients are O(0.1); float keeps ~1e-7 relative
}

// The default chunk holds 64 MiB of logits (GPT-2's vocabulary: 320 float rows, one chunk for a
// B4 T64 step), never fewer than 64 rows; chunking changes only dwte's summation order.
BOOST_AUTO_TEST_CASE(the_default_chunk_holds_64_mib_of_logits_and_chunking_keeps_the_result) {
    constexpr shape s{32, 4, 2, norm::pre};
    using model = transformer<s, float>;
    using dmodel = transformer<s, double>;
    BOOST_TEST(lm_head<model>().chunk_rows(50257) == 320);
    BOOST_TEST(lm_head<dmodel>().chunk_rows(50257) == 160);
    BOOST_TEST(lm_head<model>().chunk_rows(1 << 22) == 64);
    BOOST_TEST(lm_head<model>(5).chunk_rows(50257) == 5);

    model m({23, 16});
    m.init(9);
    batch_data d(23, 10);
    auto run = [&](lm_head<model>& h, std::vector<float>& dhidden, std::vector<float>& dwte) {
        m.zero_grad();
        m.forward(d.inputs.data(), d.B, d.T);
        const double loss = h.forward_backward(m, d.targets.data(), d.mask.data());
        dhidden.assign(m.dhidden(), m.dhidden() + std::size_t(d.B) * d.T * s.width);
        const auto& g = m.grads().view(p_wte);
        dwte.assign(g.data, g.data + g.size);
        return loss;
    };
    lm_head<model> whole, chunked(3);
    std::vector<float> dh1, dw1, dh3, dw3;
    const double l1 = run(whole, dh1, dw1), l3 = run(chunked, dh3, dw3);
    BOOST_TEST(l1 == l3); // per-row losses, summed in the same order
    BOOST_TEST(dh1 == dh3);
    double worst = 0;
    for (std::size_t i = 0; i < dw1.size(); ++i)
        worst = std::max(worst, double(std::abs(dw1[i] - dw3[i])));
    BOOST_TEST(worst > 0.0);  // the chunk boundaries do change the sums' order here...
    BOOST_TEST(worst < 1e-6); // ...by float rounding only
}

BOOST_AUTO_TEST_SUITE_END()
