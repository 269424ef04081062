// gptx/train/kl_controller.hpp: the KL penalty coefficient beta, fixed (InstructGPT: 0.02) or
// adaptive (Ziegler et al. 2019). Tested by tests/train/test_ppo.cpp.
#pragma once
#include <algorithm>
#include <cmath>

#include "../core/error.hpp"

namespace gptx {

// Adaptive when target > 0: e = clip(KL / target - 1, -0.2, 0.2), beta *= 1 + e * n / horizon,
// with KL the mean per-sequence KL of the last rollouts and n the number of those rollouts.
class kl_controller {
  public:
    kl_controller() = default;
    explicit kl_controller(double beta, double target = 0.0, double horizon = 10000.0)
        : beta_(beta), target_(target), horizon_(horizon) {
        GPTX_CHECK(beta >= 0 && std::isfinite(beta), "kl_controller: beta must be >= 0, got ",
                   beta);
        GPTX_CHECK(target >= 0, "kl_controller: target must be >= 0 (0: fixed beta), got ", target);
        GPTX_CHECK(target == 0 || horizon > 0, "kl_controller: horizon must be positive, got ",
                   horizon);
    }

    double beta() const { return beta_; }
    void set_beta(double b) { beta_ = b; } // checkpoint resume
    bool adaptive() const { return target_ > 0; }
    double target() const { return target_; }
    double horizon() const { return horizon_; }

    void update(double kl, int n_steps) {
        if (!adaptive() || !std::isfinite(kl))
            return;
        const double e = std::clamp(kl / target_ - 1.0, -0.2, 0.2);
        beta_ *= 1.0 + e * double(n_steps) / horizon_;
    }

  private:
    double beta_ = 0.02, target_ = 0.0, horizon_ = 10000.0;
};

} // namespace gptx
