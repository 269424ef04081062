// samples/cli/grpo.cpp: `gptx grpo`, GRPO (--baseline group) or RLOO (--baseline loo) from an SFT
// checkpoint against a reward-model checkpoint: G samples per prompt, advantages from the group's
// rewards, no value model; resumable. Tested by tests/cli/test_grpo_cli.cpp.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <gptx/nn/reward_model.hpp>
#include <gptx/train/grpo.hpp>
#include <gptx/train/ppo_trainer.hpp>
#include <gptx/train/run_loop.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace gptx::cli {

struct grpo_options {
    std::string policy, reward, prompts, ptx_data, baseline = "group", out = "out-grpo";
    int iters = 20, prompts_per_iter = 16, group_size = 4, epochs = 1, minibatch = 16, max_new = 32,
        ptx_batch = 4, ptx_context = 0;
    int save_every = 1, log_every = 1, end_of_text = -1;
    float lr = 1e-5f, grad_clip = 1.0f, temperature = 1.0f;
    double kl_coef = 0.04, clip = 0.2, ptx_coef = 0.0;
    std::uint64_t seed = 1;
    bool resume = false;
};

inline void add_grpo_command(CLI::App& app, grpo_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand(
        "grpo", "Align a policy with GRPO (or RLOO: --baseline loo) against a reward model");
    c->add_option("--policy", o.policy,
                  "SFT checkpoint (run folder or file): the initial policy and the reference")
        ->required();
    c->add_option("--reward", o.reward, "Reward-model checkpoint (gptx rm), frozen")->required();
    c->add_option("--prompts", o.prompts, "JSONL with one {\"prompt\": ...} per line")->required();
    c->add_option("--baseline", o.baseline,
                  "group: GRPO's (r - group mean) / group std; loo: RLOO's r - mean of the others")
        ->check(CLI::IsMember({"group", "loo"}));
    c->add_option("--out", o.out,
                  "Run folder: policy.gptx (with AdamW), model.gptx, metrics.jsonl");
    c->add_option("--iters", o.iters, "Iterations (rollouts + updates each)");
    c->add_option("--prompts-per-iter", o.prompts_per_iter, "Prompts sampled per iteration");
    c->add_option("--group-size", o.group_size, "Responses sampled per prompt (G >= 2)");
    c->add_option("--epochs", o.epochs, "Passes over the rollouts per iteration");
    c->add_option("--minibatch", o.minibatch, "Responses per update");
    c->add_option("--max-new", o.max_new, "Response length cap in tokens");
    c->add_option("--temperature", o.temperature, "Rollout sampling temperature");
    c->add_option("--lr", o.lr, "Policy learning rate");
    c->add_option("--grad-clip", o.grad_clip, "Global gradient-norm clip (0 disables)");
    c->add_option("--kl-coef", o.kl_coef,
                  "Coefficient of the k3 KL penalty to the reference in the loss (DeepSeekMath: "
                  "0.04)");
    c->add_option("--clip", o.clip, "Policy ratio clip epsilon");
    c->add_option("--ptx-coef", o.ptx_coef, "Pre-training gradient weight gamma (as PPO-ptx)");
    c->add_option("--ptx-data", o.ptx_data, "Pre-training token file (.bin) for --ptx-coef");
    c->add_option("--ptx-batch", o.ptx_batch, "Pre-training sequences per update");
    c->add_option("--ptx-context", o.ptx_context, "Their length (default: the model's context)");
    c->add_option("--end-of-text", o.end_of_text,
                  "End-of-text id (default: the tokenizer's, or the id after it)");
    c->add_option("--save-every", o.save_every, "Iterations between checkpoints");
    c->add_option("--log-every", o.log_every, "Iterations between progress lines");
    c->add_option("--seed", o.seed, "Seed for prompts, sampling and minibatches");
    c->add_flag("--resume", o.resume, "Continue the run in --out");
    c->callback([&] { run(); });
}

