// samples/instructgpt/pipeline.hpp: the stages of InstructGPT end to end on the task family
// (pre-training -> SFT -> reward model -> PPO, PPO-ptx, DPO, GRPO, RLOO, each from the same SFT
// model), which pipeline.cpp's run_pipeline runs in order. Tested by tests/cli/test_sft_cli.cpp
// (--quick).
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include <gptx/gptx.hpp>

#include "dialogue_stage.hpp" // dialogue stage (issue #7)
#include "labeling.hpp"
#include "pipeline_options.hpp"

namespace gptx::instructgpt {

namespace fs = std::filesystem;

// The dialogue stage's sizes and PPO settings follow the pipeline's options where they have a
// counterpart (--ppo-keep has none: the chat model's PPO trains on every rollout).
inline dialogue_sizes dialogue_sizes_for(const pipeline_options& o) {
    dialogue_sizes d = o.quick ? quick_dialogue_sizes() : dialogue_sizes{};
    d.sft_epochs = o.sft_epochs;
    d.ppo_iters = o.dialogue_ppo_iters_or_default();
    d.rollouts = o.rollouts;
    // by default the same number of updates per iteration as the instruction stage's
    d.ppo_minibatch = or_else(o.dialogue_ppo_minibatch, o.ppo_minibatch);
    d.ppo_epochs = or_else(o.dialogue_ppo_epochs, o.ppo_epochs);
    d.rm_hot = o.rm_hot;
    d.rm_hot_temperature = o.rm_hot_temperature;
    d.eval_conversations = or_else(o.dialogue_eval_conversations, o.eval_prompts);
    if (o.dialogue_rm_conversations > 0)
        d.rm_conversations = o.dialogue_rm_conversations;
    if (o.dialogue_rm_epochs > 0)
        d.rm_epochs = o.dialogue_rm_epochs;
    d.rlhf_rounds = o.rlhf_rounds;
    d.oracle_reward = o.oracle_reward;
    d.rm_ensemble = o.dialogue_rm_ensemble;
    d.rm_ensemble_penalty = o.dialogue_rm_ensemble_penalty;
    if (o.dialogue_round_conversations > 0)
        d.round_conversations = o.dialogue_round_conversations;
    d.rm_native_fraction = o.dialogue_rm_native;
    d.rm_pooling = parse_reward_pooling(o.rm_pooling);
    d.ppo_lr = or_else(o.dialogue_ppo_lr, o.ppo_lr);
    d.value_lr = o.value_lr_or_default();
    d.value_warmup = o.value_warmup;
    d.ppo_lr_warmup = o.dialogue_ppo_lr_warmup >= 0 ? o.dialogue_ppo_lr_warmup : o.ppo_lr_warmup;
    if (o.dialogue_ppo_conversations > 0)
        d.ppo_conversations = o.dialogue_ppo_conversations;
    d.ppo_min_user_turns = o.dialogue_ppo_min_turns;
    d.rm_min_user_turns = o.dialogue_rm_min_turns;
    d.kl_coef = o.kl_coef;
    d.ptx_coef = o.dialogue_ptx_coef >= 0 ? o.dialogue_ptx_coef : o.ptx_coef;
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
    if (o.ppo_keep > 0) // the same share of --quick's 16 rollouts (all of them: 0)
        o.ppo_keep = o.ppo_keep >= o.rollouts
                         ? 0
                         : std::max(1, int(std::lround(16.0 * o.ppo_keep / o.rollouts)));
    o.rollouts = 16;
    o.ppo_minibatch = 8;
    o.value_warmup = 0;
    o.eval_prompts = 24;
    if (o.dialogue_eval_conversations == pipeline_options{}.dialogue_eval_conversations)
        o.dialogue_eval_conversations = 0; // as eval_prompts, unless asked for
    if (o.dialogue_ppo_iters == pipeline_options{}.dialogue_ppo_iters)
        o.dialogue_ppo_iters = 0; // as ppo_iters, unless asked for
}

// The methods `--methods` may name, in the order the pipeline runs and prints them.
inline const std::vector<std::string>& all_methods() {
    static const std::vector<std::string> m{"ppo", "ppo-ptx", "dpo", "grpo", "rloo", "rs"};
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
                   "' (choose from ppo, ppo-ptx, dpo, grpo, rloo, rs, or none alone)");
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

// The reward of PPO, GRPO and RLOO: the reward model (or, when given, an ensemble of them,
// --rm-ensemble), or with --oracle-reward the labeler itself; with --rm-likelihood and `sft`,
// plus that weight times the SFT model's mean log-likelihood of the response (with
// --rm-likelihood-only, instead of the RM). Every scored response is also labelled into `tally`
// (when given).
inline reward_fn pipeline_reward(const pipeline_options& o, reward_model<pipeline_shape>& rm,
                                 const tokenizer& tok, reward_tally* tally = nullptr,
                                 reward_ensemble<pipeline_shape>* ensemble = nullptr,
                                 pipeline_model* sft = nullptr) {
    reward_fn f = [&o, &rm, &tok, tally, ensemble](const int* tokens, int B, int Tn,
                                                   const int* ends, const int* starts) {
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
        else if (ensemble)
            out = ensemble->score(tokens, B, Tn, ends, starts);
        else
            out = rm.score(tokens, B, Tn, ends, starts);
        if (tally)
            for (int b = 0; b < B; ++b) {
                tally->labeler += gold[b];
                tally->rm += out[b];
                ++tally->n;
            }
        return out;
    };
    // --rm-likelihood: plus the SFT model's mean log-likelihood of the response (the RM's, not
    // the labeler's, reward; the tally keeps the RM's score alone).
    if (sft)
        return reward_with_likelihood(std::move(f), *sft, {o.rm_likelihood, o.rm_likelihood_only});
    return f;
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
        if (log.tally && o.rm_likelihood > 0) // the RM's own score beside the reward followed
            shown.emplace_back("rm", log.tally->rm_mean());
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

// K temperature-1 samples of `model` to each prompt, ranked by the labeler: what a reward model's
// accuracy on a policy's own samples is measured on.
inline tokenized_comparisons policy_comparisons(const pipeline_options& o,
                                                const pipeline_model& model, const tokenizer& tok,
                                                const std::vector<std::string>& prompts,
                                                std::uint64_t seed) {
    const int eot = tok.vocab_size();
    return tokenize_for_rm(make_comparisons(model, tok, prompts, o.rm_k, o.max_new, eot, seed), tok,
                           eot, o.context);
}

// The reward model's held-out pairwise accuracy on such comparisons: how well the RM judges what
// a policy writes now, rather than what SFT wrote when the RM was trained.
inline std::optional<reward_eval> rm_accuracy_on(const pipeline_options& o,
                                                 reward_model<pipeline_shape>& rm,
                                                 const tokenized_comparisons& cmp, int eot) {
    if (cmp.groups.empty())
        return std::nullopt; // every prompt's samples tied: nothing to rank
    reward_objective obj(rm);
    return evaluate_rewards(rm.trunk(), obj, cmp, o.rm_batch, eot);
}

inline std::optional<reward_eval>
rm_on_samples_of(const pipeline_options& o, const pipeline_model& model,
                 reward_model<pipeline_shape>& rm, const tokenizer& tok,
                 const std::vector<std::string>& prompts, std::uint64_t seed) {
    return rm_accuracy_on(o, rm, policy_comparisons(o, model, tok, prompts, seed),
                          tok.vocab_size());
}

// Best of n of `model`'s temperature-1 responses to each prompt, by the RM and by the labeler,
// against `base` (the labeler's score of the model's single response to each): best_of_n_curve.
inline best_of_n_curve instruction_best_of_n(const pipeline_options& o, const pipeline_model& model,
                                             reward_model<pipeline_shape>& rm, const tokenizer& tok,
                                             const std::vector<std::string>& prompts,
                                             const std::vector<double>& base,
                                             const std::vector<int>& ns, std::uint64_t seed) {
    const int eot = tok.vocab_size(), N = *std::max_element(ns.begin(), ns.end());
    const auto tokens = prompt_tokens(tok, prompts, eot);
    std::vector<std::vector<double>> gold(prompts.size());
    std::vector<std::vector<bool>> exact(prompts.size());
    std::vector<std::vector<float>> by(prompts.size());
    for (int k = 0; k < N; ++k) {
        const auto gen = sample_responses(model, tokens, o.max_new,
                                          {1.0f, 0, 1.0f, mix64(seed + std::uint64_t(k))}, eot);
        const labelled l = label_responses(prompts, gen, tok);
        std::vector<std::vector<int>> seqs;
        std::vector<int> starts(prompts.size());
        for (std::size_t i = 0; i < prompts.size(); ++i)
            seqs.push_back(
                reward_sequence(tokens[i], gen[i].tokens, eot, o.context, nullptr, &starts[i]));
        const auto r = rm.score_sequences(seqs, eot, o.rm_batch, starts);
        for (std::size_t i = 0; i < prompts.size(); ++i) {
            gold[i].push_back(l.scores[i]);
            exact[i].push_back(l.exact_each[i]);
            by[i].push_back(r[i]);
        }
    }
    return best_of_n(gold, exact, by, base, ns);
}

// What iterated RLHF's later rounds need from the RM stage.
struct rlhf_data {
    const tokenized_comparisons* rm_train = nullptr; // the SFT samples' comparisons
    std::vector<std::string> rm_prompts, rm_val_prompts;
    std::vector<std::vector<int>> demo_seqs; // the RM's bias keeps these at mean 0
    std::vector<int> demo_starts;            // where each demonstration's response begins
    reward_ensemble<pipeline_shape>* ensemble = nullptr; // --rm-ensemble: PPO's reward
    // With an ensemble and rounds > 1: members 1.. comparisons (member 0's are rm_train), and
    // the spread each one's head was divided by to put it on the common scale.
    std::vector<tokenized_comparisons> member_train;
    std::vector<double> member_scale;
};

struct ppo_stage_result {
    std::unique_ptr<pipeline_model> policy;
    // Per round: the RM's accuracy on the policy's samples at the round's end, before any
    // retraining (nullopt: all tied), and, from round 2, after retraining at its start.
    std::vector<std::optional<reward_eval>> rm_on_policy, rm_on_policy_retrained;
    // With --rm-ensemble: the reward PPO followed, the ensemble's, on the same samples (per
    // round, at its end; nullopt: all tied).
    std::vector<std::optional<double>> ensemble_on_policy;
    // The RM's (with --rm-ensemble, the ensemble's) accuracy on the same samples by kind, at the
    // last round's end (empty: all tied).
    kind_accuracy rm_by_kind;
};

// PPO (ptx_coef 0) or PPO-ptx from the SFT model against the reward model (or, with
// --oracle-reward, the labeler itself), one metrics line per iteration in dir/metrics_file, with
// the labeler's mean on the rollouts beside the RM's. With o.rlhf_rounds > 1 (iterated RLHF),
// the iterations are split over the rounds; before each later round a copy of the RM continues
// training on comparisons of the current policy's samples added to all earlier ones, and PPO
// continues from the current policy and critic against it. With an ensemble, every member of a
// copy of it does so, each on its own data so far and, by --rm-ensemble-data, its own fresh
// comparisons (samples), a resample of the shared ones (bootstrap) or the shared ones.
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
    reward_model<pipeline_shape> rm(cfg, rm0.pooling()); // this method's: later rounds retrain it
    copy_params(rm.trunk(), rm0.trunk());
    copy_params(rm.head(), rm0.head());
    model_t value(cfg);
    copy_params(value, rm.trunk());
    linear_head<float> value_head(pipeline_model::C, 1);
    // InstructGPT's critic starts from the RM; with an ensemble, from member 0 on the scale the
    // ensemble's reward is on (standardised), so its first estimates match the rewards.
    copy_params(value_head, data.ensemble ? data.ensemble->member(0).head() : rm.head());
    tokenized_comparisons seen; // every comparison the RM has trained on (rounds > 1)
    if (rounds > 1)
        seen = *data.rm_train;
    // Rounds > 1 with an ensemble: this method's copy, retrained member by member; member_seen[k]
    // is member k's data so far (member 0's is `seen`).
    reward_ensemble<pipeline_shape>* ensemble = data.ensemble;
    std::optional<reward_ensemble<pipeline_shape>> own;
    std::vector<tokenized_comparisons> member_seen;
    std::vector<double> member_scale;
    if (rounds > 1 && ensemble) {
        GPTX_CHECK(data.member_train.size() + 1 == ensemble->size() &&
                       data.member_scale.size() == data.member_train.size(),
                   name, ": iterated RLHF with an ensemble needs each member's comparisons, have ",
                   data.member_train.size() + 1, " of ", ensemble->size());
        own.emplace(ensemble->penalty());
        for (std::size_t k = 0; k < ensemble->size(); ++k) {
            auto& m = own->add(cfg, ensemble->member(k).pooling());
            copy_params(m.trunk(), ensemble->member(k).trunk());
            copy_params(m.head(), ensemble->member(k).head());
        }
        ensemble = &*own;
        member_seen.push_back({});
        member_seen.insert(member_seen.end(), data.member_train.begin(), data.member_train.end());
        member_scale.push_back(1.0);
        member_scale.insert(member_scale.end(), data.member_scale.begin(), data.member_scale.end());
    }
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
            run_options ro;
            ro.progress_label = "rm round";
            ro.checkpoint_name = "(none)";
            const reward_training_config rc{
                .epochs = 1, .batch = o.rm_batch, .lr = o.rm_lr, .seed = o.seed + salt + 2};
            const reward_eval e = continue_reward_model(rm, seen, fresh, val, data.demo_seqs,
                                                        data.demo_starts, eot, rc, ro);
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
            if (ensemble) {
                // Member 0 is the RM just retrained, put on the ensemble's common scale. The
                // others continue as it did, from their own scale (their heads multiplied back by
                // the spread they were divided by), on their own data so far plus the round's.
                auto& m0 = ensemble->member(0);
                copy_params(m0.trunk(), rm.trunk());
                copy_params(m0.head(), rm.head());
                standardize_reward_scale(m0, data.demo_seqs, eot, 16, data.demo_starts);
                for (std::size_t k = 1; k < ensemble->size(); ++k) {
                    const std::uint64_t mk = mix64((std::uint64_t(round) << 32) | k);
                    tokenized_comparisons mine;
                    const char* source = "member 0's";
                    if (o.rm_ensemble_data == "samples") {
                        mine = tokenize_for_rm(make_comparisons(policy, tok, prompts, o.rm_k,
                                                                o.max_new, eot, o.seed + mk,
                                                                o.rm_hot, o.rm_hot_temperature),
                                               tok, eot, T);
                        GPTX_CHECK(!mine.groups.empty(), name, " round ", round, ": member ", k,
                                   "'s samples of the policy gave no comparisons (every "
                                   "response tied)");
                        source = "its own samples of the policy";
                    } else if (o.rm_ensemble_data == "bootstrap") {
                        mine = bootstrap_resample(fresh, o.seed + mk + 7);
                        source = "a resample of member 0's";
                    }
                    const tokenized_comparisons& add = mine.groups.empty() ? fresh : mine;
                    auto& m = ensemble->member(k);
                    auto& h = m.head().params();
                    for (std::size_t i = 0; i < h.size(); ++i)
                        h.data()[i] = float(double(h.data()[i]) * member_scale[k]);
                    auto mro = ro;
                    mro.progress_label = "rm " + std::to_string(k) + " round";
                    auto mrc = rc;
                    mrc.seed = o.seed + mk + 2;
                    const reward_eval ek =
                        continue_reward_model(m, member_seen[k], add, val, data.demo_seqs,
                                              data.demo_starts, eot, mrc, mro);
                    member_scale[k] =
                        standardize_reward_scale(m, data.demo_seqs, eot, 16, data.demo_starts);
                    progress::clear_line();
                    std::printf("%s round %d: RM member %zu retrained on %zu new comparisons (%s); "
                                "held-out accuracy %.3f on the policy's samples\n",
                                name, round, k, add.groups.size(), source, ek.accuracy);
                }
            }
        }
        ppo_config pc;
        pc.end_of_text = eot;
        pc.rollouts = o.rollouts;
        pc.max_new_tokens = o.max_new;
        pc.epochs = o.ppo_epochs;
        pc.minibatch = o.ppo_minibatch;
        pc.keep = o.ppo_keep;
        pc.lr = o.ppo_lr;
        pc.value_lr = o.value_lr_or_default();
        pc.value_warmup = std::max(0, o.value_warmup - done); // later rounds keep their critic
        pc.lr_warmup = o.ppo_lr_warmup; // each round's policy optimizer starts afresh
        pc.kl_coef = o.kl_coef;
        pc.lambda = o.gae_lambda;
        pc.ptx_coef = ptx_coef;
        pc.ptx_batch = 4;
        pc.ptx_context = T;
        pc.seed = o.seed + 8 + std::uint64_t(round - 1) * 977;
        ppo_trainer<model_t> ppo(
            policy, sft, value, value_head, pipeline_reward(o, rm, tok, &tally, ensemble, &sft),
            ppo_prompt_tokens, pc, ptx_coef != 0.0 ? ptx_tokens : std::vector<int>{});
        run_iterations(o, ppo, name, metrics_file,
                       [keep = o.ppo_keep](const ppo_metrics& m) {
                           metrics_map r{{"score", m.score},
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
                           if (keep > 0)
                               r.push_back({"kept_advantage", m.kept_advantage});
                           return r;
                       },
                       {.iters = iters, .tally = &tally, .done = done, .total = o.ppo_iters});
        done += iters;
        copy_params(value_head, ppo.value_head());
        const auto cmp = policy_comparisons(o, policy, tok, data.rm_val_prompts,
                                            o.seed + 4000 + std::uint64_t(round));
        res.rm_on_policy.push_back(rm_accuracy_on(o, rm, cmp, eot));
        const auto outcomes =
            ensemble ? pair_outcomes(*ensemble, cmp, eot) : pair_outcomes(rm, cmp, eot);
        if (ensemble)
            res.ensemble_on_policy.push_back(
                cmp.groups.empty() ? std::nullopt : std::optional(outcome_accuracy(outcomes)));
        res.rm_by_kind = accuracy_by_kind(outcomes, cmp, tok);
    }
    return res;
}

