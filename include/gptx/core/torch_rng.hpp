// gptx/core/torch_rng.hpp: PyTorch's CPU random stream, so a gptx run can draw exactly what a
// PyTorch program seeded with torch.manual_seed(seed) draws (nanoGPT's initial weights and
// batches). Tested against PyTorch 1.13's values by tests/core/test_torch_rng.cpp.
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <span>

#include "error.hpp"

namespace gptx {

// torch's CPU generator is a 32-bit Mersenne Twister seeded with the low 32 bits of the seed, so
// std::mt19937 produces its words. On top of it sit torch's transformations (ATen's
// DistributionsHelper / DistributionTemplates), reproduced here:
//  - float uniform: the low 24 bits of one word, times 2^-24, scaled to [from, to);
//  - double uniform: the low 53 bits of (word1 << 32 | word2), times 2^-53;
//  - randint(n): word % n for n < 2^32, else (word1 << 32 | word2) % n (torch keeps the modulo
//    bias; so must we);
//  - normal_ of a contiguous float tensor with at least 16 elements: fill it with float uniforms,
//    then Box-Muller in blocks of 16 (element j and j+8 form a pair); a tail shorter than 16
//    redoes the last 16 elements with 16 fresh uniforms;
//  - normal_ of fewer elements: double Box-Muller, the second value of each pair cached in the
//    generator for the next call.
// Floats can differ from torch's in the last bit or two (torch vectorises log, sin and cos);
// the words drawn, and so every uniform and integer, are identical.
class torch_generator {
  public:
    explicit torch_generator(std::uint64_t seed = 67280421310721ull) { manual_seed(seed); }

    // torch.manual_seed: a fresh engine and no cached normal.
    void manual_seed(std::uint64_t seed) {
        seed_ = seed;
        engine_.seed(static_cast<std::uint32_t>(seed & 0xffffffffu));
        draws_ = 0;
        cached_normal_.reset();
    }
    std::uint64_t seed() const { return seed_; }
    // 32-bit words drawn since the seed: with the seed, the whole state (but a cached normal).
    std::uint64_t draws() const { return draws_; }
    // Reseeds and replays `words` words (linear: no cheap jump), so draws() == words; no cached
    // normal.
    void restore(std::uint64_t seed, std::uint64_t words) {
        manual_seed(seed);
        discard(words);
    }
    // Draws and drops `words` words, as a call whose values are overwritten would.
    void discard(std::uint64_t words) {
        engine_.discard(words);
        draws_ += words;
    }
    // The words normal_ draws for n floats; n >= 16 only (smaller ones also touch the cache).
    static std::uint64_t normal_words(std::uint64_t n) { return n % 16 == 0 ? n : n + 16; }

    std::uint32_t random() {
        ++draws_;
        return static_cast<std::uint32_t>(engine_());
    }
    std::uint64_t random64() {
        const std::uint64_t hi = random();
        return hi << 32 | random();
    }
    // One value of torch.randint(n): uniform-ish in [0, n).
    std::uint64_t randint(std::uint64_t n) {
        GPTX_CHECK(n > 0, "torch_generator: randint needs a positive range, got ", n);
        return n >= (std::uint64_t{1} << 32) ? random64() % n : random() % n;
    }
    float uniform_float(float from = 0.0f, float to = 1.0f) {
        const float x = static_cast<float>(random() & 0xffffffu) * (1.0f / 16777216.0f);
        return x * (to - from) + from;
    }
    double uniform_double() {
        return static_cast<double>(random64() & ((std::uint64_t{1} << 53) - 1)) *
               (1.0 / 9007199254740992.0);
    }

    // tensor.uniform_(from, to) on a contiguous float tensor.
    void uniform_(std::span<float> x, float from, float to) {
        for (float& v : x)
            v = uniform_float(from, to);
    }

    // tensor.normal_(mean, std) on a contiguous float tensor.
    void normal_(std::span<float> x, float mean, float std_dev) {
        const std::size_t n = x.size();
        if (n >= 16) {
            for (float& v : x)
                v = uniform_float();
            for (std::size_t i = 0; i + 16 <= n; i += 16)
                box_muller_16(x.data() + i, mean, std_dev);
            if (n % 16 != 0) {
                float* tail = x.data() + n - 16;
                for (int i = 0; i < 16; ++i)
                    tail[i] = uniform_float();
                box_muller_16(tail, mean, std_dev);
            }
            return;
        }
        for (float& v : x)
            v = static_cast<float>(normal_double(mean, std_dev));
    }

  private:
    // Pairs (j, j + 8): u1 = 1 - x[j] is in (0, 1], so the log is finite.
    static void box_muller_16(float* x, float mean, float std_dev) {
        for (int j = 0; j < 8; ++j) {
            const float u1 = 1.0f - x[j], u2 = x[j + 8];
            const float radius = static_cast<float>(std::sqrt(-2.0 * std::log(double(u1))));
            const float theta = static_cast<float>(6.283185307179586 * double(u2));
            x[j] = radius * static_cast<float>(std::cos(double(theta))) * std_dev + mean;
            x[j + 8] = radius * static_cast<float>(std::sin(double(theta))) * std_dev + mean;
        }
    }
    double normal_double(double mean, double std_dev) {
        if (cached_normal_) {
            const double z = *cached_normal_;
            cached_normal_.reset();
            return z * std_dev + mean;
        }
        const double u1 = uniform_double(), u2 = uniform_double();
        const double radius = std::sqrt(-2.0 * std::log(1.0 - u2));
        const double theta = 6.283185307179586 * u1;
        cached_normal_ = radius * std::sin(theta);
        return radius * std::cos(theta) * std_dev + mean;
    }

    std::mt19937 engine_;
    std::uint64_t seed_ = 0, draws_ = 0;
    std::optional<double> cached_normal_;
};

} // namespace gptx
