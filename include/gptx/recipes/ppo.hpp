// gptx/recipes/ppo.hpp: InstructGPT's PPO (and PPO-ptx) as one call on a run folder, what
// `gptx ppo` does: the SFT policy and the reward model from their checkpoints, the trainer,
// policy.gptx / value.gptx / model.gptx saved every save_every iterations, --resume.
// Tested by tests/cli/test_ppo_cli.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/shape.hpp"
#include "../io/checkpoint.hpp"
#include "../io/import.hpp"
#include "../nn/reward_model.hpp"
#include "../nn/transformer.hpp"
#include "../train/ppo_trainer.hpp"
#include "../train/run_loop.hpp"
#include "run_folder.hpp"

namespace gptx {

// The run's paths and hyper-parameters; the defaults are `gptx ppo`'s. Errors name the options
// by their command-line flags.
struct ppo_run_options {
    std::string policy, reward, prompts, ptx_data, out = "out-ppo";
    int iters = 20, rollouts = 64, epochs = 4, minibatch = 16, max_new = 32, ptx_batch = 4,
        ptx_context = 0, keep = 0;
    int save_every = 1, log_every = 1, end_of_text = -1, value_warmup = 0;
    float lr = 1e-5f, value_lr = 0.0f, grad_clip = 1.0f;
    double ptx_coef = 0.0, kl_coef = 0.02, kl_target = 0.0, kl_horizon = 10000.0, ema = 0.0;
    double gamma = 1.0, lambda = 0.95, clip = 0.2, value_clip = 0.2;
    std::uint64_t seed = 1;
    bool resume = false;
    likelihood_term likelihood; // --rm-likelihood, --rm-likelihood-only
};

// Throws, naming the flag, on a hyper-parameter out of range.
inline void validate_ppo_options(const ppo_run_options& o) {
    GPTX_CHECK(o.iters > 0, "--iters must be positive, got ", o.iters);
    GPTX_CHECK(o.rollouts > 0, "--rollouts must be positive, got ", o.rollouts);
    GPTX_CHECK(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
    GPTX_CHECK(o.minibatch > 0, "--minibatch must be positive, got ", o.minibatch);
    GPTX_CHECK(o.keep >= 0 && o.keep <= o.rollouts,
               "--keep must be in [0, --rollouts = ", o.rollouts, "] (0: all), got ", o.keep);
    GPTX_CHECK(o.max_new > 0, "--max-new must be positive, got ", o.max_new);
    GPTX_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be positive, got ", o.lr);
    GPTX_CHECK(o.value_lr >= 0, "--value-lr must be >= 0, got ", o.value_lr);
    GPTX_CHECK(o.kl_coef >= 0, "--kl-coef must be >= 0, got ", o.kl_coef);
    GPTX_CHECK(o.kl_target >= 0, "--kl-target must be >= 0, got ", o.kl_target);
    GPTX_CHECK(o.kl_horizon > 0, "--kl-horizon must be positive, got ", o.kl_horizon);
    GPTX_CHECK(o.ema >= 0 && o.ema < 1, "--ema must be in [0, 1), got ", o.ema);
    GPTX_CHECK(o.ptx_coef >= 0, "--ptx-coef must be >= 0, got ", o.ptx_coef);
    GPTX_CHECK(o.ptx_coef == 0 || !o.ptx_data.empty(),
               "--ptx-coef needs --ptx-data (a pre-training .bin file)");
    GPTX_CHECK(o.ptx_batch > 0, "--ptx-batch must be positive, got ", o.ptx_batch);
    GPTX_CHECK(o.ptx_context >= 0, "--ptx-context must be >= 0 (0: the model's context), got ",
               o.ptx_context);
    GPTX_CHECK(o.save_every > 0, "--save-every must be positive, got ", o.save_every);
    GPTX_CHECK(o.log_every > 0, "--log-every must be positive, got ", o.log_every);
    GPTX_CHECK(o.clip > 0 && o.clip < 1, "--clip must be in (0, 1), got ", o.clip);
    GPTX_CHECK(o.value_clip >= 0, "--value-clip must be >= 0, got ", o.value_clip);
    GPTX_CHECK(o.gamma >= 0 && o.gamma <= 1, "--gamma must be in [0, 1], got ", o.gamma);
    GPTX_CHECK(o.lambda >= 0 && o.lambda <= 1, "--lambda must be in [0, 1], got ", o.lambda);
    validate_likelihood_term(o.likelihood);
}

namespace detail {

inline ppo_config make_config(const ppo_run_options& o, int eot) {
    ppo_config c;
    c.end_of_text = eot;
    c.comm = &world(); // under mpirun: --rollouts per rank, whitened over all of them
    c.rollouts = o.rollouts;
    c.max_new_tokens = o.max_new;
    c.epochs = o.epochs;
    c.minibatch = o.minibatch;
    c.keep = o.keep;
    c.lr = o.lr;
    c.value_lr = o.value_lr;
    c.value_warmup = o.value_warmup;
    c.grad_clip = o.grad_clip;
    c.clip_eps = o.clip;
    c.value_clip = o.value_clip;
    c.gamma = o.gamma;
    c.lambda = o.lambda;
    c.kl_coef = o.kl_coef;
    c.kl_target = o.kl_target;
    c.kl_horizon = o.kl_horizon;
    c.ema_decay = o.ema;
    c.ptx_coef = o.ptx_coef;
    c.ptx_batch = o.ptx_batch;
    c.ptx_context = o.ptx_context;
    c.seed = o.seed;
    return c;
}

// The hyper-parameters that must not change across --resume (check_resume_matches).
inline nlohmann::json run_json(const ppo_run_options& o) {
    return {{"policy", o.policy},
            {"reward", o.reward},
            {"prompts", o.prompts},
            {"ptx_data", o.ptx_data},
            {"rollouts", o.rollouts},
            {"epochs", o.epochs},
            {"minibatch", o.minibatch},
            {"keep", o.keep >= o.rollouts ? 0 : o.keep}, // keeping all is keeping all
            {"max_new", o.max_new},
            {"lr", o.lr},
            {"value_lr", o.value_lr},
            {"value_warmup", o.value_warmup},
            {"grad_clip", o.grad_clip},
            {"kl_coef", o.kl_coef},
            {"kl_target", o.kl_target},
            {"kl_horizon", o.kl_horizon},
            {"ema", o.ema},
            {"ptx_coef", o.ptx_coef},
            {"ptx_batch", o.ptx_batch},
            {"ptx_context", o.ptx_context},
            {"gamma", o.gamma},
            {"lambda", o.lambda},
            {"clip", o.clip},
            {"value_clip", o.value_clip},
            {"seed", o.seed},
            {"end_of_text", o.end_of_text}};
}

} // namespace detail

// Runs PPO on the policy checkpoint policy_file (its info read beforehand, which fixes S) to
// o.iters iterations in the run folder o.out.
template <shape S>
void run_ppo(const ppo_run_options& o, const std::filesystem::path& policy_file,
             const checkpoint_info& pinfo) {
    validate_ppo_options(o);
    std::filesystem::create_directories(o.out); // a caller from code may pass a new folder
    using model_t = transformer<S>;
    const std::filesystem::path dir = o.out, policy_ckpt = dir / "policy.gptx",
                                value_ckpt = dir / "value.gptx", ema_ckpt = dir / "ema.gptx",
                                final_ckpt = dir / "model.gptx";
    model_t sft(pinfo.config);
    tokenizer tok;
    load_model<S>(policy_file, sft, &tok);
    const auto rm_ptr = load_reward_model<S>(o.reward, pinfo.config, "ppo");
    reward_model<S>& rm = *rm_ptr;
    const int eot = end_of_text_for(tok, sft.vocab(), o.end_of_text);
    auto prompts = read_prompts(o.prompts, tok, eot, sft.context());
    std::vector<int> ptx;
    if (o.ptx_coef > 0)
        ptx = read_ptx_tokens(o.ptx_data, sft.vocab(),
                              ptx_source::context_for(o.ptx_context, sft.context()));

    ppo_models<S> models(sft, rm);
    ppo_trainer<model_t> tr(models.policy, models.reference, models.value, rm.head(),
                            reward_with_likelihood(reward_of(rm), models.reference, o.likelihood),
                            std::move(prompts), detail::make_config(o, eot), std::move(ptx));
    const nlohmann::json run = detail::run_json(o);

    // value.gptx: the value trunk and its AdamW, the value head and its AdamW as a section.
    // policy.gptx: the policy and its AdamW, the EMA as a section, the run's state; written last,
    // so its iteration marks a complete save. model.gptx: the weights to use (the EMA's, if on).
    const std::string value_head_name = "value_head", ema_name = "policy_ema";
    auto value_extras = [&] {
        return std::vector<checkpoint_extra>{
            {value_head_name, &tr.value_head().params(), &tr.value_head_optimizer()}};
    };
    auto policy_extras = [&] {
        std::vector<checkpoint_extra> x;
        if (auto* e = tr.policy_ema())
            x.push_back({ema_name, &e->shadow(), nullptr});
        return x;
    };
    auto save = [&](std::int64_t it) {
        if (world().rank() != 0) // the models are identical on every rank; rank 0 writes
            return;
        const ppo_state s = tr.state();
        train_state st;
        st.step = it;
        st.run_json = nlohmann::json{{"iteration", it}}.dump();
        save_checkpoint<S>(value_ckpt, models.value, &tr.value_optimizer(), tok, st,
                           value_extras());
        if (auto* e = tr.policy_ema()) {
            model_t ema_model(pinfo.config);
            std::copy(e->shadow().data(), e->shadow().data() + e->shadow().size(),
                      ema_model.params().data());
            save_checkpoint<S>(final_ckpt, ema_model, nullptr, tok, st);
        } else {
            save_checkpoint<S>(final_ckpt, models.policy, nullptr, tok, st);
        }
        st.data_rng = s.sampler_rng;
        nlohmann::json pj = run;
        pj["iteration"] = it;
        save_likelihood_term(pj, o.likelihood);
        pj["beta"] = s.beta;
        pj["ptx_rng"] = s.ptx_rng;
        st.run_json = pj.dump();
        save_checkpoint<S>(policy_ckpt, models.policy, &tr.policy_optimizer(), tok, st,
                           policy_extras());
    };

    if (o.resume) {
        GPTX_CHECK(std::filesystem::exists(policy_ckpt) && std::filesystem::exists(value_ckpt),
                   "--resume: no PPO run in '", dir.string(), "' (policy.gptx and value.gptx)");
        train_state pst, vst;
        load_checkpoint<S>(policy_ckpt, models.policy, &tr.policy_optimizer(), nullptr, &pst,
                           policy_extras());
        load_checkpoint<S>(value_ckpt, models.value, &tr.value_optimizer(), nullptr, &vst,
                           value_extras());
        nlohmann::json pj = nlohmann::json::parse(pst.run_json);
        if (!pj.contains("keep"))
            pj["keep"] = 0; // saved before --keep: every rollout was trained on
        check_resume_matches(pj, run, dir);
        check_likelihood_resume(pj, o.likelihood, dir);
        GPTX_CHECK(vst.step == pst.step, "--resume: '", dir.string(),
                   "' holds value.gptx of iteration ", vst.step, " and policy.gptx of iteration ",
                   pst.step, " (a save was interrupted)");
        ppo_state s;
        s.iteration = pst.step;
        s.sampler_rng = pst.data_rng;
        s.beta = pj.at("beta").get<double>();
        s.ptx_rng = pj.at("ptx_rng").get<rng::state_type>();
        tr.set_state(s);
        std::printf("resumed from %s at iteration %lld\n", policy_ckpt.string().c_str(),
                    static_cast<long long>(s.iteration));
    } else if (world().rank() == 0) {
        std::ofstream(dir / "metrics.jsonl", std::ios::trunc);
    }

    iteration_step<ppo_trainer<model_t>> adapter{tr, o.lr};

    const run_options ro =
        run_folder_options(o.iters, o.save_every, o.log_every, "ppo", dir, policy_ckpt);
    run_hooks hooks;
    hooks.evaluate = [&](std::int64_t) {
        metrics_map m;
        if (!adapter.last)
            return m;
        const ppo_metrics& p = *adapter.last;
        m = {{"score", p.score},
             {"kl", p.kl},
             {"kl_exact", p.kl_exact},
             {"kl_seq", p.kl_seq},
             {"entropy", p.entropy},
             {"reward", p.reward},
             {"beta", p.beta},
             {"response_length", p.response_length},
             {"policy_loss", p.policy_loss},
             {"value_loss", p.value_loss},
             {"clip_frac", p.clip_frac},
             {"value_clip_frac", p.value_clip_frac},
             {"approx_kl", p.approx_kl},
             {"explained_variance", p.explained_variance},
             {"skipped", double(p.skipped)}};
        if (o.ptx_coef > 0)
            m.emplace_back("ptx_loss", p.ptx_loss);
        if (o.keep > 0)
            m.emplace_back("kept_advantage", p.kept_advantage);
        return m;
    };
    hooks.save = save;
    run_training(
        adapter, ro, [](int) { return 0; }, hooks);
    std::printf("done: %d iterations; policy %s\n", o.iters, final_ckpt.string().c_str());
}

} // namespace gptx
