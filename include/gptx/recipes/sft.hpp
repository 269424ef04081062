// gptx/recipes/sft.hpp: supervised fine-tuning on a run folder, what `gptx sft` does: a checkpoint
// on JSONL {"prompt","response"} demonstrations, model.gptx (latest) and best.gptx (selected),
// exact --resume. Tested by tests/cli/test_sft_cli.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "../core/communicator.hpp"
#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "../core/shape.hpp"
#include "../data/sft.hpp"
#include "../io/checkpoint.hpp"
#include "../io/import.hpp"
#include "../nn/transformer.hpp"
#include "../train/objective.hpp"
#include "../train/optimizer.hpp"
#include "../train/sft.hpp"
#include "run_folder.hpp"

namespace gptx {

// The run's paths and hyper-parameters; the defaults are `gptx sft`'s. Errors name the options
// by their command-line flags.
struct sft_run_options {
    std::string init, data, val_data, out = "out-sft";
    int epochs = 2, batch = 8, warmup = 0, select_every = 0, log_every = 10;
    float lr = 1e-4f, min_lr = -1.0f, weight_decay = 0.0f, grad_clip = 1.0f, dropout = 0.0f;
    std::uint64_t seed = 1337;
    bool resume = false;
    std::int64_t stop_at = -1; // testing: stop after this step, as if interrupted
};

// Throws, naming the flag, on a hyper-parameter out of range or no checkpoint to start from.
inline void validate_sft_options(const sft_run_options& o) {
    GPTX_CHECK(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
    GPTX_CHECK(o.batch > 0, "--batch must be positive, got ", o.batch);
    GPTX_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be positive, got ", o.lr);
    // min_lr < 0 (the default) means lr / 10.
    GPTX_CHECK(!std::isnan(o.min_lr) && o.min_lr <= o.lr, "--min-lr must be at most --lr (", o.lr,
               "), got ", o.min_lr);
    GPTX_CHECK(o.warmup >= 0, "--warmup must be >= 0, got ", o.warmup);
    GPTX_CHECK(o.grad_clip >= 0 && std::isfinite(o.grad_clip),
               "--grad-clip must be a finite number >= 0 (0 disables), got ", o.grad_clip);
    GPTX_CHECK(o.weight_decay >= 0 && std::isfinite(o.weight_decay),
               "--weight-decay must be a finite number >= 0, got ", o.weight_decay);
    GPTX_CHECK(o.select_every >= 0, "--select-every must be >= 0, got ", o.select_every);
    GPTX_CHECK(o.log_every > 0, "--log-every must be positive, got ", o.log_every);
    GPTX_CHECK(o.dropout >= 0 && o.dropout < 1, "--dropout must be in [0, 1), got ", o.dropout);
    GPTX_CHECK(o.resume || !o.init.empty(), "--init is required (or --resume)");
}

// The checkpoint the run starts from (its info fixes the shape): o.out/model.gptx on --resume,
// else --init's.
inline std::filesystem::path sft_start_checkpoint(const sft_run_options& o) {
    const std::filesystem::path init =
        o.resume ? std::filesystem::path(o.out) / "model.gptx" : checkpoint_file(o.init);
    GPTX_CHECK(!o.resume || std::filesystem::exists(init), "--resume: no checkpoint at '",
               init.string(), "'");
    return init;
}

namespace detail {

// What a checkpoint of the run records: what --resume must match, and the selection so far.
inline nlohmann::json sft_run_json(const sft_run_options& o, const sft_selection& sel) {
    return {{"stage", "sft"},
            {"data", o.data},
            {"val_data", o.val_data},
            {"epochs", o.epochs},
            {"batch", o.batch},
            {"lr", o.lr},
            {"min_lr", o.min_lr},
            {"warmup", o.warmup},
            {"weight_decay", o.weight_decay},
            {"grad_clip", o.grad_clip},
            {"dropout", o.dropout},
            {"select_every", o.select_every},
            {"seed", o.seed},
            {"best_step", sel.best_step},
            {"best_score", std::isfinite(sel.best_score) ? nlohmann::json(sel.best_score)
                                                         : nlohmann::json(nullptr)}};
}

// A model like `src` with one more vocabulary row (a fresh end-of-text embedding, N(0, 0.02)).
template <shape S>
std::unique_ptr<transformer<S>> sft_with_end_of_text_row(const transformer<S>& src,
                                                         std::uint64_t seed) {
    auto out = std::make_unique<transformer<S>>(model_config{src.vocab() + 1, src.context()});
    out->init(seed);
    for (int i = 0; i < num_param_tensors; ++i) {
        const auto& from = src.params().view(i);
        std::copy(from.data, from.data + from.size, out->params().view(i).data);
    }
    return out;
}

} // namespace detail

// Runs SFT from the checkpoint `init` (sft_start_checkpoint(o); its info read beforehand, which
// fixes S) to the end of o.epochs in the run folder o.out. Overloads the in-memory run_sft of
// train/sft.hpp: this one takes the shape explicitly, that one deduces the model type.
template <shape S>
void run_sft(const sft_run_options& o, const std::filesystem::path& init,
             const checkpoint_info& info) {
    validate_sft_options(o);
    using model_t = transformer<S>;
    const std::filesystem::path dir = o.out, ckpt = dir / "model.gptx",
                                best_file = dir / "best.gptx";
    std::filesystem::create_directories(dir);
    tokenizer tok;
    std::unique_ptr<model_t> model;
    train_state st;
    sft_selection sel;
    const float min_lr = o.min_lr >= 0 ? o.min_lr : o.lr / 10;
    sft_run_options eff = o;
    eff.min_lr = min_lr;
    std::unique_ptr<adamw<float>> opt;
    const adamw_config ac{o.lr, 0.9f, 0.95f, 1e-8f, o.weight_decay};
    if (o.resume) {
        model = std::make_unique<model_t>(info.config);
        opt = std::make_unique<adamw<float>>(model->params(), ac);
        load_checkpoint<S>(ckpt, *model, opt.get(), &tok, &st);
        const auto saved = nlohmann::json::parse(st.run_json);
        for (const char* k : {"data", "epochs", "batch", "seed", "select_every", "val_data"})
            GPTX_CHECK(saved.at(k) == detail::sft_run_json(eff, sel).at(k), "--resume: --",
                       std::string(k) == "select_every" ? "select-every"
                       : std::string(k) == "val_data"   ? "val-data"
                                                        : k,
                       " differs from the run in '", ckpt.string(), "' (", saved.at(k).dump(), ")");
        sel.best_step = saved.at("best_step").get<std::int64_t>();
        if (!saved.at("best_score").is_null())
            sel.best_score = saved.at("best_score").get<double>();
        std::printf("resumed from %s at step %lld\n", ckpt.string().c_str(),
                    static_cast<long long>(st.step));
    } else {
        model = std::make_unique<model_t>(info.config);
        load_model<S>(init, *model, &tok);
        if (model->vocab() <= tok.vocab_size()) {
            model = detail::sft_with_end_of_text_row(*model, mix64(o.seed ^ 0xe07));
            std::printf("added an end-of-text token (id %d) to the vocabulary\n", tok.vocab_size());
        }
        opt = std::make_unique<adamw<float>>(model->params(), ac);
        model->set_dropout_seed(mix64(o.seed ^ 0xd0d0));
    }
    model->set_dropout(o.dropout);
    const int eot = end_of_text_id(tok, model->vocab()), T = model->context();
    const auto examples = read_sft_jsonl(o.data);
    const auto tokens = tokenize_sft(examples, tok, o.data);
    sft_batches data(tokens, o.batch, T, eot, o.seed, o.data);
    std::unique_ptr<sft_batches> val;
    if (!o.val_data.empty()) {
        const auto v = tokenize_sft(read_sft_jsonl(o.val_data), tok, o.val_data);
        val = std::make_unique<sft_batches>(v, o.batch, T, eot, o.seed, o.val_data);
    }
    const sft_config cfg{
        o.epochs,    o.lr,           min_lr,  o.warmup,
        o.grad_clip, o.select_every, &world()}; // under mpirun: each rank its own batches
    const bool writer = world().rank() == 0;
    std::printf("gptx sft: %s, vocab %d (end-of-text %d), context %d, %zu examples in %d rows, "
                "%d steps per epoch, %d epochs\n",
                to_string(S).c_str(), model->vocab(), eot, T, examples.size(), data.rows(),
                data.steps_per_epoch(), o.epochs);

    lm_objective<model_t> obj;
    sft_hooks<model_t> hooks;
    if (val) // held-out loss over every response token, negated (higher is better)
        hooks.score = [&](model_t& m) {
            double sum = 0, count = 0;
            for (int j = 0; j < val->steps_per_epoch(); ++j) {
                const lm_batch b = val->batch(j);
                double n = 0;
                for (int i = 0; i < b.B * b.T; ++i)
                    n += b.mask[i];
                sum += obj.evaluate(m, b) * n;
                count += n;
            }
            return -sum / count;
        };
    hooks.on_best = [&](model_t& m, std::int64_t step, double score) {
        if (!writer)
            return;
        train_state bs;
        bs.step = step;
        bs.run_json = detail::sft_run_json(eff, {step, score}).dump();
        save_checkpoint<S>(best_file, m, nullptr, tok, bs);
    };
    hooks.on_checkpoint = [&](std::int64_t step, const sft_selection& s) {
        if (!writer)
            return;
        train_state cs;
        cs.step = step;
        cs.dropout_seed = model->dropout_seed();
        cs.dropout_counter = model->dropout_counter();
        cs.run_json = detail::sft_run_json(eff, s).dump();
        save_checkpoint<S>(ckpt, *model, opt.get(), tok, cs);
    };
    hooks.run.log_every = o.log_every;
    hooks.run.progress_label = "sft";
    if (writer)
        hooks.run.metrics = dir / "metrics.jsonl";
    hooks.run.checkpoint_name = ckpt.string();
    hooks.stop_at = o.stop_at;
    if (!o.resume && writer)
        std::filesystem::remove(dir / "metrics.jsonl");
    sel = run_sft(*model, *opt, data, cfg, hooks, st.step, sel);
    std::printf("done: selected step %lld%s; %s (selected), %s (latest)\n",
                static_cast<long long>(sel.best_step),
                val ? (" (held-out loss " + std::to_string(-sel.best_score) + ")").c_str()
                    : " (the last)",
                best_file.string().c_str(), ckpt.string().c_str());
}

} // namespace gptx
