// gptx/nn/copy_params.hpp: one model's parameters copied into another of the same shape and sizes
// (SFT starts from the pre-trained model, the RM's trunk and PPO's models from SFT, PPO's value
// head from the RM's head).
// Tested by tests/train/test_reward_training.cpp.
#pragma once
#include <algorithm>
#include <cstddef>

#include "../core/error.hpp"

namespace gptx {

// Model: anything whose parameters are one flat arena, params(): a transformer<S>, or a head
// (the RM's head into PPO's value head).
template <class Model> void copy_params(Model& dst, const Model& src) {
    const std::size_t n = src.params().size();
    GPTX_CHECK(dst.params().size() == n, "copy_params: ", n, " parameters into a model of ",
               dst.params().size());
    std::copy(src.params().data(), src.params().data() + n, dst.params().data());
}

} // namespace gptx
