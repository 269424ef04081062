// gptx/train/rollouts.hpp: sampling responses from a policy with the KV cache and scoring them:
// the policy's and the reference's log-probabilities at every action, entropy, the exact KL, and
// the reward model's score. PPO and GRPO/RLOO both start each iteration here.
// Tested by tests/train/test_ppo.cpp and tests/train/test_grpo.cpp.
// Legend: N sequences, M sequences per scoring batch, P prompt length, T time.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/progress.hpp"
#include "../core/rng.hpp"
#include "../data/batcher.hpp"
#include "../data/lm_batch.hpp"
#include "../generate/sampler.hpp"
#include "../nn/kv_cache.hpp"
#include "ppo.hpp"

namespace gptx {

// The frozen reward model seen through one call: scores of B sequences, tokens (B, T) row-major,
// row b's response begun at position starts[b] (after its prompt) and closed by its end-of-text
// token at end_positions[b] (the rest of the row after it is padding).
using reward_fn = std::function<std::vector<float>(const int* tokens, int B, int T,
                                                   const int* end_positions, const int* starts)>;

// Prompts a policy can answer: 1 .. context - 2 tokens, leaving room for a response and the
// end-of-text.
inline void check_rollout_prompts(const std::vector<std::vector<int>>& prompts, int context,
                                  std::string_view who) {
    GPTX_CHECK(!prompts.empty(), who, ": no prompts");
    for (std::size_t i = 0; i < prompts.size(); ++i)
        GPTX_CHECK(!prompts[i].empty() && int(prompts[i].size()) + 2 <= context, who, ": prompt ",
                   i, " has ", prompts[i].size(), " tokens; the context of ", context,
                   " needs prompts of 1..", context - 2,
                   " tokens (room for a response and end-of-text)");
}

// Under data parallel every rank after 0 samples from a stream of its own, derived from rank 0's,
// so one seed fixes the whole job.
inline void split_stream_for_rank(rng& r, int rank, std::uint64_t salt = 0x5bd1e995ull) {
    if (rank > 0)
        r = rng(mix64(r.state()[0] ^ (salt * std::uint64_t(rank))));
}

// PPO-ptx's pre-training batches (InstructGPT's gamma term), for PPO and GRPO alike: next() is
// null when the coefficient is 0.
class ptx_source {
  public:
    ptx_source() = default;
    // The pre-training sequences' length: --ptx-context, or the policy's context when it is 0.
    static int context_for(int context, int policy_context) {
        return context > 0 ? context : policy_context;
    }
    ptx_source(double coef, std::vector<int> tokens, int batch, int context, int policy_context,
               std::uint64_t seed, std::string_view who) {
        if (coef == 0.0)
            return;
        GPTX_CHECK(!tokens.empty(), who, ": a ptx coefficient needs pre-training tokens");
        const int pT = context_for(context, policy_context);
        GPTX_CHECK(pT <= policy_context, who, ": ptx context ", pT, " exceeds the policy's ",
                   policy_context);
        b_.emplace(std::move(tokens), batch, pT, rng(mix64(seed ^ 0x9e7)));
        x_.resize(std::size_t(batch) * pT);
        y_.resize(x_.size());
    }
    const lm_batch* next() {
        if (!b_)
            return nullptr;
        b_->next(x_.data(), y_.data());
        batch_ = {x_.data(), y_.data(), nullptr, int(x_.size()) / b_->context(), b_->context()};
        return &batch_;
    }
    rng::state_type state() const { return b_ ? b_->rng_state() : rng::state_type{}; }
    void set_state(const rng::state_type& s) {
        if (b_)
            b_->set_rng_state(s);
    }
    void split_for_rank(int rank) {
        if (!b_ || rank == 0)
            return;
        rng r;
        r.set_state(b_->rng_state());
        split_stream_for_rank(r, rank, 0x27d4eb2full);
        b_->set_rng_state(r.state());
    }

