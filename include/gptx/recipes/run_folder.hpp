// gptx/recipes/run_folder.hpp: what every recipe shares: the run folder (model.gptx and
// metrics.jsonl), the end-of-text id, prompts, the reward-model checkpoint, --resume checks,
// comparison splits, and RL iterations as run-loop steps. Tested by tests/cli (the commands are
// thin front ends over the recipes).
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/communicator.hpp"
#include "../core/error.hpp"
#include "../core/progress.hpp"
#include "../core/shape.hpp"
#include "../data/comparisons.hpp"
#include "../data/sft.hpp"
#include "../data/token_file.hpp"
#include "../io/checkpoint.hpp"
#include "../nn/reward_model.hpp"
#include "../text/tokenizer.hpp"
#include "../train/likelihood_reward.hpp"
#include "../train/reward_objective.hpp"
#include "../train/run_loop.hpp"

namespace gptx {

// A run folder holds model.gptx (the checkpoint) and metrics.jsonl.
inline std::filesystem::path checkpoint_file(const std::filesystem::path& dir_or_file) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir_or_file, ec))
        return dir_or_file / "model.gptx";
    return dir_or_file;
}

// The end-of-text id: --end-of-text when given, else the tokenizer's <|endoftext|>, else the id
// just past its vocabulary when the model reserves one (how char and byte models get one, as SFT
// lays data out).
inline int end_of_text_for(const tokenizer& tok, int model_vocab, int requested) {
    if (requested >= 0) {
        GPTX_CHECK(requested < model_vocab, "--end-of-text ", requested,
                   " is outside the vocabulary [0, ", model_vocab, ")");
        return requested;
    }
    if (const auto id = tok.special_token_id("<|endoftext|>"))
        return *id;
    GPTX_CHECK(model_vocab > tok.vocab_size(), "no end-of-text token: the tokenizer (", tok.kind(),
               ", ", tok.vocab_size(), " tokens) has no <|endoftext|> and the model's vocabulary (",
               model_vocab, ") reserves no id after it; pass --end-of-text");
    return tok.vocab_size();
}

// PPO-ptx's pre-training tokens (ppo, grpo --ptx-coef): the token file, every id checked against
// the policy's vocabulary.
inline std::vector<int> read_ptx_tokens(const std::string& file, int vocab, int context) {
    std::vector<int> ids = read_token_file(file);
    GPTX_CHECK(ids.size() > std::size_t(context), file, ": ", ids.size(),
               " tokens are too few for one pre-training sequence of the context (", context,
               " + 1)");
    for (int id : ids)
        GPTX_CHECK(id >= 0 && id < vocab, file, ": token ", id, " is outside the vocabulary [0, ",
                   vocab, ")");
    return ids;
}

// Prompts as generation sees them: end-of-text, then the prompt's tokens.
// Each is checked where it stands (file:line): encodable, and short enough that the
// context keeps room for a response token and the closing end-of-text.
inline std::vector<std::vector<int>> read_prompts(const std::filesystem::path& path,
                                                  const tokenizer& tok, int eot, int context) {
    std::vector<std::vector<int>> out;
    detail::read_jsonl(path, [&](const nlohmann::json& j, int n) {
        // An empty prompt is generation from the end-of-text alone, as the reference reads it.
        const std::string p = detail::jsonl_string(j, "prompt", path, n);
        try {
            out.push_back(reward_prefix(tok, p, eot));
        } catch (const error& e) {
            detail::fail(path.string(), ":", n, ": ", e.what());
        }
        const int P = int(out.back().size()) - 1; // the prompt's own tokens
        GPTX_CHECK(P + 3 <= context, path.string(), ":", n, ": the prompt has ", P,
                   " tokens; the model's context of ", context, " holds at most ", context - 3,
                   " (with the leading end-of-text, a response token and the closing one)");
    });
    GPTX_CHECK(!out.empty(), path.string(), ": no prompts");
    return out;
}

