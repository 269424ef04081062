// samples/instructgpt/dialogue_stage.hpp: the dialogue stage that ends `gptx pipeline` (ChatGPT's
// recipe on the task family): the chat tokens join the tokenizer; dialogue SFT on native
// multi-turn dialogues mixed with the InstructGPT demonstrations turned into dialogues; ranked
// comparisons of alternative replies to a model-written message; a reward model and PPO-ptx on
// dialogue prefixes, all through the same objectives as the InstructGPT stages; judged by the
// dialogue labeler on held-out multi-turn conversations. Writes chat.gptx for `gptx chat`.
// Tested (on its smoke-test sizes) by tests/cli/test_sft_cli.cpp through `gptx pipeline --quick`.
#pragma once
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include <gptx/core/file.hpp>
#include <gptx/core/stats.hpp>
#include <gptx/data/dialogue.hpp>
#include <gptx/io/checkpoint.hpp>
#include <gptx/nn/copy_params.hpp>
#include <gptx/nn/resize.hpp>
#include <gptx/nn/reward_model.hpp>
#include <gptx/text/chat_format.hpp>
#include <gptx/train/policy_eval.hpp>
#include <gptx/train/ppo_trainer.hpp>
#include <gptx/train/reward_objective.hpp>
#include <gptx/train/reward_training.hpp>
#include <gptx/train/sft.hpp>

#include "../tasks/dialogue_tasks.hpp"
#include "labeling.hpp"

