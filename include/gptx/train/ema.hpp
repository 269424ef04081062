// gptx/train/ema.hpp: an exponential moving average of a parameter arena (InstructGPT keeps one
// of the PPO policy with decay 0.992). Tested by tests/train/test_ppo.cpp.
#pragma once
#include <algorithm>
#include <vector>

#include "../core/arena.hpp"
#include "../core/error.hpp"

namespace gptx {

// shadow = decay * shadow + (1 - decay) * params after each update; starts as a copy.
template <class T = float> class ema {
  public:
    ema() = default;
    ema(const basic_arena<T>& params, double decay) : decay_(decay) {
        GPTX_CHECK(decay >= 0 && decay < 1, "ema: decay must be in [0, 1), got ", decay);
        std::vector<typename basic_arena<T>::entry> e;
        for (const auto& v : params.views())
            e.push_back({v.name, v.size, v.decay});
        shadow_.layout(e);
        std::copy(params.data(), params.data() + params.size(), shadow_.data());
    }

    void update(const basic_arena<T>& params) {
        GPTX_CHECK(params.size() == shadow_.size(), "ema: ", params.size(),
                   " parameters, shadow holds ", shadow_.size());
        const T d = T(decay_), c = T(1) - d;
        T* s = shadow_.data();
        const T* p = params.data();
        for (std::size_t i = 0; i < shadow_.size(); ++i)
            s[i] = d * s[i] + c * p[i];
    }

    double decay() const { return decay_; }
    basic_arena<T>& shadow() { return shadow_; }
    const basic_arena<T>& shadow() const { return shadow_; }

  private:
    double decay_ = 0.0;
    basic_arena<T> shadow_;
};

} // namespace gptx
