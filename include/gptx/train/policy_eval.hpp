// gptx/train/policy_eval.hpp: evaluating language-model policies: one sampled response per
// prompt (prompts of any lengths), the exact KL of a policy to a reference over its responses,
// and a language-model loss on a fixed token set. Tested by tests/train/test_policy_eval.cpp.
// Legend: B batch, T time, V vocab.
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "../core/error.hpp"
#include "../data/batcher.hpp"
#include "../generate/generate.hpp"
#include "objective.hpp"
#include "ppo.hpp"

namespace gptx {

// One response per prompt, generated in batches of prompts of equal length (generate_batch needs
// them), `batch` at a time. Prompt i of a length group draws with seed cfg.seed + (its length) *
// 100003 + (its rank in the group), so a response depends on the prompt set, not on `batch`.
template <class Model>
std::vector<generation>
sample_responses(const Model& model, const std::vector<std::vector<int>>& prompts,
                 int max_new_tokens, const sampling_config& cfg, int end_of_text, int batch = 64) {
    GPTX_CHECK(batch > 0, "sample_responses: batch must be positive, got ", batch);
    std::map<std::size_t, std::vector<int>> groups;
    for (std::size_t i = 0; i < prompts.size(); ++i)
        groups[prompts[i].size()].push_back(int(i));
    std::vector<generation> out(prompts.size());
    kv_cache<Model> cache(model);
    generate_options opt;
    opt.end_of_text = end_of_text;
    for (const auto& [P, idx] : groups) {
        for (std::size_t first = 0; first < idx.size(); first += std::size_t(batch)) {
            const std::size_t n = std::min(idx.size() - first, std::size_t(batch));
            std::vector<std::vector<int>> group;
            for (std::size_t k = 0; k < n; ++k)
                group.push_back(prompts[std::size_t(idx[first + k])]);
            sampling_config c = cfg;
            c.seed = cfg.seed + std::uint64_t(P) * 100003u + first;
            const int room = model.context() - int(P) - 1; // leave room for end-of-text
            auto gen =
                generate_batch(cache, group, std::max(0, std::min(max_new_tokens, room)), c, opt);
            for (std::size_t k = 0; k < n; ++k)
                out[std::size_t(idx[first + k])] = std::move(gen[k]);
        }
    }
    return out;
}

// The exact KL(policy || reference) of each response, summed over its tokens (the end-of-text
// included when the response ended with it): sum_t sum_v pi(v | x_<t) (log pi - log ref). Never
// negative.
template <class Model>
std::vector<double>
response_kl(Model& policy, Model& reference, const std::vector<std::vector<int>>& prompts,
            const std::vector<generation>& responses, int end_of_text, int batch = 32) {
    GPTX_CHECK(prompts.size() == responses.size(), "response_kl: ", prompts.size(), " prompts but ",
               responses.size(), " responses");
    std::vector<double> out(prompts.size(), 0.0);
    std::vector<int> x, y, rows;
    std::vector<std::uint8_t> mask;
    std::vector<typename Model::value_type> logp, ent, ref_logp, kl, scratch;
    for (std::size_t first = 0; first < prompts.size(); first += std::size_t(batch)) {
        const int B = int(std::min(prompts.size() - first, std::size_t(batch)));
        std::vector<std::vector<int>> seqs(B);
        std::vector<int> starts(B), actions(B);
        int T = 1;
        for (int b = 0; b < B; ++b) {
            const auto& p = prompts[first + b];
            const auto& r = responses[first + b];
            auto& s = seqs[b];
            s = p;
            s.insert(s.end(), r.tokens.begin(), r.tokens.end());
            const bool ended = r.reason == stop_reason::end_of_text;
            if (ended)
                s.push_back(end_of_text);
            starts[b] = int(p.size()) - 1; // the row whose target is the first response token
            actions[b] = int(r.tokens.size()) + (ended ? 1 : 0);
            T = std::max(T, int(s.size()) - 1);
        }
        GPTX_CHECK(T <= policy.context(), "response_kl: a sequence of ", T + 1,
                   " tokens exceeds the context of ", policy.context());
        x.assign(std::size_t(B) * T, end_of_text);
        y.assign(x.size(), end_of_text);
        mask.assign(x.size(), 0);
        for (int b = 0; b < B; ++b) {
            const auto& s = seqs[b];
            for (int t = 0; t + 1 < int(s.size()); ++t) {
                x[std::size_t(b) * T + t] = s[t];
                y[std::size_t(b) * T + t] = s[t + 1];
            }
            for (int j = 0; j < actions[b]; ++j)
                mask[std::size_t(b) * T + starts[b] + j] = 1;
        }
        detail::set_rows(rows, mask.data(), std::int64_t(B) * T);
        const int N = int(rows.size());
        if (N == 0)
            continue;
        logp.resize(N);
        ent.resize(N);
        ref_logp.resize(N);
        kl.resize(N);
        const bool pt = policy.training(), rt = reference.training();
        policy.set_training(false);
        reference.set_training(false);
        const auto* h = policy.forward(x.data(), B, T);
        const auto* hr = reference.forward(x.data(), B, T);
        policy_token_stats(logp.data(), ent.data(), ref_logp.data(), kl.data(), h,
                           policy.param(p_wte), hr, reference.param(p_wte), rows.data(), y.data(),
                           N, Model::C, policy.vocab(), scratch);
        policy.set_training(pt);
        reference.set_training(rt);
        for (int i = 0; i < N; ++i)
            out[first + std::size_t(rows[i] / T)] += double(kl[i]);
    }
    return out;
}

// Mean next-token loss over `batches` fixed windows of `tokens` (B rows of T, drawn by a
// generator reseeded with `seed` each call, so every model is measured on the same text).
template <class Model>
double lm_loss_on(Model& model, const std::vector<int>& tokens, int B, int T, int batches,
                  std::uint64_t seed = 4242) {
    batcher data(tokens, B, T, rng(seed));
    lm_objective<Model> obj;
    std::vector<int> x(std::size_t(B) * T), y(x.size());
    double sum = 0;
    for (int i = 0; i < batches; ++i) {
        data.next(x.data(), y.data());
        sum += obj.evaluate(model, {x.data(), y.data(), nullptr, B, T});
    }
    return sum / batches;
}

} // namespace gptx