// The pooling a checkpoint's run state records (its "pooling" key; absent, or a state
// that is not JSON: last). `file` names the checkpoint in errors.
inline reward_pooling saved_reward_pooling(std::string_view run_json, std::string_view file) {
    const auto j = nlohmann::json::parse(run_json, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("pooling"))
        return reward_pooling::last;
    GPTX_CHECK(j["pooling"].is_string(), file, ": \"pooling\" must be a string");
    const std::string s = j["pooling"].get<std::string>();
    GPTX_CHECK(s == "last" || s == "mean", file, ": \"pooling\" must be last or mean, got '", s,
               "'");
    return s == "mean" ? reward_pooling::mean : reward_pooling::last;
}

// The reward-model checkpoint of `gptx rm` (the trunk plus its "reward_head" section), checked to
// have the shape and vocabulary of the model whose tokens `cmd` (ppo, grpo, rm --evaluate) scores
// with it; its tokenizer goes to *tok when given. Its pooling comes from the run state's
// "pooling" (absent: last, the end-of-text).
template <shape S>
std::unique_ptr<reward_model<S>> load_reward_model(const std::string& reward,
                                                   const model_config& policy, const char* cmd,
                                                   tokenizer* tok = nullptr) {
    const std::filesystem::path file = checkpoint_file(reward);
    const checkpoint_info info = read_checkpoint_info(file);
    GPTX_CHECK(info.dims == S, file.string(), ": the reward model's shape ", to_string(info.dims),
               " differs from the scored model's ", to_string(S), " (gptx ", cmd,
               " needs one shape)");
    GPTX_CHECK(info.config.vocab == policy.vocab, file.string(), ": the reward model's vocabulary ",
               info.config.vocab, " differs from the scored model's ", policy.vocab);
    auto rm = std::make_unique<reward_model<S>>(info.config);
    const checkpoint_extra head[] = {{reward_model<S>::head_name, &rm->head().params(), nullptr}};
    train_state st;
    load_checkpoint<S>(file, rm->trunk(), nullptr, tok, &st, head);
    rm->set_pooling(saved_reward_pooling(st.run_json, file.string()));
    return rm;
}

// --resume refuses a run whose saved hyper-parameters (run_json) differ from this invocation's:
// the trajectory depends on every one of them.
inline void check_resume_matches(const nlohmann::json& saved, const nlohmann::json& now,
                                 const std::filesystem::path& dir) {
    for (const auto& [key, value] : now.items()) {
        std::string flag = key;
        for (char& c : flag)
            if (c == '_')
                c = '-';
        GPTX_CHECK(saved.contains(key) && saved[key] == value, "--resume: --", flag,
                   " differs from the run in '", dir.string(), "' (",
                   saved.contains(key) ? saved[key].dump() : "missing", " there, ", value.dump(),
                   " now)");
    }
}

// The RL commands' reward with --rm-likelihood A (ppo, grpo, the pipeline's stages): the RM's
// score plus A times the frozen reference's mean log-likelihood of the response, or with
// --rm-likelihood-only the likelihood term alone. A = 0: the RM's score as it is.
struct likelihood_term {
    double weight = 0;
    bool only = false;
};
inline void validate_likelihood_term(const likelihood_term& l) {
    GPTX_CHECK(l.weight >= 0 && std::isfinite(l.weight),
               "--rm-likelihood must be a finite weight >= 0 (0: the RM alone), got ", l.weight);
    GPTX_CHECK(!l.only || l.weight > 0,
               "--rm-likelihood-only needs --rm-likelihood > 0 (the likelihood term's weight)");
}
template <class Model>
reward_fn reward_with_likelihood(reward_fn rm, Model& reference, const likelihood_term& l) {
    if (l.weight == 0)
        return rm;
    return with_reference_likelihood(std::move(rm), reference, l.weight, l.only ? 0.0 : 1.0);
}
// Saved with every value (in a run's state) but compared only on --resume, with runs saved
// before the option read as 0 and false, so those still resume.
inline void save_likelihood_term(nlohmann::json& run_state, const likelihood_term& l) {
    run_state["rm_likelihood"] = l.weight;
    run_state["rm_likelihood_only"] = l.only;
}
inline void check_likelihood_resume(const nlohmann::json& saved, const likelihood_term& l,
                                    const std::filesystem::path& dir) {
    const double w = saved.value("rm_likelihood", 0.0);
    const bool only = saved.value("rm_likelihood_only", false);
    GPTX_CHECK(w == l.weight && only == l.only, "--resume: --rm-likelihood ", l.weight,
               l.only ? " (only)" : "", " differs from the run in '", dir.string(), "' (", w,
               only ? " (only)" : "", " there)");
}

