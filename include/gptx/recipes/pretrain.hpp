// gptx/recipes/pretrain.hpp: language-model pre-training as one call on a run folder, what
// `gptx train` does: the tokenizer and token splits, random or imported initial weights, periodic
// evaluation, model.gptx and metrics.jsonl, --resume. Tested by tests/cli/test_cli.cpp.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/communicator.hpp"
#include "../core/error.hpp"
#include "../core/file.hpp"
#include "../core/rng.hpp"
#include "../core/shape.hpp"
#include "../core/torch_rng.hpp"
#include "../data/batcher.hpp"
#include "../data/lm_batch.hpp"
#include "../data/token_file.hpp"
#include "../dist/data_parallel.hpp"
#include "../io/checkpoint.hpp"
#include "../io/import.hpp"
#include "../nn/nanogpt_init.hpp"
#include "../nn/transformer.hpp"
#include "../ops/adamw.hpp"
#include "../text/tokenizer.hpp"
#include "../train/objective.hpp"
#include "../train/run_loop.hpp"
#include "../train/schedule.hpp"
#include "../train/trainer.hpp"

namespace gptx {

// The run's data, model and hyper-parameters; the defaults are `gptx train`'s. Errors name the
// options by their command-line flags.
struct pretrain_run_options {
    std::string text, tokenizer_kind = "char", preset_name = "baby", out = "out";
    std::string train_bin, val_bin, vocab_dir, tokenizer_file; // token files (gptx tokenize)
    std::string rng_kind = "gptx"; // gptx (xoshiro256**) or torch (PyTorch's, nanoGPT's order)
    std::string weights; // initial weights (GGUF, safetensors, llm.c, .gptx) instead of random
    int batch = 12, context = 64, model_context = 0, iters = 2000, warmup = 100, decay_iters = 0;
    int grad_accum = 1, eval_every = 250, eval_iters = 20, log_every = 10;
    int zero = 0; // ZeRO stage under mpirun: 0 replicates AdamW's state, 1 shards it
    float lr = 1e-3f, min_lr = 1e-4f, weight_decay = 0.1f, beta1 = 0.9f, beta2 = 0.99f,
          grad_clip = 1.0f;
    float dropout = 0.0f;
    std::uint64_t seed = 1337;
    bool resume = false;
};

// Throws, naming the flag, on a hyper-parameter out of range.
inline void validate_pretrain_options(const pretrain_run_options& o) {
    GPTX_CHECK(o.batch > 0, "--batch must be positive, got ", o.batch);
    GPTX_CHECK(o.iters > 0, "--iters must be positive, got ", o.iters);
    GPTX_CHECK(o.context > 0, "--context must be positive, got ", o.context);
    GPTX_CHECK(o.grad_accum > 0, "--grad-accum must be positive, got ", o.grad_accum);
    GPTX_CHECK(o.eval_every > 0, "--eval-every must be positive, got ", o.eval_every);
    GPTX_CHECK(o.eval_iters > 0, "--eval-iters must be positive, got ", o.eval_iters);
    GPTX_CHECK(o.log_every > 0, "--log-every must be positive, got ", o.log_every);
    GPTX_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be positive, got ", o.lr);
    GPTX_CHECK(o.min_lr >= 0 && o.min_lr <= o.lr, "--min-lr must be in [0, --lr], got ", o.min_lr);
    GPTX_CHECK(o.warmup >= 0, "--warmup must be >= 0, got ", o.warmup);
    GPTX_CHECK(o.dropout >= 0 && o.dropout < 1, "--dropout must be in [0, 1), got ", o.dropout);
    GPTX_CHECK(o.grad_clip >= 0, "--grad-clip must be >= 0, got ", o.grad_clip);
    // nanoGPT's dropout masks come from the same generator; gptx's come from a counter hash.
    GPTX_CHECK(o.rng_kind != "torch" || o.dropout == 0, "--rng torch needs --dropout 0 (got ",
               o.dropout, "): PyTorch's dropout masks would draw from the stream it reproduces");
}

// What pre-training reads before the model exists (read_pretrain_data): the tokenizer, the token
// splits and the model's sizes.
struct pretrain_data {
    std::optional<checkpoint_info> from; // with o.weights: the model's shape and sizes
    tokenizer tok;
    std::vector<int> train, val;
    model_config config;
};

namespace detail {

// The tokenizer for token files: a saved one, or gpt2/byte (char needs the saved vocabulary).
inline tokenizer pretrain_tokenizer_for_tokens(const std::string& file, const std::string& kind,
                                               const std::string& vocab_dir) {
    if (!file.empty())
        return read_tokenizer_file(file);
    GPTX_CHECK(kind != "char", "--tokenizer char with token files needs --tokenizer-file "
                               "PREFIX_tokenizer.gtok (written by gptx tokenize)");
    return make_tokenizer(kind, "", vocab_dir);
}

// Token files must only hold ids the tokenizer knows.
inline void check_pretrain_ids(const std::vector<int>& ids, const tokenizer& tok,
                               const std::string& file) {
    for (std::size_t i = 0; i < ids.size(); ++i)
        GPTX_CHECK(ids[i] < tok.vocab_size(), file, ": token ", ids[i], " at position ", i,
                   " is outside the ", tok.kind(), " tokenizer's vocabulary (", tok.vocab_size(),
                   " tokens)");
}

// The hyper-parameters saved in the checkpoint's run_json.
inline nlohmann::json pretrain_run_json(const pretrain_run_options& o) {
    return {{"text", o.text},
            {"tokenizer", o.tokenizer_kind},
            {"preset", o.preset_name},
            {"batch", o.batch},
            {"context", o.context},
            {"iters", o.iters},
            {"lr", o.lr},
            {"min_lr", o.min_lr},
            {"warmup", o.warmup},
            {"weight_decay", o.weight_decay},
            {"beta1", o.beta1},
            {"beta2", o.beta2},
            {"grad_clip", o.grad_clip},
            {"dropout", o.dropout},
            {"grad_accum", o.grad_accum},
            {"seed", o.seed},
            {"rng", o.rng_kind},
            {"train_bin", o.train_bin},
            {"val_bin", o.val_bin},
            {"weights", o.weights}};
}

// The training batches: gptx's batcher (init from seed, batches from seed + 1, evaluations
// reseeded each time), or nanogpt_batches on PyTorch's generator (one stream for init, batches
// and evaluations, in nanoGPT's order).
struct pretrain_stream {
    std::optional<batcher> own;
    std::optional<nanogpt_batches> torch;

