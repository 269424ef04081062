// samples/cli/export.cpp: `gptx export`, a checkpoint's weights as GGUF (llama.cpp, Ollama, LM
// Studio), Hugging Face safetensors or an llm.c .bin. Tested by tests/cli/test_export_cli.cpp
// and tests/interop/ (llama.cpp loads the GGUF).
#include <cstdio>

#include <CLI/CLI.hpp>

#include <gptx/io/import.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace gptx::cli {

struct export_options {
    std::string checkpoint, format, dtype = "f32", out;
};

inline void add_export_command(CLI::App& app, export_options& o, std::function<void()>& run) {
    auto* c =
        app.add_subcommand("export", "Write a checkpoint's weights as GGUF, safetensors or llm.c");
    c->add_option("--checkpoint", o.checkpoint, "Run folder or .gptx file")->required();
    c->add_option("--format", o.format,
                  "gguf (llama.cpp; with the GPT-2 tokenizer), safetensors (Hugging Face) or llmc")
        ->required()
        ->check(CLI::IsMember({"gguf", "safetensors", "llmc"}));
    c->add_option("--dtype", o.dtype, "Matrix type: f32, f16 or bf16 (16-bit: gguf only)")
        ->check(CLI::IsMember({"f32", "f16", "bf16"}));
    c->add_option("--out", o.out, "Output file (written whole, then renamed into place)")
        ->required();
    c->callback([&] { run(); });
}

inline void run_export(const export_options& o) {
    GPTX_CHECK(o.format == "gguf" || o.dtype == "f32", "--dtype ", o.dtype, ": --format ", o.format,
               " is written as f32 (16-bit types: --format gguf)");
    const fs::path file = checkpoint_file(o.checkpoint);
    const checkpoint_info info = read_checkpoint_info(file);
    const bool found = with_checkpoint_preset(info, [&]<shape S>() {
        // The three formats hold GPT-2: pre-LN with biases and tanh GELU.
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
            gptx::detail::fail(file.string(), ": the model is ", to_string(S), "; ", o.format,
                               " holds GPT-2's architecture (pre-LN, biases, tanh GELU)");
        }
    });
    GPTX_CHECK(found, file.string(), ": no preset has the checkpoint's shape ",
               to_string(info.dims));
    std::printf("exported %s (%s, %s, %s, %ju bytes)\n", o.out.c_str(),
                to_string(info.dims).c_str(), o.format.c_str(), o.dtype.c_str(),
                std::uintmax_t(fs::file_size(o.out)));
}

void add_export_command(commands& cmds) { cmds.add(add_export_command, run_export); }

} // namespace gptx::cli
