// run_reward_model for every preset (instances/rm.hpp).
#include "rm.hpp"

#define GPTX_CLI_DEFINE_RM(S) template GPTX_CLI_RUN_RM(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_DEFINE_RM)
} // namespace gptx
#undef GPTX_CLI_DEFINE_RM