namespace grpo_detail {

inline void validate(const grpo_options& o) {
    GPTX_CHECK(o.iters > 0, "--iters must be positive, got ", o.iters);
    GPTX_CHECK(o.prompts_per_iter > 0, "--prompts-per-iter must be positive, got ",
               o.prompts_per_iter);
    GPTX_CHECK(o.group_size >= 2, "--group-size must be at least 2, got ", o.group_size);
    GPTX_CHECK(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
    GPTX_CHECK(o.minibatch > 0, "--minibatch must be positive, got ", o.minibatch);
    GPTX_CHECK(o.max_new > 0, "--max-new must be positive, got ", o.max_new);
    GPTX_CHECK(o.temperature > 0, "--temperature must be positive, got ", o.temperature);
    GPTX_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be positive, got ", o.lr);
    GPTX_CHECK(o.grad_clip >= 0, "--grad-clip must be >= 0, got ", o.grad_clip);
    GPTX_CHECK(o.kl_coef >= 0, "--kl-coef must be >= 0, got ", o.kl_coef);
    GPTX_CHECK(o.clip > 0 && o.clip < 1, "--clip must be in (0, 1), got ", o.clip);
    GPTX_CHECK(o.ptx_coef >= 0, "--ptx-coef must be >= 0, got ", o.ptx_coef);
    GPTX_CHECK(o.ptx_coef == 0 || !o.ptx_data.empty(),
               "--ptx-coef needs --ptx-data (a pre-training .bin file)");
    GPTX_CHECK(o.ptx_batch > 0, "--ptx-batch must be positive, got ", o.ptx_batch);
    GPTX_CHECK(o.save_every > 0, "--save-every must be positive, got ", o.save_every);
    GPTX_CHECK(o.log_every > 0, "--log-every must be positive, got ", o.log_every);
}

inline grpo_config make_config(const grpo_options& o, int eot) {
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
inline nlohmann::json run_json(const grpo_options& o) {
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

template <shape S>
void grpo_run(const grpo_options& o, const fs::path& policy_file, const checkpoint_info& pinfo) {
    using model_t = transformer<S>;
    const fs::path dir = o.out, policy_ckpt = dir / "policy.gptx", final_ckpt = dir / "model.gptx";
    model_t reference(pinfo.config), policy(pinfo.config);
    tokenizer tok;
    load_checkpoint<S>(policy_file, reference, nullptr, &tok, nullptr);
    copy_params(policy, reference);
    const auto rm = load_reward_model<S>(o.reward, pinfo.config, "grpo");
    const int eot = end_of_text_for(tok, policy.vocab(), o.end_of_text);
    auto prompts = read_prompts(o.prompts, tok, eot);
    std::vector<int> ptx;
    if (o.ptx_coef > 0) {
        ptx = read_token_file(o.ptx_data);
        for (int id : ptx)
            GPTX_CHECK(id >= 0 && id < policy.vocab(), o.ptx_data, ": token ", id,
                       " is outside the vocabulary [0, ", policy.vocab(), ")");
    }
    grpo_trainer<model_t> tr(policy, reference, reward_of(*rm), std::move(prompts),
                             make_config(o, eot), std::move(ptx));
    const nlohmann::json run = run_json(o);

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
        command_run_options(o.iters, o.save_every, o.log_every,
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

} // namespace grpo_detail

inline void run_grpo(const grpo_options& o) {
    grpo_detail::validate(o);
    const fs::path policy_file = checkpoint_file(o.policy);
    const checkpoint_info info = read_checkpoint_info(policy_file);
    fs::create_directories(o.out);
    std::printf("gptx grpo (%s baseline): policy %s (%s), vocab %d, context %d, %d threads\n",
                o.baseline.c_str(), policy_file.string().c_str(), to_string(info.dims).c_str(),
                info.config.vocab, info.config.context, num_threads());
    const bool found = with_checkpoint_preset(
        info, [&]<shape S>() { grpo_detail::grpo_run<S>(o, policy_file, info); });
    GPTX_CHECK(found, policy_file.string(), ": no preset has the checkpoint's shape ",
               to_string(info.dims));
}

void add_grpo_command(commands& cmds) { cmds.add(add_grpo_command, run_grpo); }

} // namespace gptx::cli
