// gptx/core/file.hpp: whole-file reads with one-line errors, and the atomic whole-file write
// (temporary file, then rename) that every writer of small files uses. Tested by
// tests/core/test_core.cpp.
#pragma once
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "error.hpp"

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

namespace detail {

inline std::string read_whole_file(const std::filesystem::path& path, std::string_view what) {
    std::error_code ec;
    GPTX_CHECK(!std::filesystem::is_directory(path, ec), "cannot read ", what, " '", path.string(),
               "': it is a directory");
    GPTX_CHECK(std::filesystem::is_regular_file(path, ec), "cannot open ", what, " '",
               path.string(), "': no such file");
    std::ifstream in(path, std::ios::binary);
    GPTX_CHECK(in.is_open(), "cannot open ", what, " '", path.string(), "'");
    std::string s{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    GPTX_CHECK(!in.bad(), "cannot read ", what, " '", path.string(), "': I/O error");
    return s;
}

// The temporary, path + ".tmp", that an atomic write fills and then renames over path. Refuses a
// path the rename would destroy rather than write: a folder, or a device such as /dev/null. A path
// that is a symbolic link to a file is replaced by the new file, and the file it named is never
// written (a run's model.gptx linked to a shared checkpoint leaves that checkpoint alone). A stale
// temporary is removed first: one that is a link would otherwise be written through.
inline std::filesystem::path atomic_temp_for(const std::filesystem::path& path) {
    std::error_code ec;
    const std::filesystem::file_status st = std::filesystem::status(path, ec);
    GPTX_CHECK(!std::filesystem::exists(st) || std::filesystem::is_regular_file(st),
               "cannot write '", path.string(), "': it exists and is not a regular file (",
               std::filesystem::is_directory(st) ? "a folder" : "a device, socket or pipe", ")");
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    std::filesystem::remove(tmp, ec); // a file or link; a non-empty folder stays and fails the open
    return tmp;
}

// Refuses an output path that is one of the command's inputs (an export written over the
// checkpoint it reads): the input would be gone.
inline void check_output_is_not_input(const std::filesystem::path& out,
                                      const std::filesystem::path& in, std::string_view flag) {
    std::error_code ec;
    GPTX_CHECK(!std::filesystem::equivalent(out, in, ec), flag, " '", out.string(),
               "' is the input file '", in.string(), "'; give another path");
}

// Writes path + ".tmp" then renames it over path, so readers never see half a file.
inline void write_whole_file(const std::filesystem::path& path, std::string_view data) {
    const std::filesystem::path tmp = atomic_temp_for(path);
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        GPTX_CHECK(out.is_open(), "cannot open '", tmp.string(), "' for writing");
        out.write(data.data(), std::streamsize(data.size()));
        out.close();
        if (!out) {
            std::error_code ec;
            std::filesystem::remove(tmp, ec);
            fail("cannot write '", tmp.string(), "' (disk full?)");
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::error_code ignored; // keep the rename's error for the message
        std::filesystem::remove(tmp, ignored);
        fail("cannot rename '", tmp.string(), "' to '", path.string(), "': ", ec.message());
    }
}

} // namespace detail

} // namespace gptx
