// Test support: a scratch folder under the system's temp directory, removed with its contents
// when the test ends, and the small files tests write into it.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

namespace gptx::test {

namespace fs = std::filesystem;

// A fresh, empty folder "gptx_<tag>_<pid>_<n>" (unique per process and object), removed at scope
// exit; `s / "name"` is a path inside it.
struct scratch_dir {
    fs::path path;
    explicit scratch_dir(const std::string& tag) {
        static int counter = 0;
        path = fs::temp_directory_path() /
               ("gptx_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    ~scratch_dir() {
        std::error_code ec; // never throw from a destructor; a leftover folder is harmless
        fs::remove_all(path, ec);
    }
    fs::path operator/(const fs::path& name) const { return path / name; }
    // Writes `bytes` to the file `name` inside the folder and returns its path.
    fs::path write(const std::string& name, const std::string& bytes) const {
        std::ofstream(path / name, std::ios::binary | std::ios::trunc) << bytes;
        return path / name;
    }
};

// The whole file as bytes ("" when it cannot be opened).
inline std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

inline void write_file(const fs::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

// The CLI tests' training text: `lines` lines cycling through three short English sentences
// (30 distinct characters), so that no data download is needed.
inline void write_training_text(const fs::path& p, int lines = 300) {
    std::ofstream f(p);
    const char* text[] = {"the quick brown fox jumps over the lazy dog.\n",
                          "a stitch in time saves nine.\n",
                          "to be or not to be, that is the question.\n"};
    for (int i = 0; i < lines; ++i)
        f << text[i % 3];
}

} // namespace gptx::test
