// gptx/data/token_file.hpp: llm.c / nanoGPT token files (.bin): 256 int32 header, uint16 tokens.
// Tested by tests/data/test_data.cpp.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/file.hpp"

namespace gptx {

inline constexpr std::int32_t token_file_magic = 20240520;
inline constexpr std::int32_t token_file_version = 1;
inline constexpr std::size_t token_file_header_bytes = 256 * sizeof(std::int32_t);

namespace detail {
// Explicit little-endian, so files match llm.c's (written on x86) on any host.
inline void token_file_put(char* p, std::uint32_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
        p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
inline std::uint32_t token_file_get(const char* p, int bytes) {
    std::uint32_t v = 0;
    for (int i = 0; i < bytes; ++i)
        v |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
    return v;
}
} // namespace detail

// Writes `path + ".tmp"` then renames it over `path`, so a reader never sees half a file.
inline void write_token_file(const std::filesystem::path& path, std::span<const int> tokens) {
    const std::string name = path.string();
    GPTX_CHECK(tokens.size() <= 0x7fffffffu, name, ": ", tokens.size(),
               " tokens do not fit the int32 count in the header");
    // Validate everything before creating a file, so a failure leaves nothing behind.
    for (std::size_t i = 0; i < tokens.size(); ++i)
        GPTX_CHECK(tokens[i] >= 0 && tokens[i] < 65536, name, ": token ", tokens[i],
                   " at position ", i, " does not fit uint16 (must be in 0..65535)");

    std::vector<char> buf(token_file_header_bytes + 2 * tokens.size(), 0);
    detail::token_file_put(buf.data() + 0, static_cast<std::uint32_t>(token_file_magic), 4);
    detail::token_file_put(buf.data() + 4, static_cast<std::uint32_t>(token_file_version), 4);
    detail::token_file_put(buf.data() + 8, static_cast<std::uint32_t>(tokens.size()), 4);
    for (std::size_t i = 0; i < tokens.size(); ++i)
        detail::token_file_put(buf.data() + token_file_header_bytes + 2 * i,
                               static_cast<std::uint32_t>(tokens[i]), 2);

    detail::write_whole_file(path, std::string_view(buf.data(), buf.size()));
}

// Tokens come back as int, the id type of tokenizers and batchers.
inline std::vector<int> read_token_file(const std::filesystem::path& path) {
    const std::string name = path.string();
    std::error_code ec;
    GPTX_CHECK(!std::filesystem::is_directory(path, ec), "cannot read '", name,
               "': it is a directory (expected a token file)");
    GPTX_CHECK(std::filesystem::is_regular_file(path, ec), "cannot open '", name,
               "': no such file");
    const auto size = static_cast<std::uint64_t>(std::filesystem::file_size(path, ec));
    GPTX_CHECK(!ec, "cannot open '", name, "': ", ec.message());
    std::ifstream in(path, std::ios::binary);
    GPTX_CHECK(in.is_open(), "cannot open '", name, "'");
    GPTX_CHECK(size >= token_file_header_bytes, name, ": too small for a token file header (", size,
               " bytes, expected at least ", token_file_header_bytes, ")");

    char header[token_file_header_bytes];
    in.read(header, sizeof header);
    GPTX_CHECK(in.good(), name, ": cannot read the header");
    const auto magic = static_cast<std::int32_t>(detail::token_file_get(header, 4));
    GPTX_CHECK(magic == token_file_magic, name, ": bad magic ", magic, " (expected ",
               token_file_magic, ")");
    const auto version = static_cast<std::int32_t>(detail::token_file_get(header + 4, 4));
    GPTX_CHECK(version == token_file_version, name, ": unsupported version ", version,
               " (expected ", token_file_version, ")");
    const auto count = static_cast<std::int32_t>(detail::token_file_get(header + 8, 4));
    GPTX_CHECK(count >= 0, name, ": negative token count ", count, " in the header");

    const std::uint64_t held = (size - token_file_header_bytes) / 2;
    const std::uint64_t want = static_cast<std::uint64_t>(count);
    GPTX_CHECK(held >= want, name, ": truncated: header says ", want, " tokens, file holds ", held);
    GPTX_CHECK(size == token_file_header_bytes + 2 * want, name, ": header says ", want,
               " tokens but the file is ", size, " bytes (expected ",
               token_file_header_bytes + 2 * want, ")");

    std::vector<char> raw(2 * want);
    in.read(raw.data(), static_cast<std::streamsize>(raw.size()));
    GPTX_CHECK(in.good() || raw.empty(), name, ": I/O error reading ", want, " tokens");
    std::vector<int> tokens(want);
    for (std::size_t i = 0; i < want; ++i)
        tokens[i] = static_cast<int>(detail::token_file_get(raw.data() + 2 * i, 2));
    return tokens;
}

} // namespace gptx
