// Tests for gptx/generate and gptx/nn/kv_cache.hpp: the cached inference path against full
// recomputation (pre-LN and post-LN, float and double, decode and chunked prefill), the decode
// kernels against the training kernels, the sampler's filters and statistics, and generate()'s
// stopping rules.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <gptx/core/bf16.hpp>
#include <gptx/generate/generate.hpp>
#include <gptx/generate/sampler.hpp>
#include <gptx/nn/copy_params.hpp>
#include <gptx/nn/kv_cache.hpp>
#include <gptx/nn/transformer.hpp>
#include <gptx/ops/attention.hpp>
#include <gptx/ops/attention_decode.hpp>
#include <gptx/ops/crossentropy.hpp>
#include <gptx/ops/matmul.hpp>

#include "support/gradcheck.hpp"
#include "support/shapes.hpp"

using namespace gptx;

namespace {
using test::shapes::grad_post;
using test::shapes::grad_pre;
constexpr int vocab = 20, context = 16;

// GPT-2 init plus noise, so logits are far from flat and every path carries signal.
template <class M> void init_model(M& m, std::uint64_t seed) {
    m.init(seed);
    rng r(seed + 1);
    for (std::size_t i = 0; i < m.params().size(); ++i)
        m.params().data()[i] += typename M::value_type(0.3 * r.normal());
    m.set_training(false);
}

std::vector<int> random_tokens(std::size_t n, std::uint64_t seed) {
    rng r(seed);
    std::vector<int> t(n);
    for (auto& x : t)
        x = static_cast<int>(r.below(vocab));
    return t;
}

// Columns [t0, t0 + n) of a (B, Tn) token block, as a (B, n) block.
std::vector<int> columns(const std::vector<int>& tokens, int B, int Tn, int t0, int n) {
    std::vector<int> out;
    for (int b = 0; b < B; ++b)
        out.insert(out.end(), tokens.begin() + b * Tn + t0, tokens.begin() + b * Tn + t0 + n);
    return out;
}

// Logits (B, Tn, V) of a full forward.
template <class M>
std::vector<typename M::value_type> full_logits(M& m, const int* tokens, int B, int Tn) {
    std::vector<typename M::value_type> out(std::size_t(B) * Tn * m.vocab());
    const auto* hidden = m.forward(tokens, B, Tn);
    ops::lm_logits(out.data(), hidden, m.param(p_wte), std::int64_t(B) * Tn, M::C, m.vocab());
    return out;
}

// Greedy continuation by recomputing the whole sequence at every step.
template <class M> std::vector<int> greedy_by_recompute(M& m, std::vector<int> seq, int n) {
    std::vector<int> out;
    std::vector<typename M::value_type> row(m.vocab());
    for (int k = 0; k < n; ++k) {
        const int len = static_cast<int>(seq.size());
        const auto* hidden = m.forward(seq.data(), 1, len);
        ops::lm_logits(row.data(), hidden + std::size_t(len - 1) * M::C, m.param(p_wte), 1, M::C,
                       m.vocab());
        const int id = sampler::argmax(row.data(), m.vocab());
        out.push_back(id);
        seq.push_back(id);
    }
    return out;
}

// Tracks max |a - ref| and max |ref| over everything compared: the error is relative to the
// largest logit, so logits near zero do not blow it up.
struct rel_error {
    double diff = 0, scale = 0;
    template <class T> void add(const T* a, const T* ref, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            diff = std::max(diff, std::abs(double(a[i]) - double(ref[i])));
            scale = std::max(scale, std::abs(double(ref[i])));
        }
    }
    double value() const { return diff / scale; }
};

