// samples/cli/instances/dpo.hpp: run_dpo declared instantiated for every preset (extern
// template), so dpo.cpp dispatches on the shape without compiling the recipe ten times;
// instances/dpo.cpp holds the definitions (docs/ARCHITECTURE.md, "A recipe is compiled once per
// preset").
#pragma once
#include <filesystem>

#include <gptx/recipes/dpo.hpp>

#define GPTX_CLI_RUN_DPO(S)                                                                        \
    void run_dpo<S>(const dpo_run_options&, const std::filesystem::path&, const checkpoint_info&)
#define GPTX_CLI_EXTERN_DPO(S) extern template GPTX_CLI_RUN_DPO(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_EXTERN_DPO)
} // namespace gptx
#undef GPTX_CLI_EXTERN_DPO
