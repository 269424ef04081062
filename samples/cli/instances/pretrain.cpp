// run_pretrain for every preset (instances/pretrain.hpp).
#include "pretrain.hpp"

#define GPTX_CLI_DEFINE_PRETRAIN(S) template GPTX_CLI_RUN_PRETRAIN(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_DEFINE_PRETRAIN)
} // namespace gptx
#undef GPTX_CLI_DEFINE_PRETRAIN
