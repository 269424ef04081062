// tests/fuzz/fuzz_common.hpp: what every fuzz target shares. A target defines
// LLVMFuzzerTestOneInput; it is linked either with libFuzzer (clang, GPTX_FUZZ=ON) or with
// replay_main.cpp, which feeds it the committed corpus under CTest in every build.
// The contract a target checks: any input ends in a normal return or a gptx::error, never a
// crash, sanitizer report, other exception, hang or huge allocation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include <unistd.h>

#include <gptx/core/error.hpp>

namespace gptx_fuzz {

// A property the library promises (a round trip, a bound) is broken: abort, so libFuzzer
// saves the input and the replay test fails.
[[noreturn]] inline void broken(const char* what, const char* file, int line) {
    std::fprintf(stderr, "%s:%d: fuzz property broken: %s\n", file, line, what);
    std::abort();
}
#define GPTX_FUZZ_EXPECT(cond)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ::gptx_fuzz::broken(#cond, __FILE__, __LINE__);                                        \
    } while (0)

// GPTX_FUZZ_VERBOSE=1 prints each input's outcome (to check that seeds reach deep code).
inline bool verbose() {
    static const bool v = std::getenv("GPTX_FUZZ_VERBOSE") != nullptr;
    return v;
}
inline void note(const char* what) {
    if (verbose())
        std::fprintf(stderr, "fuzz: %s\n", what);
}

// Runs f(); a gptx::error is the expected outcome of a malformed input, anything else escapes
// (libFuzzer reports an uncaught exception as a crash).
template <class F> void expect_clean(F&& f) {
    try {
        f();
    } catch (const gptx::error& e) {
        if (verbose())
            std::fprintf(stderr, "fuzz: gptx::error: %s\n", e.what());
        // Errors are one line naming the culprit.
        GPTX_FUZZ_EXPECT(std::string_view(e.what()).find('\n') == std::string_view::npos);
    }
}

// The loaders read files: the input goes to a temporary file, rewritten per input, in a folder
// of this process's own (the safetensors reader looks for a config.json beside its file).
class temp_file {
  public:
    explicit temp_file(std::string_view name)
        : dir_(std::filesystem::temp_directory_path() /
               ("gptx_fuzz_" + std::to_string(::getpid()))),
          path_(dir_ / std::string(name)) {
        std::filesystem::create_directories(dir_);
    }
    ~temp_file() {
        std::error_code ec;
        std::filesystem::remove(path_, ec);
        std::filesystem::remove(dir_, ec); // fails (and stays) while other files are in it
    }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;

    const std::filesystem::path& write(const void* data, std::size_t n) {
        std::FILE* f = std::fopen(path_.c_str(), "wb");
        if (!f || (n && std::fwrite(data, 1, n, f) != n) || std::fclose(f) != 0)
            broken("cannot write the temporary input file", __FILE__, __LINE__);
        return path_;
    }
    const std::filesystem::path& write(std::string_view s) { return write(s.data(), s.size()); }
    const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path dir_, path_;
};

} // namespace gptx_fuzz