// Rejection-sampling fine-tuning (Llama 2, section 3.2.3): K responses at temperature 1 from the
// SFT model to each PPO prompt, the one the RM scores highest kept (if it ended and is not empty:
// a response cut at the length cap has no end-of-text to learn, an empty one nothing), and the SFT
// model fine-tuned on them with the SFT objective and schedule: best of K distilled into the
// policy, which also sharpens it towards its own preferred answers. The kept pairs go to
// dir/rs.jsonl.
inline std::unique_ptr<pipeline_model>
rs_stage(const pipeline_options& o, pipeline_model& sft, reward_model<pipeline_shape>& rm,
         const tokenizer& tok, const std::vector<std::string>& prompts, const fs::path& dir) {
    const int eot = tok.vocab_size();
    const auto tokens = prompt_tokens(tok, prompts, eot);
    std::vector<std::vector<generation>> gen; // gen[k][i]
    std::vector<std::vector<float>> score;
    for (int k = 0; k < o.rs_k; ++k) {
        gen.push_back(sample_responses(
            sft, tokens, o.max_new, {1.0f, 0, 1.0f, mix64(o.seed + 13 + std::uint64_t(k))}, eot));
        std::vector<std::vector<int>> seqs;
        std::vector<int> starts(prompts.size());
        for (std::size_t i = 0; i < prompts.size(); ++i)
            seqs.push_back(reward_sequence(tokens[i], gen.back()[i].tokens, eot, o.context, nullptr,
                                           &starts[i]));
        score.push_back(rm.score_sequences(seqs, eot, o.rm_batch, starts));
    }
    std::vector<sft_example> kept;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        std::size_t best = 0;
        for (std::size_t k = 1; k < gen.size(); ++k)
            if (score[k][i] > score[best][i])
                best = k;
        if (gen[best][i].reason == stop_reason::end_of_text && !gen[best][i].tokens.empty())
            kept.push_back({prompts[i], tok.decode(gen[best][i].tokens)});
    }
    GPTX_CHECK(!kept.empty(), "rs: no prompt's best response ended");
    write_sft_jsonl(dir / "rs.jsonl", kept);
    auto policy = std::make_unique<pipeline_model>(sft.config());
    copy_params(*policy, sft);
    const auto rows =
        tokenize_sft(read_sft_jsonl(dir / "rs.jsonl"), tok, (dir / "rs.jsonl").string());
    adamw<float> opt(policy->params(), {o.sft_lr, 0.9f, 0.95f, 1e-8f, 0.0f});
    sft_batches data(rows, o.sft_batch, o.context, eot, o.seed + 14);
    sft_hooks<pipeline_model> hooks;
    hooks.run.log_every = std::max(1, data.steps_per_epoch());
    hooks.run.metrics = dir / "rs_metrics.jsonl";
    hooks.run.progress_label = "rs";
    hooks.run.checkpoint_name = "(none)";
    run_sft(*policy, opt, data,
            sft_config{.epochs = o.rs_epochs, .lr = o.sft_lr, .min_lr = o.sft_lr / 10}, hooks);
    progress::clear_line();
    std::printf("rs: fine-tuned on the RM's best of %d responses to %zu of %zu prompts (the rest "
                "did not end or were empty)\n",
                o.rs_k, kept.size(), prompts.size());
    return policy;
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
            group_baseline baseline, const char* name, const fs::path& metrics_file,
            reward_ensemble<pipeline_shape>* ensemble = nullptr) {
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
    grpo_trainer<model_t> tr(*policy, sft, pipeline_reward(o, rm, tok, &tally, ensemble, &sft),
                             prompts, gc);
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

} // namespace gptx::instructgpt
