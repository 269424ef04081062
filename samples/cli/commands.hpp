// samples/cli/commands.hpp: the registry of gptx subcommands; each samples/cli/<command>.cpp
// defines its add_<command>_command. Tested by tests/cli/test_*.cpp.
#pragma once
#include <functional>
#include <list>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

namespace gptx::cli {

// Holds each subcommand's options as long as main runs; the action it gives a subcommand applies
// the global options (--threads, --no-progress, the mpirun check) before the command runs.
class commands {
  public:
    explicit commands(CLI::App& app); // adds the global options
    template <class Options, class Run>
    void add(void (*add_command)(CLI::App&, Options&, std::function<void()>&), Run run) {
        auto opts = std::make_shared<Options>();
        options_.push_back(opts);
        add_command(app_, *opts, action([o = opts.get(), run] { run(*o); }));
    }

  private:
    std::function<void()>& action(std::function<void()> run);

    CLI::App& app_;
    int threads_ = 0;
    bool no_progress_ = false;
    std::string precision_ = "fp32";
    std::list<std::shared_ptr<void>> options_;
    std::list<std::function<void()>> actions_; // a list: callbacks hold references to its elements
};

// One per samples/cli/<command>.cpp, so each command compiles (and rebuilds) alone.
void add_train_command(commands& cmds);
void add_sample_command(commands& cmds);
void add_tokenize_command(commands& cmds);
void add_bench_command(commands& cmds);
void add_finetune_command(commands& cmds);
void add_eval_command(commands& cmds);
void add_taskgen_command(commands& cmds);
void add_sft_command(commands& cmds);
void add_rm_command(commands& cmds);
void add_ppo_command(commands& cmds);
void add_dpo_command(commands& cmds);  // issue #20
void add_grpo_command(commands& cmds); // issue #20: GRPO and RLOO
void add_pipeline_command(commands& cmds);
void add_report_command(commands& cmds);
void add_chat_command(commands& cmds);   // issue #7
void add_export_command(commands& cmds); // issue #22

} // namespace gptx::cli
