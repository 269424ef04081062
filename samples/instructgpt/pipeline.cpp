// samples/instructgpt/pipeline.cpp: run_pipeline, the stages of pipeline.hpp in order (one
// translation unit, so the command that parses its options rebuilds alone). Tested by
// tests/cli/test_sft_cli.cpp (--quick).
#include "pipeline.hpp"

namespace gptx::instructgpt {

namespace {

// The settings no stage can use, each refused by its flag before anything is trained (stages
// check theirs too, but only once the stages before them have run). NaN fails every test.
void validate_pipeline_options(const pipeline_options& o) {
    const std::pair<const char*, double> positive[] = {
        {"--corpus-chars", o.corpus_chars},
        {"--pretrain-iters", o.pretrain_iters},
        {"--pretrain-lr", o.pretrain_lr},
        {"--sft-examples", o.sft_examples},
        {"--sft-epochs", o.sft_epochs},
        {"--sft-lr", o.sft_lr},
        {"--rm-prompts", o.rm_prompts},
        {"--rm-val-prompts", o.rm_val_prompts},
        {"--rm-batch", o.rm_batch},
        {"--rm-epochs", o.rm_epochs},
        {"--rm-lr", o.rm_lr},
        {"--rm-hot-temperature", o.rm_hot_temperature},
        {"--ppo-prompts", o.ppo_prompts},
        {"--ppo-iters", o.ppo_iters},
        {"--rollouts", o.rollouts},
        {"--ppo-minibatch", o.ppo_minibatch},
        {"--ppo-epochs", o.ppo_epochs},
        {"--ppo-lr", o.ppo_lr},
        {"--dpo-beta", o.dpo_beta},
        {"--dpo-epochs", o.dpo_epochs},
        {"--dpo-lr", o.dpo_lr},
        {"--eval-prompts", o.eval_prompts},
        {"--rs-k", o.rs_k},
        {"--rs-epochs", o.rs_epochs}};
    for (const auto& [flag, v] : positive)
        GPTX_CHECK(v > 0 && std::isfinite(v), flag, " must be positive, got ", v);
    const std::pair<const char*, double> non_negative[] = {
        {"--value-lr", o.value_lr},
        {"--value-warmup", o.value_warmup},
        {"--ppo-lr-warmup", o.ppo_lr_warmup},
        {"--kl-coef", o.kl_coef},
        {"--ptx-coef", o.ptx_coef},
        {"--grpo-kl-coef", o.grpo_kl_coef},
        {"--eval-temperature", o.eval_temperature}};
    for (const auto& [flag, v] : non_negative)
        GPTX_CHECK(v >= 0 && std::isfinite(v), flag, " must be a finite number >= 0, got ", v);
    // The dialogue stage's, whose 0 or -1 mean "the stage's default" or "as the instruction
    // stage's": NaN would slip past those tests and pick a meaning silently.
    GPTX_CHECK(o.dialogue_rm_ensemble_penalty >= 0 && std::isfinite(o.dialogue_rm_ensemble_penalty),
               "--dialogue-rm-ensemble-penalty must be a finite number >= 0, got ",
               o.dialogue_rm_ensemble_penalty);
    GPTX_CHECK(o.dialogue_rm_native >= 0 && o.dialogue_rm_native <= 1,
               "--dialogue-rm-native must be in [0, 1], got ", o.dialogue_rm_native);
    GPTX_CHECK(o.dialogue_rm_epochs >= 0 && std::isfinite(o.dialogue_rm_epochs),
               "--dialogue-rm-epochs must be a finite number >= 0 (0: the stage's default), got ",
               o.dialogue_rm_epochs);
    GPTX_CHECK(std::isfinite(o.dialogue_ptx_coef),
               "--dialogue-ptx-coef must be a finite number (< 0: as --ptx-coef), got ",
               o.dialogue_ptx_coef);
    GPTX_CHECK(std::isfinite(o.oracle_reward) && std::isfinite(o.rm_ensemble_penalty),
               "--oracle-reward and --rm-ensemble-penalty must be finite");
    GPTX_CHECK(o.rm_k >= 2, "--rm-k must be at least 2 (responses ranked per prompt), got ",
               o.rm_k);
    GPTX_CHECK(o.rm_hot >= 0 && o.rm_hot <= o.rm_k, "--rm-hot must be in [0, --rm-k = ", o.rm_k,
               "], got ", o.rm_hot);
    GPTX_CHECK(o.ppo_keep >= 0 && o.ppo_keep <= o.rollouts,
               "--ppo-keep must be in [0, --rollouts = ", o.rollouts, "] (0: all), got ",
               o.ppo_keep);
    GPTX_CHECK(o.gae_lambda >= 0 && o.gae_lambda <= 1, "--gae-lambda must be in [0, 1], got ",
               o.gae_lambda);
    GPTX_CHECK(o.demo_padded >= 0 && o.demo_padded <= 1, "--demo-padded must be in [0, 1], got ",
               o.demo_padded);
}

} // namespace

void run_pipeline(pipeline_options o) {
    using namespace detail;
    using model_t = pipeline_model;
    validate_pipeline_options(o); // the values given, before --quick replaces the sizes
    if (o.quick)
        apply_quick(o);
    const std::vector<std::string> methods = parse_methods(o.methods);
    GPTX_CHECK(o.group_size >= 2, "--group-size must be at least 2, got ", o.group_size);
    // The RLHF stages split their PPO iterations (--ppo-iters, --dialogue-ppo-iters) over the
    // rounds: say so before anything is trained.
    const bool dialogue_runs = !o.no_dialogue && !o.evaluate_only;
    GPTX_CHECK(o.rlhf_rounds >= 1 && o.rlhf_rounds <= o.ppo_iters, "--rlhf-rounds ", o.rlhf_rounds,
               " must be between 1 and --ppo-iters ", o.ppo_iters,
               " (every round needs an iteration)");
    GPTX_CHECK(!dialogue_runs || o.rlhf_rounds <= o.dialogue_ppo_iters_or_default(),
               "--rlhf-rounds ", o.rlhf_rounds, " must be at most --dialogue-ppo-iters ",
               o.dialogue_ppo_iters_or_default(), " (every round needs an iteration)");
    GPTX_CHECK(o.dialogue_ppo_iters >= 0 && o.dialogue_ppo_epochs >= 0 &&
                   o.dialogue_ppo_minibatch >= 0 && o.dialogue_ppo_lr >= 0 &&
                   o.dialogue_eval_conversations >= 0,
               "--dialogue-ppo-iters, --dialogue-ppo-epochs, --dialogue-ppo-minibatch, "
               "--dialogue-ppo-lr and --dialogue-eval-conversations must be >= 0 (0: as the "
               "instruction stage's)");
    GPTX_CHECK(!dialogue_runs || o.dialogue_rm_ensemble == 1 || o.rlhf_rounds == 1,
               "--dialogue-rm-ensemble ", o.dialogue_rm_ensemble, " with --rlhf-rounds ",
               o.rlhf_rounds,
               ": iterated RLHF retrains one dialogue RM, not an ensemble (add "
               "--dialogue-rm-ensemble 1)");
    GPTX_CHECK(o.rm_ensemble >= 1 && o.rm_ensemble_penalty >= 0,
               "--rm-ensemble must be >= 1 and "
               "--rm-ensemble-penalty >= 0, got ",
               o.rm_ensemble, " and ", o.rm_ensemble_penalty);
    GPTX_CHECK(o.oracle_reward >= 0, "--oracle-reward must be >= 0 (0: the reward model), got ",
               o.oracle_reward);
    validate_likelihood_term({o.rm_likelihood, o.rm_likelihood_only});
    GPTX_CHECK(o.rm_likelihood == 0 || o.oracle_reward == 0,
               "--rm-likelihood adds to the reward model's reward; --oracle-reward replaces it "
               "(give one of them)");
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
    // PPO-ptx's stream: the pre-training split, or --ptx-text (checked before anything trains).
    std::vector<int> ptx_text_tokens;
    if (!o.ptx_text.empty()) {
        ptx_text_tokens = tok.encode(read_text_file(o.ptx_text), o.ptx_text);
        GPTX_CHECK(ptx_text_tokens.size() > std::size_t(T), o.ptx_text, ": ",
                   ptx_text_tokens.size(), " characters, fewer than one PPO-ptx sequence of ",
                   T + 1);
    }
    const std::vector<int>& ptx_tokens = o.ptx_text.empty() ? split.train : ptx_text_tokens;
    {
        std::ofstream(dir / "corpus.txt", std::ios::binary) << corpus;
        write_token_file(dir / "pretrain_train.bin", split.train);
        write_token_file(dir / "pretrain_val.bin", split.val);
    }
    // One distribution for every set: the held-out sets (evaluation, SFT selection, the RM's
    // held-out comparisons) are distinct and disjoint; the training sets (demonstrations, RM
    // comparisons, PPO prompts) are iid draws outside them.
    task_splits splits(o.seed);
    const auto eval_tasks = splits.held_out(0xe7a1, o.eval_prompts);
    const auto select_tasks = splits.held_out(0x5e1, o.sft_select_prompts);
    const auto rm_val_tasks = splits.held_out(0x7a4, o.rm_val_prompts);
    const auto demo_tasks = splits.training(0x5f7, o.sft_examples);
    const auto rm_tasks = splits.training(0x7a3, o.rm_prompts);
    const auto ppo_tasks = splits.training(0x990, o.ppo_prompts);
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
    if (!o.ptx_text.empty())
        std::printf("PPO-ptx mix: %zu characters of %s, not the pre-training split\n",
                    ptx_text_tokens.size(), o.ptx_text.c_str());
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
    std::vector<int> demo_starts;
    for (const auto& d : demo_tokens) {
        std::vector<int> p{eot};
        p.insert(p.end(), d.prompt.begin(), d.prompt.end());
        demo_seqs.push_back(
            reward_sequence(p, d.response, eot, T, nullptr, &demo_starts.emplace_back()));
    }
    reward_model<pipeline_shape> rm(cfg, parse_reward_pooling(o.rm_pooling));
    rm.init(o.seed + 5);
    copy_params(rm.trunk(), *sft);
    double rm_accuracy = 0;
    std::optional<double> rm_accuracy_t1; // with --rm-hot: on temperature-1 pairs only
    kind_accuracy rm_t1_by_kind;          // ... and by kind of instruction
    std::optional<reward_ensemble<pipeline_shape>> ensemble; // --rm-ensemble > 1
    std::vector<tokenized_comparisons> member_data; // with --rlhf-rounds: each member's, from 1
    std::vector<double> member_scale;               // ... and the spread its head was divided by
    std::vector<double> rm_member_accuracy;
    std::size_t rm_pairs_t1 = 0;
    tokenized_comparisons rm_val_t1; // with --rm-hot: the held-out temperature-1 pairs
    // --rm-likelihood: the RM plus the SFT likelihood term on the held-out pairs, and on the
    // temperature-1 ones by kind (with --rm-ensemble the RL methods add the term to the
    // ensemble's reward instead; this is member 0's).
    nlohmann::json likelihood_diagnosis;
    // --rm-ensemble: the combined reward's held-out accuracy and how far the members' errors
    // coincide (shared_error_rate), on all held-out pairs and on the temperature-1 ones.
    nlohmann::json ensemble_diagnosis;
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
        const double offset = normalize_reward_bias(rm, demo_seqs, eot, 16, demo_starts);
        progress::clear_line();
        std::printf("RM: %zu train / %zu held-out pairs, held-out accuracy %.3f; bias shifted by "
                    "%.3f so the demonstrations average 0\n",
                    rm_train.pairs(), rm_val.pairs(), rm_accuracy, -offset);
        if (o.rm_hot > 0) {
            // The same held-out prompts ranked among temperature-1 responses only: the RM's
            // accuracy on the SFT model's own distribution.
            rm_val_t1 = tokenize_for_rm(make_comparisons(*sft, tok, prompts_of(rm_val_tasks),
                                                         o.rm_k, o.max_new, eot, o.seed + 4),
                                        tok, eot, T);
            const auto e = evaluate_rewards(rm.trunk(), obj, rm_val_t1, o.rm_batch, eot);
            rm_accuracy_t1 = e.accuracy;
            rm_pairs_t1 = rm_val_t1.pairs();
            rm_t1_by_kind = accuracy_by_kind(pair_outcomes(rm, rm_val_t1, eot), rm_val_t1, tok);
            std::printf("RM: held-out accuracy %.3f on %zu pairs of temperature-1 responses only; "
                        "by kind: %s\n",
                        e.accuracy, rm_pairs_t1, describe(rm_t1_by_kind).c_str());
        }
        if (o.rm_likelihood > 0) {
            reward_fn_scorer with_likelihood{
                pipeline_reward(o, rm, tok, nullptr, nullptr, sft.get())};
            const double all = outcome_accuracy(pair_outcomes(with_likelihood, rm_val, eot));
            likelihood_diagnosis = {{"accuracy", all}};
            std::printf("%s %.3g x the SFT model's likelihood: held-out accuracy %.3f",
                        o.rm_likelihood_only ? "Without the RM,"
                        : o.rm_ensemble > 1  ? "RM member 0 plus"
                                             : "RM plus",
                        o.rm_likelihood, all);
            if (o.rm_hot > 0) {
                const auto t1 = pair_outcomes(with_likelihood, rm_val_t1, eot);
                const auto by = accuracy_by_kind(t1, rm_val_t1, tok);
                likelihood_diagnosis["accuracy_t1"] = outcome_accuracy(t1);
                likelihood_diagnosis["accuracy_t1_by_kind"] = to_json(by);
                std::printf("; %.3f on temperature-1 pairs; by kind: %s", outcome_accuracy(t1),
                            describe(by).c_str());
            }
            std::printf("\n");
        }
        rm_member_accuracy.push_back(rm_accuracy);
        if (o.rm_ensemble > 1) {
            // Member 0 is the RM above; the others differ in seed (head, batch order) and, by
            // --rm-ensemble-data, in their comparisons. On a common scale, so that their spread
            // means the same for each.
            ensemble.emplace(o.rm_ensemble_penalty);
            for (int k = 0; k < o.rm_ensemble; ++k) {
                auto& m = ensemble->add(cfg, rm.pooling());
                const std::uint64_t salt = std::uint64_t(k) * 1000;
                if (k == 0) {
                    copy_params(m.trunk(), rm.trunk());
                    copy_params(m.head(), rm.head());
                    standardize_reward_scale(m, demo_seqs, eot, 16, demo_starts);
                    continue;
                }
                run_options mro;
                mro.metrics = dir / ("rm" + std::to_string(k) + "_metrics.jsonl");
                mro.progress_label = "rm " + std::to_string(k);
                mro.checkpoint_name = "(none)";
                tokenized_comparisons own; // this member's data, when not shared
                if (o.rm_ensemble_data == "bootstrap") {
                    own = bootstrap_resample(rm_train, o.seed + 7 + salt);
                } else if (o.rm_ensemble_data == "samples") {
                    const auto file = dir / ("comparisons_rm" + std::to_string(k) + ".jsonl");
                    write_comparisons(file,
                                      make_comparisons(*sft, tok, prompts_of(rm_tasks), o.rm_k,
                                                       o.max_new, eot, o.seed + 3 + salt, o.rm_hot,
                                                       o.rm_hot_temperature));
                    own = tokenize_comparisons(read_comparisons(file), tok, eot, T, file.string());
                }
                const tokenized_comparisons& data = o.rm_ensemble_data == "shared" ? rm_train : own;
                double scale = 1;
                const model_t& trunk = o.rm_ensemble_trunk == "pretrained" ? *base : *sft;
                rm_member_accuracy.push_back(train_rm_member(m, trunk, data, rm_val, eot,
                                                             {.epochs = o.rm_epochs,
                                                              .batch = o.rm_batch,
                                                              .lr = o.rm_lr,
                                                              .seed = o.seed + 6 + salt},
                                                             o.seed + 5 + salt, mro, demo_seqs,
                                                             demo_starts, true, &scale));
                if (o.rlhf_rounds > 1) { // later rounds continue each member on its own data
                    member_data.push_back(data);
                    member_scale.push_back(scale);
                }
                progress::clear_line();
                std::printf("RM member %d%s: held-out accuracy %.3f\n", k,
                            o.rm_ensemble_trunk == "pretrained" ? " (from the pre-trained model)"
                                                                : "",
                            rm_member_accuracy.back());
            }
            const auto diagnose = [&](const tokenized_comparisons& pairs, const char* what) {
                std::vector<std::vector<double>> by;
                std::vector<double> member_acc;
                for (std::size_t k = 0; k < ensemble->size(); ++k) {
                    by.push_back(pair_outcomes(ensemble->member(k), pairs, eot));
                    member_acc.push_back(outcome_accuracy(by.back()));
                }
                const auto outcomes = pair_outcomes(*ensemble, pairs, eot);
                const double acc = outcome_accuracy(outcomes);
                const double shared = shared_error_rate(by);
                const kind_accuracy kinds = accuracy_by_kind(outcomes, pairs, tok);
                std::printf("RM ensemble: accuracy %.3f on %zu %s pairs (members %.3f to %.3f); "
                            "where one member errs, another does too %.0f%% of the time; by "
                            "kind: %s\n",
                            acc, pairs.pairs(), what,
                            *std::min_element(member_acc.begin(), member_acc.end()),
                            *std::max_element(member_acc.begin(), member_acc.end()), 100 * shared,
                            describe(kinds).c_str());
                return nlohmann::json{{"pairs", pairs.pairs()},
                                      {"accuracy", acc},
                                      {"member_accuracy", member_acc},
                                      {"shared_errors", shared},
                                      {"by_kind", to_json(kinds)}};
            };
            ensemble_diagnosis["held_out"] = diagnose(rm_val, "held-out");
            if (!rm_val_t1.groups.empty())
                ensemble_diagnosis["held_out_t1"] = diagnose(rm_val_t1, "temperature-1");
        }
        const checkpoint_extra head[] = {
            {reward_model<pipeline_shape>::head_name, &rm.head().params(), nullptr}};
        train_state st; // gptx ppo --reward rm.gptx reads the pooling here
        st.run_json = nlohmann::json{{"pooling", to_string(rm.pooling())}}.dump();
        save_checkpoint<pipeline_shape>(dir / "rm.gptx", rm.trunk(), nullptr, tok, st, head);
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
        std::vector<std::optional<double>> ensemble_on_policy; // --rm-ensemble: the ensemble's
        kind_accuracy rm_by_kind; // the RM (or ensemble) on PPO's samples, by kind (ppo_stage)
    };
    std::vector<method_run> runs;
    const auto ppo_prompt_tokens = prompt_tokens(tok, prompts_of(ppo_tasks), eot);
    rlhf_data rounds_data{&rm_train,
                          prompts_of(rm_tasks),
                          prompts_of(rm_val_tasks),
                          demo_seqs,
                          demo_starts,
                          ensemble ? &*ensemble : nullptr,
                          std::move(member_data),
                          std::move(member_scale)};
    for (const std::string& m : methods) {
        method_run r;
        r.name = m;
        r.label = m == "ppo"       ? "PPO"
                  : m == "ppo-ptx" ? "PPO-ptx"
                  : m == "dpo"     ? "DPO"
                  : m == "grpo"    ? "GRPO"
                  : m == "rs"      ? "RS (best of K)"
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
                o, *sft, rm, tok, ppo_prompt_tokens, ptx_tokens, ptx ? o.ptx_coef : 0.0, m.c_str(),
                dir / (ptx ? "ppo_ptx_metrics.jsonl" : "ppo_metrics.jsonl"), rounds_data);
            r.model = std::move(st.policy);
            r.rm_on_policy = std::move(st.rm_on_policy);
            r.rm_on_policy_retrained = std::move(st.rm_on_policy_retrained);
            r.ensemble_on_policy = std::move(st.ensemble_on_policy);
            r.rm_by_kind = std::move(st.rm_by_kind);
        } else if (m == "rs") {
            r.model = rs_stage(o, *sft, rm, tok, prompts_of(ppo_tasks), dir);
        } else if (m == "dpo") {
            r.model = dpo_stage(o, *sft, rm_train, rm_val, eot, dir / "dpo_metrics.jsonl");
        } else {
            const bool loo = m == "rloo";
            r.model = group_stage(o, *sft, rm, tok, ppo_prompt_tokens,
                                  loo ? group_baseline::loo : group_baseline::group, m.c_str(),
                                  dir / (m + "_metrics.jsonl"), rounds_data.ensemble);
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
    // What the RM's ranking is worth without an optimiser: best of n of SFT's own samples.
    std::optional<best_of_n_curve> bon;
    if (need_rm && !o.evaluate_only)
        bon = instruction_best_of_n(o, *sft, rm, tok, eval_prompts, l_sft.scores, {1, 2, 4, 8, 16},
                                    o.seed + 12);
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
    if (dialogue_runs) {
        dialogue = run_dialogue_stage<pipeline_shape>(
            {dir, o.seed, &tok, eot, sft.get(), &ptx_tokens, dialogue_sizes_for(o)});
        say("dialogue stage (chat model: chat.gptx)", clock.lap());
    }
    stages.finish();
    // ---- end of the dialogue stage ------------------------------------------------------------

    std::printf("\nInstructGPT pipeline, %zu held-out prompts, responses sampled at temperature "
                "%.2g, judged by the labeler (%.0f s, %.0f CPU s, %d threads)\n\n",
                eval_prompts.size(), double(o.eval_temperature), clock.total(), clock.cpu(),
                num_threads());
    if (need_rm) {
        std::printf("RM%s held-out pairwise accuracy: %.1f%% (%zu pairs)",
                    o.rm_pooling == "mean" ? " (mean-pooled)" : "", 100 * rm_accuracy,
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
    // The paired test beside the interval: with most prompts tied, the interval (each tie a coin
    // toss) is wide where the prompts that differ may still lean clearly one way.
    if (!runs.empty() || dialogue) {
        std::printf("\nsign test, wins against losses (ties dropped), two-sided p:");
        for (const method_run& r : runs)
            std::printf(" %s %.2g;", r.label.c_str(), r.win.sign_test_p());
        if (dialogue)
            std::printf(" dialogue chat model %.2g;", dialogue->win.sign_test_p());
        std::printf("\n");
    }
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
            if (k < r.ensemble_on_policy.size() && r.ensemble_on_policy[k])
                std::printf(" (the ensemble: %.1f%%)", 100 * *r.ensemble_on_policy[k]);
            if (k + 1 == r.rm_on_policy.size() && !r.rm_by_kind.empty())
                std::printf("; by kind, %s: %s",
                            r.ensemble_on_policy.empty() ? "the RM" : "the ensemble",
                            describe(r.rm_by_kind).c_str());
        }
    std::printf("\n");
    // Where the win rates come from: exact answers per kind of instruction.
    std::map<std::string, std::vector<int>> by_kind; // n, SFT, then each method
    for (std::size_t i = 0; i < eval_tasks.size(); ++i) {
        auto& k = by_kind[instruction_kind(eval_tasks[i].instruction)];
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
    if (bon)
        std::printf("\nbest of n SFT responses over SFT's one: %s\n", describe(*bon).c_str());
    if (dialogue)
        print_dialogue_diagnosis(*dialogue);
    std::fflush(stdout);
    if (o.json) {
        // A dialogue stage figure: null with --no-dialogue, or when an optional one was not
        // measured (every sample tied).
        auto or_null = [](const auto& v) -> nlohmann::json {
            if constexpr (requires { v.has_value(); })
                return v ? nlohmann::json(*v) : nlohmann::json();
            else
                return v;
        };
        auto dj = [&](auto get) -> nlohmann::json {
            return dialogue ? or_null(get(*dialogue)) : nlohmann::json();
        };
        nlohmann::json j{
            {"rm_accuracy", need_rm ? nlohmann::json(rm_accuracy) : nlohmann::json()},
            {"rm_accuracy_t1", rm_accuracy_t1 ? nlohmann::json(*rm_accuracy_t1) : nlohmann::json()},
            {"rm_accuracy_t1_by_kind", rm_accuracy_t1 ? to_json(rm_t1_by_kind) : nlohmann::json()},
            {"methods", methods},
            {"demo_padded", o.demo_padded},
            {"ptx_text", o.ptx_text.empty() ? nlohmann::json() : nlohmann::json(o.ptx_text)},
            {"rm_pooling", o.rm_pooling},
            {"rm_likelihood", o.rm_likelihood},
            {"rm_likelihood_only", o.rm_likelihood_only},
            {"rm_likelihood_diagnosis", likelihood_diagnosis},
            {"rm_ensemble", o.rm_ensemble},
            {"rm_ensemble_data", o.rm_ensemble_data},
            {"rm_ensemble_trunk", o.rm_ensemble_trunk},
            {"rm_ensemble_diagnosis", ensemble_diagnosis},
            {"rm_member_accuracy", rm_member_accuracy},
            {"padded_sft", l_sft.padded},
            {"labeler_mean_sft", l_sft.mean},
            {"exact_sft", l_sft.exact},
            {"pretrain_val_loss_pretrained", loss_pretrained},
            {"pretrain_val_loss_sft", loss_sft},
            {"eval_prompts", eval_prompts.size()},
            {"dialogue_win_rate", dj([](const auto& d) { return d.win.rate().p; })}, // issue #7
            {"dialogue_win_rate_ci", dj([](const auto& d) {
                 return nlohmann::json{d.win.rate().low, d.win.rate().high};
             })},
            {"dialogue_sign_test_p", dj([](const auto& d) { return d.win.sign_test_p(); })},
            {"dialogue_conversations", dj([](const auto& d) { return d.conversations; })},
            {"dialogue_diagnosis_conversations",
             dj([](const auto& d) { return d.diagnosis_conversations; })},
            {"dialogue_rm_accuracy", dj([](const auto& d) { return d.rm_accuracy; })},
            {"dialogue_rm_comparisons", dj([](const auto& d) { return d.rm_comparisons; })},
            {"dialogue_rm_member_accuracy", dj([](const auto& d) { return d.rm_member_accuracy; })},
            {"dialogue_ppo_stopped", dj([](const auto& d) { return d.ppo_stopped; })},
            {"dialogue_exact_sft", dj([](const auto& d) { return d.sft_exact_last; })},
            {"dialogue_exact_chat", dj([](const auto& d) { return d.rlhf_exact_last; })},
            {"dialogue_exact_sft_greedy",
             dj([](const auto& d) { return d.sft_exact_last_greedy; })},
            {"dialogue_rm_accuracy_on_sft", dj([](const auto& d) { return d.rm_on_sft; })},
            {"dialogue_rm_accuracy_on_chat", dj([](const auto& d) { return d.rm_on_chat; })},
            {"dialogue_rm_accuracy_on_sft_first",
             dj([](const auto& d) { return d.rm_on_sft_first; })},
            {"dialogue_rm_accuracy_on_sft_last",
             dj([](const auto& d) { return d.rm_on_sft_last; })},
            {"dialogue_best_of_n", dj([](const auto& d) { return bon_json(d.bon); })},
            {"dialogue_rlhf_rounds", dj([&](const auto& d) { // per later RLHF round
                 nlohmann::json a = nlohmann::json::array();
                 for (const auto& r : d.rounds)
                     a.push_back({{"comparisons_added", r.added},
                                  {"comparisons_total", r.total},
                                  {"rm_held_out", r.held_out},
                                  {"rm_on_chat_t1_before", or_null(r.t1_before)},
                                  {"rm_on_chat_t1_after", or_null(r.t1_after)}});
                 return a;
             })},
            {"best_of_n", bon ? bon_json(*bon) : nlohmann::json()},
            {"rlhf_rounds", o.rlhf_rounds},
            {"dialogue_ppo", dj([](const auto& d) { // as the chat model's trainer ran
                 const auto& p = d.ppo;
                 return nlohmann::json{
                     {"iterations", p.iterations}, {"epochs", p.epochs},
                     {"minibatch", p.minibatch},   {"lr", p.lr},
                     {"lr_warmup", p.lr_warmup},   {"ptx_coef", p.ptx_coef},
                     {"rollouts", p.rollouts},     {"rm_ensemble", p.rms},
                     {"prompts", p.prompts},       {"min_user_turns", p.min_user_turns}};
             })},
            {"seconds", clock.total()},
            {"cpu_seconds", clock.cpu()}};
        // Per method m (ppo, ppo_ptx, dpo, grpo, rloo): the keys the table shows.
        for (const method_run& r : runs) {
            std::string m = r.name;
            std::replace(m.begin(), m.end(), '-', '_');
            const auto w = r.win.rate();
            j[m + "_win_rate"] = w.p;
            j[m + "_win_rate_ci"] = {w.low, w.high};
            j[m + "_sign_test_p"] = r.win.sign_test_p();
            j[m + "_kl"] = r.kl;
            j["pretrain_val_loss_" + m] = r.val_loss;
            j["padded_" + m] = r.lab.padded;
            j["labeler_mean_" + m] = r.lab.mean;
            j["exact_" + m] = r.lab.exact;
            j[m + "_seconds"] = r.seconds;
            j[m + "_cpu_seconds"] = r.cpu_seconds;
            // Per round, at its end (null: every sample tied).
            const auto per_round = [](const auto& rounds, auto value) {
                nlohmann::json a = nlohmann::json::array();
                for (const auto& e : rounds)
                    a.push_back(e ? nlohmann::json(value(*e)) : nlohmann::json());
                return a;
            };
            if (!r.rm_on_policy.empty())
                j["rm_accuracy_on_" + m] =
                    per_round(r.rm_on_policy, [](const reward_eval& e) { return e.accuracy; });
            if (!r.ensemble_on_policy.empty())
                j["rm_ensemble_accuracy_on_" + m] =
                    per_round(r.ensemble_on_policy, [](double a) { return a; });
            if (!r.rm_on_policy.empty()) // the RM (or ensemble), at the last round's end
                j["rm_accuracy_by_kind_on_" + m] =
                    r.rm_by_kind.empty() ? nlohmann::json() : to_json(r.rm_by_kind);
        }
        std::printf("%s\n", j.dump().c_str());
    }
}

} // namespace gptx::instructgpt
