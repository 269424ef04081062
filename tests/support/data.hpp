// Test support: cases that need the shared data folder (GPTX_DATA_DIR: tinyshakespeare.txt and
// GPT-2's vocabulary in gpt2/). Such a case carries
//
//   BOOST_AUTO_TEST_CASE(name, *utf::label("data") *
//                                  utf::precondition(gptx::test::data_files{{"gpt2/encoder.json"}}))
//
// CTest runs the "data" cases of a room as their own entry (<room>_data, with --run_test=@data),
// which ends as "Skipped" when a precondition fails (tests/CMakeLists.txt), not as a silent pass.
#pragma once
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace gptx::test {

inline std::filesystem::path data_dir() { return GPTX_TEST_DATA_DIR; }

// The committed GPT-2-layout fixture (tests/fixtures/gpt2_tiny: a tiny model PyTorch made, in the
// llm.c and safetensors formats, with its reference logits), which the io tests import.
inline std::filesystem::path gpt2_tiny_fixture_dir() {
    return std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "gpt2_tiny";
}

// A precondition: every named file exists under data_dir().
struct data_files {
    std::vector<std::string> files;
    boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
        for (const auto& f : files)
            if (!std::filesystem::exists(data_dir() / f)) {
                boost::test_tools::assertion_result r(false);
                r.message() << "needs " << (data_dir() / f).string() << " (set GPTX_DATA_DIR)";
                return r;
            }
        return true;
    }
};

} // namespace gptx::test
