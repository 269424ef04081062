// gptx/recipes/dpo.hpp: Direct Preference Optimization of an SFT checkpoint on ranked comparisons
// (the SFT model is the frozen reference) as one call on a run folder, what `gptx dpo` does:
// held-out implicit rewards, model.gptx and metrics.jsonl, exact --resume.
// Tested by tests/cli/test_dpo_cli.cpp.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "../core/communicator.hpp"
#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/shape.hpp"
#include "../data/comparisons.hpp"
#include "../io/checkpoint.hpp"
#include "../nn/copy_params.hpp"
#include "../nn/transformer.hpp"
#include "../train/dpo.hpp"
#include "../train/optimizer.hpp"
#include "../train/run_loop.hpp"
#include "../train/trainer.hpp"
#include "run_folder.hpp"

namespace gptx {

// The run's paths and hyper-parameters; the defaults are `gptx dpo`'s. Errors name the options by
// their command-line flags.
struct dpo_run_options {
    std::string policy, data, val, out = "out-dpo";
    double val_fraction = 0.1, epochs = 1.0, beta = 0.1;
    int iters = 0, batch = 8, grad_accum = 1, warmup = 0, eval_every = 50, log_every = 10;
    int end_of_text = -1;
    float lr = 1e-5f, weight_decay = 0.0f, beta1 = 0.9f, beta2 = 0.95f, grad_clip = 1.0f;
    std::uint64_t seed = 1;
    bool resume = false;
};

// Throws, naming the flag, on a hyper-parameter out of range.
inline void validate_dpo_options(const dpo_run_options& o) {
    GPTX_CHECK(o.beta > 0 && std::isfinite(o.beta), "--beta must be positive, got ", o.beta);
    GPTX_CHECK(o.batch > 0, "--batch must be positive, got ", o.batch);
    GPTX_CHECK(o.grad_accum > 0, "--grad-accum must be positive, got ", o.grad_accum);
    GPTX_CHECK(o.iters >= 0, "--iters must be positive, got ", o.iters);
    GPTX_CHECK(o.epochs > 0 && std::isfinite(o.epochs), "--epochs must be positive, got ",
               o.epochs);
    GPTX_CHECK(o.val_fraction > 0 && o.val_fraction < 1, "--val-fraction must be in (0, 1), got ",
               o.val_fraction);
    GPTX_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be positive, got ", o.lr);
    GPTX_CHECK(o.warmup >= 0, "--warmup must be >= 0, got ", o.warmup);
    GPTX_CHECK(o.eval_every > 0, "--eval-every must be positive, got ", o.eval_every);
    GPTX_CHECK(o.log_every > 0, "--log-every must be positive, got ", o.log_every);
    GPTX_CHECK(o.grad_clip >= 0, "--grad-clip must be >= 0, got ", o.grad_clip);
}

namespace detail {

// The hyper-parameters that must not change across --resume (check_resume_matches); --iters and
// --epochs may (the learning rate does not depend on the run's length).
inline nlohmann::json run_json(const dpo_run_options& o) {
    return {{"policy", o.policy},
            {"data", o.data},
            {"val", o.val},
            {"val_fraction", o.val_fraction},
            {"beta", o.beta},
            {"batch", o.batch},
            {"grad_accum", o.grad_accum},
            {"lr", o.lr},
            {"warmup", o.warmup},
            {"weight_decay", o.weight_decay},
            {"beta1", o.beta1},
            {"beta2", o.beta2},
            {"grad_clip", o.grad_clip},
            {"end_of_text", o.end_of_text},
            {"seed", o.seed}};
}

} // namespace detail

// Runs DPO from the policy checkpoint policy_file (its info read beforehand, which fixes S) in
// the run folder o.out.
template <shape S>
void run_dpo(const dpo_run_options& o, const std::filesystem::path& policy_file,
             const checkpoint_info& info) {
    namespace fs = std::filesystem;
    validate_dpo_options(o);
    fs::create_directories(o.out); // a caller from code may pass a new folder
    using model_t = transformer<S>;
    const fs::path dir = o.out, ckpt = dir / "model.gptx", metrics_path = dir / "metrics.jsonl";
    model_t reference(info.config), policy(info.config);
    tokenizer tok;
    load_checkpoint<S>(policy_file, reference, nullptr, &tok, nullptr);
    copy_params(policy, reference);
    const int eot = end_of_text_for(tok, policy.vocab(), o.end_of_text);
    const int ctx = policy.context();

    const comparison_split split =
        read_comparison_split(o.data, o.val, o.val_fraction, tok, eot, ctx);
    const tokenized_comparisons &train = split.train, &val = split.val;
    // The reference is frozen: its log-probabilities are computed once, here (and again, to the
    // same bits, on --resume).
    const auto ref_train = reference_logprobs(reference, train, o.batch, eot);
    const auto ref_val = reference_logprobs(reference, val, o.batch, eot);
    dpo_batcher batches(train, ref_train, o.batch, eot, o.seed + 1);
    dpo_batcher val_batches(val, ref_val, o.batch, eot);

    // Under mpirun rank r takes every ranks-th batch (offset r), as gptx rm does.
    const int ranks = world().size(), rank = world().rank();
    const std::int64_t per_step = std::int64_t(o.grad_accum) * ranks;
    const std::int64_t iters =
        o.iters > 0
            ? o.iters
            : epoch_steps((batches.steps_for_epochs(o.epochs) + per_step - 1) / per_step, o.epochs);
    std::printf("gptx dpo: %s, vocab %d, context %d, end-of-text %d, beta %g | train %zu prompts "
                "(%zu pairs), held out %zu prompts (%zu pairs) | %lld steps of %d prompts, %d "
                "threads\n",
                to_string(S).c_str(), policy.vocab(), ctx, eot, o.beta, train.groups.size(),
                train.pairs(), val.groups.size(), val.pairs(), static_cast<long long>(iters),
                o.batch * o.grad_accum * ranks, num_threads());
    if (train.truncated + val.truncated > 0)
        std::printf("note: %zu sequences were longer than the context %d and lost the start of "
                    "their prompt\n",
                    train.truncated + val.truncated, ctx);

    adamw<float> opt(policy.params(), {o.lr, o.beta1, o.beta2, 1e-8f, o.weight_decay});
    dpo_objective<model_t> obj(o.beta);
    const float lr = o.lr;
    const int warmup = o.warmup;
    trainer tr(policy, obj, opt,
               {o.grad_accum, o.grad_clip,
                [lr, warmup](int it) { return it < warmup ? lr * float(it + 1) / warmup : lr; },
                &world()});

    if (o.resume) {
        GPTX_CHECK(fs::exists(ckpt), "--resume: no DPO run in '", dir.string(),
                   "' (no model.gptx)");
        tokenizer saved;
        train_state st;
        load_checkpoint<S>(ckpt, policy, &opt, &saved, &st);
        GPTX_CHECK(saved == tok, ckpt.string(),
                   ": the checkpoint's tokenizer differs from --policy's");
        const auto j = nlohmann::json::parse(st.run_json, nullptr, false);
        GPTX_CHECK(j.is_object() && j.contains("beta"), ckpt.string(),
                   ": not a gptx dpo checkpoint (no DPO settings in its run state)");
        check_resume_matches(j, detail::run_json(o), dir);
        tr.set_step_count(st.step);
        std::printf("resumed from %s at step %lld\n", ckpt.string().c_str(),
                    static_cast<long long>(st.step));
    } else if (rank == 0) {
        fs::remove(metrics_path);
    }

    // The training pairs' implicit rewards, averaged over the steps since the last evaluation.
    dpo_stats train_sum{};
    int train_steps = 0;
    dpo_stats last{};
    run_hooks hooks;
    hooks.on_step = [&](const step_metrics&) {
        const dpo_stats& s = obj.stats();
        train_sum.chosen_reward += s.chosen_reward;
        train_sum.rejected_reward += s.rejected_reward;
        train_sum.margin += s.margin;
        train_sum.accuracy += s.accuracy;
        ++train_steps;
    };
    hooks.evaluate = [&](std::int64_t) {
        last = evaluate_dpo(policy, obj, val_batches, o.batch);
        metrics_map m{{"val_loss", last.loss},
                      {"val_margin", last.margin},
                      {"val_chosen_reward", last.chosen_reward},
                      {"val_rejected_reward", last.rejected_reward},
                      {"val_accuracy", last.accuracy}};
        if (train_steps > 0) {
            const double n = train_steps;
            m.insert(m.end(), {{"train_margin", train_sum.margin / n},
                               {"train_chosen_reward", train_sum.chosen_reward / n},
                               {"train_rejected_reward", train_sum.rejected_reward / n},
                               {"train_accuracy", train_sum.accuracy / n}});
        }
        train_sum = {};
        train_steps = 0;
        return m;
    };
    hooks.save = [&](std::int64_t step) {
        if (rank != 0) // every rank holds the same model; rank 0 writes
            return;
        train_state st;
        st.step = step;
        st.run_json = detail::run_json(o).dump();
        save_checkpoint<S>(ckpt, policy, &opt, tok, st);
    };
    const run_options ro = run_folder_options(iters, o.eval_every, o.log_every, "dpo", dir, ckpt);
    const double secs = train_on_comparisons(tr, ro, batches, o.grad_accum, ranks, rank, hooks);
    std::printf("dpo: held-out loss %.4f, accuracy %.4f over %zu pairs, implicit rewards chosen "
                "%.4f / rejected %.4f (margin %.4f)\n",
                last.loss, last.accuracy, last.pairs, last.chosen_reward, last.rejected_reward,
                last.margin);
    std::printf("done: %lld steps in %.1f s; policy %s\n", static_cast<long long>(iters), secs,
                ckpt.string().c_str());
}

} // namespace gptx
