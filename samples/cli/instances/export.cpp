// run_export for every preset (instances/export.hpp).
#include "export.hpp"

#define GPTX_CLI_DEFINE_EXPORT(S) template GPTX_CLI_RUN_EXPORT(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_DEFINE_EXPORT)
} // namespace gptx
#undef GPTX_CLI_DEFINE_EXPORT
