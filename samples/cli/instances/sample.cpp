// run_sample and run_sample_weights for every preset (instances/sample.hpp).
#include "sample.hpp"

#define GPTX_CLI_DEFINE_SAMPLE(S)                                                                  \
    template GPTX_CLI_RUN_SAMPLE(S);                                                               \
    template GPTX_CLI_RUN_SAMPLE_WEIGHTS(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_DEFINE_SAMPLE)
} // namespace gptx
#undef GPTX_CLI_DEFINE_SAMPLE
