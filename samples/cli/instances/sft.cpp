// run_sft for every preset (instances/sft.hpp).
#include "sft.hpp"

#define GPTX_CLI_DEFINE_SFT(S) template GPTX_CLI_RUN_SFT(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_DEFINE_SFT)
} // namespace gptx
#undef GPTX_CLI_DEFINE_SFT
