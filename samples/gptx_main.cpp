// samples/gptx_main.cpp: the gptx command line. Each subcommand lives in samples/cli/.
// Tested by tests/cli/test_cli.cpp.
#include <cstdio>
#include <functional>

#include <CLI/CLI.hpp>

#include "cli/bench.hpp"
#include "cli/eval.hpp"
#include "cli/finetune.hpp"
#include "cli/pipeline.hpp"
#include "cli/ppo.hpp"
#include "cli/rm.hpp"
#include "cli/sample.hpp"
#include "cli/sft.hpp"
#include "cli/taskgen.hpp"
#include "cli/tokenize.hpp"
#include "cli/train.hpp"

int main(int argc, char** argv) {
    CLI::App app{"gptx: train, sample and align GPT models on a CPU"};
    app.require_subcommand(1);
    app.fallthrough(); // --threads may follow the subcommand
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast); // last one wins
    int threads = 0;
    app.add_option("--threads", threads, "Worker threads (default: GPTX_NUM_THREADS, else all cores)")
        ->check(CLI::PositiveNumber);

    gptx::cli::train_options train_opts;
    std::function<void()> train_run = [&] {
        if (threads > 0) gptx::set_num_threads(threads);
        gptx::cli::run_train(train_opts);
    };
    gptx::cli::add_train_command(app, train_opts, train_run);

    gptx::cli::sample_options sample_opts;
    std::function<void()> sample_run = [&] {
        if (threads > 0) gptx::set_num_threads(threads);
        gptx::cli::run_sample(sample_opts);
    };
    gptx::cli::add_sample_command(app, sample_opts, sample_run);

    gptx::cli::tokenize_options tokenize_opts;
    std::function<void()> tokenize_run = [&] {
        if (threads > 0) gptx::set_num_threads(threads);
        gptx::cli::run_tokenize(tokenize_opts);
    };
    gptx::cli::add_tokenize_command(app, tokenize_opts, tokenize_run);

    gptx::cli::bench_options bench_opts;
    std::function<void()> bench_run = [&] {
        if (threads > 0) gptx::set_num_threads(threads);
        gptx::cli::run_bench(bench_opts);
    };
    gptx::cli::add_bench_command(app, bench_opts, bench_run);

    gptx::cli::ppo_options ppo_opts;
    std::function<void()> ppo_run = [&] {
        if (threads > 0) gptx::set_num_threads(threads);
        gptx::cli::run_ppo(ppo_opts);
    };
    gptx::cli::add_ppo_command(app, ppo_opts, ppo_run);

    gptx::cli::rm_options rm_opts;
    std::function<void()> rm_run = [&] {
        if (threads > 0) gptx::set_num_threads(threads);
        gptx::cli::run_rm(rm_opts);
    };
    gptx::cli::add_rm_command(app, rm_opts, rm_run);

    gptx::cli::sft_options sft_opts;
    std::function<void()> sft_run = [&] {
        if (threads > 0) gptx::set_num_threads(threads);
        gptx::cli::run_sft_command(sft_opts);
    };
    gptx::cli::add_sft_command(app, sft_opts, sft_run);

    gptx::cli::pipeline_options pipeline_opts;
    std::function<void()> pipeline_run = [&] {
        if (threads > 0) gptx::set_num_threads(threads);
        gptx::cli::run_pipeline(pipeline_opts);
    };
    gptx::cli::add_pipeline_command(app, pipeline_opts, pipeline_run);

    gptx::cli::finetune_options finetune_opts;
    std::function<void()> finetune_run = [&] {
        if (threads > 0) gptx::set_num_threads(threads);
        gptx::cli::run_finetune(finetune_opts);
    };
    gptx::cli::add_finetune_command(app, finetune_opts, finetune_run);

    gptx::cli::eval_options eval_opts;
    std::function<void()> eval_run = [&] {
        if (threads > 0) gptx::set_num_threads(threads);
        gptx::cli::run_eval(eval_opts);
    };
    gptx::cli::add_eval_command(app, eval_opts, eval_run);

    gptx::cli::taskgen_options taskgen_opts;
    std::function<void()> taskgen_run = [&] { gptx::cli::run_taskgen(taskgen_opts); };
    gptx::cli::add_taskgen_command(app, taskgen_opts, taskgen_run);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const gptx::error& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "gptx: error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "gptx: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
