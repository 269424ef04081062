// gptx/generate/generate.hpp: autoregressive generation over a KV cache, for one prompt or a
// batch of equal-length prompts, with end-of-text, stop strings and streaming. Tested by
// tests/generate/test_generate.cpp. Legend: B batch, P prompt length, V vocab.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/error.hpp"
#include "../nn/kv_cache.hpp"
#include "sampler.hpp"

namespace gptx {

enum class stop_reason {
    length,      // max_new_tokens were generated
    end_of_text, // the end-of-text token was drawn
    stop_string, // the decoded text reached a stop string
    callback,    // the streaming callback returned false
    context,     // the sequence filled the model's context
};

struct generate_options {
    int end_of_text = -1;                  // token id that ends a sequence; -1: none
    std::vector<std::string> stop_strings; // need `decode`
    // Streaming: called with each token kept in the output; return false to stop after it.
    // Tokens are not held back, so the first tokens of a multi-token stop string may already have
    // been streamed (the token that completes it is not).
    std::function<bool(int id)> on_token;
    // The same with the sequence index, for batches (when set, on_token is not called); false
    // stops that sequence.
    std::function<bool(int seq, int id)> on_batch_token;
    std::function<std::string(std::span<const int>)> decode;
    // When a sequence fills the context: false stops it (reason `context`); true slides the
    // window, re-reading the last half of the context and going on (free-running text, as
    // nanoGPT's sample.py crops to the last block_size tokens).
    bool slide_context = false;
};

struct generation {
    // The generated ids, without the prompt and without the end-of-text token. After a stop
    // string: the longest prefix whose text ends before the stop string starts.
    std::vector<int> tokens;
    std::string text; // decode(tokens), cut where the stop string starts; empty without decode
    stop_reason reason = stop_reason::length;
};

namespace detail {
template <class X> struct is_kv_cache : std::false_type {};
template <class M> struct is_kv_cache<kv_cache<M>> : std::true_type {};

// Earliest occurrence of any stop string in text, or npos.
inline std::size_t find_stop(const std::string& text, const std::vector<std::string>& stops) {
    std::size_t best = std::string::npos;
    for (const auto& s : stops)
        best = std::min(best, text.find(s));
    return best;
}
} // namespace detail

// B continuations of B prompts of equal length, sequence b drawing from its own stream with seed
// cfg.seed + b. Sequences stop on their own; finished ones keep their cache slot (fed a filler
// token, their output ignored) until all are done. A sequence never grows past the model's
// context: generation stops there (reason `context`) so that prompt + continuation can always be
// scored again by one forward (PPO, reward models). A prompt longer than the context is an error.
template <class Model>
std::vector<generation>
generate_batch(kv_cache<Model>& cache, const std::vector<std::vector<int>>& prompts,
               int max_new_tokens, const sampling_config& cfg, const generate_options& opt = {}) {
    const int B = static_cast<int>(prompts.size());
    GPTX_CHECK(B > 0, "generate: no prompts");
    const int P = static_cast<int>(prompts[0].size()), ctx = cache.model().context();
    const int V = cache.model().vocab();
    GPTX_CHECK(P > 0, "generate: the prompt is empty (start it with e.g. the end-of-text token)");
    for (int b = 1; b < B; ++b)
        GPTX_CHECK(int(prompts[b].size()) == P, "generate: prompt ", b, " has ", prompts[b].size(),
                   " tokens but prompt 0 has ", P, " (batched prompts must have equal lengths)");
    GPTX_CHECK(P <= ctx, "generate: the prompt of ", P, " tokens exceeds the model's context of ",
               ctx);
    GPTX_CHECK(max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", max_new_tokens);
    GPTX_CHECK(opt.end_of_text >= -1 && opt.end_of_text < V, "generate: end-of-text id ",
               opt.end_of_text, " is outside the vocabulary [0, ", V, ") (-1: none)");
    GPTX_CHECK(opt.stop_strings.empty() || opt.decode,
               "generate: stop strings need a decode function");
    for (const auto& s : opt.stop_strings)
        GPTX_CHECK(!s.empty(), "generate: stop strings must not be empty");

    std::vector<sampler> samplers; // built first: a bad config is an error even for 0 steps
    samplers.reserve(B);
    for (int b = 0; b < B; ++b) {
        sampling_config c = cfg;
        c.seed = cfg.seed + std::uint64_t(b);
        samplers.emplace_back(c);
    }
    const int steps = opt.slide_context ? max_new_tokens : std::min(max_new_tokens, ctx - P);
    std::vector<generation> out(B);
    std::vector<char> done(B, 0);
    const stop_reason exhausted =
        steps < max_new_tokens ? stop_reason::context : stop_reason::length;
    if (steps > 0) {
        // Only the fed tokens are cached: the last drawn token never is.
        const int cache_len = opt.slide_context ? ctx : P + steps - 1;
        const int keep = std::max(1, ctx / 2); // tokens re-read when the window slides
        // Prefill chunks bound the scratch; only a sliding window re-reads `keep` tokens at once.
        cache.reset(B, cache_len, std::min(opt.slide_context ? std::max(P, keep) : P, 256));
        std::vector<std::vector<int>> history(prompts); // every token fed, for sliding
        std::vector<int> fed(std::size_t(B) * std::max(P, keep));
        for (int b = 0; b < B; ++b)
            std::copy(prompts[b].begin(), prompts[b].end(), fed.begin() + std::size_t(b) * P);
        const auto* logits = cache.forward_logits(fed.data(), B, P);
        std::vector<int> next(B);
        int active = B;
        for (int step = 0; step < steps && active > 0; ++step) {
            for (int b = 0; b < B; ++b) {
                if (done[b])
                    continue;
                generation& g = out[b];
                auto finish = [&](stop_reason r) {
                    g.reason = r;
                    done[b] = 1;
                    --active;
                };
                const int id = samplers[b].sample(logits + std::size_t(b) * V, V);
                next[b] = id;
                if (id == opt.end_of_text) {
                    finish(stop_reason::end_of_text);
                    continue;
                }
                g.tokens.push_back(id);
                if (!opt.stop_strings.empty()) {
                    g.text = opt.decode(g.tokens);
                    const std::size_t cut = detail::find_stop(g.text, opt.stop_strings);
                    if (cut != std::string::npos) {
                        g.text.resize(cut);
                        while (!g.tokens.empty() && opt.decode(g.tokens).size() > cut)
                            g.tokens.pop_back();
                        finish(stop_reason::stop_string);
                        continue;
                    }
                }
                const bool go_on = opt.on_batch_token ? opt.on_batch_token(b, id)
                                   : opt.on_token     ? opt.on_token(id)
                                                      : true;
                if (!go_on)
                    finish(stop_reason::callback);
            }
            if (active == 0 || step + 1 >= steps)
                continue;
            if (cache.length() < cache_len) {
                logits = cache.forward_logits(next.data(), B, 1);
                if (opt.slide_context)
                    for (int b = 0; b < B; ++b)
                        history[b].push_back(next[b]);
                continue;
            }
            // The window is full: restart the cache from the last `keep` tokens.
            for (int b = 0; b < B; ++b) {
                history[b].push_back(next[b]);
                std::copy(history[b].end() - keep, history[b].end(),
                          fed.begin() + std::size_t(b) * keep);
                history[b].erase(history[b].begin(), history[b].end() - keep);
            }
            cache.clear();
            logits = cache.forward_logits(fed.data(), B, keep);
        }
    }
    for (int b = 0; b < B; ++b) {
        if (!done[b])
            out[b].reason = exhausted;
        if (opt.decode && out[b].reason != stop_reason::stop_string)
            out[b].text = opt.decode(out[b].tokens);
    }
    return out;
}

// The same with a cache made for the call (sized to the prompt and the new tokens).
template <class Model>
requires(!detail::is_kv_cache<Model>::value) std::vector<generation> generate_batch(
    const Model& model, const std::vector<std::vector<int>>& prompts, int max_new_tokens,
    const sampling_config& cfg, const generate_options& opt = {}) {
    kv_cache<Model> cache(model);
    return generate_batch(cache, prompts, max_new_tokens, cfg, opt);
}

// One prompt: generate_batch with B = 1, so it draws exactly what sequence 0 of a batch draws.
template <class Model>
generation generate(kv_cache<Model>& cache, const std::vector<int>& prompt, int max_new_tokens,
                    const sampling_config& cfg, const generate_options& opt = {}) {
    return std::move(generate_batch(cache, {prompt}, max_new_tokens, cfg, opt)[0]);
}
template <class Model>
requires(!detail::is_kv_cache<Model>::value) generation
    generate(const Model& model, const std::vector<int>& prompt, int max_new_tokens,
             const sampling_config& cfg, const generate_options& opt = {}) {
    kv_cache<Model> cache(model);
    return generate(cache, prompt, max_new_tokens, cfg, opt);
}

} // namespace gptx
