// samples/cli/export.cpp: `gptx export`, a checkpoint's weights as GGUF (llama.cpp, Ollama, LM
// Studio), Hugging Face safetensors or an llm.c .bin: the options of run_export
// (gptx/recipes/export.hpp) and its dispatch on the checkpoint's shape. Tested by
// tests/cli/test_export_cli.cpp and tests/interop/ (llama.cpp loads the GGUF).
#include <cstdint>
#include <cstdio>

#include <CLI/CLI.hpp>

#include <gptx/recipes/export.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "instances/export.hpp"

namespace gptx::cli {

using export_options = export_run_options;

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

inline void export_command(const export_options& o) {
    validate_export_options(o);
    const fs::path file = checkpoint_file(o.checkpoint);
    const checkpoint_info info = read_checkpoint_info(file);
    const bool found =
        with_checkpoint_preset(info, [&]<shape S>() { run_export<S>(o, file, info); });
    GPTX_CHECK(found, file.string(), ": no preset has the checkpoint's shape ",
               to_string(info.dims));
    std::printf("exported %s (%s, %s, %s, %ju bytes)\n", o.out.c_str(),
                to_string(info.dims).c_str(), o.format.c_str(), o.dtype.c_str(),
                std::uintmax_t(fs::file_size(o.out)));
}

void add_export_command(commands& cmds) { cmds.add(add_export_command, export_command); }

} // namespace gptx::cli