// Comparisons for gptx rm and gptx dpo, tokenized once: --data, and --val or else the last
// --val-fraction of --data's prompts held out.
struct comparison_split {
    tokenized_comparisons train, val;
};
inline comparison_split read_comparison_split(const std::string& data, const std::string& val,
                                              double val_fraction, const tokenizer& tok, int eot,
                                              int context) {
    std::vector<comparison> train_cs = read_comparisons(data), val_cs;
    if (!val.empty()) {
        val_cs = read_comparisons(val);
    } else {
        const auto n_val = std::size_t(std::ceil(val_fraction * double(train_cs.size())));
        GPTX_CHECK(n_val < train_cs.size(), data, ": ", train_cs.size(),
                   " prompts are too few to hold out ", n_val, " (--val-fraction ", val_fraction,
                   "); give more data or --val");
        val_cs.assign(train_cs.end() - std::ptrdiff_t(n_val), train_cs.end());
        train_cs.resize(train_cs.size() - n_val);
    }
    return {tokenize_comparisons(train_cs, tok, eot, context, data),
            tokenize_comparisons(val_cs, tok, eot, context, val.empty() ? data : val)};
}

// The run loop's options as every training command sets them: metrics.jsonl in the run folder
// (rank 0 only), the checkpoint named in errors.
inline run_options run_folder_options(std::int64_t iters, int eval_every, int log_every,
                                      const char* label, const std::filesystem::path& dir,
                                      const std::filesystem::path& checkpoint) {
    run_options ro;
    ro.iters = iters;
    ro.eval_every = eval_every;
    ro.log_every = log_every;
    ro.progress_label = label;
    if (world().rank() == 0)
        ro.metrics = dir / "metrics.jsonl";
    ro.checkpoint_name = checkpoint.string();
    return ro;
}

// Trains to ro.iters on the comparison batches (this rank's share of each step's micro-batches),
// or, when a resumed run is already complete, evaluates once so the command still reports.
// Returns the wall seconds. Shared by rm and dpo, whose loops differ only in their hooks.
template <class Trainer, class Batches, class Hooks>
double train_on_comparisons(Trainer& tr, const run_options& ro, Batches& batches, int grad_accum,
                            int ranks, int rank, Hooks& hooks) {
    const auto t0 = std::chrono::steady_clock::now();
    if (tr.step_count() < ro.iters) {
        run_training(
            tr, ro,
            [&](int micro) {
                return batches.batch((tr.step_count() * grad_accum + micro) * ranks + rank);
            },
            hooks);
    } else {
        hooks.evaluate(tr.step_count());
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The shared run loop sees one iteration of an RL trainer (ppo_trainer, grpo_trainer) as one
// step; its evaluation point reports the iteration's metrics and saves.
template <class Trainer> struct iteration_step {
    Trainer& tr;
    float lr;
    std::optional<decltype(std::declval<Trainer&>().iteration())> last{};
    template <class F> step_metrics step(F&&) {
        last = tr.iteration();
        if (last->skipped > 0) {
            progress::clear_line();
            std::printf(
                "iteration %lld: %d of %d updates skipped (the ratio or the KL to the rollout "
                "policy exploded)\n",
                static_cast<long long>(last->iteration), last->skipped,
                last->skipped + last->updates);
        }
        return {last->iteration, last->policy_loss, last->grad_norm, lr, last->ms};
    }
    std::int64_t step_count() const { return tr.iteration_count(); }
};

} // namespace gptx
