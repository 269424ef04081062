// samples/cli/common.hpp: what the gptx subcommands share beyond the recipes' run folders
// (gptx/recipes/run_folder.hpp): preset lookup and the --weights option. Tested by
// tests/cli/test_cli.cpp, test_export_cli.cpp and test_tokenize_cli.cpp.
#pragma once
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>

#include <gptx/gptx.hpp>

namespace gptx::cli {

namespace fs = std::filesystem;

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

// --rm-likelihood and --rm-likelihood-only of the RL commands (ppo, grpo): the reward's
// likelihood term (likelihood_term, gptx/recipes/run_folder.hpp).
inline void add_likelihood_options(CLI::App* c, likelihood_term& l) {
    c->add_option("--rm-likelihood", l.weight,
                  "Reward: the RM's score plus this times the SFT model's mean log-likelihood of "
                  "the response, its end-of-text included (0: the RM alone; docs/pipeline.md)")
        ->check(CLI::NonNegativeNumber);
    c->add_flag("--rm-likelihood-only", l.only,
                "Ablation: with --rm-likelihood, the likelihood term alone is the reward");
}

// `--weights FILE` beside a command's checkpoint option: a GGUF, Hugging Face safetensors or
// llm.c file (format from its first bytes) to start from instead. It fills the same path, which
// read_model_info and load_model accept in either form; the two exclude each other, and when the
// checkpoint option was required, exactly one of them is.
inline CLI::Option* add_weights_option(CLI::App* c, CLI::Option* checkpoint, std::string& path) {
    auto* w = c->add_option("--weights", path,
                            "Start from weights instead: GGUF, safetensors or llm.c .bin (format "
                            "from the file; the tokenizer from a GGUF or GPT-2's files beside it)");
    w->excludes(checkpoint);
    checkpoint->excludes(w);
    if (checkpoint->get_required()) {
        checkpoint->required(false);
        auto* g = c->add_option_group("model", "Where the model comes from (one of)");
        g->add_option(checkpoint);
        g->add_option(w);
        g->require_option(1);
    }
    return w;
}

} // namespace gptx::cli