template <shape S, class T> void check_cache_matches_full(int B, double tol) {
    using M = transformer<S, T>;
    M m({vocab, context});
    init_model(m, 7);
    const int Tn = context, V = vocab, C = M::C;
    const std::vector<int> tokens = random_tokens(std::size_t(B) * Tn, 11);
    const std::vector<T> ref = full_logits(m, tokens.data(), B, Tn);
    std::vector<T> logits(std::size_t(B) * Tn * V);
    rel_error err;
    // hidden (B, n, C) of positions [t0, t0 + n) against the full forward's logits there
    auto compare = [&](const T* hidden, int t0, int n) {
        ops::lm_logits(logits.data(), hidden, m.param(p_wte), std::int64_t(B) * n, C, V);
        for (int b = 0; b < B; ++b)
            err.add(logits.data() + std::size_t(b) * n * V,
                    ref.data() + (std::size_t(b) * Tn + t0) * V, std::size_t(n) * V);
    };
    kv_cache<M> cache(m, B);
    // Prefill 4 positions, then decode one at a time up to the full context.
    auto first = columns(tokens, B, Tn, 0, 4);
    compare(cache.forward(first.data(), B, 4), 0, 4);
    for (int t = 4; t < Tn; ++t) {
        auto col = columns(tokens, B, Tn, t, 1);
        compare(cache.forward(col.data(), B, 1), t, 1);
    }
    BOOST_TEST(cache.length() == Tn);
    // Prefill in two chunks.
    cache.reset(B);
    auto a = columns(tokens, B, Tn, 0, 5), b = columns(tokens, B, Tn, 5, Tn - 5);
    compare(cache.forward(a.data(), B, 5), 0, 5);
    compare(cache.forward(b.data(), B, Tn - 5), 5, Tn - 5);
    // forward_logits splits 10 positions into chunks of 3 and returns the last position's logits.
    cache.reset(B, 0, 3);
    auto ten = columns(tokens, B, Tn, 0, 10);
    const T* last = cache.forward_logits(ten.data(), B, 10);
    for (int bb = 0; bb < B; ++bb)
        err.add(last + std::size_t(bb) * V, ref.data() + (std::size_t(bb) * Tn + 9) * V, V);
    auto eleventh = columns(tokens, B, Tn, 10, 1);
    last = cache.forward_logits(eleventh.data(), B, 1);
    for (int bb = 0; bb < B; ++bb)
        err.add(last + std::size_t(bb) * V, ref.data() + (std::size_t(bb) * Tn + 10) * V, V);
    BOOST_TEST_MESSAGE("kv cache vs full recompute, "
                       << S << (sizeof(T) == 4 ? " float" : " double") << ", B=" << B
                       << ": max |diff| / max |logit| = " << err.value());
    BOOST_TEST(err.value() <= tol);
}

std::string letters(std::span<const int> ids) {
    std::string s;
    for (int id : ids)
        s += static_cast<char>('a' + id);
    return s;
}

bool message_has(const gptx::error& e, std::initializer_list<const char*> parts) {
    const std::string what = e.what();
    for (const char* p : parts)
        if (what.find(p) == std::string::npos)
            return false;
    return true;
}
} // namespace

BOOST_AUTO_TEST_SUITE(kv_cache_equivalence)

// Float keeps ~1e-7 relative per op; the two paths sum attention in different orders, so 1e-5
// of the largest logit is the bound. Double: 1e-12.
BOOST_AUTO_TEST_CASE(pre_ln_float) { check_cache_matches_full<grad_pre, float>(3, 1e-5); }
BOOST_AUTO_TEST_CASE(post_ln_float) { check_cache_matches_full<grad_post, float>(3, 1e-5); }
BOOST_AUTO_TEST_CASE(pre_ln_double) { check_cache_matches_full<grad_pre, double>(3, 1e-12); }
BOOST_AUTO_TEST_CASE(post_ln_double) { check_cache_matches_full<grad_post, double>(3, 1e-12); }
BOOST_AUTO_TEST_CASE(bias_free_double) {
    check_cache_matches_full<shape{16, 2, 2, norm::pre, false}, double>(2, 1e-12);
    check_cache_matches_full<shape{16, 2, 2, norm::post, false}, double>(2, 1e-12);
}
// The decode path uses the shape's GELU too (a tanh GELU there would differ by ~1e-4).
BOOST_AUTO_TEST_CASE(erf_gelu_double) {
    check_cache_matches_full<shape{16, 2, 2, norm::pre, false, gelu_kind::erf}, double>(2, 1e-12);
}
// B = 9 decodes through gemm instead of the few-rows kernel.
BOOST_AUTO_TEST_CASE(pre_ln_double_wide_batch) {
    check_cache_matches_full<grad_pre, double>(9, 1e-12);
}

