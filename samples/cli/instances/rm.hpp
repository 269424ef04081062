// samples/cli/instances/rm.hpp: run_reward_model declared instantiated for every preset (extern
// template), so rm.cpp dispatches on the shape without compiling the recipe ten times;
// instances/rm.cpp holds the definitions (docs/ARCHITECTURE.md, "A recipe is compiled once per
// preset").
#pragma once
#include <filesystem>

#include <gptx/recipes/rm.hpp>

#define GPTX_CLI_RUN_RM(S)                                                                         \
    void run_reward_model<S>(const reward_model_run_options&, const std::filesystem::path&,        \
                             const checkpoint_info&)
#define GPTX_CLI_EXTERN_RM(S) extern template GPTX_CLI_RUN_RM(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_EXTERN_RM)
} // namespace gptx
#undef GPTX_CLI_EXTERN_RM
