// samples/cli/pipeline.cpp: `gptx pipeline`, InstructGPT end to end on the project's task family
// with PPO, PPO-ptx, DPO, GRPO and RLOO compared: the options of samples/instructgpt/
// pipeline_options.hpp's run_pipeline. Tested by tests/cli/test_sft_cli.cpp.
#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "instructgpt/pipeline_options.hpp"

namespace gptx::cli {

using instructgpt::pipeline_options;
using instructgpt::run_pipeline;

inline void add_pipeline_command(CLI::App& app, pipeline_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand(
        "pipeline",
        "InstructGPT end to end on the built-in task family: pre-training, SFT, reward model, then "
        "PPO, PPO-ptx, DPO, GRPO and RLOO from the same SFT model on the same data, judged by a "
        "programmatic labeler");
    c->add_option("--out", o.out, "Folder for the generated data, checkpoints and metrics");
    c->add_option("--seed", o.seed, "Seed of every stage");
    c->add_flag("--json", o.json, "End with the result table as one JSON object");
    c->add_flag("--quick", o.quick, "Tiny sizes: a smoke test that runs in seconds");
    c->add_option("--corpus-chars", o.corpus_chars, "Size of the generated pre-training corpus");
    c->add_option("--pretrain-iters", o.pretrain_iters, "Pre-training steps");
    c->add_option("--pretrained", o.pretrained,
                  "Start from this pretrain.gptx of an earlier run with the same seed and corpus "
                  "size instead of pre-training")
        ->check(CLI::ExistingFile);
    c->add_option("--pretrain-lr", o.pretrain_lr, "Pre-training peak learning rate");
    c->add_option("--sft-examples", o.sft_examples, "SFT demonstrations");
    c->add_option("--demo-padded", o.demo_padded,
                  "Fraction of demonstrations whose answer is trailed by padding (' i think'), "
                  "which the labeler marks down; 0: clean demonstrations")
        ->check(CLI::Range(0.0, 1.0));
    c->add_option("--sft-epochs", o.sft_epochs, "SFT epochs");
    c->add_option("--sft-lr", o.sft_lr, "SFT peak learning rate");
    c->add_option("--rm-prompts", o.rm_prompts, "Prompts with ranked comparisons for the RM");
    c->add_option("--rm-k", o.rm_k, "Responses ranked per RM prompt (K, 2..9)")
        ->check(CLI::Range(2, 9));
    c->add_option("--rm-hot", o.rm_hot,
                  "Of the K responses per RM prompt, this many are sampled at --rm-hot-temperature "
                  "(the rest at 1)");
    c->add_option("--rm-hot-temperature", o.rm_hot_temperature,
                  "Sampling temperature of those responses");
    c->add_option("--rm-val-prompts", o.rm_val_prompts,
                  "Held-out prompts whose comparisons measure the RM's accuracy");
    c->add_option("--rm-epochs", o.rm_epochs, "Reward-model epochs");
    c->add_option("--rm-batch", o.rm_batch, "Reward-model prompts per step (all pairs of each)");
    c->add_option("--rm-lr", o.rm_lr, "Reward-model learning rate");
    c->add_option("--rm-pooling", o.rm_pooling,
                  "Where the RMs' head reads: last (the closing end-of-text) or mean (every "
                  "response position, averaged)")
        ->check(CLI::IsMember({"last", "mean"}));
    c->add_option("--rm-ensemble", o.rm_ensemble,
                  "Instruction RMs trained from different seeds; above 1 PPO, PPO-ptx, GRPO and "
                  "RLOO are rewarded by their mean less --rm-ensemble-penalty times their "
                  "spread, each standardised on the demonstrations (default 1)")
        ->check(CLI::Range(1, 16));
    c->add_option("--rm-ensemble-penalty", o.rm_ensemble_penalty,
                  "The disagreement penalty of --rm-ensemble (0: the members' mean)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--rm-ensemble-data", o.rm_ensemble_data,
                  "What --rm-ensemble's members after the first train on: shared (the first's "
                  "comparisons), bootstrap (a resample of them each) or samples (comparisons of "
                  "fresh SFT samples of the same prompts each)")
        ->check(CLI::IsMember({"shared", "bootstrap", "samples"}));
    c->add_option("--rm-ensemble-trunk", o.rm_ensemble_trunk,
                  "What --rm-ensemble's members after the first start from: sft (the SFT model, "
                  "as the first does) or pretrained (the pre-trained model)")
        ->check(CLI::IsMember({"sft", "pretrained"}));
    c->add_option("--ppo-prompts", o.ppo_prompts, "Prompts PPO samples from");
    c->add_option("--ppo-iters", o.ppo_iters, "Iterations of PPO, PPO-ptx, GRPO and RLOO");
    c->add_option("--rollouts", o.rollouts, "Rollouts per iteration (PPO, GRPO, RLOO)");
    c->add_option("--ppo-minibatch", o.ppo_minibatch, "Responses per update (PPO, GRPO, RLOO)");
    c->add_option("--ppo-epochs", o.ppo_epochs,
                  "Passes over each iteration's rollouts (PPO, GRPO, RLOO)");
    c->add_option("--ppo-keep", o.ppo_keep,
                  "The instruction stage's PPO and PPO-ptx (not GRPO, RLOO or the dialogue "
                  "stage) update on this many of each iteration's rollouts, those with the "
                  "largest |advantage| (0: all)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--ppo-lr", o.ppo_lr, "Policy learning rate (PPO, GRPO, RLOO)");
    c->add_option("--gae-lambda", o.gae_lambda, "PPO GAE lambda (gamma is 1, as InstructGPT's)");
    c->add_option("--kl-coef", o.kl_coef, "PPO KL penalty beta");
    c->add_option("--value-lr", o.value_lr, "PPO value-model learning rate (0: 2 x --ppo-lr)");
    c->add_option("--value-warmup", o.value_warmup,
                  "PPO iterations that train only the value model before the policy moves");
    c->add_option("--ppo-lr-warmup", o.ppo_lr_warmup,
                  "PPO iterations, after --value-warmup, over which the policy's learning rate "
                  "ramps up linearly to --ppo-lr")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--ptx-coef", o.ptx_coef, "PPO-ptx pre-training coefficient gamma");
    c->add_option("--ptx-text", o.ptx_text,
                  "PPO-ptx's pre-training mix (both stages): this text file, encoded with the "
                  "run's character tokenizer, instead of the pre-training split")
        ->check(CLI::ExistingFile);
    c->add_option("--rlhf-rounds", o.rlhf_rounds,
                  "Iterated RLHF: PPO's iterations split over this many rounds; before each later "
                  "round the RM (with --rm-ensemble, each member) continues training on "
                  "comparisons of the policy's own samples (both RLHF stages: PPO, PPO-ptx and "
                  "the chat model, which needs --dialogue-rm-ensemble 1)")
        ->check(CLI::Range(1, 10));
    c->add_option("--round-rm-prompts", o.round_rm_prompts,
                  "Iterated RLHF: RM prompts whose policy samples are ranked before each later "
                  "round")
        ->check(CLI::PositiveNumber);
    c->add_option("--oracle-reward", o.oracle_reward,
                  "Ablation: PPO, GRPO, RLOO and the chat model's PPO are rewarded by this "
                  "times the labeler's own score instead of the reward model (the RM's ceiling)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--rm-likelihood", o.rm_likelihood,
                  "Instruction stage: PPO, GRPO and RLOO are rewarded by the RM (or ensemble) "
                  "plus this times the SFT model's mean log-likelihood of the response (its "
                  "end-of-text included), which ranks near misses the RM misranks (0: the RM "
                  "alone)")
        ->check(CLI::NonNegativeNumber);
    c->add_flag("--rm-likelihood-only", o.rm_likelihood_only,
                "Ablation: with --rm-likelihood, PPO, GRPO and RLOO are rewarded by the "
                "likelihood term alone, without the RM (best of n and RS still rank by the RM)");
    c->add_option("--methods", o.methods,
                  "Comma-separated methods after SFT, a table row each: ppo, ppo-ptx, dpo, grpo, "
                  "rloo, rs (rejection-sampling fine-tuning), or none (SFT only) (default: "
                  "ppo,ppo-ptx,dpo,grpo,rloo; 19 minutes with the dialogue "
                  "stage on 2 cores, docs/pipeline.md has each stage's time)");
    c->add_option("--dpo-beta", o.dpo_beta,
                  "DPO beta: the implicit reward is beta (log pi - log pi_SFT)");
    c->add_option("--dpo-lr", o.dpo_lr, "DPO learning rate");
    c->add_option("--dpo-epochs", o.dpo_epochs, "DPO passes over the RM's comparisons");
    c->add_option("--group-size", o.group_size,
                  "GRPO/RLOO responses per prompt G (--rollouts / G prompts per iteration)");
    c->add_option("--rs-k", o.rs_k,
                  "RS: SFT samples per PPO prompt; the RM's best is fine-tuned on")
        ->check(CLI::Range(1, 64));
    c->add_option("--rs-epochs", o.rs_epochs, "RS: fine-tuning passes over the kept samples")
        ->check(CLI::PositiveNumber);
    c->add_option("--grpo-kl-coef", o.grpo_kl_coef,
                  "GRPO/RLOO coefficient of the k3 KL penalty to SFT in the loss");
    c->add_flag("--evaluate-only", o.evaluate_only,
                "Train nothing: load pretrain.gptx, sft.gptx and each --methods checkpoint "
                "(ppo.gptx, ppo_ptx.gptx, dpo.gptx, grpo.gptx, rloo.gptx) from --out and print the "
                "table (with --seed and sizes of the run that wrote them)");
    c->add_flag("--no-dialogue", o.no_dialogue,
                "Stop after the InstructGPT stages: no dialogue stage, no chat.gptx");
    c->add_option("--dialogue-rm-conversations", o.dialogue_rm_conversations,
                  "Conversations with ranked alternative replies for the dialogue RMs "
                  "(default 3200; 0: the default)");
    c->add_option("--dialogue-rm-epochs", o.dialogue_rm_epochs,
                  "Passes of the dialogue RM over its comparisons (default 2)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--dialogue-round-conversations", o.dialogue_round_conversations,
                  "Iterated RLHF: RM conversations the chat model answers, with ranked "
                  "alternative replies, before each later round (default 400)")
        ->check(CLI::PositiveNumber);
    c->add_option("--dialogue-rm-native", o.dialogue_rm_native,
                  "Native share of the dialogue RM's comparisons; the rest are the instruction "
                  "stage's comparisons as one-turn dialogues (1: native only)")
        ->check(CLI::Range(0.0, 1.0));
    c->add_option("--dialogue-rm-ensemble", o.dialogue_rm_ensemble,
                  "Dialogue RMs trained from different seeds; above 1 the chat model's PPO is "
                  "rewarded by their mean less --dialogue-rm-ensemble-penalty times their "
                  "spread, each standardised on the demonstrations (Coste et al. 2023; default "
                  "4; 1 for --rlhf-rounds above 1)")
        ->check(CLI::Range(1, 16));
    c->add_option("--dialogue-rm-ensemble-penalty", o.dialogue_rm_ensemble_penalty,
                  "The disagreement penalty of --dialogue-rm-ensemble (0: the members' mean)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--dialogue-ppo-iters", o.dialogue_ppo_iters,
                  "PPO iterations of the chat model (default 50; 0: --ppo-iters)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--dialogue-ppo-epochs", o.dialogue_ppo_epochs,
                  "The chat model's passes over each iteration's rollouts (0: --ppo-epochs)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--dialogue-ppo-minibatch", o.dialogue_ppo_minibatch,
                  "The chat model's replies per update (0: --ppo-minibatch)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--dialogue-ppo-lr", o.dialogue_ppo_lr,
                  "The chat model's PPO learning rate (default 3e-5, with the ensemble's "
                  "reward; 0: --ppo-lr)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--dialogue-ppo-lr-warmup", o.dialogue_ppo_lr_warmup,
                  "The chat model's learning-rate warm-up in PPO iterations (-1: --ppo-lr-warmup)")
        ->check(CLI::Number);
    c->add_option("--dialogue-ppo-conversations", o.dialogue_ppo_conversations,
                  "Conversations whose user turns are the chat model's PPO prompts (0: the "
                  "default, 1000)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--dialogue-ppo-min-turns", o.dialogue_ppo_min_turns,
                  "The chat model's PPO prompts: user turns with at least this many user "
                  "messages up to them (1: every turn; 2: turns with an earlier exchange, as "
                  "the evaluation judges)")
        ->check(CLI::Range(1, 3));
    c->add_option("--dialogue-rm-min-turns", o.dialogue_rm_min_turns,
                  "The dialogue RMs' conversations have at least this many user turns; each "
                  "comparison ranks replies at one of them, drawn uniformly (1: about three in "
                  "four are opening turns; 2: half)")
        ->check(CLI::Range(1, 3));
    c->add_option("--dialogue-eval-conversations", o.dialogue_eval_conversations,
                  "Held-out multi-turn conversations the chat model is judged on (default "
                  "1000; 0: --eval-prompts)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--dialogue-ptx-coef", o.dialogue_ptx_coef,
                  "The chat model's PPO-ptx coefficient (default: --ptx-coef)");
    c->add_option("--eval-prompts", o.eval_prompts,
                  "Held-out prompts for the instruction stage's win rates (and the dialogue "
                  "stage's with --dialogue-eval-conversations 0)");
    c->add_option("--eval-temperature", o.eval_temperature,
                  "Sampling temperature of the evaluated responses");
    c->callback([&] { run(); });
}

void add_pipeline_command(commands& cmds) { cmds.add(add_pipeline_command, run_pipeline); }

} // namespace gptx::cli
