// samples/cli/train.cpp: `gptx train`, language-model pre-training on a text or token file with
// periodic evaluation, checkpoints and metrics.jsonl. Tested by tests/cli/test_cli.cpp.
#include <chrono>
#include <cmath>
#include <fstream>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace gptx::cli {

struct train_options {
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

inline void add_train_command(CLI::App& app, train_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand("train", "Pre-train a GPT language model on a text or token file");
    c->add_option("--text", o.text, "Training text (UTF-8 or any bytes)");
    c->add_option("--train-bin", o.train_bin,
                  "Training tokens (.bin from gptx tokenize), instead of --text");
    c->add_option("--val-bin", o.val_bin,
                  "Validation tokens (.bin; default: the last 10% of --train-bin)");
    c->add_option("--tokenizer", o.tokenizer_kind, "char (sorted unique characters), byte or gpt2")
        ->check(CLI::IsMember({"char", "byte", "gpt2"}));
    c->add_option("--vocab-dir", o.vocab_dir,
                  "Folder with encoder.json and vocab.bpe (--tokenizer gpt2)");
    c->add_option(
        "--tokenizer-file", o.tokenizer_file,
        "Tokenizer saved by gptx tokenize (PREFIX_tokenizer.gtok); overrides --tokenizer");
    c->add_option("--preset", o.preset_name, "Model shape: " + preset_names());
    c->add_option("--weights", o.weights,
                  "Start from these weights instead of random ones (GGUF, safetensors, llm.c .bin "
                  "or .gptx): shape, vocabulary, context and tokenizer come from the file");
    c->add_option("--batch", o.batch, "Sequences per micro-batch");
    c->add_option("--context", o.context, "Tokens per training sequence");
    c->add_option("--model-context", o.model_context,
                  "Positions the model holds (default: --context)");
    c->add_option("--iters", o.iters, "Optimizer steps");
    c->add_option("--grad-accum", o.grad_accum, "Micro-batches per step");
    c->add_option("--lr", o.lr, "Peak learning rate");
    c->add_option("--min-lr", o.min_lr, "Cosine floor");
    c->add_option("--warmup", o.warmup, "Linear warmup steps");
    c->add_option("--decay-iters", o.decay_iters, "Cosine decay length (default: --iters)");
    c->add_option("--weight-decay", o.weight_decay, "AdamW decay on 2-D weights");
    c->add_option("--beta1", o.beta1, "AdamW beta1");
    c->add_option("--beta2", o.beta2, "AdamW beta2");
    c->add_option("--grad-clip", o.grad_clip, "Global gradient-norm clip (0 disables)");
    c->add_option("--dropout", o.dropout, "Dropout rate (0 disables)");
    c->add_option("--eval-every", o.eval_every, "Steps between evaluations");
    c->add_option("--eval-iters", o.eval_iters, "Batches per evaluation");
    c->add_option("--log-every", o.log_every, "Steps between progress lines");
    c->add_option("--seed", o.seed, "Seed for init, batches and dropout");
    c->add_option("--rng", o.rng_kind,
                  "Random stream for init and batches: gptx (xoshiro256**), or torch: PyTorch's, "
                  "drawn as nanoGPT's train.py draws, so --seed 1337 starts where nanoGPT starts "
                  "(with --model-context equal to --context, nanoGPT's one block_size)")
        ->check(CLI::IsMember({"gptx", "torch"}));
    c->add_option("--out", o.out, "Run folder: model.gptx and metrics.jsonl");
    c->add_flag("--resume", o.resume, "Continue from the checkpoint in --out");
    c->add_option("--zero", o.zero,
                  "Under mpirun: 1 shards AdamW's state over the ranks (ZeRO-1), 0 replicates it")
        ->check(CLI::IsMember({0, 1}));
    c->callback([&] { run(); });
}

namespace detail {

inline void validate(const train_options& o) {
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

inline nlohmann::json run_json(const train_options& o) {
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
struct training_stream {
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

template <shape S>
void train_loop(const train_options& o, const tokenizer& tok, std::vector<int> train_ids,
                std::vector<int> val_ids, const model_config& cfg) {
    using model_t = transformer<S>;
    const fs::path dir = o.out, ckpt = dir / "model.gptx", metrics_path = dir / "metrics.jsonl";
    model_t model(cfg);
    // Data parallel (mpirun): each step draws one global batch of batch x ranks rows, the same on
    // every rank, and rank r trains on rows [r*batch, (r+1)*batch); so N ranks see exactly what
    // one process with N times the batch sees, and the data position is rank-count independent.
    communicator& comm = world();
    const int ranks = comm.size(), rank = comm.rank();
    const bool torch_rng = o.rng_kind == "torch";
    GPTX_CHECK(!torch_rng || ranks == 1, "--rng torch runs in one process, not ", ranks,
               " ranks (nanoGPT's DDP seeds each rank differently)");
    training_stream data;
    if (torch_rng) {
        torch_generator g(o.seed);
        init_like_nanogpt(model, g);
        data.torch.emplace(std::move(g), std::move(train_ids), o.batch, o.context);
    } else {
        model.init(o.seed);
        data.own.emplace(std::move(train_ids), o.batch * ranks, o.context, rng(o.seed + 1));
    }
    if (!o.weights.empty())
        load_model<S>(o.weights, model, nullptr);
    model.set_dropout(o.dropout);
    model.set_dropout_seed(mix64(o.seed ^ 0xd0d0));
    const adamw_config ocfg{o.lr, o.beta1, o.beta2, 1e-8f, o.weight_decay};
    adamw<float> opt = o.zero == 1 ? dist::make_zero1_adamw(model.params(), ocfg, comm)
                                   : adamw<float>(model.params(), ocfg);
    GPTX_CHECK(val_ids.size() > static_cast<std::size_t>(o.context), "validation split has ",
               val_ids.size(), " tokens; --context ", o.context, " needs at least ", o.context + 1,
               " (use a longer text or a shorter context)");
    const std::vector<int>& val_tokens = val_ids;
    const std::vector<int>& train_tokens = data.tokens();

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
            data.set_state(st.data_rng);
        } catch (const gptx::error& e) {
            throw gptx::error(ckpt.string() + ": " + e.what());
        }
        if (torch_rng && start == 0) // saved after the step-0 evaluation, which runs again
            data.torch->rewind_to_pending();
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
                data.torch->eval_batch(tokens, x.data(), y.data());
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
            off_grid = data.torch->state();
        metrics_map m{{"train_loss", estimate(train_tokens, o.seed + 101)},
                      {"val_loss", estimate(val_tokens, o.seed + 202)}};
        if (off_grid)
            data.torch->set_state(*off_grid);
        // At the end, the loss over the whole val split too: the low-noise figure.
        if (step == o.iters)
            m.emplace_back("val_loss_full",
                           lm_sequence_loss(obj, model, val_tokens, o.batch, o.context));
        return m;
    };
    hooks.save = [&](std::int64_t step) {
        train_state st;
        st.step = step;
        st.data_rng = data.state();
        st.dropout_seed = model.dropout_seed();
        st.dropout_counter = model.dropout_counter();
        st.run_json = run_json(o).dump();
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
            data.next(xb, yb);
            return lm_batch{xb + n * rank, yb + n * rank, nullptr, o.batch, o.context};
        },
        hooks);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_run).count();
    std::printf("done: %d steps in %.1f s; checkpoint %s\n", o.iters, secs, ckpt.string().c_str());
}

} // namespace detail

