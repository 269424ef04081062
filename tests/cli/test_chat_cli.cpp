// Behaviour tests of `gptx chat` in its non-interactive mode (stdin not a terminal): a scripted
// multi-turn conversation gives one reply line per user line, keeps history, and /reset,
// /system and /temperature act; bad input gives clear errors. The interactive mode is tested in a
// real terminal by tests/chat/test_chat_tmux.sh. The checkpoint is the tiny chat model that
// tests/chat/make_chat_fixture.cpp trains.
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/cli.hpp"
#include "support/scratch.hpp"

namespace fs = std::filesystem;

namespace {

std::string chat_slurp(const fs::path& p) { return gptx::test::slurp(p); }

// The tiny chat checkpoint. Under CTest the chat_fixture test makes it once for this suite and
// the terminal test (GPTX_CHAT_FIXTURE_DIR); run alone, the suite makes its own, once.
const fs::path& chat_checkpoint() {
    static const gptx::test::scratch_dir own("chat_cli_model");
    static const fs::path dir = [] {
        if (const char* d = std::getenv("GPTX_CHAT_FIXTURE_DIR");
            d && fs::exists(fs::path(d) / "model.gptx"))
            return fs::path(d);
        // Appended in place, as in run_gptx (support/cli.hpp).
        std::string cmd = GPTX_CHAT_FIXTURE_PATH;
        cmd.append(" ").append(own.path.string());
        BOOST_REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "make_chat_fixture failed");
        return own.path;
    }();
    return dir;
}

// This suite's own files (inputs, outputs, other checkpoints), removed at exit.
const fs::path& work_dir() {
    static const gptx::test::scratch_dir dir("chat_cli");
    return dir.path;
}

struct chat_run {
    int code = -1;
    std::string out, err;
    std::vector<std::string> lines; // of stdout
};

// Runs gptx chat with `input` on stdin (a file, so not a terminal), greedy unless args say so.
chat_run chat(const std::string& input, const std::string& args = "--temperature 0") {
    static int counter = 0;
    const fs::path base = work_dir() / ("run" + std::to_string(counter++));
    { std::ofstream(base.string() + ".in", std::ios::binary) << input; }
    const std::string cmd = gptx::test::gptx_path() + " chat --checkpoint " +
                            chat_checkpoint().string() + " --max-tokens 60 --threads 2 " + args +
                            " < " + base.string() + ".in > " + base.string() + ".out 2> " +
                            base.string() + ".err";
    const int status = std::system(cmd.c_str());
    chat_run r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = chat_slurp(base.string() + ".out");
    r.err = chat_slurp(base.string() + ".err");
    std::istringstream s(r.out);
    for (std::string l; std::getline(s, l);)
        r.lines.push_back(l);
    return r;
}

} // namespace

BOOST_AUTO_TEST_SUITE(chat_cli)

BOOST_AUTO_TEST_CASE(scripted_conversation_one_reply_per_line_with_history_and_reset) {
    const chat_run r = chat("story\nreverse kopa\nstory\n/reset\nstory\n");
    BOOST_TEST_REQUIRE(r.code == 0, r.err);
    BOOST_TEST(r.err.empty(), r.err);
    // Four user turns, four lines; the command writes nothing.
    BOOST_TEST_REQUIRE(r.lines.size() == 4u, r.out);
    BOOST_TEST(r.out.back() == '\n');
    BOOST_TEST(!r.lines[0].empty());
    // After /reset the conversation starts afresh: greedy decoding repeats the first reply.
    BOOST_TEST(r.lines[3] == r.lines[0]);
    // With two turns of history the same message gets another reply: the history is in the prompt.
    BOOST_TEST(r.lines[2] != r.lines[0]);
    // The same script alone gives the same first reply (a fresh process, the same model).
    const chat_run alone = chat("story\n");
    BOOST_TEST_REQUIRE(alone.lines.size() == 1u);
    BOOST_TEST(alone.lines[0] == r.lines[0]);
}

