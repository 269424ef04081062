// samples/cli/instances/finetune.hpp: run_finetune declared instantiated for every preset (extern
// template), so finetune.cpp dispatches on the shape without compiling the recipe ten times;
// instances/finetune.cpp holds the definitions (docs/ARCHITECTURE.md, "A recipe is compiled once
// per preset").
#pragma once
#include <filesystem>

#include <gptx/recipes/finetune.hpp>

#define GPTX_CLI_RUN_FINETUNE(S)                                                                   \
    void run_finetune<S>(const finetune_run_options&, const std::filesystem::path&,                \
                         const checkpoint_info&)
#define GPTX_CLI_EXTERN_FINETUNE(S) extern template GPTX_CLI_RUN_FINETUNE(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_EXTERN_FINETUNE)
} // namespace gptx
#undef GPTX_CLI_EXTERN_FINETUNE
