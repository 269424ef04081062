// gptx/data/text_file.hpp: read a whole text file (a training corpus, a prompt file).
// Tested by tests/data/test_data.cpp.
#pragma once
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "../core/error.hpp"

namespace gptx {

// An empty corpus is always a mistake (wrong path, failed download), so it is an error here
// rather than a confusing failure later (empty vocabulary, zero batches).
inline std::string read_text_file(const std::filesystem::path& path) {
    std::error_code ec;
    GPTX_CHECK(std::filesystem::exists(path, ec), "cannot open '", path.string(),
               "': no such file");
    GPTX_CHECK(!std::filesystem::is_directory(path, ec), "cannot read '", path.string(),
               "': it is a directory");
    std::ifstream in(path, std::ios::binary);
    GPTX_CHECK(in.is_open(), "cannot open '", path.string(), "'");
    std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    GPTX_CHECK(!in.bad(), "cannot read '", path.string(), "': I/O error");
    GPTX_CHECK(!text.empty(), "'", path.string(), "' is empty");
    return text;
}

} // namespace gptx