BOOST_AUTO_TEST_CASE(system_and_temperature_commands_change_replies) {
    const chat_run plain = chat("story\n");
    const chat_run sys = chat("/system reverse kopa reverse kopa\nstory\n/system\nstory\n");
    BOOST_TEST_REQUIRE(sys.code == 0, sys.err);
    BOOST_TEST_REQUIRE(sys.lines.size() == 2u, sys.out);
    BOOST_TEST(sys.lines[0] != plain.lines[0]); // the system message is in the prompt
    // /temperature 0 makes a sampling run greedy from then on.
    const chat_run t = chat("/temperature 0\nstory\n", "--temperature 1.5 --seed 3");
    BOOST_TEST_REQUIRE(t.lines.size() == 1u, t.out);
    BOOST_TEST(t.lines[0] == plain.lines[0]);
}

BOOST_AUTO_TEST_CASE(bad_commands_and_messages_keep_the_session_going) {
    const chat_run r = chat("/temperature warm\n/frobnicate\nstory ~~~\nstory");
    BOOST_TEST_REQUIRE(r.code == 0, r.err);
    BOOST_TEST(r.err.find("gptx chat: /temperature needs a number >= 0, got 'warm'") !=
                   std::string::npos,
               r.err);
    BOOST_TEST(r.err.find("gptx chat: unknown command '/frobnicate'") != std::string::npos, r.err);
    // '~' is not in the model's vocabulary: an error line on stderr, an empty reply line on
    // stdout, and the last line (without a newline at the end of input) still gets its reply.
    BOOST_TEST(r.err.find("chat format: message 1 (user)") != std::string::npos, r.err);
    BOOST_TEST_REQUIRE(r.lines.size() == 2u, r.out);
    BOOST_TEST(r.lines[0].empty());
    BOOST_TEST(r.lines[1] == chat("story\n").lines[0]);
}

// A --system the format cannot encode would fail every turn: refused before the first one.
BOOST_AUTO_TEST_CASE(an_unusable_system_message_is_refused_at_start) {
    const chat_run r = chat("story\n", "--temperature 0 --system '~~~'");
    BOOST_TEST(r.code == 1, r.err);
    BOOST_TEST(r.err.find("gptx: error: --system: chat format: message 1 (system)") !=
                   std::string::npos,
               r.err);
    BOOST_TEST(r.out.empty(), r.out);
}

BOOST_AUTO_TEST_CASE(quit_ends_and_empty_input_writes_nothing) {
    const chat_run q = chat("story\n/quit\nstory\n");
    BOOST_TEST(q.code == 0);
    BOOST_TEST(q.lines.size() == 1u, q.out);
    const chat_run e = chat("");
    BOOST_TEST(e.code == 0);
    BOOST_TEST(e.out.empty(), e.out);
}

BOOST_AUTO_TEST_CASE(a_checkpoint_without_chat_tokens_is_a_clear_error) {
    const fs::path dir = work_dir() / "plain";
    fs::create_directories(dir);
    std::ofstream(dir / "text.txt") << std::string(2000, 'a') << "\n";
    const std::string train = gptx::test::gptx_path() + " train --text " +
                              (dir / "text.txt").string() +
                              " --preset tiny --iters 1 --context 8 " + "--batch 2 --out " +
                              dir.string() + " > /dev/null 2>&1";
    BOOST_TEST_REQUIRE(std::system(train.c_str()) == 0);
    const std::string cmd = gptx::test::gptx_path() + " chat --checkpoint " + dir.string() +
                            " < /dev/null > " + (dir / "out").string() + " 2>&1";
    const int status = std::system(cmd.c_str());
    BOOST_TEST(WEXITSTATUS(status) == 1);
    const std::string out = chat_slurp(dir / "out");
    BOOST_TEST(out.find("gptx: error: ") == 0u, out);
    BOOST_TEST(out.find("model.gptx: chat format: the char tokenizer has no '<|system|>' token") !=
                   std::string::npos,
               out);
}

BOOST_AUTO_TEST_SUITE_END()
