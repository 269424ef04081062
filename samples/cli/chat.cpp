// samples/cli/chat.cpp: `gptx chat`, a terminal chat with a chat checkpoint: replies stream token
// by token over the KV cache, the history is kept (the formatter drops the oldest turns when it
// outgrows the context), commands /reset /system /temperature /quit, Ctrl-C stops a reply, and a
// non-interactive mode for scripts (one user turn per input line, one reply per output line).
// Tested by tests/cli/test_chat_cli.cpp and tests/chat/test_chat_tmux.sh.
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include <gptx/recipes/chat.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "instances/chat.hpp"

namespace gptx::cli {

struct chat_options {
    std::string checkpoint = "out", system;
    float temperature = 0.7f, top_p = 1.0f;
    int top_k = 0, max_tokens = 200, token_delay_ms = 0;
    std::uint64_t seed = 1;
    bool batch = false;
};

inline void add_chat_command(CLI::App& app, chat_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand(
        "chat", "Chat with a chat checkpoint (from gptx pipeline): replies stream as they are "
                "generated. Commands: /reset, /system TEXT, /temperature X, /quit; Ctrl-C stops "
                "a reply. With --batch or when stdin is not a terminal: one user turn per input "
                "line, one reply per output line (newlines in a reply written as \\n)");
    auto* from =
        c->add_option("--checkpoint", o.checkpoint, "Run folder or checkpoint file")->required();
    add_weights_option(c, from, o.checkpoint);
    c->add_option("--system", o.system, "System message that starts the conversation");
    c->add_option("--temperature", o.temperature, "Sampling temperature (0 = greedy)");
    c->add_option("--top-k", o.top_k, "Keep the k most likely tokens (0 = all)");
    c->add_option("--top-p", o.top_p, "Nucleus: keep the smallest set with this much probability");
    c->add_option("--max-tokens", o.max_tokens, "Longest reply, in tokens");
    c->add_option("--seed", o.seed, "Sampling seed (reply n uses seed + n)");
    c->add_flag("--batch", o.batch, "Non-interactive even on a terminal");
    c->add_option("--token-delay-ms", o.token_delay_ms,
                  "Pause after each streamed token (for demos and the terminal test)");
    c->callback([&] { run(); });
}

namespace detail {

// Set by SIGINT; checked before each token and while waiting for input.
inline volatile std::sig_atomic_t chat_interrupted = 0;
inline void chat_on_sigint(int) { chat_interrupted = 1; }

// Lines from a file descriptor with read(2), so Ctrl-C at the prompt (EINTR) is seen.
class line_reader {
  public:
    enum class result { line, interrupted, end };
    result next(std::string& line) {
        for (;;) {
            if (const auto nl = buf_.find('\n'); nl != std::string::npos) {
                line = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                if (!line.empty() && line.back() == '\r')
                    line.pop_back();
                return result::line;
            }
            char tmp[4096];
            const ssize_t n = ::read(0, tmp, sizeof tmp);
            if (n < 0 && errno == EINTR) {
                if (chat_interrupted) {
                    chat_interrupted = 0;
                    buf_.clear(); // the terminal discarded the line being typed
                    return result::interrupted;
                }
                continue;
            }
            GPTX_CHECK(n >= 0, "chat: cannot read standard input");
            if (n == 0) {
                if (buf_.empty())
                    return result::end;
                line.swap(buf_);
                buf_.clear();
                return result::line;
            }
            buf_.append(tmp, std::size_t(n));
        }
    }

