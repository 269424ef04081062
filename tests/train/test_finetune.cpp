// Tests for gptx/train/finetune.hpp: the exact token layouts of GPT-1's input transformations,
// the grown embedding, central-difference checks (double) of the classification objective and of
// L_task + lambda * L_LM for every head form on post-LN and pre-LN trunks, and a short
// fine-tuning run through the unchanged trainer.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <vector>

#include <gptx/nn/resize.hpp>
#include <gptx/nn/transformer.hpp>
#include <gptx/text/tokenizer.hpp>
#include <gptx/train/finetune.hpp>
#include <gptx/train/objective.hpp>
#include <gptx/train/trainer.hpp>

#include "support/gradcheck.hpp"
#include "support/shapes.hpp"

using namespace gptx;

namespace {
constexpr shape post_small = test::shapes::grad_post;
using test::shapes::grad_pre;
constexpr task_token_ids tt = task_tokens_after(10); // start 10, delim 11, extract 12

// Perturbs a double model's parameters so LayerNorm gains and biases are not trivially 1 / 0.
template <class M> void jitter(M& m, std::uint64_t seed) {
    rng r(seed);
    for (std::size_t i = 0; i < m.params().size(); ++i)
        m.params().data()[i] += 0.05 * r.normal();
}

std::vector<finetune_example> examples_for(finetune_form form) {
    switch (form) {
    case finetune_form::classify:
        return {{{classification_input(tt, std::vector<int>{1, 2, 3}, 16)}, 2},
                {{classification_input(tt, std::vector<int>{4, 5}, 16)}, 0}};
    case finetune_form::similarity:
        return {similarity_example(tt, std::vector<int>{1, 2}, std::vector<int>{3}, 1, 16),
                similarity_example(tt, std::vector<int>{4}, std::vector<int>{5, 6, 7}, 0, 16)};
    case finetune_form::choice:
        return {choice_example(tt, std::vector<int>{1, 2}, {{3}, {4, 5}, {6}}, 1, 16),
                choice_example(tt, std::vector<int>{7}, {{8, 9}, {1}}, 0, 16)};
    }
    return {};
}

template <shape S> void check_objective(finetune_form form, float lambda, float clf_dropout) {
    using model_t = transformer<S, double>;
    model_t m({13, 16});
    m.init(3);
    jitter(m, 4);
    finetune_objective<model_t> obj({form, 3, lambda, clf_dropout, 5});
    rng r(6);
    for (std::size_t i = 0; i < obj.head_params().size(); ++i)
        obj.head_params().data()[i] += 0.3 * r.normal();
    obj.set_dropout_step(7);
    const auto ex = examples_for(form);
    const finetune_batch b{ex.data(), int(ex.size())};
    auto loss = [&] { return obj.compute(m, b, 1.0, false, true); };
    m.zero_grad();
    obj.head_grads().zero();
    obj.compute(m, b, 1.0, true, true);
    const std::string tag = std::string(S.placement == norm::pre ? "pre" : "post") + " form " +
                            std::to_string(int(form)) + " lambda " + std::to_string(lambda);
    test::check_gradient(tag + " head", obj.head_params().data(), obj.head_params().size(),
                         obj.head_grads().data(), loss);
    for (param_id id : {p_wte, p_wpe, p_qkvw, p_fcprojw, p_ln2w})
        test::check_gradient(tag + " " + param_names[id], m.param(id), m.params().view(id).size,
                             m.grads().view(id).data, loss,
                             test::sampled_stride(m.params().view(id).size));
}
} // namespace

BOOST_AUTO_TEST_SUITE(finetune)

