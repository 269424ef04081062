// load_chat_model for every preset (instances/chat.hpp).
#include "chat.hpp"

#define GPTX_CLI_DEFINE_CHAT(S) template GPTX_CLI_LOAD_CHAT_MODEL(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_DEFINE_CHAT)
} // namespace gptx
#undef GPTX_CLI_DEFINE_CHAT