namespace gptx::instructgpt {

using namespace gptx::tasks;
namespace fs = std::filesystem;

struct dialogue_sizes {
    int native = 1200;           // generated multi-turn dialogues (before mixing)
    double native_fraction = .5; // of the SFT mix; the rest: InstructGPT demonstrations
    int sft_epochs = 4, sft_batch = 16;
    float sft_lr = 3e-4f;
    // The RM conversations: with the ensemble against over-optimisation, the RMs' accuracy is
    // what limits the chat model, and 3,200 (twice the earlier default) raised it by 3.7 points on
    // average and the chat model's win rate on both seeds (docs/pipeline.md).
    int rm_conversations = 3200, rm_val_conversations = 100, rm_k = 4, rm_batch = 8;
    // Of the RM's training comparisons, this fraction native (ranked replies to conversations);
    // the rest the instruction stage's comparisons (comparisons.jsonl) as one-turn dialogues,
    // as the SFT mix does with the demonstrations. 1 (or no comparisons.jsonl): native only.
    // Half and half did not help the chat model (docs/pipeline.md), so native only is the default.
    double rm_native_fraction = 1.0;
    // The RM conversations have at least this many user turns; the reply ranked is any one of
    // them (1: about three in four are opening turns; 2: half, as many later turns as openings).
    int rm_min_user_turns = 1;
    int rm_hot = 2; // of the K alternatives, this many sampled at rm_hot_temperature
    float rm_hot_temperature = 2.0f;
    double rm_epochs = 2;
    float rm_lr = 1e-4f;
    reward_pooling rm_pooling = reward_pooling::last; // where the RM's head reads
    // > 1: this many RMs from different seeds, each standardised on the demonstrations, PPO
    // rewarded by their mean less rm_ensemble_penalty times their spread (reward_ensemble).
    int rm_ensemble = 4;
    double rm_ensemble_penalty = 1.0;
    int ppo_conversations = 1000, ppo_iters = 60, rollouts = 64, ppo_minibatch = 16, ppo_epochs = 4;
    // PPO's prompts: the replies to user turns with at least this many user messages up to them
    // (1: every turn; 2: turns with an earlier exchange, as the evaluation judges). The PPO
    // conversations are drawn with at least this many user turns.
    int ppo_min_user_turns = 1;
    // Iterated RLHF, as the instruction stage's: PPO's iterations split over this many rounds;
    // before each later round the RM continues training on comparisons of the chat model's own
    // replies (round_conversations RM conversations rolled out by it, K alternatives each) added
    // to all earlier ones.
    int rlhf_rounds = 1, round_conversations = 400;
    // PPO settings: gptx pipeline sets them from its own options (dialogue_sizes_for in
    // pipeline.hpp): the instruction stage's, but for the learning rate, where one of its own
    // lets the ensemble's reward climb within the default 50 iterations (docs/pipeline.md).
    float ppo_lr = 3e-5f, value_lr = 1e-4f;
    int value_warmup = 10;
    int ppo_lr_warmup = 0;
    double kl_coef = 0.02, ptx_coef = 1.0;
    double oracle_reward = 0; // > 0: PPO's reward is this times the labeler's score, not the RM's
    int eval_conversations = 1000;
    // The diagnosis (SFT greedy, the RM on each model's samples, best of n: 16 replies to each)
    // reads the first this many held-out conversations, so a larger evaluation costs little.
    int diagnosis_conversations = 300;
    int max_new = 12;
    float eval_temperature = 1.0f;
};
inline dialogue_sizes quick_dialogue_sizes() {
    dialogue_sizes d;
    d.native = 64;
    d.sft_epochs = 1;
    d.rm_conversations = 16;
    d.rm_val_conversations = 8;
    d.rm_epochs = 1;
    d.ppo_conversations = 32;
    d.ppo_iters = 2;
    d.rollouts = 16;
    d.round_conversations = 16;
    d.eval_conversations = 12;
    return d;
}

// What the InstructGPT stages hand over.
template <shape S> struct dialogue_stage_inputs {
    std::filesystem::path dir; // holds sft.jsonl (the demonstrations)
    std::uint64_t seed = 1;
    const tokenizer* tok = nullptr;        // the pipeline's (no special tokens)
    int end_of_text = -1;                  // the id the pipeline reserved past tok's vocabulary
    const transformer<S>* sft = nullptr;   // the instruction SFT model (vocab: tok + 1)
    const std::vector<int>* ptx = nullptr; // pre-training tokens for PPO-ptx
    dialogue_sizes sizes{};
};

struct dialogue_stage_result {
    double rm_accuracy = 0;                       // the first round's RM, held-out
    std::vector<double> rm_member_accuracy;       // each ensemble member's (member 0 first)
    std::size_t rm_pairs = 0, rm_comparisons = 0; // held-out pairs; ranked groups trained on
    win_rate win; // dialogue RLHF over dialogue SFT: the labeler on each conversation's last turn
    double sft_last = 0, rlhf_last = 0;             // labeler mean on the last turn
    double sft_mean = 0, rlhf_mean = 0;             // labeler mean per turn, every turn
    double sft_exact_last = 0, rlhf_exact_last = 0; // last turn exact, ended
    std::size_t conversations = 0, turns = 0;
    double ppo_stopped = 0; // share of the last iteration's rollouts cut at a role marker
    // The chat model's PPO as its trainer ran: iterations done (every round), the last round's
    // epochs, minibatch, learning rate (and its warm-up), rollouts per iteration and ptx
    // coefficient (0: plain PPO), the RMs its reward read (0 with the labeler as the reward),
    // and its prompts: how many, and the user messages each has at least.
    struct ppo_schedule {
        int iterations = 0, epochs = 0, minibatch = 0, rollouts = 0, lr_warmup = 0;
        std::size_t prompts = 0;
        int min_user_turns = 1;
        double lr = 0, ptx_coef = 0;
        const char* name() const { return ptx_coef > 0 ? "PPO-ptx" : "PPO"; }
        std::size_t rms = 0;
    } ppo;
    // Diagnosis (issue #19): the RM's pairwise accuracy on comparisons of temperature-1 samples
    // of each model (K alternatives to one of its own replies, ranked by the labeler); SFT's
    // greedy last-turn exactness (the headroom sampling leaves); last-turn exactness by the kind
    // of the last user turn (turn_kinds).
    std::optional<double> rm_on_sft, rm_on_chat;
    std::optional<double> rm_on_sft_first, rm_on_sft_last; // SFT's, at the first or last reply
    // Iterated RLHF, per later round: the comparisons of the chat model's replies added and
    // trained on in all; the RM's held-out accuracy on comparisons made as its training ones
    // (hot alternatives included) of the chat model's replies to the RM's held-out
    // conversations; and its accuracy on temperature-1 alternatives to the same model's replies
    // to them, before and after retraining (the same comparisons; nullopt: all tied).
    struct round_result {
        std::size_t added = 0, total = 0;
        double held_out = 0;
        std::optional<double> t1_before, t1_after;
    };
    std::vector<round_result> rounds;
    double diagnosis_seconds = 0;            // what measuring them took
    std::size_t diagnosis_conversations = 0; // the first this many held-out conversations
    double sft_exact_last_greedy = 0;
    // Best of n of SFT's temperature-1 replies to each held-out conversation's last turn,
    // picked by the RM (the ensemble, with one) and by the labeler, against SFT's single reply
    // (best_of_n_curve).
    best_of_n_curve bon;
    struct by_kind {
        std::size_t n = 0, sft_exact = 0, chat_exact = 0;
    };
    std::array<by_kind, 4> kinds{};
};

// The kinds of user turn the evaluation tells apart (dialogue_tasks.hpp's family).
inline constexpr std::array<const char*, 4> turn_kinds = {
    "instruction (op word)", "same op, new word", "same op, earlier word", "new op, same word"};
inline std::size_t turn_kind(std::string_view msg) {
    if (msg.starts_with("same for the ") || msg.starts_with("now do the same to the "))
        return 2;
    if (msg.starts_with("same for ") || msg.starts_with("now do the same to "))
        return 1;
    if (msg.starts_with("now "))
        return 3;
    return 0;
}

namespace detail {

// A generated reply as the labeler reads it: cut at the first special token (a reply that starts
// another turn's marker did not end), ended only if it stopped at <|end|>.
struct reply_text {
    std::string text;
    bool ended = false;
};
inline reply_text reply_of(const generation& g, const tokenizer& tok) {
    const auto cut = std::find_if(g.tokens.begin(), g.tokens.end(),
                                  [&](int id) { return tok.special().text_of(id) != nullptr; });
    return {tok.decode(std::vector<int>(g.tokens.begin(), cut)),
            cut == g.tokens.end() && g.reason == stop_reason::end_of_text};
}

// Every user turn of each conversation answered by `model` in turn, its own replies forming the
// history (as in a chat). Replies stop at <|end|>; one that starts another turn (any other special
// token) is cut there and counts as not ended. Scores: the labeler on each turn.
struct rolled_out {
    std::vector<conversation> convs; // user messages with the model's replies
    std::vector<std::vector<double>> scores;
    std::vector<std::vector<bool>> ended, exact;
    rolled_out first(std::size_t n) const { // the first n conversations' (n <= their count)
        auto head = [n](const auto& v) {
            return std::decay_t<decltype(v)>(v.begin(), v.begin() + n);
        };
        return {head(convs), head(scores), head(ended), head(exact)};
    }
};
template <class Model>
rolled_out roll_out(const Model& model, const tokenizer& tok, const chat_format& fmt,
                    const std::vector<conversation>& dialogues, int max_new, float temperature,
                    std::uint64_t seed) {
    rolled_out out;
    out.convs.resize(dialogues.size());
    out.scores.resize(dialogues.size());
    out.ended.resize(dialogues.size());
    out.exact.resize(dialogues.size());
    const int T = model.context();
    std::vector<std::vector<std::string>> users(dialogues.size());
    std::size_t turns = 0;
    for (std::size_t i = 0; i < dialogues.size(); ++i) {
        for (const auto& m : dialogues[i])
            if (m.role == chat_role::user)
                users[i].push_back(m.content);
        turns = std::max(turns, users[i].size());
    }
    const dialogue_labeler lab;
    for (std::size_t j = 0; j < turns; ++j) {
        std::vector<std::size_t> who;
        std::vector<std::vector<int>> prompts;
        for (std::size_t i = 0; i < dialogues.size(); ++i) {
            if (j >= users[i].size())
                continue;
            out.convs[i].push_back({chat_role::user, users[i][j]});
            who.push_back(i);
            prompts.push_back(
                fmt.format(tok, out.convs[i],
                           {.max_tokens = T, .generation_prompt = true, .reserve = max_new + 1})
                    .tokens);
        }
        const auto gen =
            sample_responses(model, prompts, max_new, {temperature, 0, 1.0f, seed + j}, fmt.end);
        for (std::size_t k = 0; k < who.size(); ++k) {
            const auto [reply, ended] = reply_of(gen[k], tok);
            auto& c = out.convs[who[k]];
            out.scores[who[k]].push_back(lab.score(c, reply, ended));
            out.ended[who[k]].push_back(ended);
            out.exact[who[k]].push_back(ended && reply == dialogue_labeler::task_of(c).answer);
            c.push_back({chat_role::assistant, reply});
        }
    }
    return out;
}

// A reward model of either stage, or a member of an ensemble: its head from init_seed, its trunk
// from the SFT model, trained on the comparisons (AdamW β 0.9 / 0.95, no decay), its bias set so
// the demonstrations average 0 and, for an ensemble (standardize), its scale so their rewards'
// spread is 1 (the spread it divided by goes to *scale, when given). Returns its held-out
// accuracy.
template <shape S>
double
train_rm_member(reward_model<S>& m, const transformer<S>& sft, const tokenized_comparisons& train,
                const tokenized_comparisons& val, int end_of_text, const reward_training_config& rc,
                std::uint64_t init_seed, run_options ro, std::span<const std::vector<int>> demos,
                std::span<const int> demo_starts, bool standardize, double* scale = nullptr) {
    m.init(init_seed);
    copy_params(m.trunk(), sft);
    adamw<float> opt(m.trunk().params(), {rc.lr, 0.9f, 0.95f, 1e-8f, 0.0f});
    const double acc =
        train_reward_model(m, opt, train, val, end_of_text, rc, std::move(ro)).accuracy;
    normalize_reward_bias(m, demos, end_of_text, 16, demo_starts);
    if (standardize) {
        const double sd = standardize_reward_scale(m, demos, end_of_text, 16, demo_starts);
        if (scale)
            *scale = sd;
    }
    return acc;
}

// Which model-written reply of a conversation a comparison ranks alternatives to.
enum class ranked_reply { any, first, last };

// ChatGPT's comparisons: roll the conversation out with the model, pick one model-written reply
// (`which`: any, drawn uniformly; or the first or last), sample K alternatives to it (the last
// `hot` at hot_temperature, as the instruction stage's comparisons do) and rank them with the
// labeler (rank_responses: best first, duplicates and ties dropped; conversations left with fewer
// than two dropped).
// This overload ranks alternatives in conversations the model already rolled out (at
// temperature 1), so one roll-out can serve several choices of `which`.
template <class Model>
std::vector<dialogue_comparison>
make_dialogue_comparisons(const Model& model, const tokenizer& tok, const chat_format& fmt,
                          const rolled_out& ro, int K, int max_new, std::uint64_t seed, int hot = 0,
                          float hot_temperature = 1.0f, ranked_reply which = ranked_reply::any) {
    rng r(mix64(seed ^ 0xc0ffee));
    std::vector<conversation> contexts;
    std::vector<std::vector<int>> prompts;
    const int T = model.context();
    for (const auto& c : ro.convs) {
        const std::size_t turns = c.size() / 2;
        const std::size_t drawn = std::size_t(r.below(turns));       // drawn always: same stream
        const std::size_t j = which == ranked_reply::any     ? drawn // the reply to replace
                              : which == ranked_reply::first ? 0
                                                             : turns - 1;
        conversation ctx(c.begin(), c.begin() + std::ptrdiff_t(2 * j + 1));
        const auto p =
            fmt.format(tok, ctx,
                       {.max_tokens = T, .generation_prompt = true, .reserve = max_new + 1})
                .tokens;
        prompts.push_back(p);
        contexts.push_back(std::move(ctx));
    }
    // gen[k][i]: alternative k to conversation i.
    std::vector<std::vector<generation>> gen;
    for (int k = 0; k < K; ++k) {
        const float t = k >= K - hot ? hot_temperature : 1.0f;
        gen.push_back(sample_responses(model, prompts, max_new,
                                       {t, 0, 1.0f, mix64(seed + 99 + std::uint64_t(k))}, fmt.end));
    }
    const dialogue_labeler lab;
    std::vector<dialogue_comparison> out;
    for (std::size_t i = 0; i < contexts.size(); ++i) {
        std::vector<std::pair<double, std::string>> scored;
        for (int k = 0; k < K; ++k) {
            const auto [reply, ended] = reply_of(gen[std::size_t(k)][i], tok);
            // A cut reply is ranked as written; the RM sees it closed by <|end|> either way.
            scored.emplace_back(lab.score(contexts[i], reply, ended), reply);
        }
        dialogue_comparison dc{contexts[i], rank_responses(std::move(scored)), 0};
        if (dc.responses.size() >= 2)
            out.push_back(std::move(dc));
    }
    return out;
}
template <class Model>
std::vector<dialogue_comparison>
make_dialogue_comparisons(const Model& model, const tokenizer& tok, const chat_format& fmt,
                          const std::vector<conversation>& dialogues, int K, int max_new,
                          std::uint64_t seed, int hot = 0, float hot_temperature = 1.0f,
                          ranked_reply which = ranked_reply::any) {
    return make_dialogue_comparisons(model, tok, fmt,
                                     roll_out(model, tok, fmt, dialogues, max_new, 1.0f, seed), K,
                                     max_new, seed, hot, hot_temperature, which);
}

// Reward-model sequences: the context and each reply, formatted; the reward is read at the <|end|>
// closing the reply (the formatter's reward position, the last token).
inline tokenized_comparisons
tokenize_dialogue_comparisons(const std::vector<dialogue_comparison>& cs, const tokenizer& tok,
                              const chat_format& fmt, int T) {
    tokenized_comparisons out;
    for (const auto& c : cs) {
        ranked_sequences g;
        for (const auto& r : c.responses) {
            conversation conv = c.context;
            conv.push_back({chat_role::assistant, r});
            const chat_tokens t = fmt.format(tok, conv, {.max_tokens = T});
            GPTX_CHECK(t.reward_position == int(t.tokens.size()) - 1,
                       "dialogue RM: the reward position is not the last token");
            out.truncated += t.dropped > 0;
            g.responses.push_back(t.tokens);
            g.starts.push_back(t.reply_start);
        }
        out.groups.push_back(std::move(g));
    }
    return out;
}

// The generation prompts of a conversation: every prefix ending at a user message, formatted
// with the assistant marker and room for a reply of max_new tokens and its <|end|>; a prefix that
// would have to drop earlier turns to fit the context is left out, and so is one with fewer than
// min_users user messages (2: only turns with an earlier exchange).
// With `prefixes`, the conversation prefix of each prompt is appended to it.
inline std::vector<std::vector<int>> reply_prompts(const conversation& c, const tokenizer& tok,
                                                   const chat_format& fmt, int T, int max_new,
                                                   std::vector<conversation>* prefixes = nullptr,
                                                   int min_users = 1) {
    std::vector<std::vector<int>> out;
    int users = 0;
    for (std::size_t j = 0; j < c.size(); ++j) {
        if (c[j].role != chat_role::user || ++users < min_users)
            continue;
        conversation prefix(c.begin(), c.begin() + std::ptrdiff_t(j + 1));
        const auto p = fmt.format(
            tok, prefix, {.max_tokens = T, .generation_prompt = true, .reserve = max_new + 1});
        if (p.dropped == 0) {
            out.push_back(p.tokens);
            if (prefixes)
                prefixes->push_back(std::move(prefix));
        }
    }
    return out;
}

// The labeler's mean score and exact share of a PPO iteration's rollouts (the over-optimisation
// curve's gold score beside the RM's), and the mean apart for replies to opening turns and to
// later ones (0 where there are none): each rollout's prompt is looked up in `context_of`
// (prompt tokens to the conversation they format); its reply is what follows, cut at a stop
// token.
struct rollout_labels {
    double mean = 0, exact = 0;
    double opening = 0, later = 0;
    std::size_t openings = 0, laters = 0;
};
template <class Sequences>
rollout_labels label_rollouts(const Sequences& rolled,
                              const std::map<std::vector<int>, conversation>& context_of,
                              const tokenizer& tok) {
    const dialogue_labeler lab;
    rollout_labels r;
    for (const auto& s : rolled) {
        const auto it = context_of.find(
            std::vector<int>(s.tokens.begin(), s.tokens.begin() + std::ptrdiff_t(s.prompt)));
        GPTX_CHECK(it != context_of.end(), "dialogue PPO: a rollout's prompt is not a PPO prompt");
        // tokens: prompt, reply (its stop token last when stopped), the appended end-of-text.
        const auto last = s.tokens.end() - (s.stopped ? 2 : 1);
        const std::string reply =
            tok.decode(std::vector<int>(s.tokens.begin() + std::ptrdiff_t(s.prompt), last));
        const double score = lab.score(it->second, reply, s.ended);
        r.mean += score;
        r.exact += s.ended && reply == dialogue_labeler::task_of(it->second).answer ? 1 : 0;
        const bool opening = it->second.size() == 1; // the user's first message alone
        (opening ? r.opening : r.later) += score;
        ++(opening ? r.openings : r.laters);
    }
    const double n = double(std::max<std::size_t>(1, rolled.size()));
    r.mean /= n;
    r.exact /= n;
    r.opening /= double(std::max<std::size_t>(1, r.openings));
    r.later /= double(std::max<std::size_t>(1, r.laters));
    return r;
}

// --oracle-reward in the dialogue stage: the labeler's own score of each reply, read at the turn
// it answers (the prompt, looked up in `context_of`), times `coef`: the reward model's ceiling.
// A row holds prompt, reply and <|end|>, the reply's stop token already replaced by <|end|>, so
// the row cannot tell whether the reply ended; it is scored as ended and the rollouts subtract
// coef * labeler::ended_weight from a reply that did not (ppo_config::missing_eot_penalty), which
// makes the reward coef times the labeler's score with its real end flag.
inline reward_fn oracle_dialogue_reward(double coef,
                                        const std::map<std::vector<int>, conversation>& context_of,
                                        const tokenizer& tok) {
    return [coef, &context_of, &tok](const int* tokens, int B, int Tn, const int* ends,
                                     const int* starts) {
        const dialogue_labeler lab;
        std::vector<float> out(static_cast<std::size_t>(B), 0.0f);
        for (int b = 0; b < B; ++b) {
            const int* row = tokens + std::size_t(b) * std::size_t(Tn);
            GPTX_CHECK(0 < starts[b] && starts[b] <= ends[b] && ends[b] < Tn,
                       "dialogue oracle reward: row ", b, " has its reply at ", starts[b], "..",
                       ends[b], " in ", Tn, " tokens");
            const auto it = context_of.find(std::vector<int>(row, row + starts[b]));
            GPTX_CHECK(it != context_of.end(), "dialogue oracle reward: row ", b,
                       "'s prompt is not a PPO prompt");
            out[std::size_t(b)] =
                float(coef * lab.score(it->second,
                                       tok.decode(std::vector<int>(row + starts[b], row + ends[b])),
                                       true));
        }
        return out;
    };
}

// The chat model's PPO reward: the labeler with --oracle-reward, else the ensemble when there is
// one, else the RM as it pools; with the missing end-of-text penalty it needs (the oracle's).
struct dialogue_reward {
    reward_fn fn;
    double missing_eot_penalty = 0;
};
template <shape S>
dialogue_reward dialogue_reward_of(const dialogue_sizes& z,
                                   const std::map<std::vector<int>, conversation>& context_of,
                                   const tokenizer& tok, reward_ensemble<S>& rms) {
    if (z.oracle_reward > 0)
        return {oracle_dialogue_reward(z.oracle_reward, context_of, tok),
                z.oracle_reward * labeler::ended_weight};
    return {reward_of(rms), 0.0}; // an ensemble of one reads its member's score exactly
}

// One JSON line per judged conversation (dialogue_judgements.jsonl): the kind and text of the
// last user turn, each model's last reply with its score and exactness, how many of the earlier
// turns each got exact (each wrote its own history), and the outcome for b, as judge_last_turns
// counts it. For reading why the chat model wins or loses, conversation by conversation.
inline std::string judgements_jsonl(const rolled_out& a, const rolled_out& b) {
    GPTX_CHECK(a.convs.size() == a.scores.size() && b.convs.size() == a.scores.size(),
               "dialogue judgements: ", a.convs.size(), " and ", b.convs.size(),
               " conversations for ", a.scores.size(), " judged");
    std::string out;
    for (std::size_t i = 0; i < a.scores.size(); ++i) {
        const auto& ca = a.convs[i];
        const auto& cb = b.convs[i];
        const std::size_t last = a.scores[i].size() - 1;
        auto earlier = [last](const std::vector<bool>& e) {
            return std::count(e.begin(), e.begin() + std::ptrdiff_t(last), true);
        };
        win_rate w;
        w.add(b.scores[i].back(), a.scores[i].back());
        out += nlohmann::json{{"conversation", i},
                              {"kind", turn_kinds[turn_kind(ca[ca.size() - 2].content)]},
                              {"user", ca[ca.size() - 2].content},
                              {"sft", ca.back().content},
                              {"chat", cb.back().content},
                              {"sft_score", a.scores[i].back()},
                              {"chat_score", b.scores[i].back()},
                              {"sft_exact", bool(a.exact[i].back())},
                              {"chat_exact", bool(b.exact[i].back())},
                              {"earlier_turns", last},
                              {"sft_earlier_exact", earlier(a.exact[i])},
                              {"chat_earlier_exact", earlier(b.exact[i])},
                              {"outcome", w.wins   ? "win"
                                          : w.ties ? "tie"
                                                   : "loss"}}
                   .dump();
        out += '\n';
    }
    return out;
}

// The user messages of a conversation.
inline std::size_t user_turns(const conversation& c) {
    return std::size_t(std::count_if(
        c.begin(), c.end(), [](const chat_message& m) { return m.role == chat_role::user; }));
}

// Whether every user turn of c, with c's own replies as the history, is answered in full
// context: no turn's prompt drops an earlier exchange.
inline bool every_turn_fits(const conversation& c, const tokenizer& tok, const chat_format& fmt,
                            int T, int max_new) {
    return reply_prompts(c, tok, fmt, T, max_new).size() == user_turns(c);
}

// The judgement of two models' roll-outs of the same conversations: the labeler's score of each
// conversation's last reply decides (each model wrote its own history), b against a; the means
// per turn are reported beside it.
inline void judge_last_turns(const rolled_out& a, const rolled_out& b, dialogue_stage_result& r) {
    GPTX_CHECK(a.scores.size() == b.scores.size(), "dialogue judgement: ", a.scores.size(),
               " against ", b.scores.size(), " conversations");
    double sa = 0, sb = 0;
    std::size_t n = 0;
    for (std::size_t i = 0; i < a.scores.size(); ++i) {
        GPTX_CHECK(!a.scores[i].empty() && a.scores[i].size() == b.scores[i].size(),
                   "dialogue judgement: conversation ", i, " has ", a.scores[i].size(), " and ",
                   b.scores[i].size(), " turns");
        GPTX_CHECK(a.convs.size() == a.scores.size() && a.convs[i].size() == 2 * a.scores[i].size(),
                   "dialogue judgement: conversation ", i, " has ", a.scores[i].size(),
                   " scores but not as many exchanges");
        for (std::size_t j = 0; j < a.scores[i].size(); ++j) {
            sa += a.scores[i][j];
            sb += b.scores[i][j];
        }
        r.turns += a.scores[i].size();
        r.win.add(b.scores[i].back(), a.scores[i].back());
        r.sft_last += a.scores[i].back();
        r.rlhf_last += b.scores[i].back();
        r.sft_exact_last += a.exact[i].back() ? 1 : 0;
        r.rlhf_exact_last += b.exact[i].back() ? 1 : 0;
        auto& k = r.kinds[turn_kind(a.convs[i][a.convs[i].size() - 2].content)];
        ++k.n;
        k.sft_exact += a.exact[i].back() ? 1 : 0;
        k.chat_exact += b.exact[i].back() ? 1 : 0;
        ++n;
    }
    const double nn = double(std::max<std::size_t>(1, n)),
                 turns = double(std::max<std::size_t>(1, r.turns));
    r.sft_last /= nn;
    r.rlhf_last /= nn;
    r.sft_exact_last /= nn;
    r.rlhf_exact_last /= nn;
    r.sft_mean = sa / turns;
    r.rlhf_mean = sb / turns;
}

// Best of n of `model`'s temperature-1 replies to the last turn of each conversation of `a` (its
// history as `a` has it), by the RM and by the labeler, against `a`'s own last reply; n in ns.
template <class Model, class RM>
best_of_n_curve dialogue_best_of_n(const Model& model, RM& rm, const tokenizer& tok,
                                   const chat_format& fmt, const rolled_out& a,
                                   const std::vector<int>& ns, int max_new, std::uint64_t seed) {
    const int T = model.context(), N = *std::max_element(ns.begin(), ns.end());
    std::vector<conversation> contexts;
    std::vector<std::vector<int>> prompts;
    std::vector<double> base;
    for (std::size_t i = 0; i < a.convs.size(); ++i) {
        conversation ctx(a.convs[i].begin(), a.convs[i].end() - 1); // to the last user message
        prompts.push_back(
            fmt.format(tok, ctx,
                       {.max_tokens = T, .generation_prompt = true, .reserve = max_new + 1})
                .tokens);
        contexts.push_back(std::move(ctx));
        base.push_back(a.scores[i].back());
    }
    const dialogue_labeler lab;
    const std::size_t C = contexts.size();
    std::vector<std::vector<double>> gold(C);
    std::vector<std::vector<bool>> exact(C);
    std::vector<std::vector<int>> seqs; // [k * C + i]: the conversation with the reply, closed
    std::vector<int> starts;            // where each reply begins
    for (int k = 0; k < N; ++k) {
        const auto gen = sample_responses(model, prompts, max_new,
                                          {1.0f, 0, 1.0f, mix64(seed + std::uint64_t(k))}, fmt.end);
        for (std::size_t i = 0; i < C; ++i) {
            const auto [reply, ended] = reply_of(gen[i], tok);
            gold[i].push_back(lab.score(contexts[i], reply, ended));
            exact[i].push_back(ended && reply == dialogue_labeler::task_of(contexts[i]).answer);
            conversation conv = contexts[i];
            conv.push_back({chat_role::assistant, reply});
            chat_tokens t = fmt.format(tok, conv, {.max_tokens = T});
            seqs.push_back(std::move(t.tokens));
            starts.push_back(t.reply_start);
        }
    }
    const auto score = rm.score_sequences(seqs, fmt.end, 16, starts);
    std::vector<std::vector<float>> by(C);
    for (int k = 0; k < N; ++k)
        for (std::size_t i = 0; i < C; ++i)
            by[i].push_back(score[std::size_t(k) * C + i]);
    return best_of_n(gold, exact, by, base, ns);
}

} // namespace detail

template <shape S> dialogue_stage_result run_dialogue_stage(const dialogue_stage_inputs<S>& in) {
    using model_t = transformer<S>;
    using namespace detail;
    const dialogue_sizes& z = in.sizes;
    const fs::path& dir = in.dir;
    dialogue_stage_result res;

    // ---- chat tokens: the reserved end-of-text becomes <|endoftext|>, then the four roles ------
    tokenizer tok = *in.tok;
    GPTX_CHECK(tok.add_special_token("<|endoftext|>") == in.end_of_text,
               "dialogue stage: the end-of-text id is not the one past the tokenizer");
    const chat_format fmt = chat_format::register_tokens(tok);
    auto sft = std::make_unique<model_t>(
        grow_vocab(*in.sft, tok.vocab_size() - in.sft->vocab(), mix64(in.seed ^ 0xc4a7)));
    const int T = sft->context();
    const int base_vocab = in.tok->vocab_size();

    // ---- data: native dialogues, the demonstrations as dialogues, mixed ------------------------
    std::unordered_set<std::string> held_out; // the held-out conversations' openings
    auto fits = [&](const std::vector<conversation>& ds, int budget) {
        std::vector<conversation> out;
        for (const auto& c : ds)
            if (fmt.format(tok, c, {.max_tokens = 1 << 20}).tokens.size() <= std::size_t(budget))
                out.push_back(c);
        return out;
    };
    // One distribution for every set, as in the instruction stage (tasks.hpp says why): the
    // held-out sets (evaluation, the RM's held-out comparisons) are drawn first, distinct and
    // disjoint; the native training sets (demonstrations, RM and PPO conversations) are iid draws
    // whose openings are not held-out ones, and neither are the instructions of the converted
    // demonstrations and comparisons (the instruction stage's, drawn from the same instructions;
    // before this filter 39 of seed 1's 300 evaluation conversations opened with one of them).
    // Dialogues in the compact phrasing (the context is small). Demonstrations must fit the
    // context whole; the conversations a model answers turn by turn (RM, PPO, evaluation) must let
    // every turn be answered with its whole history and the room kept for the reply, so no turn
    // refers to a dropped one (with the reference replies as the history: a model that writes
    // longer replies can still push its first exchange out).
    auto make = [&](std::uint64_t salt, int n, int lo, int hi, int budget) {
        return fits(make_dialogues(mix64(in.seed ^ salt), n, lo, hi, held_out, true, draws::iid),
                    budget);
    };
    // Drawn four times over, the first n that fit are kept (fewer only if four times n do not
    // hold n; the stage prints the counts).
    auto make_answerable = [&](std::uint64_t salt, int n, int lo, int hi, draws how) {
        std::vector<conversation> out;
        for (auto& c : make_dialogues(mix64(in.seed ^ salt), 4 * n, lo, hi, held_out, true, how))
            if (int(out.size()) < n && every_turn_fits(c, tok, fmt, T, z.max_new))
                out.push_back(std::move(c));
        if (how == draws::distinct)
            for (const auto& c : out)
                held_out.insert(c[0].content);
        return out;
    };
    GPTX_CHECK(z.ppo_min_user_turns >= 1 && z.ppo_min_user_turns <= 3 && z.rm_min_user_turns >= 1 &&
                   z.rm_min_user_turns <= 3,
               "dialogue stage: the PPO and RM conversations have 1 to 3 user turns; asked for at "
               "least ",
               z.ppo_min_user_turns, " (PPO) and ", z.rm_min_user_turns, " (RM)");
    const auto eval_dialogues =
        make_answerable(0xe7a1, z.eval_conversations, 2, 3, draws::distinct);
    const auto rm_val_dialogues =
        make_answerable(0x7a41, z.rm_val_conversations, 1, 3, draws::distinct);
    const auto native = make(0xd1a1, z.native, 1, 3, T + 1);
    const auto rm_dialogues =
        make_answerable(0x7a31, z.rm_conversations, z.rm_min_user_turns, 3, draws::iid);
    const auto ppo_dialogues =
        make_answerable(0x9901, z.ppo_conversations, z.ppo_min_user_turns, 3, draws::iid);
    const auto demonstrations = read_sft_jsonl(dir / "sft.jsonl");
    const auto converted = dialogues_of(without_openings(demonstrations, held_out));
    write_dialogues_jsonl(dir / "dialogues_native.jsonl", native);
    write_dialogues_jsonl(dir / "dialogues_eval.jsonl", eval_dialogues);
    write_dialogues_jsonl(dir / "dialogue_sft.jsonl",
                          mix_dialogues(native, converted, z.native_fraction, in.seed + 21));
    const auto mixed =
        read_dialogues_jsonl(dir / "dialogue_sft.jsonl"); // the file is the interface
    std::printf("dialogue data: %zu native multi-turn dialogues + %zu converted demonstrations "
                "(%zu dropped: a held-out conversation opens with their instruction) -> "
                "%zu mixed (native fraction %.2f); %zu + %zu RM, %zu PPO and %zu held-out "
                "conversations\n",
                native.size(), converted.size(), demonstrations.size() - converted.size(),
                mixed.size(), z.native_fraction, rm_dialogues.size(), rm_val_dialogues.size(),
                ppo_dialogues.size(), eval_dialogues.size());

    // ---- dialogue SFT: the LM objective with the formatter's loss mask --------------------------
    {
        const auto formatted = format_dialogues(mixed, tok, fmt, T, "dialogue_sft.jsonl");
        std::vector<int> order(formatted.size());
        std::iota(order.begin(), order.end(), 0);
        sft_batches data(pack_dialogues(formatted, order, T, fmt.end), z.sft_batch, in.seed + 22);
        adamw<float> opt(sft->params(), {z.sft_lr, 0.9f, 0.95f, 1e-8f, 0.0f});
        sft_config sc{.epochs = z.sft_epochs, .lr = z.sft_lr, .min_lr = z.sft_lr / 10};
        sft_hooks<model_t> hooks;
        hooks.run.log_every = std::max(1, data.steps_per_epoch());
        hooks.run.metrics = dir / "dialogue_sft_metrics.jsonl";
        hooks.run.checkpoint_name = (dir / "dialogue_sft.gptx").string();
        run_sft(*sft, opt, data, sc, hooks);
        save_checkpoint<S>(dir / "dialogue_sft.gptx", *sft, nullptr, tok, {});
    }

    // ---- comparisons as ChatGPT's, and the reward model ----------------------------------------
    {
        const auto native =
            make_dialogue_comparisons(*sft, tok, fmt, rm_dialogues, z.rm_k, z.max_new, in.seed + 23,
                                      z.rm_hot, z.rm_hot_temperature);
        std::vector<dialogue_comparison> converted;
        if (z.rm_native_fraction < 1 && fs::exists(dir / "comparisons.jsonl"))
            for (const auto& c :
                 without_openings(read_comparisons(dir / "comparisons.jsonl"), held_out))
                converted.push_back(dialogue_comparison_of(c));
        const auto mixed =
            converted.empty()
                ? native
                : mix_dialogue_comparisons(native, converted, z.rm_native_fraction, in.seed + 31);
        std::printf(
            "dialogue comparisons: %zu native + %zu converted from comparisons.jsonl -> %zu "
            "for the RM (native fraction %.2f)\n",
            native.size(), converted.size(), mixed.size(),
            converted.empty() ? 1.0 : z.rm_native_fraction);
        write_dialogue_comparisons(dir / "dialogue_comparisons.jsonl", mixed);
    }
    write_dialogue_comparisons(dir / "dialogue_comparisons_val.jsonl",
                               make_dialogue_comparisons(*sft, tok, fmt, rm_val_dialogues, z.rm_k,
                                                         z.max_new, in.seed + 24, z.rm_hot,
                                                         z.rm_hot_temperature));
    const auto rm_train = tokenize_dialogue_comparisons(
        read_dialogue_comparisons(dir / "dialogue_comparisons.jsonl"), tok, fmt, T);
    const auto rm_val = tokenize_dialogue_comparisons(
        read_dialogue_comparisons(dir / "dialogue_comparisons_val.jsonl"), tok, fmt, T);
    GPTX_CHECK(!rm_train.groups.empty() && !rm_val.groups.empty(),
               "dialogue stage: the SFT samples gave no comparisons (every reply tied)");
    std::vector<std::vector<int>> demos; // the RM's bias keeps these at mean 0
    std::vector<int> demo_starts;
    for (const auto& c : native) {
        chat_tokens t = fmt.format(tok, c, {.max_tokens = T});
        demos.push_back(std::move(t.tokens));
        demo_starts.push_back(t.reply_start);
    }
    GPTX_CHECK(z.rm_ensemble >= 1, "dialogue stage: an RM ensemble needs at least 1 member, got ",
               z.rm_ensemble);
    GPTX_CHECK(z.rm_ensemble == 1 || z.rlhf_rounds == 1,
               "dialogue stage: iterated RLHF retrains one RM; it does not take an ensemble of ",
               z.rm_ensemble);
    // Member 0 is the RM of the diagnosis lines and the critic's start; the others differ only
    // in seed (head, batch order).
    reward_ensemble<S> rms(z.rm_ensemble_penalty);
    for (int k = 0; k < z.rm_ensemble; ++k) {
        reward_model<S>& m = rms.add(sft->config(), z.rm_pooling);
        const std::uint64_t salt = std::uint64_t(k) * 1000;
        run_options ro;
        ro.metrics = k == 0 ? dir / "dialogue_rm_metrics.jsonl"
                            : dir / ("dialogue_rm" + std::to_string(k) + "_metrics.jsonl");
        ro.checkpoint_name = "(none)";
        const double acc =
            train_rm_member(m, *sft, rm_train, rm_val, fmt.end,
                            {.epochs = z.rm_epochs,
                             .batch = z.rm_batch,
                             .lr = z.rm_lr,
                             .evals = 2,
                             .logs = 4,
                             .seed = in.seed + 26 + salt},
                            in.seed + 25 + salt, ro, demos, demo_starts, z.rm_ensemble > 1);
        res.rm_member_accuracy.push_back(acc);
        std::printf("dialogue RM%s: %zu train / %zu held-out pairs, held-out accuracy %.3f\n",
                    z.rm_ensemble > 1 ? (" member " + std::to_string(k)).c_str() : "",
                    rm_train.pairs(), rm_val.pairs(), acc);
    }
    reward_model<S>& rm = rms.member(0);
    res.rm_accuracy = res.rm_member_accuracy[0];
    res.rm_pairs = rm_val.pairs();
    res.rm_comparisons = rm_train.groups.size();

    // ---- PPO-ptx on conversation prefixes ending at the assistant marker ---------------------
    // The histories are the SFT model's own replies, as the RM's comparisons and the evaluation
    // have them (a chat's history is what the model wrote, not the reference).
    std::vector<std::vector<int>> prompts;
    std::map<std::vector<int>, conversation> context_of; // for the labeler's view of rollouts
    for (const auto& c :
         roll_out(*sft, tok, fmt, ppo_dialogues, z.max_new, 1.0f, in.seed + 29).convs) {
        std::vector<conversation> prefixes;
        auto ps = reply_prompts(c, tok, fmt, T, z.max_new, &prefixes, z.ppo_min_user_turns);
        for (std::size_t k = 0; k < ps.size(); ++k) {
            context_of.emplace(ps[k], std::move(prefixes[k]));
            prompts.push_back(std::move(ps[k]));
        }
    }
    GPTX_CHECK(!prompts.empty(), "dialogue PPO: no prompt has ", z.ppo_min_user_turns,
               " user turns and fits the context");
    std::printf("dialogue PPO: %zu prompts, the user turns with at least %d user message%s of "
                "%zu conversations\n",
                prompts.size(), z.ppo_min_user_turns, z.ppo_min_user_turns > 1 ? "s" : "",
                ppo_dialogues.size());
    auto policy = std::make_unique<model_t>(sft->config());
    copy_params(*policy, *sft);
    {
        const int rounds = std::max(1, z.rlhf_rounds);
        GPTX_CHECK(rounds <= z.ppo_iters, "dialogue stage: ", rounds, " RLHF rounds exceed ",
                   z.ppo_iters, " PPO iterations (every round needs an iteration)");
        // The critic: trunk and head from the RM (InstructGPT), kept from round to round.
        model_t value(sft->config());
        copy_params(value, rm.trunk());
        linear_head<float> value_head(S.width, 1);
        copy_params(value_head, rm.head());
        tokenized_comparisons seen; // every comparison the RM has trained on (rounds > 1)
        if (rounds > 1)
            seen = rm_train;
        const dialogue_reward rf = dialogue_reward_of(z, context_of, tok, rms);
        std::ofstream metrics(dir / "dialogue_ppo_metrics.jsonl");
        int done = 0;
        for (int round = 1; round <= rounds; ++round) {
            const int iters = z.ppo_iters * round / rounds - z.ppo_iters * (round - 1) / rounds;
            if (round > 1) {
                // The chat model's own replies, ranked by the labeler: the next
                // round_conversations RM conversations, and the held-out ones.
                const std::uint64_t salt = std::uint64_t(round) * 1000;
                const std::size_t have = rm_dialogues.size(),
                                  n = std::min(have, std::size_t(z.round_conversations));
                std::vector<conversation> ds;
                for (std::size_t i = 0; i < n; ++i)
                    ds.push_back(rm_dialogues[(std::size_t(round - 2) * n + i) % have]);
                const auto fresh = tokenize_dialogue_comparisons(
                    make_dialogue_comparisons(*policy, tok, fmt, ds, z.rm_k, z.max_new,
                                              in.seed + salt, z.rm_hot, z.rm_hot_temperature),
                    tok, fmt, T);
                const auto val = tokenize_dialogue_comparisons(
                    make_dialogue_comparisons(*policy, tok, fmt, rm_val_dialogues, z.rm_k,
                                              z.max_new, in.seed + salt + 1, z.rm_hot,
                                              z.rm_hot_temperature),
                    tok, fmt, T);
                GPTX_CHECK(!fresh.groups.empty() && !val.groups.empty(), "dialogue round ", round,
                           ": the chat model's replies gave no comparisons (every reply tied)");
                // Temperature-1 alternatives only: the RM before and after, on the same pairs.
                const auto probe = tokenize_dialogue_comparisons(
                    make_dialogue_comparisons(*policy, tok, fmt, rm_val_dialogues, z.rm_k,
                                              z.max_new, in.seed + salt + 3),
                    tok, fmt, T);
                auto rm_on_probe = [&]() -> std::optional<double> {
                    if (probe.groups.empty())
                        return std::nullopt;
                    reward_objective obj(rm);
                    return evaluate_rewards(rm.trunk(), obj, probe, z.rm_batch, fmt.end).accuracy;
                };
                dialogue_stage_result::round_result rr;
                rr.t1_before = rm_on_probe();
                run_options ro;
                ro.progress_label = "dialogue rm round";
                ro.checkpoint_name = "(none)";
                const reward_eval e =
                    continue_reward_model(rm, seen, fresh, val, demos, demo_starts, fmt.end,
                                          {.epochs = 1,
                                           .batch = z.rm_batch,
                                           .lr = z.rm_lr,
                                           .evals = 1,
                                           .logs = 2,
                                           .seed = in.seed + salt + 2},
                                          ro);
                rr.t1_after = rm_on_probe();
                rr.added = fresh.groups.size();
                rr.total = seen.groups.size();
                rr.held_out = e.accuracy;
                res.rounds.push_back(rr);
                progress::clear_line();
                std::printf("dialogue round %d: RM retrained on %zu new comparisons of the chat "
                            "model's replies (%zu in all); held-out accuracy %.3f on its "
                            "replies (hot ones included)\n",
                            round, rr.added, rr.total, e.accuracy);
            }
            ppo_config pc;
            pc.end_of_text = fmt.end;
            pc.rollouts = z.rollouts;
            pc.max_new_tokens = z.max_new;
            pc.minibatch = z.ppo_minibatch;
            pc.epochs = z.ppo_epochs;
            // A reply that opens another turn's marker is cut there, not ended (as the labeler
            // and the comparisons see it); the RM reads it closed by <|end|>, as it was ranked.
            pc.stop_tokens = {fmt.system, fmt.user, fmt.assistant, in.end_of_text};
            pc.lr = z.ppo_lr;
            pc.value_lr = z.value_lr;
            pc.value_warmup = std::max(0, z.value_warmup - done); // later rounds keep the critic
            pc.lr_warmup = z.ppo_lr_warmup; // each round's policy optimizer starts afresh
            pc.kl_coef = z.kl_coef;
            pc.missing_eot_penalty = rf.missing_eot_penalty;
            pc.ptx_coef = z.ptx_coef;
            pc.ptx_batch = 4;
            pc.ptx_context = T;
            pc.seed = in.seed + 27 + std::uint64_t(round - 1) * 977;
            ppo_trainer<model_t> ppo(*policy, *sft, value, value_head, rf.fn, prompts, pc, *in.ptx);
            res.ppo.epochs = ppo.config().epochs;
            res.ppo.minibatch = ppo.config().minibatch;
            res.ppo.rollouts = ppo.config().rollouts;
            res.ppo.lr = ppo.config().lr;
            res.ppo.lr_warmup = ppo.config().lr_warmup;
            res.ppo.ptx_coef = ppo.config().ptx_coef;
            res.ppo.rms = z.oracle_reward > 0 ? 0 : rms.size();
            res.ppo.prompts = prompts.size();
            res.ppo.min_user_turns = z.ppo_min_user_turns;
            for (int it = 0; it < iters; ++it) {
                const ppo_metrics m = ppo.iteration();
                const rollout_labels gold = label_rollouts(ppo.rollouts(), context_of, tok);
                auto or_null = [](std::size_t n, double v) {
                    return n ? nlohmann::json(v) : nlohmann::json();
                };
                const std::int64_t iteration = done + m.iteration;
                metrics << nlohmann::json{{"iteration", iteration},
                                          {"round", round},
                                          {"score", m.score},
                                          {"labeler", gold.mean},
                                          {"exact", gold.exact},
                                          {"labeler_opening", or_null(gold.openings, gold.opening)},
                                          {"labeler_later", or_null(gold.laters, gold.later)},
                                          {"kl", m.kl},
                                          {"kl_seq", m.kl_seq},
                                          {"entropy", m.entropy},
                                          {"ptx_loss", m.ptx_loss},
                                          {"response_length", m.response_length},
                                          {"ended", m.ended},
                                          {"stopped", m.stopped},
                                          {"updates", m.updates},
                                          {"skipped", m.skipped},
                                          {"ms", m.ms}}
                               .dump()
                        << "\n";
                if (iteration % std::max(1, z.ppo_iters / 10) == 0 || iteration == 1)
                    std::printf("dialogue %s %lld/%d | score %.3f | labeler %.3f | kl %.4f "
                                "| entropy %.3f | ptx %.3f | len %.1f | cut at a marker %.3f | "
                                "%.0f ms\n",
                                res.ppo.name(), static_cast<long long>(iteration), z.ppo_iters,
                                m.score, gold.mean, m.kl, m.entropy, m.ptx_loss, m.response_length,
                                m.stopped, m.ms);
                std::fflush(stdout);
                res.ppo_stopped = m.stopped;
                res.ppo.iterations = int(iteration);
            }
            done += iters;
            copy_params(value_head, ppo.value_head());
        }
    }
    save_checkpoint<S>(dir / "chat.gptx", *policy, nullptr, tok, {});

    // ---- evaluation: multi-turn held-out conversations, each model answering every turn --------
    const auto a =
        roll_out(*sft, tok, fmt, eval_dialogues, z.max_new, z.eval_temperature, in.seed + 28);
    const auto b =
        roll_out(*policy, tok, fmt, eval_dialogues, z.max_new, z.eval_temperature, in.seed + 28);
    judge_last_turns(a, b, res);
    res.conversations = eval_dialogues.size();
    gptx::detail::write_whole_file(dir / "dialogue_judgements.jsonl", judgements_jsonl(a, b));
    // Diagnosis: the headroom sampling leaves (SFT greedy), and how well the RM ranks each
    // model's own temperature-1 samples to the held-out conversations.
    {
        const auto t0 = std::chrono::steady_clock::now();
        const std::size_t nd =
            std::min(eval_dialogues.size(), std::size_t(std::max(1, z.diagnosis_conversations)));
        res.diagnosis_conversations = nd;
        const std::vector<conversation> diag(eval_dialogues.begin(), eval_dialogues.begin() + nd);
        const auto g = roll_out(*sft, tok, fmt, diag, z.max_new, 0.0f, in.seed + 28);
        for (const auto& e : g.exact)
            res.sft_exact_last_greedy += e.back() ? 1 : 0;
        res.sft_exact_last_greedy /= double(std::max<std::size_t>(1, g.exact.size()));
        // SFT's temperature-1 roll-out serves the comparisons at any, the first and the last reply.
        const auto sft_rolled = roll_out(*sft, tok, fmt, diag, z.max_new, 1.0f, in.seed + 30);
        auto rm_on = [&](const model_t& m, const rolled_out& ro,
                         ranked_reply which = ranked_reply::any) -> std::optional<double> {
            const auto cmp = tokenize_dialogue_comparisons(
                make_dialogue_comparisons(m, tok, fmt, ro, z.rm_k, z.max_new, in.seed + 30, 0, 1.0f,
                                          which),
                tok, fmt, T);
            if (cmp.groups.empty())
                return std::nullopt;
            reward_objective obj(rm);
            return evaluate_rewards(rm.trunk(), obj, cmp, z.rm_batch, fmt.end).accuracy;
        };
        res.rm_on_sft = rm_on(*sft, sft_rolled);
        res.rm_on_chat =
            rm_on(*policy, roll_out(*policy, tok, fmt, diag, z.max_new, 1.0f, in.seed + 30));
        // By turn: the opening reply, and the last (the judged one; the held-out conversations
        // have two or three user turns).
        res.rm_on_sft_first = rm_on(*sft, sft_rolled, ranked_reply::first);
        res.rm_on_sft_last = rm_on(*sft, sft_rolled, ranked_reply::last);
        // Ranked as PPO was rewarded (an ensemble of one is its member), against SFT's
        // evaluated replies to those conversations.
        res.bon = dialogue_best_of_n(*sft, rms, tok, fmt, a.first(nd), {1, 2, 4, 8, 16}, z.max_new,
                                     in.seed + 32);
        res.diagnosis_seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    {
        std::ofstream s(dir / "chat_samples.txt");
        for (std::size_t i = 0; i < std::min<std::size_t>(20, eval_dialogues.size()); ++i) {
            for (const auto& m : b.convs[i])
                s << (m.role == chat_role::user ? "user: " : "chat: ") << m.content << "\n";
            s << "\n";
        }
    }
    (void)base_vocab;
    return res;
}

// The table row: the labeler's win rate of the chat model (dialogue PPO-ptx, or PPO with
// --dialogue-ptx-coef 0) over dialogue SFT.
inline void print_dialogue_row(const dialogue_stage_result& d) {
    const auto r = d.win.rate();
    // A row of the pipeline's method table: the win rate and labeler mean columns.
    std::printf("| dialogue: chat model (%s) over dialogue SFT on the last turn of %zu "
                "held-out multi-turn conversations (dialogue RM accuracy %.1f%%) | %.1f%% [%.1f, "
                "%.1f] (%zu/%zu/%zu) | %.3f last turn, %.3f per turn (dialogue SFT %.3f, %.3f) | "
                "%.1f%% last turn (dialogue SFT %.1f%%) | | | | | |\n",
                d.ppo.name(), d.conversations, 100 * d.rm_accuracy, 100 * r.p, 100 * r.low,
                100 * r.high, d.win.wins, d.win.ties, d.win.losses, d.rlhf_last, d.rlhf_mean,
                d.sft_last, d.sft_mean, 100 * d.rlhf_exact_last, 100 * d.sft_exact_last);
}

// The dialogue stage's diagnosis lines (printed after the table).
inline void print_dialogue_diagnosis(const dialogue_stage_result& d) {
    auto pct = [](const std::optional<double>& v) {
        if (!v)
            return std::string("n/a (all tied)");
        char b[16];
        std::snprintf(b, sizeof b, "%.1f%%", 100 * *v);
        return std::string(b);
    };
    std::printf("dialogue diagnosis: last turn exact, dialogue SFT %.1f%%, chat %.1f%% "
                "(temperature 1); on the first %zu held-out conversations: dialogue SFT greedy "
                "%.1f%%, dialogue RM pairwise accuracy on temperature-1 samples of SFT %s, of the "
                "chat model %s; of SFT at the opening reply %s, at the last (judged) reply %s; "
                "and the best of n below (measured in %.1f s)\n",
                100 * d.sft_exact_last, 100 * d.rlhf_exact_last, d.diagnosis_conversations,
                100 * d.sft_exact_last_greedy, pct(d.rm_on_sft).c_str(), pct(d.rm_on_chat).c_str(),
                pct(d.rm_on_sft_first).c_str(), pct(d.rm_on_sft_last).c_str(), d.diagnosis_seconds);
    for (std::size_t k = 0; k < d.rounds.size(); ++k)
        std::printf("dialogue round %zu: RM accuracy on temperature-1 alternatives to the chat "
                    "model's replies %s before, %s after retraining on %zu comparisons of its "
                    "replies\n",
                    k + 2, pct(d.rounds[k].t1_before).c_str(), pct(d.rounds[k].t1_after).c_str(),
                    d.rounds[k].added);
    std::printf("dialogue diagnosis: best of n SFT replies to the last turn over SFT's one: %s\n",
                describe(d.bon).c_str());
    for (std::size_t k = 0; k < d.kinds.size(); ++k)
        if (d.kinds[k].n)
            std::printf("  last turn '%s': %zu conversations, exact SFT %.1f%%, chat %.1f%%\n",
                        turn_kinds[k], d.kinds[k].n,
                        100.0 * double(d.kinds[k].sft_exact) / double(d.kinds[k].n),
                        100.0 * double(d.kinds[k].chat_exact) / double(d.kinds[k].n));
}

} // namespace gptx::instructgpt
