// samples/cli/instances/ppo.hpp: run_ppo declared instantiated for every preset (extern
// template), so ppo.cpp dispatches on the shape without compiling the recipe ten times;
// instances/ppo.cpp holds the definitions (docs/ARCHITECTURE.md, "A recipe is compiled once per
// preset").
#pragma once
#include <filesystem>

#include <gptx/recipes/ppo.hpp>

#define GPTX_CLI_RUN_PPO(S)                                                                        \
    void run_ppo<S>(const ppo_run_options&, const std::filesystem::path&, const checkpoint_info&)
#define GPTX_CLI_EXTERN_PPO(S) extern template GPTX_CLI_RUN_PPO(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_EXTERN_PPO)
} // namespace gptx
#undef GPTX_CLI_EXTERN_PPO
