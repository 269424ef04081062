// samples/instructgpt/pipeline.hpp: InstructGPT end to end on the task family, as a function:
// pre-training -> SFT -> reward model -> the methods (PPO, PPO-ptx, DPO, GRPO, RLOO, each from the
// same SFT model) (then the dialogue stage), judged by the programmatic labeler, ending with a
// table row per method. `gptx pipeline` parses its options into pipeline_options and calls
// run_pipeline. Tested by tests/cli/test_sft_cli.cpp (--quick).
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include <gptx/gptx.hpp>

#include "dialogue_stage.hpp" // dialogue stage (issue #7)
#include "labeling.hpp"

namespace gptx::instructgpt {

namespace fs = std::filesystem;

struct pipeline_options {
    std::string out = "pipeline-out";
    std::string pretrained; // an earlier run's pretrain.gptx: skip pre-training
    std::uint64_t seed = 1;
    bool json = false, quick = false;
    int context = 64, max_new = 20;
    int corpus_chars = 1500000, pretrain_iters = 5000, pretrain_batch = 16;
    float pretrain_lr = 1e-3f;
    int sft_examples = 12000, sft_epochs = 2, sft_batch = 16, sft_select_prompts = 128;
    // Half the demonstrations trail their answer with padding the labeler dislikes: imitation
    // copies it, comparisons teach otherwise (docs/pipeline.md; 0 gives clean demonstrations).
    double demo_padded = 0.5;
    float sft_lr = 3e-4f;
    int rm_prompts = 12000, rm_val_prompts = 300, rm_k = 4, rm_batch = 8;
    int rm_hot = 2; // of the K responses, this many sampled at rm_hot_temperature
    float rm_hot_temperature = 2.0f;
    double rm_epochs = 2;
    float rm_lr = 2e-4f;
    int ppo_prompts = 2000, ppo_iters = 60, rollouts = 256, ppo_minibatch = 64, ppo_epochs = 4;
    float ppo_lr = 1e-5f;
    // beta: InstructGPT's 0.02 is relative to its RM's scale; the RM of clean demonstrations
    // spread SFT samples' rewards over about +-8, and at 0.02 PPO drifted into what it misjudged
    // (docs/pipeline.md).
    double kl_coef = 0.1, ptx_coef = 1.0, gae_lambda = 0.95;
    float value_lr = 1e-4f; // 0: twice the policy's
    int value_warmup = 10;
    // Iterated RLHF (InstructGPT, ChatGPT): PPO's iterations split over this many rounds; before
    // each round after the first, the RM continues training on comparisons of the current
    // policy's samples (round_rm_prompts prompts, K each) added to those so far.
    int rlhf_rounds = 1, round_rm_prompts = 3000;
    double oracle_reward = 0; // > 0: PPO's reward is this times the labeler's score, not the RM's
    // The methods after SFT, each a row of the table (parse_methods lists them). All five with
    // the dialogue stage took 18 min 51 s on a 2-core AMD EPYC Zen 5, within the 20-minute
    // budget (docs/pipeline.md has each stage's time).
    std::string methods = "ppo,ppo-ptx,dpo,grpo,rloo";
    // DPO on the RM's comparisons, from SFT with SFT as the reference; PPO's learning rate.
    double dpo_beta = 0.1, dpo_epochs = 1;
    float dpo_lr = 1e-5f;
    // GRPO and RLOO: --rollouts per iteration as rollouts / group prompts x group responses, with
    // PPO's iterations, epochs, minibatch and learning rate; the k3 KL coefficient is
    // DeepSeekMath's.
    int group_size = 4;
    double grpo_kl_coef = 0.04;
    // Train nothing: load pretrain.gptx, sft.gptx and each method's checkpoint from `out` (a
    // stage run elsewhere, e.g. by gptx dpo, copied there) and print the table.
    bool evaluate_only = false;
    int eval_prompts = 300;
    float eval_temperature = 1.0f;
    int dialogue_rm_conversations = 0; // 0: the dialogue stage's default
    bool no_dialogue = false;          // stop after the InstructGPT stages