// bf16 weights: decoding (few rows) widens each bf16 weight exactly and multiplies in fp32, so
// it must equal, bit for bit, the fp32 cache over a model whose matrices were rounded to bf16.
// Prefill (more than 8 rows) runs gemm_bf16, which also rounds the activations to bf16 (8-bit
// mantissa, relative error at most 2^-9 each): within 2e-2 of the largest logit after two layers.
BOOST_AUTO_TEST_CASE(bf16_weights_decode_as_the_rounded_model) {
    using M = transformer<grad_pre, float>;
    const int B = 3, Tn = context, V = vocab;
    M m({vocab, context}), rounded({vocab, context});
    init_model(m, 7);
    copy_params(rounded, m);
    for (param_id id : {p_wte, p_qkvw, p_attprojw, p_fcw, p_fcprojw}) {
        auto v = rounded.params().view(id);
        for (std::size_t i = 0; i < v.size; ++i)
            v.data[i] = to_float(to_bf16(v.data[i]));
    }
    rounded.set_training(false);
    const std::vector<int> tokens = random_tokens(std::size_t(B) * Tn, 11);
    kv_cache<M> cache(m, B), ref(rounded, B), plain(m, B);
    BOOST_TEST((cache.weights_precision() == ops::precision::fp32));
    cache.set_weights_precision(ops::precision::bf16);
    BOOST_TEST((cache.weights_precision() == ops::precision::bf16));
    // Decode: 2 positions (6 rows), then one at a time; the logits of every step compared.
    double decode_diff = 0;
    rel_error from_fp32;
    for (int t0 = 0, n = 2; t0 < Tn; t0 += n, n = 1) {
        const auto col = columns(tokens, B, Tn, t0, n);
        const float* a = cache.forward_logits(col.data(), B, n);
        const float* r = ref.forward_logits(col.data(), B, n);
        for (int i = 0; i < B * V; ++i)
            decode_diff = std::max(decode_diff, double(std::abs(a[i] - r[i])));
        from_fp32.add(a, plain.forward_logits(col.data(), B, n), std::size_t(B) * V);
    }
    BOOST_TEST(decode_diff == 0.0);
    BOOST_TEST_MESSAGE("bf16 weights against fp32 ones, decoding: max |diff| / max |logit| = "
                       << from_fp32.value());
    BOOST_TEST(from_fp32.value() > 0.0); // the copy really is bf16
    BOOST_TEST(from_fp32.value() <= 2e-2);
    // Prefill of the whole context in one chunk (48 rows: the bf16 GEMM).
    cache.reset(B);
    ref.reset(B);
    const float* a = cache.forward_logits(tokens.data(), B, Tn);
    const std::vector<float> prefill(a, a + B * V);
    rel_error prefill_err;
    prefill_err.add(prefill.data(), ref.forward_logits(tokens.data(), B, Tn), prefill.size());
    BOOST_TEST_MESSAGE("bf16 prefill against the rounded model in fp32: " << prefill_err.value());
    BOOST_TEST(prefill_err.value() > 0.0); // activations rounded too
    BOOST_TEST(prefill_err.value() <= 2e-2);
    // Back to fp32: the copy is dropped and the cache computes what an fp32 cache does.
    cache.set_weights_precision(ops::precision::fp32);
    plain.reset(B);
    const auto first = columns(tokens, B, Tn, 0, 4);
    const float* x = cache.forward_logits(first.data(), B, 4);
    const std::vector<float> back(x, x + B * V);
    const float* y = plain.forward_logits(first.data(), B, 4);
    BOOST_TEST(std::equal(back.begin(), back.end(), y));
    // A double model has no bf16 path.
    transformer<grad_pre, double> md({vocab, context});
    kv_cache<transformer<grad_pre, double>> dc(md, 1);
    BOOST_CHECK_THROW(dc.set_weights_precision(ops::precision::bf16), gptx::error);
}

