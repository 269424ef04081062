// gptx/text/chat_format.hpp: the one chat format: role markers as special tokens; a conversation
// becomes its tokens, the loss mask and the reward position; conversations longer than the
// context drop their oldest turns and keep the system turn. Tested by
// tests/text/test_chat_format.cpp.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "tokenizer.hpp"

namespace gptx {

enum class chat_role : std::uint8_t { system, user, assistant };

inline std::string_view role_name(chat_role r) {
    switch (r) {
    case chat_role::system:
        return "system";
    case chat_role::user:
        return "user";
    case chat_role::assistant:
        return "assistant";
    }
    return "?";
}
inline std::optional<chat_role> parse_role(std::string_view s) {
    for (chat_role r : {chat_role::system, chat_role::user, chat_role::assistant})
        if (role_name(r) == s)
            return r;
    return std::nullopt;
}

struct chat_message {
    chat_role role = chat_role::user;
    std::string content;
    friend bool operator==(const chat_message&, const chat_message&) = default;
};
using conversation = std::vector<chat_message>;

// The texts of the four chat special tokens, in registration order.
inline constexpr std::array<std::string_view, 4> chat_token_texts = {"<|system|>", "<|user|>",
                                                                     "<|assistant|>", "<|end|>"};

// A formatted conversation. Every message is laid out as
//   <|role|> content <|end|>
// one after the other (no separators: the markers are the structure), and a generation prompt
// appends <|assistant|>. mask[i] = 1 marks tokens a model learns to produce: the content of
// assistant messages and the <|end|> closing each of them; the role markers, and everything of
// system and user messages, are 0. For next-token training, target t = tokens[t + 1] counts when
// mask[t + 1] is 1.
struct chat_tokens {
    std::vector<int> tokens;
    std::vector<std::uint8_t> mask; // (tokens.size())
    int reward_position = -1;       // the <|end|> closing the last assistant message; -1: none
    int reply_start = -1;           // that message's first token after its marker; -1: none
    int dropped = 0;                // messages dropped from the front to fit max_tokens
};

struct chat_format_options {
    int max_tokens = 0;             // the budget (a model's context); 0: unlimited
    bool generation_prompt = false; // append <|assistant|> (the reply follows it)
    int reserve = 0;                // tokens kept free after everything (room for the reply)
};

// The ids of the role markers in one tokenizer. Content is encoded with specials::as_text, so
// text that spells a marker ("<|end|>" typed by a user) is ordinary characters, never a marker.
class chat_format {
  public:
    int system = -1, user = -1, assistant = -1, end = -1;

    // Registers the chat tokens on `tok` (ids after its vocabulary; known ones keep theirs) and
    // returns the format. The model's embedding must grow to tok.vocab_size() (nn/resize.hpp).
    static chat_format register_tokens(tokenizer& tok) {
        chat_format f;
        f.system = tok.add_special_token(std::string(chat_token_texts[0]));
        f.user = tok.add_special_token(std::string(chat_token_texts[1]));
        f.assistant = tok.add_special_token(std::string(chat_token_texts[2]));
        f.end = tok.add_special_token(std::string(chat_token_texts[3]));
        return f;
    }
    // The format of a tokenizer that has the chat tokens (a chat checkpoint's).
    static chat_format of(const tokenizer& tok) {
        chat_format f;
        int* ids[] = {&f.system, &f.user, &f.assistant, &f.end};
        for (std::size_t i = 0; i < chat_token_texts.size(); ++i) {
            const auto id = tok.special_token_id(chat_token_texts[i]);
            GPTX_CHECK(id.has_value(), "chat format: the ", tok.kind(), " tokenizer has no '",
                       chat_token_texts[i],
                       "' token (not a chat model: train one with gptx pipeline)");
            *ids[i] = *id;
        }
        return f;
    }

    int marker(chat_role r) const {
        return r == chat_role::system ? system : r == chat_role::user ? user : assistant;
    }
    bool is_marker(int id) const {
        return id == system || id == user || id == assistant || id == end;
    }

