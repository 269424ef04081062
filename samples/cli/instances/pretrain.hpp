// samples/cli/instances/pretrain.hpp: run_pretrain declared instantiated for every preset (extern
// template), so train.cpp dispatches on the shape without compiling the recipe ten times;
// instances/pretrain.cpp holds the definitions (docs/ARCHITECTURE.md, "A recipe is compiled once
// per preset").
#pragma once
#include <gptx/recipes/pretrain.hpp>

#define GPTX_CLI_RUN_PRETRAIN(S) void run_pretrain<S>(const pretrain_run_options&, pretrain_data)
#define GPTX_CLI_EXTERN_PRETRAIN(S) extern template GPTX_CLI_RUN_PRETRAIN(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_EXTERN_PRETRAIN)
} // namespace gptx
#undef GPTX_CLI_EXTERN_PRETRAIN
