// samples/cli/instances/sample.hpp: run_sample and run_sample_weights declared instantiated for
// every preset (extern template), so sample.cpp dispatches on the shape without compiling the
// recipe ten times; instances/sample.cpp holds the definitions (docs/ARCHITECTURE.md, "A recipe is
// compiled once per preset").
#pragma once
#include <filesystem>
#include <vector>

#include <gptx/recipes/sample.hpp>

#define GPTX_CLI_RUN_SAMPLE(S)                                                                     \
    std::vector<generation> run_sample<S>(const sample_run_options&, const std::filesystem::path&, \
                                          const checkpoint_info&, const sample_stream&)
#define GPTX_CLI_RUN_SAMPLE_WEIGHTS(S)                                                             \
    std::vector<generation> run_sample_weights<S>(                                                 \
        const sample_run_options&, const std::filesystem::path&, const weights_info&,              \
        const tokenizer&, const sample_stream&)
#define GPTX_CLI_EXTERN_SAMPLE(S)                                                                  \
    extern template GPTX_CLI_RUN_SAMPLE(S);                                                        \
    extern template GPTX_CLI_RUN_SAMPLE_WEIGHTS(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_EXTERN_SAMPLE)
} // namespace gptx
#undef GPTX_CLI_EXTERN_SAMPLE
