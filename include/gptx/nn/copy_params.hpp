// gptx/nn/copy_params.hpp: one model's parameters copied into another of the same shape and sizes
// (SFT starts from the pre-trained model, the RM's trunk and PPO's models from SFT).
// Tested by tests/train/test_reward_training.cpp.
#pragma once
#include <algorithm>

#include "../core/error.hpp"

namespace gptx {

// Model: anything with params() (one flat arena) and num_parameters(), e.g. transformer<S>.
template <class Model> void copy_params(Model& dst, const Model& src) {
    GPTX_CHECK(dst.num_parameters() == src.num_parameters(), "copy_params: ", src.num_parameters(),
               " parameters into a model of ", dst.num_parameters());
    std::copy(src.params().data(), src.params().data() + src.num_parameters(), dst.params().data());
}

} // namespace gptx