BOOST_AUTO_TEST_CASE(input_transformations_have_gpt1_layouts) {
    const std::vector<int> text{1, 2, 3}, premise{4, 5}, hyp{6, 7, 8};
    BOOST_TEST(classification_input(tt, text, 32) == (std::vector<int>{10, 1, 2, 3, 12}),
               boost::test_tools::per_element());
    BOOST_TEST(pair_input(tt, premise, hyp, 32) == (std::vector<int>{10, 4, 5, 11, 6, 7, 8, 12}),
               boost::test_tools::per_element());
    const auto sim = similarity_example(tt, premise, hyp, 1, 32);
    BOOST_REQUIRE(sim.seqs.size() == 2u);
    BOOST_TEST(sim.seqs[0] == (std::vector<int>{10, 4, 5, 11, 6, 7, 8, 12}),
               boost::test_tools::per_element());
    BOOST_TEST(sim.seqs[1] == (std::vector<int>{10, 6, 7, 8, 11, 4, 5, 12}),
               boost::test_tools::per_element());
    const auto mc = choice_example(tt, premise, {{1}, {2, 3}, {9}}, 2, 32);
    BOOST_REQUIRE(mc.seqs.size() == 3u);
    BOOST_TEST(mc.seqs[0] == (std::vector<int>{10, 4, 5, 11, 1, 12}),
               boost::test_tools::per_element());
    BOOST_TEST(mc.seqs[1] == (std::vector<int>{10, 4, 5, 11, 2, 3, 12}),
               boost::test_tools::per_element());
    BOOST_TEST(mc.seqs[2] == (std::vector<int>{10, 4, 5, 11, 9, 12}),
               boost::test_tools::per_element());
    BOOST_TEST(mc.label == 2);
    // Too long: the text keeps its end; a pair's first part loses its beginning first.
    BOOST_TEST(classification_input(tt, text, 4) == (std::vector<int>{10, 2, 3, 12}),
               boost::test_tools::per_element());
    BOOST_TEST(pair_input(tt, premise, hyp, 7) == (std::vector<int>{10, 5, 11, 6, 7, 8, 12}),
               boost::test_tools::per_element());
    BOOST_TEST(pair_input(tt, premise, hyp, 5) == (std::vector<int>{10, 11, 6, 7, 12}),
               boost::test_tools::per_element());
    BOOST_CHECK_THROW(classification_input(tt, text, 2), error);
}

BOOST_AUTO_TEST_CASE(task_tokens_are_registered_and_the_embedding_grows) {
    tokenizer tok = make_tokenizer("char", "abcdefghij"); // 10 characters
    transformer<post_small> base({10, 16});
    base.init(1);
    const task_token_ids t = add_task_tokens(tok, base.vocab());
    BOOST_TEST(t.start == 10);
    BOOST_TEST(t.delim == 11);
    BOOST_TEST(t.extract == 12);
    BOOST_TEST(tok.vocab_size() == 13);
    BOOST_TEST(tok.decode(std::vector<int>{10, 0, 11, 1, 12}) == "<|start|>a<|delim|>b<|extract|>");
    const auto grown = grow_vocab(base, 3, 9);
    BOOST_TEST(grown.vocab() == 13);
    BOOST_TEST(std::equal(base.param(p_wte), base.param(p_wte) + 160, grown.param(p_wte)));
    double s2 = 0;
    const float* fresh = grown.param(p_wte) + 10 * 16;
    for (int k = 0; k < 3 * 16; ++k)
        s2 += double(fresh[k]) * fresh[k];
    BOOST_TEST(std::sqrt(s2 / 48) > 0.01); // N(0, 0.02)
    BOOST_TEST(std::sqrt(s2 / 48) < 0.03);
    // A model that reserves ids past its tokenizer (an end-of-text) gets unregistered ids.
    tokenizer tok2 = make_tokenizer("char", "abcdefghij");
    const task_token_ids u = add_task_tokens(tok2, 11);
    BOOST_TEST(u.start == 11);
    BOOST_TEST(u.extract == 13);
    BOOST_TEST(tok2.vocab_size() == 10);
}

BOOST_AUTO_TEST_CASE(classification_objective_gradients) {
    check_objective<post_small>(finetune_form::classify, 0.0f, 0.0f); // L_task alone
    check_objective<post_small>(finetune_form::classify, 0.5f, 0.3f); // + lambda L_LM, dropout
    check_objective<grad_pre>(finetune_form::classify, 0.5f, 0.3f);
}

