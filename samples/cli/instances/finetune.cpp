// run_finetune for every preset (instances/finetune.hpp).
#include "finetune.hpp"

#define GPTX_CLI_DEFINE_FINETUNE(S) template GPTX_CLI_RUN_FINETUNE(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_DEFINE_FINETUNE)
} // namespace gptx
#undef GPTX_CLI_DEFINE_FINETUNE