    float value_lr_or_default() const { return value_lr > 0 ? value_lr : 2 * ppo_lr; }
};

// The dialogue stage's sizes and PPO settings follow the pipeline's options where they have a
// counterpart.
inline dialogue_sizes dialogue_sizes_for(const pipeline_options& o) {
    dialogue_sizes d = o.quick ? quick_dialogue_sizes() : dialogue_sizes{};
    d.sft_epochs = o.sft_epochs;
    d.ppo_iters = o.ppo_iters;
    d.rollouts = o.rollouts;
    d.ppo_minibatch = o.ppo_minibatch; // the same number of updates per iteration
    d.ppo_epochs = o.ppo_epochs;
    d.rm_hot = o.rm_hot;
    d.rm_hot_temperature = o.rm_hot_temperature;
    d.eval_conversations = o.eval_prompts;
    if (o.dialogue_rm_conversations > 0)
        d.rm_conversations = o.dialogue_rm_conversations;
    d.ppo_lr = o.ppo_lr;
    d.value_lr = o.value_lr_or_default();
    d.value_warmup = o.value_warmup;
    d.kl_coef = o.kl_coef;
    d.ptx_coef = o.ptx_coef;
    return d;
}

namespace detail {

inline constexpr shape pipeline_shape = presets::baby;
using pipeline_model = transformer<pipeline_shape>;

// Wall time, and the process's CPU time (all threads): on a busy machine the CPU time / threads
// is what the run would take alone.
struct stage_clock {
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now(), last = t0;
    std::clock_t c0 = std::clock(), clast = c0;
    double lap_cpu = 0;
    double lap() {
        const auto now = std::chrono::steady_clock::now();
        const double s = std::chrono::duration<double>(now - last).count();
        last = now;
        const std::clock_t c = std::clock();
        lap_cpu = double(c - clast) / CLOCKS_PER_SEC;
        clast = c;
        return s;
    }
    double cpu() const { return double(std::clock() - c0) / CLOCKS_PER_SEC; }
    double total() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
};

inline void apply_quick(pipeline_options& o) {
    o.corpus_chars = 60000;
    o.pretrain_iters = 60;
    o.sft_examples = 64;
    o.sft_epochs = 1;
    o.sft_select_prompts = 16;
    o.rm_prompts = 32;
    o.rm_val_prompts = 16;
    o.rm_epochs = 1;
    o.ppo_prompts = 64;
    o.ppo_iters = 2;
    o.rollouts = 16;
    o.ppo_minibatch = 8;
    o.value_warmup = 0;
    o.eval_prompts = 24;
}

// The methods `--methods` may name, in the order the pipeline runs and prints them.
inline const std::vector<std::string>& all_methods() {
    static const std::vector<std::string> m{"ppo", "ppo-ptx", "dpo", "grpo", "rloo"};
    return m;
}
inline std::vector<std::string> parse_methods(const std::string& list) {
    std::vector<std::string> named;
    if (list == "none") // SFT (and the dialogue stage) only
        return named;
    for (std::size_t at = 0; at <= list.size();) {
        const std::size_t comma = std::min(list.find(',', at), list.size());
        const std::string m = list.substr(at, comma - at);
        GPTX_CHECK(std::find(all_methods().begin(), all_methods().end(), m) != all_methods().end(),
                   "--methods: unknown method '", m,
                   "' (choose from ppo, ppo-ptx, dpo, grpo, rloo, or none alone)");
        named.push_back(m);
        at = comma + 1;
    }
    std::vector<std::string> out; // the canonical order, each once
    for (const auto& m : all_methods())
        if (std::find(named.begin(), named.end(), m) != named.end())
            out.push_back(m);
    return out;
}

// What the labeler thinks of the rollouts the reward function scored since the last reset:
// the over-optimisation curve's gold score (Gao et al. 2022) beside the RM's.
struct reward_tally {
    double labeler = 0, rm = 0;
    std::size_t n = 0;
    void reset() { *this = {}; }
    double labeler_mean() const { return n ? labeler / double(n) : 0.0; }
    double rm_mean() const { return n ? rm / double(n) : 0.0; }
};

// The reward of PPO, GRPO and RLOO: the reward model, or with --oracle-reward the labeler itself.
// Every scored response is also labelled into `tally` (when given).
inline reward_fn pipeline_reward(const pipeline_options& o, reward_model<pipeline_shape>& rm,
                                 const tokenizer& tok, reward_tally* tally = nullptr) {
    return [&o, &rm, &tok, tally](const int* tokens, int B, int Tn, const int* ends) {
        std::vector<float> gold(B);
        if (o.oracle_reward > 0 || tally) {
            // Row b: end-of-text, prompt, response, end-of-text at ends[b]. A response that
            // hit the length cap did not end.
            const labeler lab;
            for (int b = 0; b < B; ++b) {
                const int* row = tokens + std::size_t(b) * Tn;
                const std::string text = tok.decode(std::vector<int>(row + 1, row + ends[b]));
                const auto at = text.find("\nA: ");
                const std::string prompt = text.substr(0, at + 4), resp = text.substr(at + 4);
                const bool ended = int(resp.size()) < o.max_new;
                gold[b] = float(lab.score(prompt, resp, ended));
            }
        }
        std::vector<float> out;
        if (o.oracle_reward > 0)
            for (float g : gold)
                out.push_back(float(o.oracle_reward * g));
        else
            out = rm.score(tokens, B, Tn, ends);
        if (tally)
            for (int b = 0; b < B; ++b) {
                tally->labeler += gold[b];
                tally->rm += out[b];
                ++tally->n;
            }
        return out;
    };
}

// o.ppo_iters iterations of an RL trainer (PPO, GRPO, RLOO) with a progress bar, a metrics line
// per iteration and a printed line at every tenth; fields(m) names what both show.
// With a tally, each line also has the labeler's mean on the iteration's rollouts. A later
// round of iterated RLHF appends to the file, numbering its iterations on from `done`.
struct iteration_log {
    int iters = -1; // -1: o.ppo_iters
    reward_tally* tally = nullptr;
    int done = 0;   // iterations of earlier rounds
    int total = -1; // of all rounds, for the printed lines; -1: iters
};
template <class Trainer, class Fields>
void run_iterations(const pipeline_options& o, Trainer& tr, const char* name,
                    const fs::path& metrics_file, Fields&& fields, iteration_log log = {}) {
    const int iters = log.iters < 0 ? o.ppo_iters : log.iters;
    const int total = log.total < 0 ? iters : log.total;
    std::ofstream metrics(metrics_file, log.done > 0 ? std::ios::app : std::ios::trunc);
    progress bar(name, iters, {.unit = "iter"});
    for (int it = 0; it < iters; ++it) {
        if (log.tally)
            log.tally->reset();
        const auto m = tr.iteration();
        bar.update(it + 1);
        metrics_map shown = fields(m);
        if (log.tally)
            shown.emplace_back("labeler", log.tally->labeler_mean());
        const std::int64_t iteration = log.done + m.iteration;
        metrics_map line{{"iteration", double(iteration)}};
        line.insert(line.end(), shown.begin(), shown.end());
        line.emplace_back("ms", m.ms);
        metrics << gptx::detail::json_line(line) << "\n";
        if (iteration % std::max(1, total / 10) == 0 || iteration == 1) {
            progress::clear_line();
            std::printf("%s %lld/%d", name, static_cast<long long>(iteration), total);
            for (const auto& [k, v] : shown)
                std::printf(" | %s %.4g", k.c_str(), v);
            std::printf(" | %.0f ms\n", m.ms);
        }
        std::fflush(stdout);
    }
}

// The reward model's held-out pairwise accuracy on comparisons of `model`'s own samples (K at
// temperature 1 to each prompt, ranked by the labeler): how well the RM judges what a policy
// writes now, rather than what SFT wrote when the RM was trained.
inline std::optional<reward_eval>
rm_on_samples_of(const pipeline_options& o, const pipeline_model& model,
                 reward_model<pipeline_shape>& rm, const tokenizer& tok,
                 const std::vector<std::string>& prompts, std::uint64_t seed) {
    const int eot = tok.vocab_size();
    const auto cmp = tokenize_for_rm(
        make_comparisons(model, tok, prompts, o.rm_k, o.max_new, eot, seed), tok, eot, o.context);
    if (cmp.groups.empty())
        return std::nullopt; // every prompt's samples tied: nothing to rank
    reward_objective obj(rm);
    return evaluate_rewards(rm.trunk(), obj, cmp, o.rm_batch, eot);
}

// What iterated RLHF's later rounds need from the RM stage.
struct rlhf_data {
    const tokenized_comparisons* rm_train = nullptr; // the SFT samples' comparisons
    std::vector<std::string> rm_prompts, rm_val_prompts;
    std::vector<std::vector<int>> demo_seqs; // the RM's bias keeps these at mean 0
};

struct ppo_stage_result {
    std::unique_ptr<pipeline_model> policy;
    // Per round: the RM's accuracy on the policy's samples at the round's end, before any
    // retraining (nullopt: all tied), and, from round 2, after retraining at its start.
    std::vector<std::optional<reward_eval>> rm_on_policy, rm_on_policy_retrained;
};

// PPO (ptx_coef 0) or PPO-ptx from the SFT model against the reward model (or, with
// --oracle-reward, the labeler itself), one metrics line per iteration in dir/metrics_file, with
// the labeler's mean on the rollouts beside the RM's. With o.rlhf_rounds > 1 (iterated RLHF),
// the iterations are split over the rounds; before each later round a copy of the RM continues
// training on comparisons of the current policy's samples added to all earlier ones, and PPO
// continues from the current policy and critic against it.
inline ppo_stage_result ppo_stage(const pipeline_options& o, pipeline_model& sft,
                                  const reward_model<pipeline_shape>& rm0, const tokenizer& tok,
                                  const std::vector<std::vector<int>>& ppo_prompt_tokens,
                                  const std::vector<int>& ptx_tokens, double ptx_coef,
                                  const char* name, const fs::path& metrics_file,
                                  const rlhf_data& data) {
    using model_t = pipeline_model;
    const model_config cfg = sft.config();
    const int T = o.context, eot = tok.vocab_size();
    const int rounds = std::max(1, o.rlhf_rounds);
    GPTX_CHECK(rounds <= o.ppo_iters, "--rlhf-rounds ", rounds, " exceeds --ppo-iters ",
               o.ppo_iters, " (every round needs an iteration)");
    GPTX_CHECK(rounds == 1 || !data.rm_prompts.empty(), "iterated RLHF needs RM prompts");
    ppo_stage_result res;
    res.policy = std::make_unique<model_t>(cfg);
    model_t& policy = *res.policy;
    copy_params(policy, sft);
    auto copy_head = [](linear_head<float>& dst, const linear_head<float>& src) {
        std::copy(src.params().data(), src.params().data() + src.params().size(),
                  dst.params().data());
    };
    reward_model<pipeline_shape> rm(cfg); // this method's RM: later rounds retrain it
    copy_params(rm.trunk(), rm0.trunk());
    copy_head(rm.head(), rm0.head());
    model_t value(cfg);
    copy_params(value, rm.trunk());
    linear_head<float> value_head(pipeline_model::C, 1);
    copy_head(value_head, rm.head());
    tokenized_comparisons seen; // every comparison the RM has trained on (rounds > 1)
    if (rounds > 1)
        seen = *data.rm_train;
    reward_tally tally;
    int done = 0;
    for (int round = 1; round <= rounds; ++round) {
        const int iters = o.ppo_iters * round / rounds - o.ppo_iters * (round - 1) / rounds;
        if (round > 1) {
            const std::uint64_t salt = std::uint64_t(round) * 1000;
            // Each round ranks the policy's samples on the next round_rm_prompts RM prompts.
            const std::size_t have = data.rm_prompts.size(),
                              n = std::min(have, std::size_t(o.round_rm_prompts));
            std::vector<std::string> prompts;
            for (std::size_t i = 0; i < n; ++i)
                prompts.push_back(data.rm_prompts[(std::size_t(round - 2) * n + i) % have]);
            const auto fresh =
                tokenize_for_rm(make_comparisons(policy, tok, prompts, o.rm_k, o.max_new, eot,
                                                 o.seed + salt, o.rm_hot, o.rm_hot_temperature),
                                tok, eot, T);
            const auto val = tokenize_for_rm(
                make_comparisons(policy, tok, data.rm_val_prompts, o.rm_k, o.max_new, eot,
                                 o.seed + salt + 1, o.rm_hot, o.rm_hot_temperature),
                tok, eot, T);
            GPTX_CHECK(!fresh.groups.empty() && !val.groups.empty(), name, " round ", round,
                       ": the policy's samples gave no comparisons (every response tied)");
            seen.groups.insert(seen.groups.end(), fresh.groups.begin(), fresh.groups.end());
            adamw<float> opt(rm.trunk().params(), {o.rm_lr, 0.9f, 0.95f, 1e-8f, 0.0f});
            run_options ro;
            ro.progress_label = "rm round";
            ro.checkpoint_name = "(none)";
            const reward_eval e = train_reward_model(
                rm, opt, seen, val, eot,
                {.epochs = 1, .batch = o.rm_batch, .lr = o.rm_lr, .seed = o.seed + salt + 2}, ro);
            normalize_reward_bias(rm, data.demo_seqs, eot);
            res.rm_on_policy_retrained.push_back(
                rm_on_samples_of(o, policy, rm, tok, data.rm_val_prompts, o.seed + salt + 3));
            progress::clear_line();
            std::printf("%s round %d: RM retrained on %zu new comparisons of the policy's samples "
                        "(%zu in all); held-out accuracy %.3f on the policy's samples (with "
                        "hot ones), %.3f on its temperature-1 samples\n",
                        name, round, fresh.groups.size(), seen.groups.size(), e.accuracy,
                        res.rm_on_policy_retrained.back()
                            ? res.rm_on_policy_retrained.back()->accuracy
                            : 0.0);
        }
        ppo_config pc;
        pc.end_of_text = eot;
        pc.rollouts = o.rollouts;
        pc.max_new_tokens = o.max_new;
        pc.epochs = o.ppo_epochs;
        pc.minibatch = o.ppo_minibatch;
        pc.lr = o.ppo_lr;
        pc.value_lr = o.value_lr_or_default();
        pc.value_warmup = std::max(0, o.value_warmup - done); // later rounds keep their critic
        pc.kl_coef = o.kl_coef;
        pc.lambda = o.gae_lambda;
        pc.ptx_coef = ptx_coef;
        pc.ptx_batch = 4;
        pc.ptx_context = T;
        pc.seed = o.seed + 8 + std::uint64_t(round - 1) * 977;
        ppo_trainer<model_t> ppo(policy, sft, value, value_head,
                                 pipeline_reward(o, rm, tok, &tally), ppo_prompt_tokens, pc,
                                 ptx_coef != 0.0 ? ptx_tokens : std::vector<int>{});
        run_iterations(o, ppo, name, metrics_file,
                       [](const ppo_metrics& m) {
                           return metrics_map{{"score", m.score},
                                              {"kl", m.kl},
                                              {"kl_seq", m.kl_seq},
                                              {"kl_exact", m.kl_exact},
                                              {"entropy", m.entropy},
                                              {"clip_frac", m.clip_frac},
                                              {"value_loss", m.value_loss},
                                              {"explained_variance", m.explained_variance},
                                              {"ptx_loss", m.ptx_loss},
                                              {"response_length", m.response_length},
                                              {"skipped", double(m.skipped)}};
                       },
                       {.iters = iters, .tally = &tally, .done = done, .total = o.ppo_iters});
        done += iters;
        copy_head(value_head, ppo.value_head());
        res.rm_on_policy.push_back(rm_on_samples_of(o, policy, rm, tok, data.rm_val_prompts,
                                                    o.seed + 4000 + std::uint64_t(round)));
    }
    return res;
}

// DPO from the SFT model, which is also the reference (its log-probabilities computed once), on
// the RM's comparisons; the held-out comparisons report the implicit rewards.
inline std::unique_ptr<pipeline_model> dpo_stage(const pipeline_options& o, pipeline_model& sft,
                                                 const tokenized_comparisons& train,
                                                 const tokenized_comparisons& val, int eot,
                                                 const fs::path& metrics_file) {
    using model_t = pipeline_model;
    auto policy = std::make_unique<model_t>(sft.config());
    copy_params(*policy, sft);
    const auto ref_train = reference_logprobs(sft, train, o.rm_batch, eot);
    const auto ref_val = reference_logprobs(sft, val, o.rm_batch, eot);
    dpo_batcher batches(train, ref_train, o.rm_batch, eot, o.seed + 10);
    dpo_batcher val_batches(val, ref_val, o.rm_batch, eot);
    dpo_objective<model_t> obj(o.dpo_beta);
    adamw<float> opt(policy->params(), {o.dpo_lr, 0.9f, 0.95f, 1e-8f, 0.0f});
    trainer tr(*policy, obj, opt, {1, 1.0f, [lr = o.dpo_lr](int) { return lr; }});
    run_options ro;
    ro.iters = std::max<std::int64_t>(1, batches.steps_for_epochs(o.dpo_epochs));
    ro.eval_every = int(std::max<std::int64_t>(1, ro.iters / 4));
    ro.log_every = int(std::max<std::int64_t>(1, ro.iters / 10));
    ro.metrics = metrics_file;
    ro.progress_label = "dpo";
    ro.checkpoint_name = "(none)";
    run_hooks hooks;
    hooks.evaluate = [&](std::int64_t) {
        const dpo_stats s = evaluate_dpo(*policy, obj, val_batches, o.rm_batch);
        return metrics_map{{"val_loss", s.loss},
                           {"val_margin", s.margin},
                           {"val_chosen_reward", s.chosen_reward},
                           {"val_rejected_reward", s.rejected_reward},
                           {"val_accuracy", s.accuracy}};
    };
    run_training(
        tr, ro, [&](int) { return batches.batch(tr.step_count()); }, hooks);
    return policy;
}

// GRPO (group baseline) or RLOO (leave-one-out) from the SFT model against the same reward as
// PPO, with PPO's iterations, rollouts per iteration, epochs, minibatch and learning rate. Both
// use one seed, so they draw the same prompts and differ only in the baseline.
inline std::unique_ptr<pipeline_model>
group_stage(const pipeline_options& o, pipeline_model& sft, reward_model<pipeline_shape>& rm,
            const tokenizer& tok, const std::vector<std::vector<int>>& prompts,
            group_baseline baseline, const char* name, const fs::path& metrics_file) {
    using model_t = pipeline_model;
    auto policy = std::make_unique<model_t>(sft.config());
    copy_params(*policy, sft);
    const grpo_config gc{.end_of_text = tok.vocab_size(),
                         .prompts = std::max(1, o.rollouts / o.group_size),
                         .group_size = o.group_size,
                         .max_new_tokens = o.max_new,
                         .epochs = o.ppo_epochs,
                         .minibatch = o.ppo_minibatch,
                         .lr = o.ppo_lr,
                         .kl_coef = o.grpo_kl_coef,
                         .baseline = baseline,
                         .seed = o.seed + 11};
    reward_tally tally;
    grpo_trainer<model_t> tr(*policy, sft, pipeline_reward(o, rm, tok, &tally), prompts, gc);
    run_iterations(o, tr, name, metrics_file,
                   [](const grpo_metrics& m) {
                       return metrics_map{{"score", m.score},
                                          {"kl", m.kl},
                                          {"kl_exact", m.kl_exact},
                                          {"kl_k3", m.kl_k3},
                                          {"kl_seq", m.kl * m.response_length}, // per response
                                          {"entropy", m.entropy},
                                          {"clip_frac", m.clip_frac},
                                          {"flat_groups", m.flat_groups},
                                          {"policy_loss", m.policy_loss},
                                          {"response_length", m.response_length},
                                          {"skipped", double(m.skipped)}};
                   },
                   {.tally = &tally});
    return policy;
}

} // namespace detail

inline void run_pipeline(pipeline_options o) {
    using namespace detail;
    using model_t = pipeline_model;
    if (o.quick)
        apply_quick(o);
    GPTX_CHECK(o.pretrain_iters > 0 && o.sft_epochs > 0 && o.ppo_iters > 0 && o.rollouts > 0 &&
                   o.eval_prompts > 0 && o.rm_epochs > 0,
               "pipeline: sizes must be positive");
    const std::vector<std::string> methods = parse_methods(o.methods);
    GPTX_CHECK(o.group_size >= 2, "--group-size must be at least 2, got ", o.group_size);
    GPTX_CHECK(o.dpo_beta > 0 && o.dpo_epochs > 0 && o.dpo_lr > 0,
               "--dpo-beta, --dpo-epochs and --dpo-lr must be positive");
    // DPO alone needs comparisons but no reward model.
    const bool need_rm =
        !o.evaluate_only && std::any_of(methods.begin(), methods.end(),
                                        [](const std::string& m) { return m != "dpo"; });
    const fs::path dir = o.out;
    fs::create_directories(dir);
    if (o.evaluate_only)
        o.pretrained = (dir / "pretrain.gptx").string();
    for (const char* f :
         {"pretrain_metrics.jsonl", "sft_metrics.jsonl", "rm_metrics.jsonl", "ppo_metrics.jsonl",
          "ppo_ptx_metrics.jsonl", "dpo_metrics.jsonl", "grpo_metrics.jsonl", "rloo_metrics.jsonl"})
        if (!o.evaluate_only)
            fs::remove(dir / f);
    stage_clock clock;
    const int T = o.context;
    // Stages differ too much in length for a time left; each stage's own bar shows inside.
    progress stages("pipeline", 5 + std::int64_t(methods.size()) + (o.no_dialogue ? 0 : 1),
                    {.unit = "stage", .eta = false});
    auto say = [&](const char* stage, double secs) {
        stages.advance();
        progress::clear_line();
        std::printf("== %s done in %.1f s, %.1f CPU s (total %.1f s, %.1f CPU s)\n", stage, secs,
                    clock.lap_cpu, clock.total(), clock.cpu());
        std::fflush(stdout);
    };

    // ---- data --------------------------------------------------------------------------------
    const std::string corpus = make_pretraining_corpus(o.seed, std::size_t(o.corpus_chars));
    const tokenizer tok = make_tokenizer("char", corpus);
    const int eot = tok.vocab_size(); // the model reserves one id past the characters
    const model_config cfg{tok.vocab_size() + 1, T};
    auto split = split_train_val(tok.encode(corpus), 0.1);
    {
        std::ofstream(dir / "corpus.txt", std::ios::binary) << corpus;
        write_token_file(dir / "pretrain_train.bin", split.train);
        write_token_file(dir / "pretrain_val.bin", split.val);
    }
    // Disjoint task sets: demonstrations, SFT selection, RM comparisons (train / held out), PPO
    // prompts, and the held-out evaluation prompts.
    std::unordered_set<std::string> used;
    auto take = [&](std::uint64_t salt, int n) {
        auto ts = make_tasks(mix64(o.seed ^ salt), n, used);
        for (const auto& t : ts)
            used.insert(t.instruction);
        return ts;
    };
    const auto eval_tasks = take(0xe7a1, o.eval_prompts);
    const auto demo_tasks = take(0x5f7, o.sft_examples);
    const auto select_tasks = take(0x5e1, o.sft_select_prompts);
    const auto rm_tasks = take(0x7a3, o.rm_prompts);
    const auto rm_val_tasks = take(0x7a4, o.rm_val_prompts);
    const auto ppo_tasks = take(0x990, o.ppo_prompts);
    // The response and its end-of-text fit in max_new tokens.
    write_demonstrations_jsonl(dir / "sft.jsonl", demo_tasks, o.demo_padded,
                               std::size_t(o.max_new - 1), mix64(o.seed ^ 0x5f8));
    write_prompts_jsonl(dir / "rm_prompts.jsonl", prompts_of(rm_tasks));
    write_prompts_jsonl(dir / "ppo_prompts.jsonl", prompts_of(ppo_tasks));
    write_prompts_jsonl(dir / "eval_prompts.jsonl", prompts_of(eval_tasks));
    std::printf("gptx pipeline: %s, vocab %d (+ end-of-text), context %d, %d threads\n",
                to_string(pipeline_shape).c_str(), tok.vocab_size(), T, num_threads());
    std::printf("data: %zu pre-training tokens (%zu val), %zu demonstrations (%.0f%% padded), %zu "
                "+ %zu RM prompts, %zu PPO prompts, %zu held-out evaluation prompts -> %s\n",
                split.train.size(), split.val.size(), demo_tasks.size(), 100 * o.demo_padded,
                rm_tasks.size(), rm_val_tasks.size(), ppo_tasks.size(), eval_tasks.size(),
                dir.string().c_str());
    clock.lap();

    // ---- pre-training -------------------------------------------------------------------------
    auto base = std::make_unique<model_t>(cfg);
    base->init(o.seed);
    auto val_loss = [&](model_t& m) { return lm_loss_on(m, split.val, 16, T, 20); };
    if (!o.pretrained.empty()) {
        tokenizer saved;
        load_checkpoint<pipeline_shape>(o.pretrained, *base, nullptr, &saved, nullptr);
        GPTX_CHECK(saved.vocab_size() == tok.vocab_size() &&
                       saved.decode(tok.encode(corpus.substr(0, 4096))) == corpus.substr(0, 4096),
                   o.pretrained, ": its tokenizer is not this run's (another seed or corpus?)");
        std::printf("pre-training skipped: parameters from %s\n", o.pretrained.c_str());
    } else {
        adamw<float> opt(base->params(), {o.pretrain_lr, 0.9f, 0.99f, 1e-8f, 0.1f});
        batcher data(split.train, o.pretrain_batch, T, rng(o.seed + 1));
        lm_objective<model_t> obj;
        const cosine_schedule sched{o.pretrain_lr, o.pretrain_lr / 10,
                                    std::min(100, o.pretrain_iters / 10), o.pretrain_iters};
        trainer tr(*base, obj, opt, {1, 1.0f, [sched](int it) { return sched(it); }});
        std::vector<int> x(std::size_t(o.pretrain_batch) * T), y(x.size());
        run_options ro;
        ro.iters = o.pretrain_iters;
        ro.eval_every = std::max(1, o.pretrain_iters / 4);
        ro.log_every = std::max(1, o.pretrain_iters / 10);
        ro.tokens_per_step = std::int64_t(x.size());
        ro.metrics = dir / "pretrain_metrics.jsonl";
        ro.progress_label = "pretrain";
        ro.checkpoint_name = (dir / "pretrain.gptx").string();
        run_hooks hooks;
        hooks.evaluate = [&](std::int64_t) { return metrics_map{{"val_loss", val_loss(*base)}}; };
        run_training(
            tr, ro,
            [&](int) {
                data.next(x.data(), y.data());
                return lm_batch{x.data(), y.data(), nullptr, o.pretrain_batch, T};
            },
            hooks);
        save_checkpoint<pipeline_shape>(dir / "pretrain.gptx", *base, nullptr, tok, {});
    }
    const double loss_pretrained = val_loss(*base);
    say("pre-training", clock.lap());

    // ---- SFT ----------------------------------------------------------------------------------
    auto sft = std::make_unique<model_t>(cfg);
    copy_params(*sft, *base);
    const auto demos = read_sft_jsonl(dir / "sft.jsonl");
    const auto demo_tokens = tokenize_sft(demos, tok, (dir / "sft.jsonl").string());
    const auto select_prompts = prompts_of(select_tasks);
    const auto select_tokens = prompt_tokens(tok, select_prompts, eot);
    if (o.evaluate_only) {
        load_checkpoint<pipeline_shape>(dir / "sft.gptx", *sft, nullptr, nullptr, nullptr);
    } else {
        adamw<float> opt(sft->params(), {o.sft_lr, 0.9f, 0.95f, 1e-8f, 0.0f});
        sft_batches data(demo_tokens, o.sft_batch, T, eot, o.seed + 2);
        sft_config sc{.epochs = o.sft_epochs, .lr = o.sft_lr, .min_lr = o.sft_lr / 10};
        std::vector<float> best;
        sft_hooks<model_t> hooks;
        // The paper selects by RM score; our stand-in for it is the labeler itself, on prompts
        // kept for selection only.
        hooks.score = [&](model_t& m) {
            const auto g = sample_responses(m, select_tokens, o.max_new, {1.0f, 0, 1.0f, 77}, eot);
            return label_responses(select_prompts, g, tok).mean;
        };
        hooks.on_best = [&](model_t& m, std::int64_t, double) {
            best.assign(m.params().data(), m.params().data() + m.num_parameters());
        };
        hooks.run.log_every = std::max(1, data.steps_per_epoch());
        hooks.run.metrics = dir / "sft_metrics.jsonl";
        hooks.run.progress_label = "sft";
        hooks.run.checkpoint_name = (dir / "sft.gptx").string();
        const sft_selection sel = run_sft(*sft, opt, data, sc, hooks);
        std::copy(best.begin(), best.end(), sft->params().data());
        progress::clear_line();
        std::printf("SFT: selected step %lld (labeler score %.3f on %zu selection prompts)\n",
                    static_cast<long long>(sel.best_step), sel.best_score, select_prompts.size());
        save_checkpoint<pipeline_shape>(dir / "sft.gptx", *sft, nullptr, tok, {});
    }
    say("SFT", clock.lap());

    // ---- comparisons and the reward model -------------------------------------------------------
    tokenized_comparisons rm_train, rm_val;
    if (!o.evaluate_only && !methods.empty()) {
        const auto rm_cmp = make_comparisons(*sft, tok, prompts_of(rm_tasks), o.rm_k, o.max_new,
                                             eot, o.seed + 3, o.rm_hot, o.rm_hot_temperature);
        const auto rm_val_cmp =
            make_comparisons(*sft, tok, prompts_of(rm_val_tasks), o.rm_k, o.max_new, eot,
                             o.seed + 4, o.rm_hot, o.rm_hot_temperature);
        write_comparisons(dir / "comparisons.jsonl", rm_cmp);
        write_comparisons(dir / "comparisons_val.jsonl", rm_val_cmp);
        GPTX_CHECK(!rm_cmp.empty() && !rm_val_cmp.empty(),
                   "pipeline: the SFT samples gave no comparisons (every response tied)");
        // Read back through the RM's reader: the files are the interface.
        // (tokenize_comparisons records where each response starts, which DPO needs.)
        rm_train = tokenize_comparisons(read_comparisons(dir / "comparisons.jsonl"), tok, eot, T,
                                        (dir / "comparisons.jsonl").string());
        rm_val = tokenize_comparisons(read_comparisons(dir / "comparisons_val.jsonl"), tok, eot, T,
                                      (dir / "comparisons_val.jsonl").string());
    }
    std::vector<std::vector<int>> demo_seqs; // the RM's bias keeps these at mean 0
    for (const auto& d : demo_tokens) {
        std::vector<int> p{eot};
        p.insert(p.end(), d.prompt.begin(), d.prompt.end());
        demo_seqs.push_back(reward_sequence(p, d.response, eot, T));
    }
    reward_model<pipeline_shape> rm(cfg);
    rm.init(o.seed + 5);
    copy_params(rm.trunk(), *sft);
    double rm_accuracy = 0;
    std::optional<double> rm_accuracy_t1; // with --rm-hot: on temperature-1 pairs only
    std::size_t rm_pairs_t1 = 0;
    if (need_rm) {
        adamw<float> opt(rm.trunk().params(), {o.rm_lr, 0.9f, 0.95f, 1e-8f, 0.0f});
        run_options ro;
        ro.metrics = dir / "rm_metrics.jsonl";
        ro.progress_label = "rm";
        ro.checkpoint_name = "(none)";
        rm_accuracy =
            train_reward_model(
                rm, opt, rm_train, rm_val, eot,
                {.epochs = o.rm_epochs, .batch = o.rm_batch, .lr = o.rm_lr, .seed = o.seed + 6}, ro)
                .accuracy;
        reward_objective obj(rm); // held-out evaluations below
        const double offset = normalize_reward_bias(rm, demo_seqs, eot);
        progress::clear_line();
        std::printf("RM: %zu train / %zu held-out pairs, held-out accuracy %.3f; bias shifted by "
                    "%.3f so the demonstrations average 0\n",
                    rm_train.pairs(), rm_val.pairs(), rm_accuracy, -offset);
        if (o.rm_hot > 0) {
            // The same held-out prompts ranked among temperature-1 responses only: the RM's
            // accuracy on the SFT model's own distribution.
            const auto plain = tokenize_for_rm(make_comparisons(*sft, tok, prompts_of(rm_val_tasks),
                                                                o.rm_k, o.max_new, eot, o.seed + 4),
                                               tok, eot, T);
            const auto e = evaluate_rewards(rm.trunk(), obj, plain, o.rm_batch, eot);
            rm_accuracy_t1 = e.accuracy;
            rm_pairs_t1 = plain.pairs();
            std::printf("RM: held-out accuracy %.3f on %zu pairs of temperature-1 responses only\n",
                        e.accuracy, plain.pairs());
        }
        const checkpoint_extra head[] = {
            {reward_model<pipeline_shape>::head_name, &rm.head().params(), nullptr}};
        save_checkpoint<pipeline_shape>(dir / "rm.gptx", rm.trunk(), nullptr, tok, {}, head);
    }
    say(need_rm ? "comparisons and reward model" : "comparisons (no method needs the RM)",
        clock.lap());

    // ---- the methods: PPO, PPO-ptx, DPO, GRPO, RLOO -------------------------------------------
    struct method_run {
        std::string name, label;
        std::unique_ptr<model_t> model;
        double seconds = 0, cpu_seconds = 0;
        std::vector<generation> gen;
        labelled lab;
        win_rate win;
        double kl = 0, val_loss = 0;
        // PPO: the RM's accuracy on the policy's own samples (per round; see ppo_stage).
        std::vector<std::optional<reward_eval>> rm_on_policy, rm_on_policy_retrained;
    };
    std::vector<method_run> runs;
    const auto ppo_prompt_tokens = prompt_tokens(tok, prompts_of(ppo_tasks), eot);
    rlhf_data rounds_data{&rm_train, prompts_of(rm_tasks), prompts_of(rm_val_tasks), demo_seqs};
    for (const std::string& m : methods) {
        method_run r;
        r.name = m;
        r.label = m == "ppo"       ? "PPO"
                  : m == "ppo-ptx" ? "PPO-ptx"
                  : m == "dpo"     ? "DPO"
                  : m == "grpo"    ? "GRPO"
                                   : "RLOO";
        std::string file = m + ".gptx";
        std::replace(file.begin(), file.end(), '-', '_'); // ppo_ptx.gptx, as before
        if (o.evaluate_only) {
            r.model = std::make_unique<model_t>(cfg);
            load_checkpoint<pipeline_shape>(dir / file, *r.model, nullptr, nullptr, nullptr);
            runs.push_back(std::move(r));
            continue;
        }
        if (m == "ppo" || m == "ppo-ptx") {
            const bool ptx = m == "ppo-ptx";
            auto st = ppo_stage(
                o, *sft, rm, tok, ppo_prompt_tokens, split.train, ptx ? o.ptx_coef : 0.0, m.c_str(),
                dir / (ptx ? "ppo_ptx_metrics.jsonl" : "ppo_metrics.jsonl"), rounds_data);
            r.model = std::move(st.policy);
            r.rm_on_policy = std::move(st.rm_on_policy);
            r.rm_on_policy_retrained = std::move(st.rm_on_policy_retrained);
        } else if (m == "dpo") {
            r.model = dpo_stage(o, *sft, rm_train, rm_val, eot, dir / "dpo_metrics.jsonl");
        } else {
            const bool loo = m == "rloo";
            r.model = group_stage(o, *sft, rm, tok, ppo_prompt_tokens,
                                  loo ? group_baseline::loo : group_baseline::group, m.c_str(),
                                  dir / (m + "_metrics.jsonl"));
        }
        save_checkpoint<pipeline_shape>(dir / file, *r.model, nullptr, tok, {});
        r.seconds = clock.lap();
        r.cpu_seconds = clock.lap_cpu;
        say(r.label.c_str(), r.seconds);
        runs.push_back(std::move(r));
    }

    // ---- evaluation on held-out prompts ---------------------------------------------------------
    const auto eval_prompts = prompts_of(eval_tasks);
    const auto eval_tokens = prompt_tokens(tok, eval_prompts, eot);
    const sampling_config ec{o.eval_temperature, 0, 1.0f, o.seed + 9};
    const auto g_sft = sample_responses(*sft, eval_tokens, o.max_new, ec, eot);
    const auto l_sft = label_responses(eval_prompts, g_sft, tok);
    auto mean = [](const std::vector<double>& v) {
        double s = 0;
        for (double x : v)
            s += x;
        return v.empty() ? 0.0 : s / double(v.size());
    };
    const double loss_sft = val_loss(*sft);
    for (method_run& r : runs) {
        r.gen = sample_responses(*r.model, eval_tokens, o.max_new, ec, eot);
        r.lab = label_responses(eval_prompts, r.gen, tok);
        for (std::size_t i = 0; i < eval_prompts.size(); ++i)
            r.win.add(r.lab.scores[i], l_sft.scores[i]);
        r.kl = mean(response_kl(*r.model, *sft, eval_tokens, r.gen, eot));
        r.val_loss = val_loss(*r.model);
    }
    say("evaluation", clock.lap());
    {
        std::ofstream s(dir / "eval_samples.txt");
        for (std::size_t i = 0; i < std::min<std::size_t>(40, eval_prompts.size()); ++i) {
            s << eval_prompts[i] << "| sft: " << tok.decode(g_sft[i].tokens);
            for (const method_run& r : runs)
                s << " | " << r.name << ": " << tok.decode(r.gen[i].tokens);
            s << "\n";
        }
    }

    // ---- dialogue stage (ChatGPT, issue #7): samples/instructgpt/dialogue_stage.hpp ---------
    std::optional<dialogue_stage_result> dialogue;
    if (!o.no_dialogue && !o.evaluate_only) {
        dialogue = run_dialogue_stage<pipeline_shape>(
            {dir, o.seed, &tok, eot, sft.get(), &split.train, dialogue_sizes_for(o)});
        say("dialogue stage (chat model: chat.gptx)", clock.lap());
    }
    stages.finish();
    // ---- end of the dialogue stage ------------------------------------------------------------

    std::printf("\nInstructGPT pipeline, %zu held-out prompts, responses sampled at temperature "
                "%.2g, judged by the labeler (%.0f s, %.0f CPU s, %d threads)\n\n",
                eval_prompts.size(), double(o.eval_temperature), clock.total(), clock.cpu(),
                num_threads());
    if (need_rm) {
        std::printf("RM held-out pairwise accuracy: %.1f%% (%zu pairs)", 100 * rm_accuracy,
                    rm_val.pairs());
        if (rm_accuracy_t1)
            std::printf("; on temperature-1 pairs only: %.1f%% (%zu pairs)", 100 * *rm_accuracy_t1,
                        rm_pairs_t1);
        std::printf("\n\n");
    }
    // A row per method; the stage times are of training (the evaluation is shared).
    std::printf("| method | win rate over SFT [95%% Wilson] (wins/ties/losses) | labeler mean | "
                "exact, ended | padded (' i think') | KL to SFT (nats/response) | pre-training "
                "val loss (pre-trained %.4f) | stage wall s | stage CPU s |\n",
                loss_pretrained);
    std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    std::printf("| SFT | | %.3f | %.1f%% | %.1f%% | 0 | %.4f | | |\n", l_sft.mean,
                100 * l_sft.exact, 100 * l_sft.padded, loss_sft);
    for (const method_run& r : runs) {
        const auto w = r.win.rate();
        std::printf("| %s | %.1f%% [%.1f, %.1f] (%zu/%zu/%zu) | %.3f | %.1f%% | %.1f%% | %.3f | "
                    "%.4f (%+.4f) | %.0f | %.0f |\n",
                    r.label.c_str(), 100 * w.p, 100 * w.low, 100 * w.high, r.win.wins, r.win.ties,
                    r.win.losses, r.lab.mean, 100 * r.lab.exact, 100 * r.lab.padded, r.kl,
                    r.val_loss, r.val_loss - loss_sft, r.seconds, r.cpu_seconds);
    }
    if (dialogue)
        print_dialogue_row(*dialogue); // dialogue stage (issue #7)
    // Over-optimisation, seen from the RM's side: how well it ranks each PPO policy's samples.
    for (const method_run& r : runs)
        for (std::size_t k = 0; k < r.rm_on_policy.size(); ++k) {
            std::printf("\n%s round %zu: RM accuracy on the policy's own samples ", r.label.c_str(),
                        k + 1);
            if (k > 0 && r.rm_on_policy_retrained[k - 1])
                std::printf("%.1f%% after retraining, ",
                            100 * r.rm_on_policy_retrained[k - 1]->accuracy);
            if (r.rm_on_policy[k])
                std::printf("%.1f%% at the round's end", 100 * r.rm_on_policy[k]->accuracy);
            else
                std::printf("n/a (every sample tied) at the round's end");
        }
    std::printf("\n");
    // Where the win rates come from: exact answers per kind of instruction.
    std::map<std::string, std::vector<int>> by_kind; // n, SFT, then each method
    for (std::size_t i = 0; i < eval_tasks.size(); ++i) {
        const std::string& ins = eval_tasks[i].instruction;
        auto& k = by_kind[ins.substr(0, ins.find(' '))];
        k.resize(2 + runs.size());
        k[0] += 1;
        k[1] += l_sft.exact_each[i];
        for (std::size_t j = 0; j < runs.size(); ++j)
            k[2 + j] += runs[j].lab.exact_each[i];
    }
    std::printf("\n| exact answers by kind | n | SFT |");
    for (const method_run& r : runs)
        std::printf(" %s |", r.label.c_str());
    std::printf("\n| --- | --- | --- |");
    for (std::size_t j = 0; j < runs.size(); ++j)
        std::printf(" --- |");
    std::printf("\n");
    for (const auto& [kind, k] : by_kind) {
        std::printf("| %s | %d |", kind.c_str(), k[0]);
        for (std::size_t j = 1; j < k.size(); ++j)
            std::printf(" %.0f%% |", 100.0 * k[j] / k[0]);
        std::printf("\n");
    }
    std::fflush(stdout);
    if (o.json) {
        nlohmann::json j{
            {"rm_accuracy", need_rm ? nlohmann::json(rm_accuracy) : nlohmann::json()},
            {"rm_accuracy_t1", rm_accuracy_t1 ? nlohmann::json(*rm_accuracy_t1) : nlohmann::json()},
            {"methods", methods},
            {"demo_padded", o.demo_padded},
            {"padded_sft", l_sft.padded},
            {"labeler_mean_sft", l_sft.mean},
            {"exact_sft", l_sft.exact},
            {"pretrain_val_loss_pretrained", loss_pretrained},
            {"pretrain_val_loss_sft", loss_sft},
            {"eval_prompts", eval_prompts.size()},
            {"dialogue_win_rate",
             dialogue ? nlohmann::json(dialogue->win.rate().p) : nlohmann::json()}, // issue #7
            {"dialogue_win_rate_ci",
             dialogue ? nlohmann::json({dialogue->win.rate().low, dialogue->win.rate().high})
                      : nlohmann::json()},
            {"dialogue_conversations",
             dialogue ? nlohmann::json(dialogue->conversations) : nlohmann::json()},
            {"dialogue_rm_accuracy",
             dialogue ? nlohmann::json(dialogue->rm_accuracy) : nlohmann::json()},
            {"dialogue_ppo_stopped",
             dialogue ? nlohmann::json(dialogue->ppo_stopped) : nlohmann::json()},
            {"rlhf_rounds", o.rlhf_rounds},
            {"seconds", clock.total()},
            {"cpu_seconds", clock.cpu()}};
        // Per method m (ppo, ppo_ptx, dpo, grpo, rloo): the keys the table shows.
        for (const method_run& r : runs) {
            std::string m = r.name;
            std::replace(m.begin(), m.end(), '-', '_');
            const auto w = r.win.rate();
            j[m + "_win_rate"] = w.p;
            j[m + "_win_rate_ci"] = {w.low, w.high};
            j[m + "_kl"] = r.kl;
            j["pretrain_val_loss_" + m] = r.val_loss;
            j["padded_" + m] = r.lab.padded;
            j["labeler_mean_" + m] = r.lab.mean;
            j["exact_" + m] = r.lab.exact;
            j[m + "_seconds"] = r.seconds;
            j[m + "_cpu_seconds"] = r.cpu_seconds;
            if (!r.rm_on_policy.empty()) {
                nlohmann::json acc = nlohmann::json::array();
                for (const auto& e : r.rm_on_policy)
                    acc.push_back(e ? nlohmann::json(e->accuracy) : nlohmann::json());
                j["rm_accuracy_on_" + m] = acc; // per round, at its end
            }
        }
        std::printf("%s\n", j.dump().c_str());
    }
}

} // namespace gptx::instructgpt
