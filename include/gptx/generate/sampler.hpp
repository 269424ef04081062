// gptx/generate/sampler.hpp: turning one row of logits into a token id: greedy, temperature,
// top-k and top-p (nucleus) sampling, reproducible for a seed. Tested by
// tests/generate/test_generate.cpp. Legend: V vocab.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"

namespace gptx {

struct sampling_config {
    float temperature = 1.0f; // 0: greedy
    int top_k = 0;            // keep the k most probable tokens; 0: off
    float top_p = 1.0f;       // keep the smallest set with this much probability; 1: off
    std::uint64_t seed = 1337;
};

// One stream of draws. Steps: softmax(logits / temperature) -> top-k -> top-p -> renormalise ->
// draw. As in Hugging Face's warpers, top-p measures mass within what top-k kept. Probabilities
// are computed in double, and ties in rank go to the lower id, so the token drawn for a seed does
// not depend on the platform's sort.
class sampler {
  public:
    explicit sampler(const sampling_config& cfg = {}) : cfg_(cfg), rng_(cfg.seed) {
        GPTX_CHECK(std::isfinite(cfg.temperature) && cfg.temperature >= 0.0f,
                   "sampler: temperature must be a finite number >= 0, got ", cfg.temperature);
        GPTX_CHECK(cfg.top_k >= 0, "sampler: top_k must be >= 0 (0 turns it off), got ", cfg.top_k);
        GPTX_CHECK(cfg.top_p > 0.0f && cfg.top_p <= 1.0f,
                   "sampler: top_p must be in (0, 1] (1 turns it off), got ", cfg.top_p);
    }

    const sampling_config& config() const { return cfg_; }
    // The generator's state, for checkpoints of a rollout.
    rng& generator() { return rng_; }

    // The index of the largest value; ties go to the lowest index.
    template <class T> static int argmax(const T* x, int V) {
        int best = 0;
        for (int i = 1; i < V; ++i)
            if (x[i] > x[best])
                best = i;
        return best;
    }

    template <class T> int sample(const T* logits, int V) {
        GPTX_CHECK(V > 0, "sampler: empty logits");
        if (cfg_.temperature == 0.0f)
            return argmax(logits, V);
        if (probs_.size() < std::size_t(V)) {
            probs_.resize(V);
            order_.resize(V);
        }
        // softmax((l - max) / temperature): subtracting first keeps tiny temperatures finite.
        const double m = double(logits[argmax(logits, V)]), inv_t = 1.0 / double(cfg_.temperature);
        double total = 0.0;
        for (int i = 0; i < V; ++i)
            total += probs_[i] = std::exp((double(logits[i]) - m) * inv_t);
        const int k = cfg_.top_k > 0 ? std::min(cfg_.top_k, V) : V;
        if (k == V && cfg_.top_p >= 1.0f)
            return draw_in_id_order(V, total);

        std::iota(order_.begin(), order_.begin() + V, 0);
        const auto by_rank = [&](int a, int b) {
            return probs_[a] > probs_[b] || (probs_[a] == probs_[b] && a < b);
        };
        // Sort only as far as needed: the top k, or (top-p alone) a growing prefix until it holds
        // the nucleus, which is usually a small part of the vocabulary.
        int sorted = k < V ? k : std::min(V, 64);
        std::partial_sort(order_.begin(), order_.begin() + sorted, order_.begin() + V, by_rank);
        double kept_mass = total;
        if (k < V) {
            kept_mass = 0.0;
            for (int i = 0; i < k; ++i)
                kept_mass += probs_[order_[i]];
        }
        int kept = k;
        if (cfg_.top_p < 1.0f) {
            const double target = double(cfg_.top_p) * kept_mass;
            double cum = 0.0;
            for (int i = 0;; ++i) {
                if (i == sorted) { // the nucleus reaches past the sorted prefix: sort more
                    const int more = std::min(V, 4 * sorted);
                    std::partial_sort(order_.begin() + sorted, order_.begin() + more,
                                      order_.begin() + V, by_rank);
                    sorted = more;
                }
                cum += probs_[order_[i]];
                // Stop at the first prefix that reaches the target (always >= 1 token).
                if (cum >= target || i + 1 == k) {
                    kept = i + 1;
                    kept_mass = cum;
                    break;
                }
            }
        }
        double u = rng_.uniform_double() * kept_mass, cum = 0.0;
        for (int i = 0; i < kept; ++i) {
            cum += probs_[order_[i]];
            if (u < cum)
                return order_[i];
        }
        return order_[kept - 1]; // rounding left u at the very top
    }
    template <class T> int operator()(std::span<const T> logits) {
        return sample(logits.data(), static_cast<int>(logits.size()));
    }

  private:
    int draw_in_id_order(int V, double total) {
        const double u = rng_.uniform_double() * total;
        double cum = 0.0;
        int last = 0;
        for (int i = 0; i < V; ++i) {
            if (probs_[i] <= 0.0)
                continue;
            cum += probs_[i];
            last = i;
            if (u < cum)
                return i;
        }
        return last;
    }

    sampling_config cfg_;
    rng rng_;
    std::vector<double> probs_;
    std::vector<int> order_;
};

} // namespace gptx
