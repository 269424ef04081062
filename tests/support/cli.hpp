// Test support: run the gptx command (GPTX_CLI_PATH, set by tests/CMakeLists.txt), capture its
// output (stdout and stderr together) and exit code, and check its one-line errors.
#pragma once
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace gptx::test {

struct run_result {
    int code = -1; // exit status; -1 when killed by a signal
    std::string out;
};

// Runs a shell command line, with stderr joined to stdout.
inline run_result shell(const std::string& cmd) {
    run_result r;
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    BOOST_REQUIRE(p);
    std::array<char, 4096> buf;
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
        r.out.append(buf.data(), n);
    const int status = ::pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

#ifdef GPTX_CLI_PATH
inline std::string gptx_path() { return GPTX_CLI_PATH; }

// `gptx <args>` (args as a shell would split them).
// (Appended in place: GCC 12 at -O3 warned, falsely, that `path + " "` moved out of bounds when
// the path was 32 characters long.)
inline run_result run_gptx(const std::string& args) {
    std::string cmd = gptx_path();
    cmd.append(" ").append(args);
    return shell(cmd);
}
#endif

// The command's error contract: exit status 1 (not a signal), a line that starts "gptx: error: ",
// and the expected words in it.
inline void expect_error(const run_result& r, const std::string& needle) {
    BOOST_TEST(r.code == 1, "exit code " << r.code << " for output: " << r.out);
    BOOST_TEST(r.out.find("gptx: error: ") != std::string::npos, r.out);
    BOOST_TEST(r.out.find(needle) != std::string::npos,
               "expected '" << needle << "' in: " << r.out);
}

} // namespace gptx::test
