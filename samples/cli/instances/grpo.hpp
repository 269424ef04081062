// samples/cli/instances/grpo.hpp: run_grpo declared instantiated for every preset (extern
// template), so grpo.cpp dispatches on the shape without compiling the recipe ten times;
// instances/grpo.cpp holds the definitions (docs/ARCHITECTURE.md, "A recipe is compiled once per
// preset").
#pragma once
#include <filesystem>

#include <gptx/recipes/grpo.hpp>

#define GPTX_CLI_RUN_GRPO(S)                                                                       \
    void run_grpo<S>(const grpo_run_options&, const std::filesystem::path&, const checkpoint_info&)
#define GPTX_CLI_EXTERN_GRPO(S) extern template GPTX_CLI_RUN_GRPO(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_EXTERN_GRPO)
} // namespace gptx
#undef GPTX_CLI_EXTERN_GRPO