BOOST_AUTO_TEST_CASE(similarity_and_choice_gradients) {
    check_objective<post_small>(finetune_form::similarity, 0.5f, 0.3f);
    check_objective<grad_pre>(finetune_form::choice, 0.5f, 0.3f);
    check_objective<post_small>(finetune_form::choice, 0.0f, 0.0f);
}

BOOST_AUTO_TEST_CASE(weighted_sum_is_task_plus_lambda_lm) {
    using model_t = transformer<grad_pre, double>;
    model_t m({13, 16});
    m.init(3);
    const auto ex = examples_for(finetune_form::classify);
    const finetune_batch b{ex.data(), int(ex.size())};
    finetune_objective<model_t> obj({finetune_form::classify, 3, 0.7f, 0.0f, 5});
    const double total = obj.compute(m, b, 1.0, false, false);
    BOOST_TEST(total == obj.task_loss() + double(0.7f) * obj.lm_loss(),
               boost::test_tools::tolerance(1e-12));
    BOOST_TEST(std::isfinite(obj.lm_loss()));
    BOOST_TEST(obj.lm_loss() > 0);
}

BOOST_AUTO_TEST_CASE(gpt1_schedule) {
    // 0.2% warmup (at least one step), then a straight line to 0 at the last step.
    const linear_schedule s = finetune_schedule(6.25e-5f, 3000, 0.002f);
    BOOST_TEST(s.warmup_iters == 6);
    BOOST_TEST(s.decay_iters == 3000);
    BOOST_TEST(s(5) == 6.25e-5f * 6 / 7, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(s(6) == 6.25e-5f);
    BOOST_TEST(s(1503) == 6.25e-5f / 2, boost::test_tools::tolerance(1e-5f));
    BOOST_TEST(s(3000) == 0.0f);
    BOOST_TEST(finetune_schedule(1e-3f, 150, 0.002f).warmup_iters == 1);
    BOOST_TEST(gpt1_finetune_defaults::lr == 6.25e-5f);
    BOOST_TEST(gpt1_finetune_defaults::batch == 32);
    BOOST_TEST(gpt1_finetune_defaults::epochs == 3);
}

BOOST_AUTO_TEST_CASE(fine_tuning_learns_a_pattern_through_the_trainer) {
    // Class 1 iff token 1 occurs: read at the extract token, so attention must find it.
    using model_t = transformer<shape{32, 4, 2, norm::post}>;
    static_assert(objective<finetune_objective<model_t>, model_t>);
    model_t m({11, 12});
    m.init(6);
    finetune_objective<model_t> obj({finetune_form::classify, 2, 0.5f, 0.1f, 8});
    adamw<float> opt(
        m.params(),
        {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f});
    trainer tr(m, obj, opt, {.grad_accum = 1, .grad_clip = 1.0f, .lr = [](int) { return 3e-3f; }});
    rng r(7);
    const task_token_ids t8 = task_tokens_after(8);
    auto make = [&](int M) {
        std::vector<finetune_example> ex;
        for (int i = 0; i < M; ++i) {
            std::vector<int> text(6);
            for (auto& x : text)
                x = 2 + int(r.below(6));
            const int y = int(r.below(2));
            if (y)
                text[r.below(6)] = 1;
            ex.push_back({{classification_input(t8, text, 12)}, y});
        }
        return ex;
    };
    for (int i = 0; i < 150; ++i) {
        auto ex = make(16);
        const auto s = tr.step([&](int) { return finetune_batch{ex.data(), 16}; });
        if (i == 149)
            BOOST_TEST_MESSAGE("last step: loss " << s.loss << ", task loss " << obj.task_loss());
    }
    const auto test = make(200);
    const auto& pred = obj.predict(m, {test.data(), 200});
    int right = 0;
    for (int i = 0; i < 200; ++i)
        right += pred[i] == test[i].label;
    BOOST_TEST_MESSAGE("fine-tuned accuracy " << right << "/200");
    BOOST_TEST(right >= 180);
    BOOST_TEST(tr.head_optimizer().step_count() == 150);
}

BOOST_AUTO_TEST_SUITE_END()
