// gptx/io/import.hpp: load GPT-2 weights from an llm.c checkpoint, a Hugging Face safetensors file
// or a GGUF file, told apart by their first bytes; and any model file (those, or a gptx
// checkpoint) as a model plus tokenizer. Tested by tests/io/test_import.cpp and test_gguf.cpp.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "checkpoint.hpp"
#include "gguf.hpp"
#include "llmc.hpp"
#include "safetensors.hpp"
#include "weights.hpp"

namespace gptx {

enum class model_file_format { checkpoint, llmc, gguf, safetensors };

namespace detail {
// gptx checkpoints start with "GPTXCKPT", GGUF files with "GGUF", llm.c files with the int32
// magic 20240326; anything else is read as safetensors (which starts with a length).
inline model_file_format detect_model_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    unsigned char b[8] = {};
    in.read(reinterpret_cast<char*>(b), 8);
    const std::string_view head(reinterpret_cast<const char*>(b), std::size_t(in.gcount()));
    if (head == checkpoint_magic)
        return model_file_format::checkpoint;
    if (head.substr(0, 4) == "GGUF")
        return model_file_format::gguf;
    if (head.size() >= 4) {
        const auto v = std::int32_t(std::uint32_t(b[0]) | std::uint32_t(b[1]) << 8 |
                                    std::uint32_t(b[2]) << 16 | std::uint32_t(b[3]) << 24);
        if (v == llmc_magic)
            return model_file_format::llmc;
    }
    return model_file_format::safetensors;
}
// For the commands' model argument: a file that cannot be read goes to the checkpoint reader,
// whose message ("cannot open checkpoint ...") names the usual input.
inline bool is_checkpoint_or_missing(const std::filesystem::path& file) {
    std::error_code ec;
    return !std::filesystem::is_regular_file(file, ec) ||
           detect_model_file(file) == model_file_format::checkpoint;
}
inline bool is_llmc_file(const std::filesystem::path& file) {
    return detect_model_file(file) == model_file_format::llmc;
}
} // namespace detail

inline weights_info read_weights_info(const std::filesystem::path& file) {
    switch (detail::detect_model_file(file)) {
    case model_file_format::llmc:
        return read_llmc_info(file);
    case model_file_format::gguf:
        return read_gguf_info(file);
    case model_file_format::checkpoint:
        detail::fail(file.string(),
                     ": is a gptx checkpoint, not a weights file (use --checkpoint)");
    default:
        return read_safetensors_info(file);
    }
}

// Build `model` from read_weights_info(file).config, then load; a failure leaves it untouched.
template <shape S>
void load_weights(const std::filesystem::path& file, transformer<S, float>& model) {
    switch (detail::detect_model_file(file)) {
    case model_file_format::llmc:
        return load_llmc<S>(file, model);
    case model_file_format::gguf:
        return load_gguf<S>(file, model);
    case model_file_format::checkpoint:
        detail::fail(file.string(),
                     ": is a gptx checkpoint, not a weights file (use --checkpoint)");
    default:
        return load_safetensors<S>(file, model);
    }
}

// The tokenizer that goes with a weights file: a GGUF's own, else GPT-2's vocabulary files
// beside it (encoder.json + vocab.bpe as released, or Hugging Face's vocab.json + merges.txt,
// the same formats); nullopt if there is none.
inline std::optional<tokenizer> read_weights_tokenizer(const std::filesystem::path& file) {
    if (detail::detect_model_file(file) == model_file_format::gguf)
        return read_gguf_tokenizer(file);
    const auto dir = file.parent_path();
    std::error_code ec;
    for (const auto& [enc, merges] :
         {std::pair{"encoder.json", "vocab.bpe"}, std::pair{"vocab.json", "merges.txt"}})
        if (std::filesystem::is_regular_file(dir / enc, ec) &&
            std::filesystem::is_regular_file(dir / merges, ec))
            return tokenizer(gpt2_tokenizer::from_files(dir / enc, dir / merges));
    return std::nullopt;
}

// A gptx checkpoint's header, or a weights file's model described as one (weights only, no
// optimizer; tokenizer_kind "gpt2"), so one code path picks the preset for either.
inline checkpoint_info read_model_info(const std::filesystem::path& file) {
    if (detail::is_checkpoint_or_missing(file))
        return read_checkpoint_info(file);
    const weights_info w = read_weights_info(file);
    GPTX_CHECK(w.dims.heads > 0, file.string(),
               ": the file does not record the number of heads "
               "(put Hugging Face's config.json beside it)");
    checkpoint_info info;
    info.dims = w.dims;
    info.config = w.config;
    info.tokenizer_kind = "gpt2";
    info.file_size = w.file_size;
    if (const auto n = detail::checkpoint_parameter_count(w.dims, w.config))
        info.num_parameters = std::size_t(*n);
    return info;
}

// The tokenizer of a gptx checkpoint (its blob carries its own checksum) or of a weights file
// (read_weights_tokenizer; an error when there is none).
inline tokenizer read_model_tokenizer(const std::filesystem::path& file) {
    if (detail::is_checkpoint_or_missing(file)) {
        detail::ckpt_reader r(file);
        r.seek(checkpoint_header_bytes);
        return tokenizer::deserialize(r.read_string(r.layout().tokenizer_bytes, "the tokenizer"));
    }
    auto t = read_weights_tokenizer(file);
    GPTX_CHECK(t, file.string(),
               ": holds no tokenizer; put GPT-2's encoder.json and vocab.bpe "
               "(or vocab.json and merges.txt) beside it, or use a GGUF");
    return std::move(*t);
}

// Loads a gptx checkpoint's weights and tokenizer, or a weights file (GGUF, safetensors, llm.c)
// and its tokenizer (read_weights_tokenizer; an error when tok is set and there is none).
// `model` is built with read_model_info(file).config. A failure leaves model and tok untouched.
template <shape S>
void load_model(const std::filesystem::path& file, transformer<S, float>& model, tokenizer* tok) {
    if (detail::is_checkpoint_or_missing(file))
        return load_checkpoint<S>(file, model, nullptr, tok, nullptr);
    std::optional<tokenizer> t;
    if (tok) {
        t = read_model_tokenizer(file);
        GPTX_CHECK(t->vocab_size() >= model.vocab(), file.string(), ": the model's vocabulary (",
                   model.vocab(), ") is larger than its tokenizer's (", t->vocab_size(), ")");
    }
    load_weights<S>(file, model);
    if (tok)
        *tok = std::move(*t);
}

} // namespace gptx
