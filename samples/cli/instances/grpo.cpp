// run_grpo for every preset (instances/grpo.hpp).
#include "grpo.hpp"

#define GPTX_CLI_DEFINE_GRPO(S) template GPTX_CLI_RUN_GRPO(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_DEFINE_GRPO)
} // namespace gptx
#undef GPTX_CLI_DEFINE_GRPO
