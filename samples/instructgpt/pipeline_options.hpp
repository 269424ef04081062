// samples/instructgpt/pipeline_options.hpp: InstructGPT end to end on the task family, as one
// call: pre-training -> SFT -> reward model -> the methods (PPO, PPO-ptx, DPO, GRPO, RLOO, each
// from the same SFT model) (then the dialogue stage), judged by the programmatic labeler, ending
// with a table row per method. `gptx pipeline` parses its options into pipeline_options and calls
// run_pipeline (pipeline.cpp), so it compiles without the stages. Tested by
// tests/cli/test_sft_cli.cpp (--quick).
#pragma once
#include <cstdint>
#include <string>

namespace gptx::instructgpt {

// An option whose 0 means "as another one's": its value when set (> 0), else that one's.
template <class T> T or_else(T value, T fallback) { return value > 0 ? value : fallback; }

struct pipeline_options {
    std::string out = "pipeline-out";
    std::string pretrained; // an earlier run's pretrain.gptx: skip pre-training
    std::uint64_t seed = 1;
    bool json = false, quick = false;
    int context = 64, max_new = 20;
    int corpus_chars = 1500000, pretrain_iters = 5000, pretrain_batch = 16;
    float pretrain_lr = 1e-3f;
    int sft_examples = 12000, sft_epochs = 2, sft_batch = 16, sft_select_prompts = 128;
    // Half the demonstrations trail their answer with padding the labeler dislikes: imitation
    // copies it, comparisons teach otherwise (docs/pipeline.md; 0 gives clean demonstrations).
    double demo_padded = 0.5;
    float sft_lr = 3e-4f;
    int rm_prompts = 12000, rm_val_prompts = 300, rm_k = 4, rm_batch = 8;
    int rm_hot = 2; // of the K responses, this many sampled at rm_hot_temperature
    float rm_hot_temperature = 2.0f;
    double rm_epochs = 2;
    float rm_lr = 2e-4f;
    // Where both stages' RMs read: "last" (the closing end-of-text, InstructGPT) or "mean" (every
    // response position, averaged; include/gptx/nn/reward_model.hpp).
    std::string rm_pooling = "last";
    // > 1: PPO, PPO-ptx, GRPO and RLOO rewarded by this many RMs (member 0 the RM above, the
    // others differing only in seed), their mean less rm_ensemble_penalty times their spread,
    // as the dialogue stage's ensemble (Coste et al. 2023).
    int rm_ensemble = 1;
    double rm_ensemble_penalty = 1.0;
    // What members 1.. of --rm-ensemble train on: "shared" (member 0's comparisons), "bootstrap"
    // (a resample of them each) or "samples" (comparisons of the SFT model's own fresh samples of
    // the same prompts each, so their pairs differ, not only their draws).
    std::string rm_ensemble_data = "shared";
    // What members 1.. start from: "sft" (as member 0) or "pretrained" (the pre-trained model, so
    // their trunks differ from member 0's, not only their heads and data).
    std::string rm_ensemble_trunk = "sft";
    int ppo_prompts = 2000, ppo_iters = 60, rollouts = 256, ppo_minibatch = 64, ppo_epochs = 4;
    float ppo_lr = 1e-5f;
    // > 0: PPO and PPO-ptx train on this many of each iteration's rollouts, those with the
    // largest |advantage| (ppo_config::keep); 0: all.
    int ppo_keep = 0;
    // beta: InstructGPT's 0.02 is relative to its RM's scale; the RM of clean demonstrations
    // spread SFT samples' rewards over about +-8, and at 0.02 PPO drifted into what it misjudged
    // (docs/pipeline.md).
    double kl_coef = 0.1, ptx_coef = 1.0, gae_lambda = 0.95;
    // PPO-ptx's pre-training mix (both stages): this text, encoded with the run's tokenizer,
    // instead of the pre-training split; empty: the split, as InstructGPT mixes its own.
    std::string ptx_text;
    float value_lr = 1e-4f; // 0: twice the policy's
    int value_warmup = 10;
    int ppo_lr_warmup = 0; // PPO iterations over which the policy's rate ramps up to ppo_lr
    // Iterated RLHF (InstructGPT, ChatGPT): PPO's iterations split over this many rounds; before
    // each round after the first, the RM continues training on comparisons of the current
    // policy's samples (round_rm_prompts prompts, K each) added to those so far. The dialogue
    // stage does the same with its one RM and chat model (dialogue_round_conversations; with
    // --dialogue-rm-ensemble 1).
    int rlhf_rounds = 1, round_rm_prompts = 3000;
    double oracle_reward = 0; // > 0: the RL methods' reward (both stages) is this times the
                              // labeler's score, not the RM's
    // The instruction stage's RL reward (PPO, PPO-ptx, GRPO, RLOO) plus this times the SFT
    // model's mean log-likelihood of the response and its end-of-text (0: the RM alone); with
    // rm_likelihood_only, the likelihood term alone (the ablation without the RM).
    double rm_likelihood = 0;
    bool rm_likelihood_only = false;
    // The methods after SFT, each a row of the table (parse_methods lists them). All five with
    // the dialogue stage took 19 min 9 s on a 2-core AMD EPYC Zen 5, within the 20-minute
    // budget (the README has each stage's time).
    std::string methods = "ppo,ppo-ptx,dpo,grpo,rloo";
    // DPO on the RM's comparisons, from SFT with SFT as the reference; PPO's learning rate.
    double dpo_beta = 0.1, dpo_epochs = 1;
    float dpo_lr = 1e-5f;
    // GRPO and RLOO: --rollouts per iteration as rollouts / group prompts x group responses, with
    // PPO's iterations, epochs, minibatch and learning rate; the k3 KL coefficient is
    // DeepSeekMath's.
    int group_size = 4;
    // Rejection-sampling fine-tuning (method rs, Llama 2): the RM's best of rs_k SFT samples to
    // each PPO prompt, fine-tuned on for rs_epochs with SFT's learning rate.
    int rs_k = 4, rs_epochs = 2;
    double grpo_kl_coef = 0.04;
    // Train nothing: load pretrain.gptx, sft.gptx and each method's checkpoint from `out` (a
    // stage run elsewhere, e.g. by gptx dpo, copied there) and print the table.
    bool evaluate_only = false;
    int eval_prompts = 300;
    float eval_temperature = 1.0f;
    int dialogue_rm_conversations = 0;    // 0: the dialogue stage's default
    double dialogue_rm_epochs = 0;        // 0: the dialogue stage's default
    int dialogue_round_conversations = 0; // 0: the dialogue stage's default
    double dialogue_rm_native = 1.0;      // native share of the dialogue RM's comparisons
    double dialogue_ptx_coef = -1;        // the chat model's ptx coefficient; < 0: ptx_coef
    // The chat model's PPO schedule; 0: the instruction stage's (ppo_iters, ppo_epochs,
    // ppo_minibatch, ppo_lr). Rewarded by the ensemble's mean less its spread, the policy moves
    // more slowly per step than on one RM, and 3e-5 lets it climb within 50-60 iterations (1e-5
    // needed about 150); one RM at 3e-5 gains nothing. 50 iterations, not the instruction
    // stage's 60, pay for the RMs' 3,200 conversations within the 20 minutes: the RMs' data
    // did more for the chat model than PPO's length (docs/pipeline.md).
    int dialogue_ppo_iters = 50, dialogue_ppo_epochs = 0, dialogue_ppo_minibatch = 0;
    float dialogue_ppo_lr = 3e-5f;
    int dialogue_ppo_lr_warmup = -1;    // < 0: ppo_lr_warmup
    int dialogue_ppo_conversations = 0; // 0: the dialogue stage's default
    int dialogue_ppo_min_turns = 1;     // PPO prompts: user turns with this many user messages
    int dialogue_rm_min_turns = 1;      // RM conversations: at least this many user turns
    // Held-out conversations judged (0: eval_prompts): about half tie, and at 300 the 95%
    // interval spans +-5.6 points; 1,000 narrow it to +-3.1.
    int dialogue_eval_conversations = 1000;
    // > 1: PPO rewarded by this many dialogue RMs; one RM is over-optimised from the first
    // updates (docs/pipeline.md)
    int dialogue_rm_ensemble = 4;
    double dialogue_rm_ensemble_penalty = 1.0; // ... their mean less this times their spread
    bool no_dialogue = false;                  // stop after the InstructGPT stages

    float value_lr_or_default() const { return or_else(value_lr, 2 * ppo_lr); }
    int dialogue_ppo_iters_or_default() const { return or_else(dialogue_ppo_iters, ppo_iters); }
};

// Runs the stages of pipeline.hpp in order into o.out and prints the table (JSON with o.json).
void run_pipeline(pipeline_options o);

} // namespace gptx::instructgpt
