// Fuzz target: bytes as one dialogue JSONL line, formatted by the chat formatter (with and
// without truncation, with a generation prompt). Every failure must be a gptx::error; any other
// exception, crash or broken invariant is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <gptx/data/dialogue.hpp>
#include <gptx/text/chat_format.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static gptx::tokenizer tok; // the byte tokenizer: every byte string encodes
    static const gptx::chat_format fmt = gptx::chat_format::register_tokens(tok);
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const gptx::conversation c = gptx::parse_dialogue_line(text, "fuzz", 1);
        for (int max_tokens : {0, 8, 64}) {
            for (bool prompt : {false, true}) {
                try {
                    const gptx::chat_tokens t = fmt.format(tok, c, {max_tokens, prompt, 0});
                    if (t.tokens.size() != t.mask.size() ||
                        (max_tokens > 0 && t.tokens.size() > std::size_t(max_tokens)) ||
                        t.reward_position >= int(t.tokens.size()) ||
                        (t.reward_position >= 0 &&
                         t.tokens[std::size_t(t.reward_position)] != fmt.end))
                        std::abort();
                } catch (const gptx::error&) {
                }
            }
        }
    } catch (const gptx::error&) {
    }
    return 0;
}