  private:
    std::optional<batcher> b_;
    std::vector<int> x_, y_;
    lm_batch batch_;
};

struct rollout_config {
    int end_of_text = -1;           // ends responses; the reward model reads there
    int max_new_tokens = 32;        // response cap (also bounded by the context)
    float temperature = 1.0f;       // sampling temperature (1: on-policy)
    double missing_eot_penalty = 0; // subtracted from the score of a response the cap cut
    int score_batch = 16;           // sequences per scoring forward
    // Tokens that cut a response short, as the length cap does (it did not end): a chat policy
    // that opens another turn's marker inside its reply. The stop token is the response's last
    // action, so its probability is what the update lowers; the reward model reads the reply
    // closed by end-of-text in the stop token's place, as comparisons present a cut reply.
    std::vector<int> stop_tokens{};
};

// The rollouts of one iteration. The models and the reward function must outlive it.
template <class Policy> class rollout_buffer {
  public:
    using T = typename Policy::value_type;

    // One rollout: the tokens of prompt + response + end-of-text and where its actions are.
    struct sequence {
        std::vector<int> tokens; // prompt, response, end-of-text (always appended, for the RM)
        int prompt = 0;          // prompt length P
        int actions = 0;         // response tokens, plus the end-of-text when it was sampled
        bool ended = false;      // the policy sampled end-of-text
        bool stopped = false;    // the response's last token is a stop token
        std::size_t offset = 0;  // of its actions in the flat per-action arrays
    };

    rollout_buffer(Policy& policy, Policy& reference, reward_fn reward, rollout_config cfg)
        : policy_(policy), ref_(reference), reward_(std::move(reward)), cfg_(cfg), cache_(policy) {
        GPTX_CHECK(cfg_.score_batch > 0, "rollouts: the scoring batch must be positive");
    }

    // One response per prompt from the policy (each group of prompts of one length draws with the
    // seed r.next_u64(), in order of length), then scores: per action the policy's and the
    // reference's log-probabilities, entropy and exact KL, extra(x, M, Tm, rows, offset) for
    // anything else read from the same (M, Tm) batch (PPO's values, in action order from
    // `offset`), and per sequence the reward function's score less the missing end-of-text
    // penalty.
    template <class Extra>
    void collect(const std::vector<std::vector<int>>& prompts, rng& r, Extra&& extra) {
        const int N = int(prompts.size());
        seqs_.assign(N, {});
        // Sampling, then scoring: N sequences each.
        progress bar("rollouts", 2 * std::int64_t(N), {.unit = "seq"});
        for (auto& [P, idx] : group_by_length(prompts)) {
            std::vector<std::vector<int>> group;
            for (int i : idx)
                group.push_back(prompts[i]);
            auto gen = draw(group, P, r.next_u64());
            for (std::size_t k = 0; k < idx.size(); ++k) {
                sequence& s = seqs_[idx[k]];
                s.tokens = prompts[idx[k]];
                s.tokens.insert(s.tokens.end(), gen[k].tokens.begin(), gen[k].tokens.end());
                s.tokens.push_back(cfg_.end_of_text);
                s.prompt = P;
                s.ended = gen[k].ended;
                s.stopped = gen[k].stopped;
                s.actions = int(gen[k].tokens.size()) + (s.ended ? 1 : 0);
            }
            bar.advance(std::int64_t(idx.size()));
        }
        std::size_t total = 0;
        for (auto& s : seqs_) {
            s.offset = total;
            total += s.actions;
        }
        logp_.assign(total, 0);
        ref_logp_.assign(total, 0);
        ent_.assign(total, 0);
        klx_.assign(total, 0);
        scores_.assign(N, 0);

        // Score every sequence with the policy, the reference, `extra` and the RM,
        // minibatch by minibatch (the rows of a mask are in action order).
        std::vector<int> order(N);
        std::iota(order.begin(), order.end(), 0);
        for (int first = 0; first < N; first += cfg_.score_batch) {
            const int M = std::min(cfg_.score_batch, N - first);
            bar.advance(M);
            const int Tm = pack(order, first, M);
            detail::set_rows(rows_, mask_.data(), std::int64_t(M) * Tm);
            const std::size_t at = seqs_[first].offset;
            const int R = int(rows_.size());
            if (R > 0) {
                const T* h = policy_.forward(x_.data(), M, Tm);
                const T* hr = ref_.forward(x_.data(), M, Tm);
                policy_token_stats(logp_.data() + at, ent_.data() + at, ref_logp_.data() + at,
                                   klx_.data() + at, h, policy_.param(p_wte), hr, ref_.param(p_wte),
                                   rows_.data(), y_.data(), R, Policy::C, policy_.vocab(),
                                   scratch_);
                extra(x_.data(), M, Tm, rows_, at);
            }
            // The RM reads each sequence at its end-of-text: rows of length Tm + 1. A stopped
            // response is read closed in its stop token's place.
            const int W = Tm + 1;
            std::vector<int> toks(std::size_t(M) * W, cfg_.end_of_text), ends(M), starts(M);
            for (int k = 0; k < M; ++k) {
                const sequence& q = seqs_[first + k];
                const std::size_t kept = q.tokens.size() - (q.stopped ? 2 : 1);
                std::copy(q.tokens.begin(), q.tokens.begin() + std::ptrdiff_t(kept),
                          toks.begin() + std::size_t(k) * W);
                ends[k] = int(kept);
                starts[k] = q.prompt;
            }
            // The reward may run the reference's forward (with_reference_likelihood): nothing
            // reads the reference's activations after this call.
            const std::vector<float> sc = reward_(toks.data(), M, W, ends.data(), starts.data());
            GPTX_CHECK(int(sc.size()) == M, "rollouts: the reward function returned ", sc.size(),
                       " scores for ", M, " sequences");
            for (int k = 0; k < M; ++k) {
                GPTX_CHECK(std::isfinite(sc[k]),
                           "rollouts: the reward's score is not finite; stopped");
                scores_[first + k] =
                    double(sc[k]) - (seqs_[first + k].ended ? 0.0 : cfg_.missing_eot_penalty);
            }
        }
    }

    // Samples one response per prompt (temperature as configured), each stopping at end-of-text
    // (not returned), a stop token (returned as its last token) or the length cap; for
    // evaluation. Leaves the rollouts as they are.
    std::vector<std::vector<int>> sample(const std::vector<std::vector<int>>& prompts,
                                         std::uint64_t seed) {
        std::vector<std::vector<int>> out(prompts.size());
        for (auto& [P, idx] : group_by_length(prompts)) {
            std::vector<std::vector<int>> group;
            for (int i : idx)
                group.push_back(prompts[i]);
            auto gen = draw(group, P, seed + std::uint64_t(P));
            for (std::size_t k = 0; k < idx.size(); ++k)
                out[idx[k]] = std::move(gen[k].tokens);
        }
        return out;
    }

    // Inputs, targets and the action mask of sequences [first, first + M) of `order`, as (M, Tm).
    int pack(const std::vector<int>& order, std::size_t first, int M) {
        int Tm = 1;
        for (int k = 0; k < M; ++k)
            Tm = std::max(Tm, int(seqs_[order[first + k]].tokens.size()) - 1);
        const std::size_t n = std::size_t(M) * Tm;
        x_.assign(n, cfg_.end_of_text);
        y_.assign(n, cfg_.end_of_text);
        mask_.assign(n, 0);
        for (int k = 0; k < M; ++k) {
            const sequence& s = seqs_[order[first + k]];
            const int len = int(s.tokens.size()) - 1;
            for (int t = 0; t < len; ++t) {
                x_[std::size_t(k) * Tm + t] = s.tokens[t];
                y_[std::size_t(k) * Tm + t] = s.tokens[t + 1];
            }
            for (int j = 0; j < s.actions; ++j)
                mask_[std::size_t(k) * Tm + s.prompt - 1 + j] = 1;
        }
        return Tm;
    }

    // The packed batch of the last pack() (or scoring batch).
    const int* x() const { return x_.data(); }
    const int* y() const { return y_.data(); }
    const std::uint8_t* mask() const { return mask_.data(); }

    const std::vector<sequence>& sequences() const { return seqs_; }
    std::size_t actions() const { return logp_.size(); }
    // Per action, in sequence order (sequence i's from sequences()[i].offset).
    const std::vector<T>& logp() const { return logp_; }
    const std::vector<T>& ref_logp() const { return ref_logp_; }
    const std::vector<T>& entropy() const { return ent_; }
    const std::vector<T>& kl_exact() const { return klx_; }
    // Per sequence: the reward model's score less the missing end-of-text penalty.
    const std::vector<double>& scores() const { return scores_; }
    const rollout_config& config() const { return cfg_; }

  private:
    struct response {
        std::vector<int> tokens; // without the end-of-text; a stop token is the last
        bool ended = false;      // end-of-text was drawn
        bool stopped = false;    // a stop token was drawn
        bool done() const { return ended || stopped; }
    };
    // Batched sampling over the KV cache, as generate_batch does it (sequence b draws with seed
    // seed + b; finished sequences are fed end-of-text as filler), sized exactly to the prompt and
    // the response cap: generate_batch's cache chunk of context/2 can exceed a short cache.
    std::vector<response> draw(const std::vector<std::vector<int>>& prompts, int P,
                               std::uint64_t seed) {
        const int B = int(prompts.size()), V = policy_.vocab(), steps = max_new(P);
        std::vector<sampler> samplers;
        for (int b = 0; b < B; ++b)
            samplers.emplace_back(
                sampling_config{.temperature = cfg_.temperature, .seed = seed + std::uint64_t(b)});
        std::vector<response> out(B);
        cache_.reset(B, P + steps - 1);
        std::vector<int> fed(std::size_t(B) * P);
        for (int b = 0; b < B; ++b)
            std::copy(prompts[b].begin(), prompts[b].end(), fed.begin() + std::ptrdiff_t(b) * P);
        const T* logits = cache_.forward_logits(fed.data(), B, P);
        std::vector<int> next(B, cfg_.end_of_text);
        int active = B;
        for (int step = 0; step < steps && active > 0; ++step) {
            for (int b = 0; b < B; ++b) {
                if (out[b].done()) {
                    next[b] = cfg_.end_of_text;
                    continue;
                }
                const int id = samplers[b].sample(logits + std::size_t(b) * V, V);
                next[b] = id;
                if (id == cfg_.end_of_text) {
                    out[b].ended = true;
                    --active;
                } else {
                    out[b].tokens.push_back(id);
                    if (std::find(cfg_.stop_tokens.begin(), cfg_.stop_tokens.end(), id) !=
                        cfg_.stop_tokens.end()) {
                        out[b].stopped = true;
                        --active;
                    }
                }
            }
            if (active > 0 && step + 1 < steps)
                logits = cache_.forward_logits(next.data(), B, 1);
        }
        return out;
    }
    int max_new(int P) const { return std::min(cfg_.max_new_tokens, policy_.context() - P - 1); }

    static std::map<int, std::vector<int>>
    group_by_length(const std::vector<std::vector<int>>& prompts) {
        std::map<int, std::vector<int>> g;
        for (std::size_t i = 0; i < prompts.size(); ++i)
            g[int(prompts[i].size())].push_back(int(i));
        return g;
    }

    Policy& policy_;
    Policy& ref_;
    reward_fn reward_;
    rollout_config cfg_;
    kv_cache<Policy> cache_;
    std::vector<sequence> seqs_;
    std::vector<T> logp_, ref_logp_, ent_, klx_, scratch_;
    std::vector<double> scores_;
    std::vector<int> x_, y_, rows_;
    std::vector<std::uint8_t> mask_;
};

} // namespace gptx
