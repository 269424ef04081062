// samples/cli/instances/sft.hpp: run_sft declared instantiated for every preset (extern
// template), so sft.cpp dispatches on the shape without compiling the recipe ten times;
// instances/sft.cpp holds the definitions (docs/ARCHITECTURE.md, "A recipe is compiled once per
// preset").
#pragma once
#include <filesystem>

#include <gptx/recipes/sft.hpp>

#define GPTX_CLI_RUN_SFT(S)                                                                        \
    void run_sft<S>(const sft_run_options&, const std::filesystem::path&, const checkpoint_info&)
#define GPTX_CLI_EXTERN_SFT(S) extern template GPTX_CLI_RUN_SFT(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_EXTERN_SFT)
} // namespace gptx
#undef GPTX_CLI_EXTERN_SFT
