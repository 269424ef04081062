// gptx/core/rng.hpp: a small seeded generator whose whole state fits a checkpoint, and a
// counter-based hash for dropout masks that backward passes can recompute.
// Tested by tests/core/test_core.cpp.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

namespace gptx {

// splitmix64 finaliser: a good 64-bit mixer, used to seed and as a counter-based generator.
constexpr std::uint64_t mix64(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// xoshiro256**: fast, 256-bit state, reproducible on every platform (unlike std:: distributions).
class rng {
  public:
    using state_type = std::array<std::uint64_t, 4>;

    explicit rng(std::uint64_t seed = 1337) { reseed(seed); }
    void reseed(std::uint64_t seed) {
        std::uint64_t x = seed;
        for (auto& w : s_) {
            x = mix64(x);
            w = x;
        }
    }
    std::uint64_t next_u64() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    // Uniform in [0, 1) with 24 bits, exactly representable as float.
    float uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }
    double uniform_double() {
        return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    }
    // Uniform integer in [0, n), by rejection so there is no modulo bias.
    std::uint64_t below(std::uint64_t n) {
        const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
        std::uint64_t x;
        do
            x = next_u64();
        while (x >= limit);
        return x % n;
    }
    // Standard normal by Box-Muller (one value per call; simple and reproducible).
    float normal() {
        double u1 = uniform_double();
        double u2 = uniform_double();
        if (u1 < 1e-300)
            u1 = 1e-300;
        return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) *
                                  std::cos(6.283185307179586 * u2));
    }

    const state_type& state() const { return s_; }
    void set_state(const state_type& s) { s_ = s; }

  private:
    static constexpr std::uint64_t rotl(std::uint64_t x, int k) {
        return (x << k) | (x >> (64 - k));
    }
    state_type s_{};
};

// Dropout keep decision for element `index` of stream `seed`: a pure function, so the backward
// pass recomputes the mask instead of storing it, and the result does not depend on threads.
inline bool dropout_keep(std::uint64_t seed, std::uint64_t index, float rate) {
    const std::uint64_t h = mix64(seed ^ mix64(index));
    return static_cast<float>(h >> 40) * (1.0f / 16777216.0f) >= rate;
}

} // namespace gptx
