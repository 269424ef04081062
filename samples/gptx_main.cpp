// samples/gptx_main.cpp: the gptx command line: registers the subcommands of samples/cli/*.cpp and
// turns errors into one line and an exit code. Tested by tests/cli/test_*.cpp.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include <gptx/core/cpu.hpp>
#include <gptx/ops/gemm_bf16.hpp>

#include "cli/commands.hpp"
#include "cli/dist.hpp"

namespace gptx::cli {

commands::commands(CLI::App& app) : app_(app) {
    app_.add_option("--threads", threads_,
                    "Worker threads (default: GPTX_NUM_THREADS, else all cores)")
        ->check(CLI::Range(1, 4096));
    app_.add_flag("--no-progress", no_progress_,
                  "No progress bars on stderr (also: GPTX_PROGRESS=0)");
    app_.add_option("--precision", precision_,
                    "Arithmetic of the linear layers' and LM head's GEMMs: fp32, or bf16 "
                    "operands with fp32 accumulation (training: weights, gradients, optimizer "
                    "stay fp32; sample, chat: decode from a bf16 copy of the weights)")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    // The bf16 GEMM path this process runs (GPTX_ISA may force a lower one).
    app_.set_version_flag("--version", [] {
        std::string isa;
        try {
            isa = std::string(gptx::isa_name(gptx::active_bf16_isa()));
        } catch (const std::exception& e) {
            isa = e.what();
        }
        return "gptx " + std::string(GPTX_VERSION_STRING) + " (bf16 GEMM path: " + isa + ")";
    });
}

std::function<void()>& commands::action(std::function<void()> run) {
    actions_.emplace_back([this, run = std::move(run)] {
        if (threads_ > 0)
            gptx::set_num_threads(threads_);
        check_runs_under_mpirun(app_);
        gptx::ops::set_matmul_precision(gptx::ops::parse_precision(precision_));
        if (no_progress_)
            gptx::set_progress_enabled(false);
        run();
    });
    return actions_.back();
}

} // namespace gptx::cli

int main(int argc, char** argv) {
    namespace cli = gptx::cli;
    cli::dist_scope dist(argc, argv); // MPI, when mpirun started this process
    CLI::App app{"gptx: train, sample and align GPT models on a CPU"};
    app.require_subcommand(1);
    app.fallthrough(); // --threads may follow the subcommand
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast); // last one wins

    cli::commands cmds(app);
    cli::add_train_command(cmds);
    cli::add_sample_command(cmds);
    cli::add_tokenize_command(cmds);
    cli::add_bench_command(cmds);
    cli::add_finetune_command(cmds);
    cli::add_eval_command(cmds);
    cli::add_taskgen_command(cmds);
    cli::add_sft_command(cmds);
    cli::add_rm_command(cmds);
    cli::add_ppo_command(cmds);
    cli::add_dpo_command(cmds);
    cli::add_grpo_command(cmds);
    cli::add_pipeline_command(cmds);
    cli::add_report_command(cmds);
    cli::add_chat_command(cmds);
    cli::add_export_command(cmds);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) // --help, --version
            return app.exit(e);
        // A usage error: one line, as every other error, and exit code 2 (bad usage).
        std::fflush(stdout);
        std::string what = e.what();
        for (char& c : what)
            if (c == '\n')
                c = ' ';
        // CLI11 checks required options before unknown ones; `gptx rm --bogus` should name the
        // unknown option, the likelier mistake, not the missing --data.
        if (dynamic_cast<const CLI::RequiredError*>(&e)) {
            std::vector<std::string> extra = app.remaining();
            for (const CLI::App* sub : app.get_subcommands())
                for (const std::string& a : sub->remaining())
                    extra.push_back(a);
            if (!extra.empty())
                what =
                    "The following arguments were not expected: " + CLI::detail::join(extra, " ");
        }
        std::string cmd = "gptx";
        if (!app.get_subcommands().empty()) {
            cmd += " " + app.get_subcommands().front()->get_name();
        } else if (argc > 1 && argv[1][0] != '-') { // CLI11 says "A subcommand is required"
            what = "unknown command '" + std::string(argv[1]) + "'";
        }
        std::fprintf(stderr, "gptx: error: %s (%s --help lists what it takes)\n", what.c_str(),
                     cmd.c_str());
        dist.fail();
        return 2;
    } catch (const gptx::interrupted& e) { // checkpoint saved; 130 (SIGINT) or 143 (SIGTERM)
        std::fflush(stdout);
        std::fprintf(stderr, "gptx: %s\n", e.what());
        return e.exit_code();
    } catch (const std::exception& e) { // gptx::error and the standard library's, one line each
        std::fflush(stdout);
        std::fprintf(stderr, "gptx: error: %s\n", e.what());
        dist.fail();
        return 1;
    }
    return 0;
}
