// samples/gptx_main.cpp: the gptx command line. Each subcommand lives in samples/cli/.
// Tested by tests/cli/test_*.cpp.
#include <cstdio>
#include <functional>
#include <list>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/bench.hpp"
#include "cli/dist.hpp"
#include "cli/chat.hpp" // issue #7
#include "cli/eval.hpp"
#include "cli/finetune.hpp"
#include "cli/pipeline.hpp"
#include "cli/ppo.hpp"
#include "cli/report.hpp"
#include "cli/rm.hpp"
#include "cli/sample.hpp"
#include "cli/sft.hpp"
#include "cli/taskgen.hpp"
#include "cli/tokenize.hpp"
#include "cli/train.hpp"

namespace {

// Registers subcommands: each one's options live as long as main, and its action applies
// --threads before it runs.
class commands {
  public:
    explicit commands(CLI::App& app) : app_(app) {
        app_.add_option("--threads", threads_,
                        "Worker threads (default: GPTX_NUM_THREADS, else all cores)")
            ->check(CLI::PositiveNumber);
        app_.add_flag("--no-progress", no_progress_,
                      "No progress bars on stderr (also: GPTX_PROGRESS=0)");
    }
    template <class Options, class Run>
    void add(void (*add_command)(CLI::App&, Options&, std::function<void()>&), Run run) {
        auto opts = std::make_shared<Options>();
        options_.push_back(opts);
        actions_.emplace_back([this, o = opts.get(), run] {
            if (threads_ > 0)
                gptx::set_num_threads(threads_);
            gptx::cli::check_runs_under_mpirun(app_);
            if (no_progress_)
                gptx::set_progress_enabled(false);
            run(*o);
        });
        add_command(app_, *opts, actions_.back());
    }

  private:
    CLI::App& app_;
    int threads_ = 0;
    bool no_progress_ = false;
    std::list<std::shared_ptr<void>> options_;
    std::list<std::function<void()>> actions_; // a list: callbacks hold references to its elements
};

} // namespace

int main(int argc, char** argv) {
    namespace cli = gptx::cli;
    cli::dist_scope dist(argc, argv); // MPI, when mpirun started this process
    CLI::App app{"gptx: train, sample and align GPT models on a CPU"};
    app.require_subcommand(1);
    app.fallthrough(); // --threads may follow the subcommand
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast); // last one wins

    commands cmds(app);
    cmds.add(cli::add_train_command, cli::run_train);
    cmds.add(cli::add_sample_command, cli::run_sample);
    cmds.add(cli::add_tokenize_command, cli::run_tokenize);
    cmds.add(cli::add_bench_command, cli::run_bench);
    cmds.add(cli::add_finetune_command, cli::run_finetune);
    cmds.add(cli::add_eval_command, cli::run_eval);
    cmds.add(cli::add_taskgen_command, cli::run_taskgen);
    cmds.add(cli::add_sft_command, cli::run_sft_command);
    cmds.add(cli::add_rm_command, cli::run_rm);
    cmds.add(cli::add_ppo_command, cli::run_ppo);
    cmds.add(cli::add_pipeline_command, cli::run_pipeline);
    cmds.add(cli::add_report_command, cli::run_report);
    cmds.add(cli::add_chat_command, cli::run_chat); // issue #7

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
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