  private:
    std::string buf_;
};

// The terminal loop, written against chat_model so it compiles once, not once per shape.
inline void chat_session(const chat_options& o, chat_model& model) {
    const tokenizer& tok = model.tok();
    const chat_format& fmt = model.format();
    const bool interactive = !o.batch && ::isatty(0);
    const int ctx = model.context();
    std::string system = o.system;
    float temperature = o.temperature;
    conversation history;
    // A --system the format cannot encode or fit beside a reply would fail every turn. The
    // probe's user message is empty (its marker and end), so one more token stands for the
    // shortest line a user can send.
    if (!system.empty()) {
        const conversation probe{{chat_role::system, system}, {chat_role::user, ""}};
        try {
            fmt.format(tok, probe,
                       {.max_tokens = ctx,
                        .generation_prompt = true,
                        .reserve = std::min(o.max_tokens, ctx / 2) + 1});
        } catch (const gptx::error& e) {
            throw gptx::error(std::string("--system: ") + e.what());
        }
    }

    struct sigaction sa {};
    sa.sa_handler = chat_on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: a blocked read returns EINTR
    struct sigaction old {};
    sigaction(SIGINT, &sa, &old);
    struct restore {
        struct sigaction s;
        ~restore() { sigaction(SIGINT, &s, nullptr); }
    } restore_sigint{old};

    auto note = [&](const std::string& s) { // command feedback: on the terminal only
        if (interactive)
            std::printf("(%s)\n", s.c_str());
    };
    if (interactive)
        std::printf("gptx chat: %s, vocabulary %d, context %d. Commands: /reset, /system TEXT, "
                    "/temperature X, /quit. Ctrl-C stops a reply.\n",
                    to_string(model.dims()).c_str(), model.vocab(), ctx);
    line_reader in;
    std::string line;
    std::uint64_t turn = 0;
    for (;;) {
        if (interactive) {
            std::fputs("you> ", stdout);
            std::fflush(stdout);
        }
        const auto r = in.next(line);
        if (r == line_reader::result::end) {
            if (interactive)
                std::fputs("\n", stdout);
            break;
        }
        if (r == line_reader::result::interrupted) {
            if (interactive)
                std::fputs("\n(Ctrl-C stops a reply; /quit leaves)\n", stdout);
            continue;
        }
        if (!line.empty() && line[0] == '/') {
            const auto sp = line.find(' ');
            const std::string cmd = line.substr(0, sp);
            const std::string arg = sp == std::string::npos ? "" : line.substr(sp + 1);
            if (cmd == "/quit" || cmd == "/exit")
                break;
            if (cmd == "/reset") {
                history.clear();
                note("conversation reset");
            } else if (cmd == "/system") {
                system = arg;
                note(arg.empty() ? "system message cleared" : "system message set");
            } else if (cmd == "/temperature") {
                char* end = nullptr;
                const float t = std::strtof(arg.c_str(), &end);
                if (arg.empty() || *end != '\0' || !(t >= 0.0f) || t > 100.0f) {
                    std::fprintf(stderr, "gptx chat: /temperature needs a number >= 0, got '%s'\n",
                                 arg.c_str());
                } else {
                    temperature = t;
                    note("temperature " + arg);
                }
            } else {
                std::fprintf(stderr,
                             "gptx chat: unknown command '%s' (/reset, /system TEXT, "
                             "/temperature X, /quit)\n",
                             cmd.c_str());
            }
            std::fflush(stdout);
            continue;
        }

        conversation conv;
        if (!system.empty())
            conv.push_back({chat_role::system, system});
        conv.insert(conv.end(), history.begin(), history.end());
        conv.push_back({chat_role::user, line});
        chat_tokens prompt;
        try {
            prompt = fmt.format(tok, conv,
                                {.max_tokens = ctx,
                                 .generation_prompt = true,
                                 .reserve = std::min(o.max_tokens, ctx / 2)});
        } catch (const error& e) {
            std::fprintf(stderr, "gptx chat: %s\n", e.what());
            if (!interactive)
                std::fputs("\n", stdout); // one output line per input line
            std::fflush(stdout);
            continue;
        }
        if (interactive)
            std::fputs("gptx> ", stdout);
        std::fflush(stdout);
        std::vector<int> reply;
        chat_interrupted = 0;
        const auto on_token = [&](int id) {
            if (chat_interrupted || tok.special().text_of(id))
                return false; // Ctrl-C, or the model started another turn
            std::string piece = tok.decode_token(id);
            if (!interactive)
                for (std::size_t k = 0; (k = piece.find('\n', k)) != std::string::npos; k += 2)
                    piece.replace(k, 1, "\\n");
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            reply.push_back(id);
            if (o.token_delay_ms > 0)
                std::this_thread::sleep_for(std::chrono::milliseconds(o.token_delay_ms));
            return !chat_interrupted;
        };
        const sampling_config sc{temperature, o.top_k, o.top_p, o.seed + turn++};
        model.reply(prompt.tokens, o.max_tokens, sc, on_token);
        if (chat_interrupted && interactive)
            std::fputs(" [stopped]", stdout);
        chat_interrupted = 0;
        std::fputs("\n", stdout);
        std::fflush(stdout);
        history.push_back({chat_role::user, line});
        history.push_back({chat_role::assistant, tok.decode(reply)});
    }
}

} // namespace detail

inline void chat_command(const chat_options& o) {
    GPTX_CHECK(o.max_tokens > 0, "--max-tokens must be positive, got ", o.max_tokens);
    GPTX_CHECK(o.temperature >= 0 && std::isfinite(o.temperature),
               "--temperature must be a finite number >= 0, got ", o.temperature);
    GPTX_CHECK(o.top_k >= 0, "--top-k must be >= 0, got ", o.top_k);
    GPTX_CHECK(o.top_p > 0 && o.top_p <= 1, "--top-p must be in (0, 1], got ", o.top_p);
    GPTX_CHECK(o.token_delay_ms >= 0, "--token-delay-ms must be >= 0, got ", o.token_delay_ms);
    const fs::path file = checkpoint_file(o.checkpoint);
    const checkpoint_info info = read_model_info(file);
    std::unique_ptr<chat_model> model;
    const bool found =
        with_checkpoint_preset(info, [&]<shape S>() { model = load_chat_model<S>(file, info); });
    GPTX_CHECK(found, file.string(), ": no preset has the checkpoint's shape ",
               to_string(info.dims));
    detail::chat_session(o, *model);
}

void add_chat_command(commands& cmds) { cmds.add(add_chat_command, chat_command); }

} // namespace gptx::cli
