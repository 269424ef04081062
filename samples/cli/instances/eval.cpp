// run_eval for every preset (instances/eval.hpp).
#include "eval.hpp"

#define GPTX_CLI_DEFINE_EVAL(S) template GPTX_CLI_RUN_EVAL(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_DEFINE_EVAL)
} // namespace gptx
#undef GPTX_CLI_DEFINE_EVAL
