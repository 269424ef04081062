// gptx/recipes/grpo.hpp: GRPO (baseline "group") or RLOO (baseline "loo") from an SFT checkpoint
// against a reward-model checkpoint as one call on a run folder, what `gptx grpo` does:
// policy.gptx / model.gptx saved every save_every iterations, --resume.
// Tested by tests/cli/test_grpo_cli.cpp.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/communicator.hpp"
#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "../core/shape.hpp"
#include "../io/checkpoint.hpp"
#include "../nn/copy_params.hpp"
#include "../nn/reward_model.hpp"
#include "../nn/transformer.hpp"
#include "../train/grpo.hpp"
#include "../train/ppo_trainer.hpp"
#include "../train/run_loop.hpp"
#include "run_folder.hpp"

namespace gptx {

// The run's paths and hyper-parameters; the defaults are `gptx grpo`'s. Errors name the options
// by their command-line flags.
struct grpo_run_options {
    std::string policy, reward, prompts, ptx_data, baseline = "group", out = "out-grpo";
    int iters = 20, prompts_per_iter = 16, group_size = 4, epochs = 1, minibatch = 16, max_new = 32,
        ptx_batch = 4, ptx_context = 0;
    int save_every = 1, log_every = 1, end_of_text = -1;
    float lr = 1e-5f, grad_clip = 1.0f, temperature = 1.0f;
    double kl_coef = 0.04, clip = 0.2, ptx_coef = 0.0;
    std::uint64_t seed = 1;
    bool resume = false;
    likelihood_term likelihood; // --rm-likelihood, --rm-likelihood-only
};

// Throws, naming the flag, on a hyper-parameter out of range.
inline void validate_grpo_options(const grpo_run_options& o) {
    GPTX_CHECK(o.iters > 0, "--iters must be positive, got ", o.iters);
    GPTX_CHECK(o.prompts_per_iter > 0, "--prompts-per-iter must be positive, got ",
               o.prompts_per_iter);
    GPTX_CHECK(o.group_size >= 2, "--group-size must be at least 2, got ", o.group_size);
    GPTX_CHECK(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
    GPTX_CHECK(o.minibatch > 0, "--minibatch must be positive, got ", o.minibatch);
    GPTX_CHECK(o.max_new > 0, "--max-new must be positive, got ", o.max_new);
    GPTX_CHECK(o.temperature > 0 && std::isfinite(o.temperature),
               "--temperature must be a finite positive number, got ", o.temperature);
    GPTX_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be positive, got ", o.lr);
    GPTX_CHECK(o.grad_clip >= 0, "--grad-clip must be >= 0, got ", o.grad_clip);
    GPTX_CHECK(o.kl_coef >= 0, "--kl-coef must be >= 0, got ", o.kl_coef);
    GPTX_CHECK(o.clip > 0 && o.clip < 1, "--clip must be in (0, 1), got ", o.clip);
    GPTX_CHECK(o.ptx_coef >= 0, "--ptx-coef must be >= 0, got ", o.ptx_coef);
    GPTX_CHECK(o.ptx_coef == 0 || !o.ptx_data.empty(),
               "--ptx-coef needs --ptx-data (a pre-training .bin file)");
    GPTX_CHECK(o.ptx_batch > 0, "--ptx-batch must be positive, got ", o.ptx_batch);
    GPTX_CHECK(o.ptx_context >= 0, "--ptx-context must be >= 0 (0: the model's context), got ",
               o.ptx_context);
    GPTX_CHECK(o.save_every > 0, "--save-every must be positive, got ", o.save_every);
    GPTX_CHECK(o.log_every > 0, "--log-every must be positive, got ", o.log_every);
    validate_likelihood_term(o.likelihood);
}

namespace detail {

inline grpo_config make_config(const grpo_run_options& o, int eot) {
    return {.end_of_text = eot,
            .prompts = o.prompts_per_iter,
            .group_size = o.group_size,
            .max_new_tokens = o.max_new,
            .epochs = o.epochs,
            .minibatch = o.minibatch,
            .lr = o.lr,
            .grad_clip = o.grad_clip,
            .clip_eps = o.clip,
            .kl_coef = o.kl_coef,
            .baseline = parse_group_baseline(o.baseline),
            .temperature = o.temperature,
            .ptx_coef = o.ptx_coef,
            .ptx_batch = o.ptx_batch,
            .ptx_context = o.ptx_context,
            .seed = o.seed,
            .comm = &world()}; // under mpirun: --prompts-per-iter per rank
}

// The hyper-parameters that must not change across --resume (check_resume_matches).
inline nlohmann::json run_json(const grpo_run_options& o) {
    return {{"policy", o.policy},
            {"reward", o.reward},
            {"prompts", o.prompts},
            {"baseline", o.baseline},
            {"ptx_data", o.ptx_data},
            {"prompts_per_iter", o.prompts_per_iter},
            {"group_size", o.group_size},
            {"epochs", o.epochs},
            {"minibatch", o.minibatch},
            {"max_new", o.max_new},
            {"temperature", o.temperature},
            {"lr", o.lr},
            {"grad_clip", o.grad_clip},
            {"kl_coef", o.kl_coef},
            {"clip", o.clip},
            {"ptx_coef", o.ptx_coef},
            {"ptx_batch", o.ptx_batch},
            {"ptx_context", o.ptx_context},
            {"seed", o.seed},
            {"end_of_text", o.end_of_text}};
}

} // namespace detail

// Runs GRPO (or RLOO) on the policy checkpoint policy_file (its info read beforehand, which fixes
// S) to o.iters iterations in the run folder o.out.
template <shape S>
void run_grpo(const grpo_run_options& o, const std::filesystem::path& policy_file,
              const checkpoint_info& pinfo) {
    namespace fs = std::filesystem;
    validate_grpo_options(o);
    fs::create_directories(o.out); // a caller from code may pass a new folder
    using model_t = transformer<S>;
    const fs::path dir = o.out, policy_ckpt = dir / "policy.gptx", final_ckpt = dir / "model.gptx";
    model_t reference(pinfo.config), policy(pinfo.config);
    tokenizer tok;
    load_checkpoint<S>(policy_file, reference, nullptr, &tok, nullptr);
    copy_params(policy, reference);
    const auto rm = load_reward_model<S>(o.reward, pinfo.config, "grpo");
    const int eot = end_of_text_for(tok, policy.vocab(), o.end_of_text);
    auto prompts = read_prompts(o.prompts, tok, eot, policy.context());
    std::vector<int> ptx;
    if (o.ptx_coef > 0)
        ptx = read_ptx_tokens(o.ptx_data, policy.vocab(),
                              ptx_source::context_for(o.ptx_context, policy.context()));
    grpo_trainer<model_t> tr(policy, reference,
                             reward_with_likelihood(reward_of(*rm), reference, o.likelihood),
                             std::move(prompts), detail::make_config(o, eot), std::move(ptx));
    const nlohmann::json run = detail::run_json(o);

    // policy.gptx: the policy, its AdamW and the run's state; model.gptx: the weights to use.
    auto save = [&](std::int64_t it) {
        if (world().rank() != 0) // the policy is identical on every rank; rank 0 writes
            return;
        const grpo_state s = tr.state();
        train_state st;
        st.step = it;
        st.run_json = nlohmann::json{{"iteration", it}}.dump();
        save_checkpoint<S>(final_ckpt, policy, nullptr, tok, st);
        st.data_rng = s.sampler_rng;
        nlohmann::json pj = run;
        pj["iteration"] = it;
        save_likelihood_term(pj, o.likelihood);
        pj["ptx_rng"] = s.ptx_rng;
        st.run_json = pj.dump();
        save_checkpoint<S>(policy_ckpt, policy, &tr.policy_optimizer(), tok, st);
    };

    if (o.resume) {
        GPTX_CHECK(fs::exists(policy_ckpt), "--resume: no GRPO run in '", dir.string(),
                   "' (no policy.gptx)");
        train_state st;
        load_checkpoint<S>(policy_ckpt, policy, &tr.policy_optimizer(), nullptr, &st);
        const nlohmann::json pj = nlohmann::json::parse(st.run_json, nullptr, false);
        GPTX_CHECK(pj.is_object() && pj.contains("group_size"), policy_ckpt.string(),
                   ": not a gptx grpo checkpoint (no GRPO settings in its run state)");
        check_resume_matches(pj, run, dir);
        check_likelihood_resume(pj, o.likelihood, dir);
        grpo_state s;
        s.iteration = st.step;
        s.sampler_rng = st.data_rng;
        s.ptx_rng = pj.at("ptx_rng").get<rng::state_type>();
        tr.set_state(s);
        std::printf("resumed from %s at iteration %lld\n", policy_ckpt.string().c_str(),
                    static_cast<long long>(s.iteration));
    } else if (world().rank() == 0) {
        std::ofstream(dir / "metrics.jsonl", std::ios::trunc);
    }

    iteration_step<grpo_trainer<model_t>> adapter{tr, o.lr};
    const run_options ro =
        run_folder_options(o.iters, o.save_every, o.log_every,
                           o.baseline == "loo" ? "rloo" : "grpo", dir, policy_ckpt);
    run_hooks hooks;
    hooks.evaluate = [&](std::int64_t) {
        metrics_map m;
        if (!adapter.last)
            return m;
        const grpo_metrics& g = *adapter.last;
        m = {{"score", g.score},
             {"kl", g.kl},
             {"kl_exact", g.kl_exact},
             {"kl_k3", g.kl_k3},
             {"entropy", g.entropy},
             {"response_length", g.response_length},
             {"flat_groups", g.flat_groups},
             {"policy_loss", g.policy_loss},
             {"clip_frac", g.clip_frac},
             {"approx_kl", g.approx_kl},
             {"skipped", double(g.skipped)}};
        if (o.ptx_coef > 0)
            m.emplace_back("ptx_loss", g.ptx_loss);
        return m;
    };
    hooks.save = save;
    run_training(
        adapter, ro, [](int) { return 0; }, hooks);
    std::printf("done: %d iterations (%s); policy %s\n", o.iters,
                o.baseline == "loo" ? "RLOO" : "GRPO", final_ckpt.string().c_str());
}

} // namespace gptx
