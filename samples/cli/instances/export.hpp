// samples/cli/instances/export.hpp: run_export declared instantiated for every preset (extern
// template), so export.cpp dispatches on the shape without compiling the recipe ten times;
// instances/export.cpp holds the definitions (docs/ARCHITECTURE.md, "A recipe is compiled once per
// preset").
#pragma once
#include <filesystem>

#include <gptx/recipes/export.hpp>

#define GPTX_CLI_RUN_EXPORT(S)                                                                     \
    void run_export<S>(const export_run_options&, const std::filesystem::path&,                    \
                       const checkpoint_info&)
#define GPTX_CLI_EXTERN_EXPORT(S) extern template GPTX_CLI_RUN_EXPORT(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_EXTERN_EXPORT)
} // namespace gptx
#undef GPTX_CLI_EXTERN_EXPORT