BOOST_AUTO_TEST_CASE(decode_kernels_match_training_kernels) {
    // 80 keys > the kernel's 64-key chunk, so the online softmax rescales; HS = 5 leaves tails.
    const int B = 2, Tn = 80, NH = 3, C = 15, HS = C / NH;
    rng r(21);
    const auto qkv = test::normal_vector<double>(std::size_t(B) * Tn * 3 * C, r, 2.0);
    std::vector<double> ref(std::size_t(B) * Tn * C), lse(std::size_t(B) * NH * Tn);
    ops::attention_forward(ref.data(), lse.data(), qkv.data(), B, Tn, C, NH);
    std::vector<double> k(std::size_t(B) * NH * Tn * HS), v(k.size());
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < Tn; ++t)
            for (int h = 0; h < NH; ++h)
                for (int d = 0; d < HS; ++d) {
                    const std::size_t src = (std::size_t(b) * Tn + t) * 3 * C + h * HS + d;
                    k[((std::size_t(b) * NH + h) * Tn + t) * HS + d] = qkv[src + C];
                    v[((std::size_t(b) * NH + h) * Tn + t) * HS + d] = qkv[src + 2 * C];
                }
    std::vector<double> out(ref.size());
    ops::attention_decode_forward(out.data(), qkv.data(), 3 * C, k.data(), v.data(), B, Tn, 0, C,
                                  NH, Tn);
    rel_error all;
    all.add(out.data(), ref.data(), out.size());
    BOOST_TEST(all.value() <= 1e-13);
    // The last 3 queries alone, as a decode after 77 cached positions.
    const int n = 3, t0 = Tn - n;
    std::vector<double> q, tail_ref;
    for (int b = 0; b < B; ++b) {
        const std::size_t row = std::size_t(b) * Tn + t0;
        q.insert(q.end(), qkv.begin() + row * 3 * C, qkv.begin() + (row + n) * 3 * C);
        tail_ref.insert(tail_ref.end(), ref.begin() + row * C, ref.begin() + (row + n) * C);
    }
    std::vector<double> tail(tail_ref.size());
    ops::attention_decode_forward(tail.data(), q.data(), 3 * C, k.data(), v.data(), B, n, t0, C, NH,
                                  Tn);
    rel_error last;
    last.add(tail.data(), tail_ref.data(), tail.size());
    BOOST_TEST(last.value() <= 1e-13);

    // The few-rows linear layer against gemm, with a tail in C.
    const int N = 5, IC = 37, OC = 23;
    const auto x = test::normal_vector<float>(std::size_t(N) * IC, r);
    const auto w = test::normal_vector<float>(std::size_t(OC) * IC, r);
    const auto bias = test::normal_vector<float>(OC, r);
    std::vector<float> y(std::size_t(N) * OC), y_ref(y.size());
    ops::matmul_rows_forward(y.data(), x.data(), w.data(), bias.data(), N, IC, OC);
    ops::matmul_forward(y_ref.data(), x.data(), w.data(), bias.data(), N, IC, OC);
    rel_error lin;
    lin.add(y.data(), y_ref.data(), y.size());
    BOOST_TEST(lin.value() <= 1e-6);
}