// The tokenizer for token files: a saved one, or gpt2/byte (char needs the saved vocabulary).
inline tokenizer tokenizer_for_tokens(const std::string& file, const std::string& kind,
                                      const std::string& vocab_dir) {
    if (!file.empty())
        return tokenizer::deserialize(read_text_file(file));
    GPTX_CHECK(kind != "char", "--tokenizer char with token files needs --tokenizer-file "
                               "PREFIX_tokenizer.gtok (written by gptx tokenize)");
    return make_tokenizer(kind, "", vocab_dir);
}

// Token files must only hold ids the tokenizer knows.
inline void check_ids(const std::vector<int>& ids, const tokenizer& tok, const std::string& file) {
    for (std::size_t i = 0; i < ids.size(); ++i)
        GPTX_CHECK(ids[i] < tok.vocab_size(), file, ": token ", ids[i], " at position ", i,
                   " is outside the ", tok.kind(), " tokenizer's vocabulary (", tok.vocab_size(),
                   " tokens)");
}

inline void run_train(const train_options& o) {
    detail::validate(o);
    const preset& p = require_preset(o.preset_name);
    std::optional<checkpoint_info> from; // --weights: the model's shape and sizes
    if (!o.weights.empty())
        from = read_model_info(o.weights);
    GPTX_CHECK(o.text.empty() != o.train_bin.empty(), "give either --text or --train-bin");
    GPTX_CHECK(o.val_bin.empty() || !o.train_bin.empty(), "--val-bin needs --train-bin");
    tokenizer tok;
    train_val_split split;
    if (!o.train_bin.empty()) {
        tok = from ? read_model_tokenizer(o.weights)
                   : tokenizer_for_tokens(o.tokenizer_file, o.tokenizer_kind, o.vocab_dir);
        std::vector<int> train = read_token_file(o.train_bin);
        check_ids(train, tok, o.train_bin);
        if (o.val_bin.empty()) {
            split = split_train_val(train, 0.1);
        } else {
            split.train = std::move(train);
            split.val = read_token_file(o.val_bin);
            check_ids(split.val, tok, o.val_bin);
        }
    } else {
        const std::string text = read_text_file(o.text);
        tok = from                       ? read_model_tokenizer(o.weights)
              : o.tokenizer_file.empty() ? make_tokenizer(o.tokenizer_kind, text, o.vocab_dir)
                                         : tokenizer::deserialize(read_text_file(o.tokenizer_file));
        std::vector<int> ids = tok.encode(text);
        split = split_train_val(ids, 0.1);
    }
    const std::string source = o.train_bin.empty() ? o.text : o.train_bin;
    const int model_context = from                  ? from->config.context
                              : o.model_context > 0 ? o.model_context
                                                    : o.context;
    GPTX_CHECK(o.context <= model_context, "--context ", o.context,
               " is larger than the model's context ", model_context);
    GPTX_CHECK(split.train.size() > static_cast<std::size_t>(o.context), source, ": ",
               split.train.size(), " training tokens are too few for --context ", o.context);
    fs::create_directories(o.out);
    const model_config cfg = from ? from->config : model_config{tok.vocab_size(), model_context};
    GPTX_CHECK(tok.vocab_size() <= cfg.vocab, o.weights, ": its tokenizer has ", tok.vocab_size(),
               " tokens, the model ", cfg.vocab, " embedding rows");
    std::string ranks_note; // under mpirun: threads per rank x ranks
    if (world().size() > 1)
        ranks_note.append(" x ").append(std::to_string(world().size())).append(" ranks");
    std::printf(
        "gptx train: %s (%s), vocab %d, context %d, %zu train / %zu val tokens, %d threads%s\n",
        from ? o.weights.c_str() : std::string(p.name).c_str(),
        to_string(from ? from->dims : p.dims).c_str(), cfg.vocab, model_context, split.train.size(),
        split.val.size(), num_threads(), ranks_note.c_str());
    auto loop = [&]<shape S>() {
        detail::train_loop<S>(o, tok, std::move(split.train), std::move(split.val), cfg);
    };
    if (!from)
        with_preset(o.preset_name, loop);
    else
        GPTX_CHECK(with_checkpoint_preset(*from, loop), o.weights, ": no preset has the shape ",
                   to_string(from->dims));
}

void add_train_command(commands& cmds) { cmds.add(add_train_command, run_train); }

} // namespace gptx::cli
