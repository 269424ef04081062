// gptx/train/finetune.hpp: GPT-1 supervised fine-tuning: the task tokens (start, delimiter,
// extract) registered at runtime, the input transformations, and the objective
// L = L_task + lambda * L_LM with a linear head at the extract token and classifier dropout.
// Tested by tests/train/test_finetune.cpp.
// Legend: M examples, N sequences, T time, C channels, K classes, V vocab.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "../nn/heads.hpp"
#include "../nn/lm_head.hpp"
#include "../nn/resize.hpp"
#include "../nn/transformer.hpp"
#include "../text/tokenizer.hpp"
#include "schedule.hpp"

namespace gptx {

// GPT-1's three task tokens. Their ids are parameters: with a tokenizer that registers special
// tokens they are its ids; otherwise task_tokens_after(vocab) appends them.
struct task_token_ids {
    int start = -1, delim = -1, extract = -1;
};
inline constexpr task_token_ids task_tokens_after(int base_vocab) {
    return {base_vocab, base_vocab + 1, base_vocab + 2};
}

// Registers GPT-1's task tokens with the tokenizer when its vocabulary is the model's (ids
// vocab, vocab + 1, vocab + 2, so decode shows them); otherwise (a model that reserves ids past
// its tokenizer) appends unregistered ids after the model's vocabulary. Either way the model must
// then grow by 3 rows: grow_vocab(model, 3, seed) (nn/resize.hpp) draws them from N(0, 0.02).
inline task_token_ids add_task_tokens(tokenizer& tok, int model_vocab) {
    if (tok.vocab_size() != model_vocab)
        return task_tokens_after(model_vocab);
    task_token_ids t;
    t.start = tok.add_special_token("<|start|>");
    t.delim = tok.add_special_token("<|delim|>");
    t.extract = tok.add_special_token("<|extract|>");
    GPTX_CHECK(t.start == model_vocab && t.delim == model_vocab + 1 && t.extract == model_vocab + 2,
               "fine-tuning: the tokenizer already has task tokens (ids ", t.start, ", ", t.delim,
               ", ", t.extract, "); this model's vocabulary ends at ", model_vocab);
    return t;
}

// ---- Input transformations (GPT-1, figure 1) ----

// `start text extract`. A text too long for max_len keeps its last tokens.
inline std::vector<int> classification_input(const task_token_ids& t, std::span<const int> text,
                                             int max_len) {
    GPTX_CHECK(max_len >= 3, "fine-tuning: a context of ", max_len, " cannot hold the task tokens");
    const std::size_t keep = std::min<std::size_t>(text.size(), std::size_t(max_len) - 2);
    std::vector<int> out{t.start};
    out.insert(out.end(), text.end() - std::ptrdiff_t(keep), text.end());
    out.push_back(t.extract);
    return out;
}

// `start first delim second extract` (entailment: premise, hypothesis; multiple choice: context,
// answer). Too long for max_len: the first part loses its beginning, then the second its end.
inline std::vector<int> pair_input(const task_token_ids& t, std::span<const int> first,
                                   std::span<const int> second, int max_len) {
    GPTX_CHECK(max_len >= 4, "fine-tuning: a context of ", max_len, " cannot hold the task tokens");
    const std::size_t room = std::size_t(max_len) - 3;
    const std::size_t keep2 = std::min(second.size(), room);
    const std::size_t keep1 = std::min(first.size(), room - keep2);
    std::vector<int> out{t.start};
    out.insert(out.end(), first.end() - std::ptrdiff_t(keep1), first.end());
    out.push_back(t.delim);
    out.insert(out.end(), second.begin(), second.begin() + std::ptrdiff_t(keep2));
    out.push_back(t.extract);
    return out;
}

// The kinds of task head: one sequence and K classes (classification, entailment); two orders of
// a pair whose extract states are summed before the head (similarity); one scalar per candidate
// sequence and a softmax over the candidates (multiple choice).
enum class finetune_form : std::uint8_t { classify, similarity, choice };

// One labelled example after its input transformation.
struct finetune_example {
    std::vector<std::vector<int>> seqs; // classify 1, similarity 2 (both orders), choice one each
    int label = 0;                      // class, or the index of the right candidate
};

inline finetune_example similarity_example(const task_token_ids& t, std::span<const int> a,
                                           std::span<const int> b, int label, int max_len) {
    return {{pair_input(t, a, b, max_len), pair_input(t, b, a, max_len)}, label};
}
inline finetune_example choice_example(const task_token_ids& t, std::span<const int> context,
                                       const std::vector<std::vector<int>>& answers, int label,
                                       int max_len) {
    finetune_example e{{}, label};
    for (const auto& a : answers)
        e.seqs.push_back(pair_input(t, context, a, max_len));
    return e;
}

// A micro-batch: M examples.
struct finetune_batch {
    const finetune_example* examples = nullptr;
    int M = 0;
};

struct finetune_config {
    finetune_form form = finetune_form::classify;
    int classes = 2;          // K (ignored for choice: one scalar per candidate)
    float lm_weight = 0.5f;   // lambda; 0 trains the task loss alone
    float clf_dropout = 0.1f; // on the extract state before the head (GPT-1: 0.1)
    std::uint64_t seed = 1;   // the head's init and its dropout masks
};

// GPT-1's fine-tuning hyper-parameters.
struct gpt1_finetune_defaults {
    static constexpr float lr = 6.25e-5f;
    static constexpr int batch = 32;
    static constexpr int epochs = 3;
    static constexpr float warmup_fraction = 0.002f; // of all steps
    static constexpr float grad_clip = 1.0f;
    static constexpr float lm_weight = 0.5f;
    static constexpr float clf_dropout = 0.1f;
    static constexpr float weight_decay = 0.01f;
};

// Linear warmup over warmup_fraction of the steps (rounded; at least one step when positive), then
// linear decay to 0 at the last step.
inline linear_schedule finetune_schedule(float lr, int total_steps, float warmup_fraction) {
    const int warmup = warmup_fraction > 0
                           ? std::max(1, int(std::lround(double(warmup_fraction) * total_steps)))
                           : 0;
    return linear_schedule{lr, 0.0f, warmup, std::max(total_steps, warmup + 1)};
}

// L = L_task + lambda * L_LM on the same inputs. L_task is the mean cross-entropy of the head's
// softmax over the examples; L_LM the mean next-token loss over every position of every sequence
// (the token after the extract token has no target). Satisfies `objective`, and exposes its head
// so the trainer steps and clips it with the trunk.
template <class Model> class finetune_objective {
  public:
    using T = typename Model::value_type;
    using batch_type = finetune_batch;

    explicit finetune_objective(const finetune_config& cfg)
        : cfg_(cfg), head_(Model::C, cfg.form == finetune_form::choice ? 1 : cfg.classes) {
        GPTX_CHECK(cfg.form == finetune_form::choice || cfg.classes >= 2,
                   "fine-tuning: a classifier needs at least 2 classes, got ", cfg.classes);
        GPTX_CHECK(cfg.lm_weight >= 0 && std::isfinite(cfg.lm_weight),
                   "fine-tuning: the LM weight must be >= 0, got ", cfg.lm_weight);
        GPTX_CHECK(cfg.clf_dropout >= 0 && cfg.clf_dropout < 1,
                   "fine-tuning: classifier dropout must be in [0, 1), got ", cfg.clf_dropout);
        head_.init(cfg.seed, 0.02f);
    }

    const finetune_config& config() const { return cfg_; }
    void set_lm_weight(float w) { cfg_.lm_weight = w; }
    linear_head<T>& head() { return head_; }
    basic_arena<T>& head_params() { return head_.params(); }
    basic_arena<T>& head_grads() { return head_.grads(); }
    // Classifier-dropout masks are a pure function of (seed, step, element), as the trunk's.
    std::uint64_t dropout_step() const { return step_; }
    void set_dropout_step(std::uint64_t s) { step_ = s; }

    double forward_backward(Model& m, const finetune_batch& b, double grad_scale) {
        const double loss = compute(m, b, grad_scale, true, true);
        ++step_;
        return loss;
    }
    double evaluate(Model& m, const finetune_batch& b) {
        const bool was = m.training();
        m.set_training(false);
        const double loss = compute(m, b, 1.0, false, false);
        m.set_training(was);
        return loss;
    }
    // argmax of the head for each example (eval mode).
    const std::vector<int>& predict(Model& m, const finetune_batch& b) {
        evaluate(m, b);
        return predictions_;
    }

    // The loss of one micro-batch; with `grads`, adds grad_scale * dL into the trunk's and the
    // head's gradients. `dropout` applies classifier dropout with the current step's masks
    // (the trunk applies its own when in training mode). Public for gradient checks.
    double compute(Model& m, const finetune_batch& b, double grad_scale, bool grads, bool dropout) {
        GPTX_CHECK(b.M > 0 && b.examples, "fine-tuning: empty batch");
        pack(m, b);
        const T* h = m.forward(tokens_.data(), N_, T_);
        constexpr int C = Model::C;
        const int K = head_.outputs();

        // g (G, C): the extract states that reach the head.
        const bool sum_pair = cfg_.form == finetune_form::similarity;
        const int G = sum_pair ? b.M : N_;
        g_.assign(std::size_t(G) * C, T(0));
        for (int n = 0; n < N_; ++n) {
            const int gi = sum_pair ? n / 2 : n;
            const T* src = h + std::int64_t(rows_[n]) * C;
            T* dst = g_.data() + std::size_t(gi) * C;
            for (int c = 0; c < C; ++c)
                dst[c] += src[c];
        }
        const float p = dropout ? cfg_.clf_dropout : 0.0f;
        keep_.assign(g_.size(), T(1));
        if (p > 0) {
            const std::uint64_t seed = mix64(cfg_.seed ^ mix64(step_ * 0x9e3779b97f4a7c15ull + 17));
            const T scale = T(1.0 / (1.0 - p));
            for (std::size_t i = 0; i < g_.size(); ++i) {
                keep_[i] = dropout_keep(seed, i, p) ? scale : T(0);
                g_[i] *= keep_[i];
            }
        }
        identity_.resize(G);
        for (int i = 0; i < G; ++i)
            identity_[i] = i;
        out_.resize(std::size_t(G) * K);
        head_.forward(out_.data(), g_.data(), identity_.data(), G);

        // Softmax cross-entropy per example over its logits (K classes, or one per candidate).
        double task = 0;
        predictions_.assign(b.M, 0);
        correct_ = 0;
        dout_.assign(out_.size(), T(0));
        for (int e = 0, at = 0; e < b.M; ++e) {
            const int n = cfg_.form == finetune_form::choice ? int(b.examples[e].seqs.size()) : K;
            const T* z = out_.data() + at;
            const int y = b.examples[e].label;
            GPTX_CHECK(y >= 0 && y < n, "fine-tuning: example ", e, " has label ", y,
                       " outside [0, ", n, ")");
            double mx = -std::numeric_limits<double>::infinity();
            int best = 0;
            for (int k = 0; k < n; ++k)
                if (double(z[k]) > mx) {
                    mx = double(z[k]);
                    best = k;
                }
            double s = 0;
            for (int k = 0; k < n; ++k)
                s += std::exp(double(z[k]) - mx);
            const double lse = mx + std::log(s);
            task -= double(z[y]) - lse;
            predictions_[e] = best;
            correct_ += best == y;
            // d L_task / d z_k = (softmax_k - [k = y]) / M
            for (int k = 0; k < n; ++k)
                dout_[at + k] =
                    T(grad_scale / b.M * (std::exp(double(z[k]) - lse) - (k == y ? 1.0 : 0.0)));
            at += n;
        }
        task /= b.M;
        last_task_loss_ = task;

        // The auxiliary LM loss writes dhidden (scaled by lambda); the head adds to it.
        const double lambda = cfg_.lm_weight;
        double lm = std::numeric_limits<double>::quiet_NaN();
        if (lambda > 0)
            lm = grads ? lm_.forward_backward(m, targets_.data(), mask_.data(), grad_scale * lambda)
                       : lm_.loss(m, targets_.data(), mask_.data());
        else if (grads)
            std::fill(m.dhidden(), m.dhidden() + std::size_t(N_) * T_ * C, T(0));
        last_lm_loss_ = lm;
        if (grads) {
            dg_.assign(g_.size(), T(0));
            head_.backward(dg_.data(), dout_.data());
            T* dh = m.dhidden();
            for (int n = 0; n < N_; ++n) {
                const int gi = sum_pair ? n / 2 : n;
                const T* src = dg_.data() + std::size_t(gi) * C;
                const T* keep = keep_.data() + std::size_t(gi) * C;
                T* dst = dh + std::int64_t(rows_[n]) * C;
                for (int c = 0; c < C; ++c)
                    dst[c] += src[c] * keep[c]; // d(sum) passes to each addend; dropout masks it
            }
            m.backward();
        }
        return lambda > 0 ? task + lambda * lm : task;
    }

    // Of the last compute(): predictions, correct count, the two losses.
    const std::vector<int>& predictions() const { return predictions_; }
    int correct() const { return correct_; }
    double task_loss() const { return last_task_loss_; }
    double lm_loss() const { return last_lm_loss_; }

  private:
    // Lays the examples' sequences out as one (N, T) block, T the longest, padded with each
    // sequence's extract token (causal attention keeps padding from reaching real positions).
    void pack(const Model& m, const finetune_batch& b) {
        N_ = 0;
        T_ = 0;
        for (int e = 0; e < b.M; ++e) {
            const auto& ex = b.examples[e];
            const std::size_t want = cfg_.form == finetune_form::classify     ? 1
                                     : cfg_.form == finetune_form::similarity ? 2
                                                                              : 0;
            GPTX_CHECK(want == 0 ? ex.seqs.size() >= 2 : ex.seqs.size() == want,
                       "fine-tuning: example ", e, " has ", ex.seqs.size(),
                       " sequences; this task needs ",
                       want == 0 ? "at least 2 candidates" : std::to_string(want));
            for (const auto& s : ex.seqs) {
                GPTX_CHECK(!s.empty() && int(s.size()) <= m.context(), "fine-tuning: example ", e,
                           " has a sequence of ", s.size(), " tokens (context ", m.context(), ")");
                T_ = std::max(T_, int(s.size()));
                ++N_;
            }
        }
        const std::size_t NT = std::size_t(N_) * T_;
        tokens_.assign(NT, 0);
        targets_.assign(NT, 0);
        mask_.assign(NT, 0);
        rows_.resize(N_);
        int n = 0;
        for (int e = 0; e < b.M; ++e)
            for (const auto& s : b.examples[e].seqs) {
                const int len = int(s.size());
                int* tok = tokens_.data() + std::size_t(n) * T_;
                std::copy(s.begin(), s.end(), tok);
                std::fill(tok + len, tok + T_, s.back());
                for (int t = 0; t + 1 < len; ++t) {
                    targets_[std::size_t(n) * T_ + t] = s[t + 1];
                    mask_[std::size_t(n) * T_ + t] = 1;
                }
                rows_[n] = n * T_ + len - 1;
                ++n;
            }
    }

    finetune_config cfg_;
    linear_head<T> head_;
    lm_head<Model> lm_;
    std::uint64_t step_ = 0;
    int N_ = 0, T_ = 0, correct_ = 0;
    double last_task_loss_ = 0, last_lm_loss_ = 0;
    std::vector<int> tokens_, targets_, rows_, identity_, predictions_; // (N, T), (N)
    std::vector<std::uint8_t> mask_;                                    // (N, T)
    std::vector<T> g_, keep_, dg_, out_, dout_;                         // (G, C), (G, K)
};

} // namespace gptx
