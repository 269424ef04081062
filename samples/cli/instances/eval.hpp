// samples/cli/instances/eval.hpp: run_eval declared instantiated for every preset (extern
// template), so eval.cpp dispatches on the shape without compiling the recipe ten times;
// instances/eval.cpp holds the definitions (docs/ARCHITECTURE.md, "A recipe is compiled once per
// preset").
#pragma once
#include <filesystem>

#include <gptx/recipes/eval.hpp>

#define GPTX_CLI_RUN_EVAL(S)                                                                       \
    eval_result run_eval<S>(const eval_run_options&, const std::filesystem::path&,                 \
                            const checkpoint_info&)
#define GPTX_CLI_EXTERN_EVAL(S) extern template GPTX_CLI_RUN_EVAL(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_EXTERN_EVAL)
} // namespace gptx
#undef GPTX_CLI_EXTERN_EVAL
