// run_ppo for every preset (instances/ppo.hpp).
#include "ppo.hpp"

#define GPTX_CLI_DEFINE_PPO(S) template GPTX_CLI_RUN_PPO(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_DEFINE_PPO)
} // namespace gptx
#undef GPTX_CLI_DEFINE_PPO
