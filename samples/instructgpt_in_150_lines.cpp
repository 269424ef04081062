// samples/instructgpt_in_150_lines.cpp: InstructGPT's three steps on a toy task world, top to
// bottom: pre-train, SFT on demonstrations, a reward model on ranked samples, PPO against it, and
// the PPO model's win rate over SFT as judged by a programmatic labeler (the "human").
// Tested by tests/samples/check_story.cmake (run from samples/CMakeLists.txt). `gptx pipeline` is
// the full-size version.
// Usage: instructgpt_in_150_lines [pretrain_steps=600] [ppo_iters=30] [prompts=400]
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <gptx/gptx.hpp>

#include "instructgpt/labeling.hpp" // the labeler's work: comparisons, scores
#include "tasks/tasks.hpp"          // the toy task world: instructions and answers

using namespace gptx;
using namespace gptx::tasks;
using namespace gptx::instructgpt;

constexpr shape S = presets::baby; // a small GPT-2 style shape
using model_t = transformer<S>;

int main(int argc, char** argv) try {
    const int pretrain_steps = argc > 1 ? std::atoi(argv[1]) : 600;
    const int ppo_iters = argc > 2 ? std::atoi(argv[2]) : 30;
    const int n = argc > 3 ? std::atoi(argv[3]) : 400; // prompts per stage
    GPTX_CHECK(pretrain_steps > 0 && ppo_iters > 0 && n >= 8,
               "sizes must be positive, and prompts at least 8");
    const int T = 64, max_new = 20;

    // ---- 0. Pre-training: a character model of text that mentions the tasks ---------------
    const std::string corpus = make_pretraining_corpus(1, 200000);
    const tokenizer tok = make_tokenizer("char", corpus);
    const int eot = tok.vocab_size(); // one id past the characters ends every response
    const model_config cfg{tok.vocab_size() + 1, T};
    model_t sft(cfg);
    sft.init(1);
    {
        lm_objective<model_t> obj;
        adamw<float> opt(sft.params(), {.lr = 1e-3f, .beta2 = 0.99f});
        trainer tr(sft, obj, opt, {.lr = cosine_schedule{1e-3f, 1e-4f, 20, pretrain_steps}});
        batcher data(tok.encode(corpus), 16, T, rng(2));
        std::vector<int> x(16 * T), y(16 * T);
        for (int i = 0; i < pretrain_steps; ++i)
            tr.step([&](int) {
                data.next(x.data(), y.data());
                return lm_batch{x.data(), y.data(), nullptr, 16, T};
            });
    }

    // Every set from one distribution: held-out sets distinct and disjoint, training sets iid
    // draws outside them (tasks.hpp says why).
    task_splits splits(1);
    const auto rm_val_tasks = splits.held_out(12, n / 4), eval_tasks = splits.held_out(14, n / 2);
    const auto demo_tasks = splits.training(10, n), rm_tasks = splits.training(11, n),
               ppo_tasks = splits.training(13, n);

    // ---- 1. SFT: imitate demonstrations (the correct answer, half of them padded) ----------
    std::vector<sft_example> demos;
    rng r(3);
    for (const auto& t : demo_tasks)
        demos.push_back(
            {task_prompt(t.instruction), demonstration_response(t, r, 0.5, max_new - 1)});
    const auto demo_tokens = tokenize_sft(demos, tok);
    adamw<float> sft_opt(sft.params(), {.lr = 3e-4f, .beta2 = 0.95f, .weight_decay = 0.0f});
    sft_batches sft_data(demo_tokens, 16, T, eot, 4);
    sft_hooks<model_t> hooks;
    hooks.run.quiet = true; // no progress lines
    run_sft(sft, sft_opt, sft_data, {.epochs = 2, .lr = 3e-4f, .min_lr = 3e-5f}, hooks);

    // ---- 2. Reward model: the labeler ranks K = 4 SFT samples per prompt, best first --------
    // (two of the four sampled hot, at temperature 2, so the RM also sees PPO's likely mistakes)
    auto comparisons = [&](const std::vector<task>& ts, std::uint64_t seed) {
        return tokenize_for_rm(
            make_comparisons(sft, tok, prompts_of(ts), 4, max_new, eot, seed, 2, 2.0f), tok, eot,
            T);
    };
    const auto rm_train = comparisons(rm_tasks, 20), rm_val = comparisons(rm_val_tasks, 30);
    reward_model<S> rm(cfg);
    rm.init(5);
    copy_params(rm.trunk(), sft); // the RM starts from the SFT model
    adamw<float> rm_opt(rm.trunk().params(), {.lr = 2e-4f, .beta2 = 0.95f, .weight_decay = 0});
    const double rm_accuracy = train_reward_model(rm, rm_opt, rm_train, rm_val, eot,
                                                  {.epochs = 2, .lr = 2e-4f, .seed = 6}, hooks.run)
                                   .accuracy;
    std::printf("reward model: held-out pairwise accuracy %.3f (%zu pairs)\n", rm_accuracy,
                rm_val.pairs());

    // ---- 3. PPO: maximise the RM's score, minus a KL penalty to the SFT model ---------------
    const auto ppo_prompts = prompt_tokens(tok, prompts_of(ppo_tasks), eot);
    ppo_models<S> m(sft, rm); // policy and reference from SFT, the value trunk from the RM
    ppo_trainer<model_t> ppo(m.policy, m.reference, m.value, rm.head(), reward_of(rm), ppo_prompts,
                             {.end_of_text = eot,
                              .rollouts = 64,
                              .max_new_tokens = max_new,
                              .minibatch = 16,
                              .lr = 1e-5f,
                              .value_lr = 2e-5f,
                              .kl_coef = 0.1});
    for (int i = 0; i < ppo_iters; ++i) {
        const ppo_metrics pm = ppo.iteration();
        if (pm.iteration % 10 == 0 || pm.iteration == ppo_iters)
            std::printf("ppo %lld: score %.3f, kl %.4f\n", (long long)pm.iteration, pm.score,
                        pm.kl);
    }

    // ---- Evaluation: the labeler compares PPO's and SFT's answers to held-out prompts -------
    const auto eval_prompts = prompts_of(eval_tasks);
    const auto eval_tokens = prompt_tokens(tok, eval_prompts, eot);
    const sampling_config at1{1.0f, 0, 1.0f, 40};
    const labelled l_sft =
        label_responses(eval_prompts, sample_responses(sft, eval_tokens, max_new, at1, eot), tok);
    const labelled l_ppo = label_responses(
        eval_prompts, sample_responses(m.policy, eval_tokens, max_new, at1, eot), tok);
    win_rate w;
    for (std::size_t i = 0; i < eval_prompts.size(); ++i)
        w.add(l_ppo.scores[i], l_sft.scores[i]);
    std::printf("labeler mean score: SFT %.3f, PPO %.3f; exact answers: SFT %.3f, PPO %.3f\n",
                l_sft.mean, l_ppo.mean, l_sft.exact, l_ppo.exact);
    const auto rate = w.rate();
    std::printf("PPO win rate over SFT: %.3f [%.3f, %.3f] (%zu wins, %zu ties, %zu losses)\n",
                rate.p, rate.low, rate.high, w.wins, w.ties, w.losses);
} catch (const gptx::error& e) {
    std::fprintf(stderr, "instructgpt_in_150_lines: %s\n", e.what());
    return 1;
}