    // One message: marker, content, <|end|>.
    std::vector<int> encode_message(const tokenizer& tok, const chat_message& m) const {
        std::vector<int> out{marker(m.role)};
        const std::vector<int> ids = tok.encode(m.content, role_name(m.role), specials::as_text);
        out.insert(out.end(), ids.begin(), ids.end());
        out.push_back(end);
        return out;
    }

    // The conversation's tokens, mask and reward position. A system message may only come first;
    // there must be at least one other message. Truncation (when the layout exceeds
    // max_tokens - reserve): drop the oldest turns, a turn being a user message with the replies
    // that follow it, so what is left starts at a user message; the system message stays. If
    // nothing but the last message is left and it still does not fit, that is an error.
    chat_tokens format(const tokenizer& tok, std::span<const chat_message> msgs,
                       const chat_format_options& opt = {}) const {
        GPTX_CHECK(system >= 0 && user >= 0 && assistant >= 0 && end >= 0,
                   "chat format: the role-marker ids are not set");
        GPTX_CHECK(opt.max_tokens >= 0 && opt.reserve >= 0,
                   "chat format: max_tokens and reserve must be >= 0");
        const bool has_system = !msgs.empty() && msgs[0].role == chat_role::system;
        const std::size_t first = has_system ? 1 : 0;
        GPTX_CHECK(msgs.size() > first, "chat format: the conversation has no user or assistant "
                                        "message");
        std::vector<std::vector<int>> enc(msgs.size());
        for (std::size_t i = 0; i < msgs.size(); ++i) {
            GPTX_CHECK(i == 0 || msgs[i].role != chat_role::system, "chat format: message ", i + 1,
                       " is a system message; only the first message may be one");
            try {
                enc[i] = encode_message(tok, msgs[i]);
            } catch (const error& e) {
                detail::fail("chat format: message ", i + 1, " (", role_name(msgs[i].role),
                             "): ", e.what());
            }
        }
        const std::size_t fixed =
            (has_system ? enc[0].size() : 0) + (opt.generation_prompt ? 1 : 0) + opt.reserve;
        std::size_t rest = 0; // tokens of messages [start, end)
        for (std::size_t i = first; i < msgs.size(); ++i)
            rest += enc[i].size();
        std::size_t start = first;
        if (opt.max_tokens > 0) {
            const std::size_t budget = std::size_t(opt.max_tokens);
            // Candidate starts: the first message, each later user message, the last message.
            while (fixed + rest > budget && start + 1 < msgs.size()) {
                std::size_t next = start + 1;
                while (next + 1 < msgs.size() && msgs[next].role != chat_role::user)
                    ++next;
                for (std::size_t i = start; i < next; ++i)
                    rest -= enc[i].size();
                start = next;
            }
            GPTX_CHECK(fixed + rest <= budget, "chat format: the last message (", rest, " tokens)",
                       has_system ? " with the system message" : "",
                       opt.generation_prompt ? " and the reply's marker" : "",
                       opt.reserve ? " and the room kept for the reply" : "", " needs ",
                       fixed + rest, " tokens; the limit is ", budget);
        }
        chat_tokens out;
        out.dropped = int(start - first);
        auto put = [&](std::size_t i) {
            const bool learn = msgs[i].role == chat_role::assistant;
            const std::size_t at = out.tokens.size();
            out.tokens.insert(out.tokens.end(), enc[i].begin(), enc[i].end());
            out.mask.resize(out.tokens.size(), learn ? 1 : 0);
            if (learn) {
                out.mask[at] = 0; // the marker is given, not produced
                out.reward_position = int(out.tokens.size()) - 1;
                out.reply_start = int(at) + 1;
            }
        };
        if (has_system)
            put(0);
        for (std::size_t i = start; i < msgs.size(); ++i)
            put(i);
        if (opt.generation_prompt) {
            out.tokens.push_back(assistant);
            out.mask.push_back(0);
        }
        return out;
    }
};

} // namespace gptx
