// samples/cli/instances/chat.hpp: load_chat_model declared instantiated for every preset (extern
// template); instances/chat.cpp holds the definitions (docs/ARCHITECTURE.md, "A recipe is compiled
// once per preset").
#pragma once
#include <filesystem>
#include <memory>

#include <gptx/recipes/chat.hpp>

#define GPTX_CLI_LOAD_CHAT_MODEL(S)                                                                \
    std::unique_ptr<chat_model> load_chat_model<S>(const std::filesystem::path&,                   \
                                                   const checkpoint_info&)
#define GPTX_CLI_EXTERN_CHAT(S) extern template GPTX_CLI_LOAD_CHAT_MODEL(S);
namespace gptx {
GPTX_FOR_EACH_PRESET(GPTX_CLI_EXTERN_CHAT)
} // namespace gptx
#undef GPTX_CLI_EXTERN_CHAT
