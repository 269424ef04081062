// samples/cli/common.hpp: pieces shared by the gptx subcommands (paths, preset lookup, printing).
// Tested by tests/cli/test_cli.cpp.
#pragma once
#include <cstdio>
#include <filesystem>
#include <string>

#include <gptx/gptx.hpp>

namespace gptx::cli {

namespace fs = std::filesystem;

// A run folder holds model.gptx (the checkpoint) and metrics.jsonl.
inline fs::path checkpoint_file(const fs::path& dir_or_file) {
    std::error_code ec;
    if (fs::is_directory(dir_or_file, ec))
        return dir_or_file / "model.gptx";
    return dir_or_file;
}

inline std::string preset_names() {
    std::string s;
    for (const auto& p : preset_table)
        s += (s.empty() ? "" : ", ") + std::string(p.name);
    return s;
}

inline const preset& require_preset(const std::string& name) {
    const preset* p = find_preset(name);
    GPTX_CHECK(p, "unknown preset '", name, "' (choose one of: ", preset_names(), ")");
    return *p;
}

} // namespace gptx::cli
