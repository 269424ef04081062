// gptx/recipes/export.hpp: a checkpoint's weights written as GGUF (llama.cpp, Ollama, LM Studio),
// Hugging Face safetensors or an llm.c .bin, what `gptx export` does.
// Tested by tests/cli/test_export_cli.cpp.
#pragma once
#include <filesystem>
#include <string>

#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "../io/checkpoint.hpp"
#include "../io/gguf.hpp"
#include "../io/llmc.hpp"
#include "../io/safetensors.hpp"
#include "../nn/transformer.hpp"
#include "../text/tokenizer.hpp"

namespace gptx {

// The checkpoint, the output and its format; the defaults are `gptx export`'s. Errors name the
// options by their command-line flags.
struct export_run_options {
    std::string checkpoint, format, dtype = "f32", out;
};

// Throws, naming the flag, on a format or type export cannot write.
inline void validate_export_options(const export_run_options& o) {
    // The command checks --format while parsing; a C++ caller gets the same message here.
    GPTX_CHECK(o.format == "gguf" || o.format == "safetensors" || o.format == "llmc",
               "--format must be gguf, safetensors or llmc, got ", o.format);
    GPTX_CHECK(o.format == "gguf" || o.dtype == "f32", "--dtype ", o.dtype, ": --format ", o.format,
               " is written as f32 (16-bit types: --format gguf)");
}

// Writes the checkpoint file (its info read beforehand, which fixes S) to o.out in o.format;
// throws unless S is GPT-2's architecture, the one the three formats hold.
template <shape S>
void run_export(const export_run_options& o, const std::filesystem::path& file,
                const checkpoint_info& info) {
    validate_export_options(o);
    detail::check_output_is_not_input(o.out, file, "--out");
    if constexpr (S.placement == norm::pre && S.bias && S.gelu == gelu_kind::tanh) {
        transformer<S> model(info.config);
        tokenizer tok;
        load_checkpoint<S>(file, model, nullptr, &tok, nullptr);
        if (o.format == "gguf")
            save_gguf<S>(o.out, model, tok, parse_gguf_dtype(o.dtype));
        else if (o.format == "safetensors")
            save_safetensors<S>(o.out, model);
        else
            save_llmc<S>(o.out, model);
    } else {
        detail::fail(file.string(), ": the model is ", to_string(S), "; ", o.format,
                     " holds GPT-2's architecture (pre-LN, biases, tanh GELU)");
    }
}

} // namespace gptx