    const std::vector<int>& tokens() const { return torch ? torch->tokens() : own->tokens(); }
    void next(int* x, int* y) { torch ? torch->next(x, y) : own->next(x, y); }
    // As train_state::data_rng: the batcher's generator, or nanogpt_batches' state then 0.
    rng::state_type state() const {
        if (!torch)
            return own->rng_state();
        const auto t = torch->state();
        return {t[0], t[1], t[2], 0};
    }
    void set_state(const rng::state_type& s) {
        if (torch)
            torch->set_state({s[0], s[1], s[2]});
        else
            own->set_rng_state(s);
    }
};

} // namespace detail

// Reads o's text (tokenized with a new or saved tokenizer) or token files, split 90/10 unless
// o.val_bin is given, and the model's sizes from o.weights or the tokenizer and o.model_context;
// creates the run folder o.out.
inline pretrain_data read_pretrain_data(const pretrain_run_options& o) {
    validate_pretrain_options(o);
    pretrain_data d;
    if (!o.weights.empty())
        d.from = read_model_info(o.weights);
    GPTX_CHECK(o.text.empty() != o.train_bin.empty(), "give either --text or --train-bin");
    GPTX_CHECK(o.val_bin.empty() || !o.train_bin.empty(), "--val-bin needs --train-bin");
    train_val_split split;
    if (!o.train_bin.empty()) {
        d.tok = d.from ? read_model_tokenizer(o.weights)
                       : detail::pretrain_tokenizer_for_tokens(o.tokenizer_file, o.tokenizer_kind,
                                                               o.vocab_dir);
        std::vector<int> train = read_token_file(o.train_bin);
        detail::check_pretrain_ids(train, d.tok, o.train_bin);
        if (o.val_bin.empty()) {
            split = split_train_val(train, 0.1);
        } else {
            split.train = std::move(train);
            split.val = read_token_file(o.val_bin);
            detail::check_pretrain_ids(split.val, d.tok, o.val_bin);
        }
    } else {
        const std::string text = read_text_file(o.text);
        d.tok = d.from                     ? read_model_tokenizer(o.weights)
                : o.tokenizer_file.empty() ? make_tokenizer(o.tokenizer_kind, text, o.vocab_dir)
                                           : read_tokenizer_file(o.tokenizer_file);
        std::vector<int> ids = d.tok.encode(text);
        split = split_train_val(ids, 0.1);
    }
    const std::string source = o.train_bin.empty() ? o.text : o.train_bin;
    const int model_context = d.from                ? d.from->config.context
                              : o.model_context > 0 ? o.model_context
                                                    : o.context;
    GPTX_CHECK(o.context <= model_context, "--context ", o.context,
               " is larger than the model's context ", model_context);
    GPTX_CHECK(split.train.size() > static_cast<std::size_t>(o.context), source, ": ",
               split.train.size(), " training tokens are too few for --context ", o.context);
    std::filesystem::create_directories(o.out);
    d.config = d.from ? d.from->config : model_config{d.tok.vocab_size(), model_context};
    GPTX_CHECK(d.tok.vocab_size() <= d.config.vocab, o.weights, ": its tokenizer has ",
               d.tok.vocab_size(), " tokens, the model ", d.config.vocab, " embedding rows");
    d.train = std::move(split.train);
    d.val = std::move(split.val);
    return d;
}

// Pre-trains a model of shape S (o.preset_name's, or data.from's with o.weights) on data to
// o.iters steps in the run folder o.out; prints progress and a last "done:" line.
template <shape S> void run_pretrain(const pretrain_run_options& o, pretrain_data data) {
    validate_pretrain_options(o);
    using model_t = transformer<S>;
    namespace fs = std::filesystem;
    const tokenizer& tok = data.tok;
    const fs::path dir = o.out, ckpt = dir / "model.gptx", metrics_path = dir / "metrics.jsonl";
    model_t model(data.config);
    // Data parallel (mpirun): each step draws one global batch of batch x ranks rows, the same on
    // every rank, and rank r trains on rows [r*batch, (r+1)*batch); so N ranks see exactly what
    // one process with N times the batch sees, and the data position is rank-count independent.
    communicator& comm = world();
    const int ranks = comm.size(), rank = comm.rank();
    const bool torch_rng = o.rng_kind == "torch";
    GPTX_CHECK(!torch_rng || ranks == 1, "--rng torch runs in one process, not ", ranks,
               " ranks (nanoGPT's DDP seeds each rank differently)");
    detail::pretrain_stream stream;
    if (torch_rng) {
        torch_generator g(o.seed);
        init_like_nanogpt(model, g);
        stream.torch.emplace(std::move(g), std::move(data.train), o.batch, o.context);
    } else {
        model.init(o.seed);
        stream.own.emplace(std::move(data.train), o.batch * ranks, o.context, rng(o.seed + 1));
    }
    if (!o.weights.empty())
        load_model<S>(o.weights, model, nullptr);
    model.set_dropout(o.dropout);
    model.set_dropout_seed(mix64(o.seed ^ 0xd0d0));
    const adamw_config ocfg{o.lr, o.beta1, o.beta2, 1e-8f, o.weight_decay};
    adamw<float> opt = o.zero == 1 ? dist::make_zero1_adamw(model.params(), ocfg, comm)
                                   : adamw<float>(model.params(), ocfg);
    GPTX_CHECK(data.val.size() > static_cast<std::size_t>(o.context), "validation split has ",
               data.val.size(), " tokens; --context ", o.context, " needs at least ", o.context + 1,
               " (use a longer text or a shorter context)");
    const std::vector<int>& val_tokens = data.val;
    const std::vector<int>& train_tokens = stream.tokens();

    std::int64_t start = 0;
    if (o.resume) {
        GPTX_CHECK(fs::exists(ckpt), "--resume: no checkpoint at '", ckpt.string(), "'");
        tokenizer saved;
        train_state st;
        if (opt.sharded()) { // every rank reads the whole state and keeps its window
            adamw<float> full(model.params(), ocfg);
            load_checkpoint<S>(ckpt, model, &full, &saved, &st);
            dist::load_adamw_window(opt, full);
        } else {
            load_checkpoint<S>(ckpt, model, &opt, &saved, &st);
        }
        GPTX_CHECK(saved == tok, ckpt.string(),
                   ": the checkpoint's tokenizer differs from the one built from --text");
        const auto run = nlohmann::json::parse(st.run_json, nullptr, false);
        const std::string saved_rng =
            run.is_object() ? run.value("rng", std::string("gptx")) : std::string("gptx");
        GPTX_CHECK(saved_rng == o.rng_kind, ckpt.string(), ": the run used --rng ", saved_rng,
                   ", not --rng ", o.rng_kind, "; resume it with the same stream");
        start = st.step;
        // PyTorch's stream position counts words, and a batch is --batch words.
        GPTX_CHECK(!torch_rng || run.value("batch", 0) == o.batch, ckpt.string(),
                   ": the run used --batch ", run.value("batch", 0),
                   "; --rng torch resumes only with the same --batch, not ", o.batch);
        try {
            stream.set_state(st.data_rng);
        } catch (const gptx::error& e) {
            throw gptx::error(ckpt.string() + ": " + e.what());
        }
        if (torch_rng && start == 0) // saved after the step-0 evaluation, which runs again
            stream.torch->rewind_to_pending();
        model.set_dropout_seed(st.dropout_seed);
        model.set_dropout_counter(st.dropout_counter);
        std::printf("resumed from %s at step %lld\n", ckpt.string().c_str(),
                    static_cast<long long>(start));
    }

    lm_objective<model_t> obj;
    const int decay = o.decay_iters > 0 ? o.decay_iters : o.iters;
    cosine_schedule sched{o.lr, o.min_lr, o.warmup, decay};
    trainer tr(model, obj, opt,
               {o.grad_accum, o.grad_clip, [sched](int it) { return sched(it); }, &comm});
    tr.set_step_count(start);

    const std::size_t n = std::size_t(o.batch) * o.context;
    std::vector<int> x(n * ranks * o.grad_accum), y(n * ranks * o.grad_accum);
    if (!o.resume && rank == 0)
        fs::remove(metrics_path);

    // gptx's evaluation batches come from generators reseeded every time, so every evaluation
    // sees the same batches and a resumed run needs no extra state; torch's come from the stream.
    auto estimate = [&](const std::vector<int>& tokens, std::uint64_t seed) {
        std::optional<batcher> b;
        if (!torch_rng)
            b.emplace(std::vector<int>(tokens), o.batch, o.context, rng(seed));
        double sum = 0;
        for (int i = 0; i < o.eval_iters; ++i) {
            if (b)
                b->next(x.data(), y.data());
            else
                stream.torch->eval_batch(tokens, x.data(), y.data());
            if (i % ranks == rank) // the ranks share the batches
                sum += obj.evaluate(model, {x.data(), y.data(), nullptr, o.batch, o.context});
        }
        return comm.sum(sum) / o.eval_iters;
    };
    run_hooks hooks;
    hooks.evaluate = [&](std::int64_t step) {
        // nanoGPT evaluates only every eval_every steps; an extra final evaluation must not move
        // its stream, or a run stopped there and resumed would differ from an uninterrupted one.
        std::optional<nanogpt_batches::state_type> off_grid;
        if (torch_rng && step % o.eval_every != 0)
            off_grid = stream.torch->state();
        metrics_map m{{"train_loss", estimate(train_tokens, o.seed + 101)},
                      {"val_loss", estimate(val_tokens, o.seed + 202)}};
        if (off_grid)
            stream.torch->set_state(*off_grid);
        // At the end, the loss over the whole val split too: the low-noise figure.
        if (step == o.iters)
            m.emplace_back("val_loss_full",
                           lm_sequence_loss(obj, model, val_tokens, o.batch, o.context));
        return m;
    };
    hooks.save = [&](std::int64_t step) {
        train_state st;
        st.step = step;
        st.data_rng = stream.state();
        st.dropout_seed = model.dropout_seed();
        st.dropout_counter = model.dropout_counter();
        st.run_json = detail::pretrain_run_json(o).dump();
        if (opt.sharded()) { // collective: rank 0 receives every window
            const adamw<float> full = dist::gather_adamw(model.params(), opt, comm);
            if (rank == 0)
                save_checkpoint<S>(ckpt, model, &full, tok, st);
        } else if (rank == 0) {
            save_checkpoint<S>(ckpt, model, &opt, tok, st);
        }
    };
    run_options ro;
    ro.iters = o.iters;
    ro.eval_every = o.eval_every;
    ro.log_every = o.log_every;
    ro.tokens_per_step = std::int64_t(n) * o.grad_accum * ranks;
    if (rank == 0)
        ro.metrics = metrics_path;
    ro.checkpoint_name = ckpt.string();

    const auto t_run = std::chrono::steady_clock::now();
    run_training(
        tr, ro,
        [&](int micro) {
            int* xb = x.data() + n * ranks * micro;
            int* yb = y.data() + n * ranks * micro;
            stream.next(xb, yb);
            return lm_batch{xb + n * rank, yb + n * rank, nullptr, o.batch, o.context};
        },
        hooks);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_run).count();
    std::printf("done: %d steps in %.1f s; checkpoint %s\n", o.iters, secs, ckpt.string().c_str());
}

} // namespace gptx
