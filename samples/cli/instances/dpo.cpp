// run_dpo for every preset (instances/dpo.hpp).
#include "dpo.hpp"

#define GPTX_CLI_DEFINE_DPO(S) template GPTX_CLI_RUN_DPO(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_DEFINE_DPO)
} // namespace gptx
#undef GPTX_CLI_DEFINE_DPO
