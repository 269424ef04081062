// gptx/recipes/rm.hpp: the InstructGPT reward model trained on ranked comparisons from an SFT
// (or pre-trained) trunk as one call on a run folder, what `gptx rm` does: held-out pairwise
// accuracy, the demonstration bias offset, model.gptx and metrics.jsonl, exact --resume; and
// --evaluate, a trained model's pairwise accuracy on a comparisons file.
// Tested by tests/cli/test_rm_cli.cpp.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/communicator.hpp"
#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/rng.hpp"
#include "../core/shape.hpp"
#include "../data/comparisons.hpp"
#include "../data/sft.hpp"
#include "../io/checkpoint.hpp"
#include "../io/import.hpp"
#include "../nn/reward_model.hpp"
#include "../train/optimizer.hpp"
#include "../train/reward_objective.hpp"
#include "../train/run_loop.hpp"
#include "../train/schedule.hpp"
#include "../train/trainer.hpp"
#include "run_folder.hpp"

namespace gptx {

// The run's paths and hyper-parameters; the defaults are `gptx rm`'s. Errors name the options by
// their command-line flags.
struct reward_model_run_options {
    std::string init, data, val, demos, out = "out-rm";
    double val_fraction = 0.1, epochs = 1.0;
    int iters = 0, decay_iters = 0, batch = 8, grad_accum = 1, warmup = 0, eval_every = 50,
        log_every = 10;
    int end_of_text = -1;
    float lr = 1e-4f, min_lr = -1.0f, weight_decay = 0.0f, beta1 = 0.9f, beta2 = 0.95f;
    float grad_clip = 1.0f, dropout = 0.0f;
    std::uint64_t seed = 1;
    bool resume = false;
    bool evaluate = false; // score --data with the model in --out; train and write nothing
    reward_pooling pooling = reward_pooling::last; // saved as run_json's "pooling"
};

// Throws, naming the flag, on a hyper-parameter out of range.
inline void validate_reward_model_options(const reward_model_run_options& o) {
    GPTX_CHECK(o.batch > 0, "--batch must be positive, got ", o.batch);
    GPTX_CHECK(o.grad_accum > 0, "--grad-accum must be positive, got ", o.grad_accum);
    GPTX_CHECK(o.iters >= 0, "--iters must be positive, got ", o.iters);
    GPTX_CHECK(o.epochs > 0 && std::isfinite(o.epochs), "--epochs must be positive, got ",
               o.epochs);
    GPTX_CHECK(o.val_fraction > 0 && o.val_fraction < 1, "--val-fraction must be in (0, 1), got ",
               o.val_fraction);
    GPTX_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be positive, got ", o.lr);
    GPTX_CHECK(o.min_lr <= o.lr, "--min-lr must be at most --lr, got ", o.min_lr);
    GPTX_CHECK(o.warmup >= 0, "--warmup must be >= 0, got ", o.warmup);
    GPTX_CHECK(o.eval_every > 0, "--eval-every must be positive, got ", o.eval_every);
    GPTX_CHECK(o.log_every > 0, "--log-every must be positive, got ", o.log_every);
    GPTX_CHECK(o.dropout >= 0 && o.dropout < 1, "--dropout must be in [0, 1), got ", o.dropout);
    GPTX_CHECK(o.grad_clip >= 0, "--grad-clip must be >= 0, got ", o.grad_clip);
    GPTX_CHECK(!(o.evaluate && o.resume), "--evaluate and --resume exclude each other");
}

namespace detail {

// The run's settings as saved in model.gptx's run state.
inline nlohmann::json run_json(const reward_model_run_options& o) {
    return {{"init", o.init},
            {"data", o.data},
            {"val", o.val},
            {"val_fraction", o.val_fraction},
            {"demos", o.demos},
            {"epochs", o.epochs},
            {"iters", o.iters},
            {"batch", o.batch},
            {"grad_accum", o.grad_accum},
            {"lr", o.lr},
            {"min_lr", o.min_lr},
            {"warmup", o.warmup},
            {"decay_iters", o.decay_iters},
            {"weight_decay", o.weight_decay},
            {"beta1", o.beta1},
            {"beta2", o.beta2},
            {"grad_clip", o.grad_clip},
            {"dropout", o.dropout},
            {"seed", o.seed},
            {"pooling", to_string(o.pooling)}};
}

} // namespace detail

// Trains a reward model whose trunk starts from init_file (a checkpoint or imported weights; its
// info read beforehand with read_model_info, which fixes S) in the run folder o.out; with
// o.evaluate, scores o.data with the one trained there instead (init_file gives the tokenizer).
template <shape S>
void run_reward_model(const reward_model_run_options& o, const std::filesystem::path& init_file,
                      const checkpoint_info& info) {
    namespace fs = std::filesystem;
    validate_reward_model_options(o);
    using trunk_t = transformer<S>;
    const fs::path dir = o.out, ckpt = dir / "model.gptx", metrics_path = dir / "metrics.jsonl";
    reward_model<S> rm(info.config, o.pooling);
    rm.init(o.seed);
    tokenizer tok;
    load_model<S>(init_file, rm.trunk(), &tok); // the trunk only
    rm.trunk().set_dropout(o.dropout);
    rm.trunk().set_dropout_seed(mix64(o.seed ^ 0xd0d0));
    rm.trunk().set_dropout_counter(0);
    const int eot = end_of_text_for(tok, rm.vocab(), o.end_of_text);
    const int ctx = rm.context();
    if (o.evaluate) { // every comparison of --data, by the trained model; nothing is written
        // --out is a run folder (its model.gptx) or a reward-model checkpoint file.
        const fs::path file = checkpoint_file(dir);
        GPTX_CHECK(fs::is_regular_file(file), "--evaluate: no reward model at '", file.string(),
                   "'");
        tokenizer saved;
        const auto scored =
            load_reward_model<S>(file.string(), info.config, "rm --evaluate", &saved);
        GPTX_CHECK(scored->context() == ctx, file.string(), ": the reward model's context ",
                   scored->context(), " differs from --init's ", ctx);
        GPTX_CHECK(saved == tok, file.string(),
                   ": the reward model's tokenizer differs from --init's");
        const tokenized_comparisons set =
            tokenize_comparisons(read_comparisons(o.data), tok, eot, ctx, o.data);
        reward_objective obj(*scored);
        const reward_eval e = evaluate_rewards<trunk_t>(scored->trunk(), obj, set, o.batch, eot);
        std::printf("reward model %s: pairwise accuracy %.4f over %zu pairs (%zu prompts) of %s, "
                    "loss %.4f\n",
                    file.string().c_str(), e.accuracy, e.pairs, e.prompts, o.data.c_str(), e.loss);
        return;
    }
    fs::create_directories(o.out); // a caller from code may pass a new folder

    const comparison_split split =
        read_comparison_split(o.data, o.val, o.val_fraction, tok, eot, ctx);
    const tokenized_comparisons &train = split.train, &val = split.val;
    std::vector<std::vector<int>> demos;
    std::vector<int> demo_starts; // where each demonstration's response begins
    if (!o.demos.empty())
        for (const sft_example& e : read_sft_jsonl(o.demos))
            demos.push_back(reward_sequence(reward_prefix(tok, e.prompt, eot),
                                            tok.encode(e.response, "response"), eot, ctx, nullptr,
                                            &demo_starts.emplace_back()));

    reward_batcher batches(train, o.batch, eot, o.seed + 1);
    // Under mpirun rank r takes every ranks-th batch (offset r): N ranks train as one process
    // with N times --grad-accum.
    const int ranks = world().size(), rank = world().rank();
    const std::int64_t per_step = std::int64_t(o.grad_accum) * ranks;
    const std::int64_t iters =
        o.iters > 0
            ? o.iters
            : epoch_steps((batches.steps_for_epochs(o.epochs) + per_step - 1) / per_step, o.epochs);
    std::printf(
        "gptx rm: %s, vocab %d, context %d, end-of-text %d | train %zu prompts (%zu pairs), "
        "held out %zu prompts (%zu pairs) | %lld steps of %d prompts, %d threads\n",
        to_string(S).c_str(), rm.vocab(), ctx, eot, train.groups.size(), train.pairs(),
        val.groups.size(), val.pairs(), static_cast<long long>(iters),
        o.batch * o.grad_accum * ranks, num_threads());
    if (train.truncated + val.truncated > 0)
        std::printf("note: %zu sequences were longer than the context %d and lost the start of "
                    "their prompt\n",
                    train.truncated + val.truncated, ctx);

    adamw<float> opt(rm.trunk().params(), {o.lr, o.beta1, o.beta2, 1e-8f, o.weight_decay});
    reward_objective obj(rm);
    const float min_lr = o.min_lr >= 0 ? o.min_lr : o.lr / 10;
    const cosine_schedule sched{o.lr, min_lr, o.warmup,
                                o.decay_iters > 0 ? o.decay_iters : int(iters)};
    trainer tr(rm.trunk(), obj, opt,
               {o.grad_accum, o.grad_clip, [sched](int it) { return sched(it); }, &world()});
    const checkpoint_extra extras[] = {
        {reward_model<S>::head_name, &rm.head().params(), &tr.head_optimizer()}};

    // The saved head carries the demonstration offset; the raw bias it trains from is kept in
    // run_json bit for bit, so a resumed run continues from exactly the same state.
    if (o.resume) {
        GPTX_CHECK(fs::exists(ckpt), "--resume: no checkpoint at '", ckpt.string(), "'");
        tokenizer saved;
        train_state st;
        load_checkpoint<S>(ckpt, rm.trunk(), &opt, &saved, &st, extras);
        GPTX_CHECK(saved == tok, ckpt.string(),
                   ": the checkpoint's tokenizer differs from --init's");
        const auto j = nlohmann::json::parse(st.run_json, nullptr, false);
        GPTX_CHECK(j.is_object() && j.contains("raw_bias_bits"), ckpt.string(),
                   ": not a gptx rm checkpoint (no raw_bias_bits in its run state)");
        const reward_pooling saved_pool = saved_reward_pooling(st.run_json, ckpt.string());
        GPTX_CHECK(saved_pool == o.pooling, "--resume: --pooling ", to_string(o.pooling),
                   " differs from the run in '", dir.string(), "' (", to_string(saved_pool),
                   " there)");
        rm.set_bias(std::bit_cast<float>(j["raw_bias_bits"].get<std::uint32_t>()));
        tr.set_step_count(st.step);
        std::printf("resumed from %s at step %lld\n", ckpt.string().c_str(),
                    static_cast<long long>(st.step));
    } else if (rank == 0) {
        fs::remove(metrics_path);
    }

    reward_eval last{};
    run_hooks hooks;
    hooks.evaluate = [&](std::int64_t) {
        last = evaluate_rewards<trunk_t>(rm.trunk(), obj, val, o.batch, eot);
        return metrics_map{{"val_loss", last.loss}, {"val_accuracy", last.accuracy}};
    };
    hooks.save = [&](std::int64_t step) {
        if (rank != 0) // every rank holds the same model; rank 0 writes
            return;
        const float raw = rm.bias();
        nlohmann::json j = detail::run_json(o);
        j["raw_bias_bits"] = std::bit_cast<std::uint32_t>(raw);
        j["val_accuracy"] = last.accuracy;
        if (!demos.empty())
            j["reward_offset"] = normalize_reward_bias(rm, demos, eot, o.batch, demo_starts);
        train_state st;
        st.step = step;
        st.dropout_seed = rm.trunk().dropout_seed();
        st.dropout_counter = rm.trunk().dropout_counter();
        st.run_json = j.dump();
        save_checkpoint<S>(ckpt, rm.trunk(), &opt, tok, st, extras);
        rm.set_bias(raw);
    };
    const run_options ro = run_folder_options(iters, o.eval_every, o.log_every, "rm", dir, ckpt);
    const double secs = train_on_comparisons(tr, ro, batches, o.grad_accum, ranks, rank, hooks);
    std::printf("reward model: held-out pairwise accuracy %.4f over %zu pairs (%zu prompts), loss "
                "%.4f\n",
                last.accuracy, last.pairs, last.prompts, last.loss);
    if (!demos.empty()) {
        const std::vector<float> r = rm.score_sequences(demos, eot, o.batch, demo_starts);
        double mean = 0;
        for (float v : r)
            mean += v;
        std::printf("reward offset: bias set so the %zu demonstrations average 0 (their raw mean "
                    "was %.4f)\n",
                    demos.size(), mean / double(r.size()));
    }
    std::printf("done: %lld steps in %.1f s; checkpoint %s\n", static_cast<long long>(iters), secs,
                ckpt.string().c_str());
}

} // namespace gptx
