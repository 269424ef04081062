// gptx/train/schedule.hpp: learning-rate schedules (nanoGPT's warmup + cosine, warmup + linear).
// Tested by tests/train/test_optimizer.cpp.
#pragma once
#include <cmath>
#include <numbers>

namespace gptx {

// nanoGPT's get_lr(it): linear warmup to max_lr, cosine decay to min_lr at decay_iters, then
// min_lr. Warmup uses (it+1)/(warmup+1) so iteration 0 already takes a (small) step.
struct cosine_schedule {
    float max_lr = 6e-4f;
    float min_lr = 6e-5f;
    int warmup_iters = 2000;
    int decay_iters = 600000;

    float operator()(int it) const {
        if (it < warmup_iters)
            return float(double(max_lr) * (it + 1) / (warmup_iters + 1));
        // decay_iters <= warmup_iters would divide by zero; the cosine ends at min_lr anyway.
        if (it > decay_iters || decay_iters <= warmup_iters)
            return min_lr;
        const double ratio = double(it - warmup_iters) / double(decay_iters - warmup_iters);
        const double coeff = 0.5 * (1.0 + std::cos(std::numbers::pi * ratio));
        return float(double(min_lr) + coeff * (double(max_lr) - double(min_lr)));
    }
};

// Linear warmup to max_lr (same (it+1)/(warmup+1) ramp as above), then a straight line down to
// min_lr at decay_iters, then min_lr. min_lr = 0 is GPT-1's fine-tuning schedule.
struct linear_schedule {
    float max_lr = 6.25e-5f;
    float min_lr = 0.0f;
    int warmup_iters = 0;
    int decay_iters = 1;

    float operator()(int it) const {
        if (it < warmup_iters)
            return float(double(max_lr) * (it + 1) / (warmup_iters + 1));
        if (it >= decay_iters || decay_iters <= warmup_iters)
            return min_lr;
        const double ratio = double(it - warmup_iters) / double(decay_iters - warmup_iters);
        return float(double(max_lr) + ratio * (double(min_lr) - double(max_lr)));
    }
};

} // namespace gptx
