// gptx/io/import.hpp: load GPT-2 weights from either an llm.c checkpoint or a Hugging Face
// safetensors file, told apart by their first bytes. Tested by tests/io/test_import.cpp.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "llmc.hpp"
#include "safetensors.hpp"
#include "weights.hpp"

namespace gptx {

namespace detail {
// llm.c files start with the int32 magic 20240326; anything else is read as safetensors.
inline bool is_llmc_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    unsigned char b[4] = {};
    if (!in.read(reinterpret_cast<char*>(b), 4))
        return false;
    const auto v = std::int32_t(std::uint32_t(b[0]) | std::uint32_t(b[1]) << 8 |
                                std::uint32_t(b[2]) << 16 | std::uint32_t(b[3]) << 24);
    return v == llmc_magic;
}
} // namespace detail

inline weights_info read_weights_info(const std::filesystem::path& file) {
    return detail::is_llmc_file(file) ? read_llmc_info(file) : read_safetensors_info(file);
}

// Build `model` from read_weights_info(file).config, then load; a failure leaves it untouched.
template <shape S>
void load_weights(const std::filesystem::path& file, transformer<S, float>& model) {
    if (detail::is_llmc_file(file))
        load_llmc<S>(file, model);
    else
        load_safetensors<S>(file, model);
}

} // namespace gptx