BOOST_AUTO_TEST_CASE(context_and_input_errors) {
    using M = transformer<grad_pre, float>;
    M m({vocab, context});
    init_model(m, 3);
    kv_cache<M> cache(m, 2);
    const std::vector<int> ten(20, 1), seven(14, 2);
    cache.forward_logits(ten.data(), 2, 10);
    BOOST_CHECK_EXCEPTION(
        cache.forward_logits(seven.data(), 2, 7), gptx::error, [](const gptx::error& e) {
            return message_has(e, {"appending 7 positions to 10", "cache length of 16", "context"});
        });
    BOOST_TEST(cache.length() == 10); // a refused append leaves the cache as it was
    cache.reset(2, 8, 4);
    BOOST_CHECK_EXCEPTION(cache.forward_logits(ten.data(), 2, 9), gptx::error,
                          [](const gptx::error& e) {
                              return message_has(e, {"cache length of 8", "reset()"});
                          });
    BOOST_CHECK_EXCEPTION(cache.forward(ten.data(), 2, 5), gptx::error, [](const gptx::error& e) {
        return message_has(e, {"5 new positions exceed the chunk of 4"});
    });
    const std::vector<int> bad = {1, 2, vocab, 3};
    BOOST_CHECK_EXCEPTION(cache.forward(bad.data(), 2, 2), gptx::error, [](const gptx::error& e) {
        return message_has(e, {"token 20", "[0, 20)"});
    });
    BOOST_TEST(cache.length() == 0);
    BOOST_CHECK_THROW(cache.forward(ten.data(), 3, 1), gptx::error); // batch differs from reset()
    BOOST_CHECK_THROW(kv_cache<M>(m, 1, context + 1), gptx::error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(sampling)

BOOST_AUTO_TEST_CASE(greedy_and_top_k_one_are_argmax) {
    const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
    BOOST_TEST(sampler::argmax(logits.data(), 5) == 1); // ties go to the lowest id
    sampler greedy({.temperature = 0.0f});
    sampler top1({.temperature = 1.0f, .top_k = 1, .seed = 5});
    sampler top1_hot({.temperature = 50.0f, .top_k = 1, .top_p = 0.3f, .seed = 6});
    for (int i = 0; i < 100; ++i) {
        BOOST_TEST(greedy.sample(logits.data(), 5) == 1);
        BOOST_TEST(top1.sample(logits.data(), 5) == 1);
        BOOST_TEST(top1_hot(std::span<const float>(logits)) == 1);
    }
}

// Frequencies over `draws` against expected probabilities; each count is binomial, so with
// 200000 draws its standard deviation is at most 0.0011 and 0.005 is a > 4.5 sigma bound.
void check_frequencies(sampler& s, const std::vector<float>& logits,
                       const std::vector<double>& expected) {
    const int draws = 200000;
    std::vector<int> counts(logits.size(), 0);
    for (int i = 0; i < draws; ++i)
        ++counts[s.sample(logits.data(), static_cast<int>(logits.size()))];
    for (std::size_t i = 0; i < logits.size(); ++i) {
        if (expected[i] == 0.0) {
            BOOST_TEST(counts[i] == 0, "token " << i << " is outside the kept set but was drawn "
                                                << counts[i] << " times");
        } else {
            BOOST_TEST(std::abs(counts[i] / double(draws) - expected[i]) <= 0.005,
                       "token " << i << ": frequency " << counts[i] / double(draws) << " vs "
                                << expected[i]);
        }
    }
}

// Known probabilities in a shuffled id order: id -> p.
const std::vector<double> probs = {0.06, 0.25, 0.04, 0.40, 0.10, 0.15};
std::vector<float> log_probs() {
    std::vector<float> l;
    for (double p : probs)
        l.push_back(static_cast<float>(std::log(p)));
    return l;
}

BOOST_AUTO_TEST_CASE(plain_and_tempered_softmax) {
    sampler s({.temperature = 1.0f, .seed = 1});
    check_frequencies(s, log_probs(), probs);
    // Temperature 2: p^(1/2), renormalised.
    std::vector<double> hot;
    double z = 0;
    for (double p : probs)
        z += std::sqrt(p);
    for (double p : probs)
        hot.push_back(std::sqrt(p) / z);
    sampler t({.temperature = 2.0f, .seed = 2});
    check_frequencies(t, log_probs(), hot);
}

BOOST_AUTO_TEST_CASE(top_p_keeps_the_smallest_nucleus) {
    // Sorted: 0.40 (id 3), 0.25 (id 1), 0.15 (id 5), 0.10, ... Cumulative 0.40, 0.65, 0.80: with
    // top_p = 0.7 the nucleus is {3, 1, 5}, renormalised by 0.8.
    sampler s({.temperature = 1.0f, .top_p = 0.7f, .seed = 3});
    check_frequencies(s, log_probs(), {0.0, 0.25 / 0.8, 0.0, 0.40 / 0.8, 0.0, 0.15 / 0.8});
    // top_p below the best token's probability still keeps the best token.
    sampler tiny_p({.temperature = 1.0f, .top_p = 1e-6f, .seed = 4});
    check_frequencies(tiny_p, log_probs(), {0, 0, 0, 1, 0, 0});
    // top-k first, then top-p within the renormalised top 3: {0.5, 0.3125, 0.1875}; 0.8 of that
    // mass needs {3, 1}.
    sampler kp({.temperature = 1.0f, .top_k = 3, .top_p = 0.8f, .seed = 5});
    check_frequencies(kp, log_probs(), {0.0, 0.25 / 0.65, 0.0, 0.40 / 0.65, 0.0, 0.0});
}

BOOST_AUTO_TEST_CASE(top_p_over_a_large_vocabulary) {
    // 1000 tokens with a geometric spread: the nucleus reaches past the first sorted prefix.
    const int V = 1000;
    std::vector<float> logits(V);
    rng r(8);
    for (int i = 0; i < V; ++i)
        logits[i] = static_cast<float>(-0.004 * ((i * 379) % V) + 0.001 * r.normal());
    std::vector<double> p(V);
    double z = 0;
    for (int i = 0; i < V; ++i)
        z += p[i] = std::exp(double(logits[i]));
    std::vector<int> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    double cum = 0;
    int kept = 0;
    while (cum < 0.5 * z)
        cum += p[order[kept++]];
    BOOST_TEST(kept > 64);
    std::vector<char> in(V, 0);
    for (int i = 0; i < kept; ++i)
        in[order[i]] = 1;
    sampler s({.temperature = 1.0f, .top_p = 0.5f, .seed = 9});
    for (int i = 0; i < 20000; ++i) {
        const int id = s.sample(logits.data(), V);
        BOOST_TEST_REQUIRE(in[id] == 1);
    }
}

BOOST_AUTO_TEST_CASE(same_seed_same_sequence) {
    const auto logits = log_probs();
    auto draw = [&](sampling_config c) {
        sampler s(c);
        std::vector<int> ids;
        for (int i = 0; i < 64; ++i)
            ids.push_back(s.sample(logits.data(), 6));
        return ids;
    };
    const sampling_config a{.temperature = 0.8f, .top_k = 4, .top_p = 0.9f, .seed = 42};
    sampling_config b = a;
    b.seed = 43;
    BOOST_TEST(draw(a) == draw(a));
    BOOST_TEST(draw(a) != draw(b));
}

BOOST_AUTO_TEST_CASE(bad_configs_are_errors) {
    BOOST_CHECK_THROW(sampler({.temperature = -1.0f}), gptx::error);
    BOOST_CHECK_THROW(sampler({.top_k = -2}), gptx::error);
    BOOST_CHECK_THROW(sampler({.top_p = 0.0f}), gptx::error);
    BOOST_CHECK_THROW(sampler({.top_p = 1.5f}), gptx::error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(generation_loop)

template <shape S> void check_greedy_matches_recompute() {
    using M = transformer<S, float>;
    M m({vocab, context});
    init_model(m, 13);
    const std::vector<int> prompt = {3, 7, 1};
    const std::vector<int> ref = greedy_by_recompute(m, prompt, 8);
    const generation g = generate(m, prompt, 8, {.temperature = 0.0f});
    BOOST_TEST(g.tokens == ref, boost::test_tools::per_element());
    BOOST_TEST((g.reason == stop_reason::length));
}
BOOST_AUTO_TEST_CASE(greedy_matches_recompute_pre_ln) {
    check_greedy_matches_recompute<grad_pre>();
}
BOOST_AUTO_TEST_CASE(greedy_matches_recompute_post_ln) {
    check_greedy_matches_recompute<grad_post>();
}

BOOST_AUTO_TEST_CASE(batch_matches_single_sequences) {
    using M = transformer<grad_post, float>;
    M m({vocab, context});
    init_model(m, 17);
    const std::vector<std::vector<int>> prompts = {{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 9, 0, 19}};
    const sampling_config cfg{.temperature = 1.0f, .top_k = 8, .top_p = 0.95f, .seed = 100};
    const auto batch = generate_batch(m, prompts, 9, cfg);
    kv_cache<M> cache(m); // one cache reused across calls
    for (int b = 0; b < 3; ++b) {
        sampling_config c = cfg;
        c.seed = cfg.seed + b;
        const generation single = generate(cache, prompts[b], 9, c);
        BOOST_TEST(batch[b].tokens == single.tokens, boost::test_tools::per_element());
        const generation greedy_single = generate(cache, prompts[b], 9, {.temperature = 0.0f});
        BOOST_TEST(greedy_single.tokens == greedy_by_recompute(m, prompts[b], 9),
                   boost::test_tools::per_element());
    }
    BOOST_CHECK_THROW(generate_batch(m, {{1, 2}, {3}}, 4, cfg), gptx::error); // unequal lengths
}

BOOST_AUTO_TEST_CASE(stops_at_end_of_text_stop_strings_and_callback) {
    using M = transformer<grad_pre, float>;
    M m({vocab, context});
    init_model(m, 21); // its greedy continuation of the prompt is "otldsdgsgo"
    const std::vector<int> prompt = {3, 7, 1};
    const int n = 10;
    const std::vector<int> ref = greedy_by_recompute(m, prompt, n);
    const std::string ref_text = letters(ref);
    BOOST_TEST_MESSAGE("greedy continuation: " << ref_text);
    // The cases below cut at different, non-zero places only if the continuation varies.
    BOOST_TEST_REQUIRE(ref_text.find(ref_text[4]) > 0u);
    BOOST_TEST_REQUIRE(ref_text.find(ref_text.substr(5, 2)) > ref_text.find(ref_text[5]));
    const sampling_config greedy{.temperature = 0.0f};

    // End-of-text: the 5th token's id; generation stops at its first occurrence, without it.
    generate_options eot;
    eot.end_of_text = ref[4];
    eot.decode = letters;
    const auto first = std::find(ref.begin(), ref.end(), ref[4]) - ref.begin();
    const generation g1 = generate(m, prompt, n, greedy, eot);
    BOOST_TEST(g1.tokens == std::vector<int>(ref.begin(), ref.begin() + first),
               boost::test_tools::per_element());
    BOOST_TEST(g1.text == ref_text.substr(0, first));
    BOOST_TEST((g1.reason == stop_reason::end_of_text));

    // A stop string spanning two tokens, and one that is a single token's text (a second stop
    // string that never occurs is ignored).
    for (int len : {2, 1}) {
        generate_options stop;
        const std::string s = ref_text.substr(5, len);
        stop.stop_strings = {"zz", s};
        stop.decode = letters;
        const std::size_t cut = ref_text.find(s);
        const generation g = generate(m, prompt, n, greedy, stop);
        BOOST_TEST(g.text == ref_text.substr(0, cut));
        BOOST_TEST(g.tokens == std::vector<int>(ref.begin(), ref.begin() + cut),
                   boost::test_tools::per_element());
        BOOST_TEST((g.reason == stop_reason::stop_string));
    }
    generate_options no_decode;
    no_decode.stop_strings = {"a"};
    BOOST_CHECK_THROW(generate(m, prompt, n, greedy, no_decode), gptx::error);

    // Streaming: the callback sees each token and stops after the third.
    std::vector<int> streamed;
    generate_options cb;
    cb.on_token = [&](int id) {
        streamed.push_back(id);
        return streamed.size() < 3;
    };
    const generation g3 = generate(m, prompt, n, greedy, cb);
    BOOST_TEST(g3.tokens == std::vector<int>(ref.begin(), ref.begin() + 3),
               boost::test_tools::per_element());
    BOOST_TEST(streamed == g3.tokens, boost::test_tools::per_element());
    BOOST_TEST((g3.reason == stop_reason::callback));
}

// generate() stops at the context: prompt + continuation never exceed it.
BOOST_AUTO_TEST_CASE(stops_at_the_context) {
    using M = transformer<grad_post, float>;
    M m({vocab, context});
    init_model(m, 19);
    const std::vector<int> prompt = random_tokens(10, 5);
    const generation g = generate(m, prompt, 100, {.temperature = 0.0f});
    BOOST_TEST(g.tokens.size() == 6u);
    BOOST_TEST((g.reason == stop_reason::context));
    BOOST_TEST(g.tokens == greedy_by_recompute(m, prompt, 6), boost::test_tools::per_element());
    const generation exact = generate(m, prompt, 6, {.temperature = 0.0f});
    BOOST_TEST((exact.reason == stop_reason::length)); // asked for exactly what fits
    const generation full = generate(m, random_tokens(context, 6), 5, {.temperature = 0.0f});
    BOOST_TEST(full.tokens.empty());
    BOOST_TEST((full.reason == stop_reason::context));
    BOOST_CHECK_EXCEPTION(generate(m, random_tokens(context + 1, 7), 5, {}), gptx::error,
                          [](const gptx::error& e) {
                              return message_has(e, {"17 tokens", "context of 16"});
                          });
    BOOST_CHECK_THROW(generate(m, {}, 5, {}), gptx::error);
}

// A short prompt and few new tokens make a cache shorter than half the context (a regression:
// the prefill chunk once exceeded the cache).
BOOST_AUTO_TEST_CASE(short_generation_in_a_long_context) {
    using M = transformer<grad_pre, float>;
    M m({vocab, context});
    init_model(m, 29);
    const std::vector<int> prompt = random_tokens(2, 9);
    const generation g = generate(m, prompt, 3, {.temperature = 0.0f});
    BOOST_TEST(g.tokens == greedy_by_recompute(m, prompt, 3), boost::test_tools::per_element());
}

// With slide_context, a full window restarts from its last half (context / 2 tokens) and goes
// on; every token is the argmax over exactly that window.
BOOST_AUTO_TEST_CASE(slides_the_context_window) {
    using M = transformer<grad_pre, float>;
    M m({vocab, context});
    init_model(m, 23);
    const std::vector<int> prompt = random_tokens(5, 8);
    generate_options opt;
    opt.slide_context = true;
    const generation g = generate(m, prompt, 40, {.temperature = 0.0f}, opt);
    BOOST_TEST(g.tokens.size() == 40u);
    BOOST_TEST((g.reason == stop_reason::length));
    std::vector<int> window = prompt, ref;
    std::vector<float> row(vocab);
    const int keep = context / 2;
    for (int k = 0; k < 40; ++k) {
        const int len = static_cast<int>(window.size());
        const float* hidden = m.forward(window.data(), 1, len);
        ops::lm_logits(row.data(), hidden + std::size_t(len - 1) * M::C, m.param(p_wte), 1, M::C,
                       vocab);
        const int id = sampler::argmax(row.data(), vocab);
        ref.push_back(id);
        if (len == context)
            window.erase(window.begin(), window.end() - (keep - 1));
        window.push_back(id);
    }
    BOOST_TEST(g.tokens == ref, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
