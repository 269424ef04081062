// Behaviour tests of `gptx rm`: a reward model trained from a pre-trained checkpoint on pairwise
// and ranked comparisons, its metrics and checkpoint, exact resume, and bad input giving a
// one-line error.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include <gptx/gptx.hpp>

#include "support/cli.hpp"
#include "support/errors.hpp"
#include "support/scratch.hpp"

namespace fs = std::filesystem;
using gptx::test::run_gptx;
using gptx::test::run_result;

namespace {

std::string file_bytes(const fs::path& p) { return gptx::test::slurp(p); }

// A pre-trained char-level checkpoint (its newline, id 0, serves as end-of-text), comparisons
// (pairwise and ranked lines), and demonstrations, all written here.
struct rm_workspace : gptx::test::scratch_dir {
    rm_workspace() : scratch_dir("rm_cli") {
        {
            std::ofstream f(path / "text.txt");
            const char* lines[] = {"the quick brown fox jumps over the lazy dog.\n",
                                   "a stitch in time saves nine.\n"};
            for (int i = 0; i < 200; ++i)
                f << lines[i % 2];
        }
        const run_result t =
            run_gptx("train --text " + (path / "text.txt").string() +
                     " --preset tiny --context 32 --batch 4 --iters 3 --eval-every 3 "
                     "--eval-iters 1 --threads 2 --out " +
                     (path / "lm").string());
        BOOST_TEST_REQUIRE(t.code == 0, t.out);
        std::ofstream d(path / "cmp.jsonl");
        const char* words[] = {"the", "quick", "brown", "lazy", "time", "nine"};
        for (int i = 0; i < 24; ++i) {
            const std::string p = std::string(words[i % 6]) + " ";
            if (i % 3 == 0)
                d << "{\"prompt\": \"" << p
                  << "\", \"responses\": [\"a fox.\", \"a dog.\", \"a\"]}\n";
            else
                d << "{\"prompt\": \"" << p << "\", \"chosen\": \"fox " << words[i % 5]
                  << "\", \"rejected\": \"dog\"}\n";
        }
        std::ofstream s(path / "demos.jsonl");
        s << "{\"prompt\": \"the \", \"response\": \"fox.\"}\n"
          << "{\"prompt\": \"a \", \"response\": \"quick fox\"}\n";
    }
    std::string rm_args(const std::string& out, int iters) const {
        return "rm --init " + (path / "lm").string() + " --data " + (path / "cmp.jsonl").string() +
               " --demos " + (path / "demos.jsonl").string() +
               " --val-fraction 0.25 --batch 3 --lr 1e-3 --warmup 2 --decay-iters 8 --eval-every 3 "
               "--log-every 2 "
               "--dropout 0.1 --end-of-text 0 --threads 2 --iters " +
               std::to_string(iters) + " --out " + (path / out).string();
    }
};

void expect_rm_error(const run_result& r, const std::string& needle) {
    gptx::test::expect_error(r, needle);
}

} // namespace

BOOST_AUTO_TEST_SUITE(cli_rm)

BOOST_AUTO_TEST_CASE(trains_a_reward_model_with_metrics_and_checkpoint) {
    rm_workspace w;
    const run_result r = run_gptx(w.rm_args("rm", 6));
    BOOST_TEST_REQUIRE(r.code == 0, r.out);
    BOOST_TEST(r.out.find("train 18 prompts (") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("held out 6 prompts (10 pairs)") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("step 3: val loss") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("val accuracy") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("reward model: held-out pairwise accuracy") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("over 10 pairs (6 prompts)") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("the 2 demonstrations average 0") != std::string::npos, r.out);
    BOOST_TEST(fs::exists(w.path / "rm" / "model.gptx"));
    const std::string metrics = file_bytes(w.path / "rm" / "metrics.jsonl");
    BOOST_TEST(std::count(metrics.begin(), metrics.end(), '\n') == 6 + 3); // steps + evaluations
    BOOST_TEST(metrics.find("\"val_accuracy\"") != std::string::npos);
    // Epochs instead of iterations: 18 training prompts, 3 per step, 2 epochs = 12 steps.
    const run_result e = run_gptx("rm --init " + (w.path / "lm").string() + " --data " +
                                  (w.path / "cmp.jsonl").string() +
                                  " --val-fraction 0.25 --batch 3 --epochs 2 --eval-every 100 "
                                  "--end-of-text 0 --threads 2 --out " +
                                  (w.path / "ep").string());
    BOOST_TEST_REQUIRE(e.code == 0, e.out);
    BOOST_TEST(e.out.find("12 steps of 3 prompts") != std::string::npos, e.out);
}

// --pooling mean is saved in the run state, load_reward_model (gptx ppo and grpo's loader) reads
// the model back with it, and --resume keeps it; a run state without it reads at the end-of-text.
BOOST_AUTO_TEST_CASE(the_pooling_is_saved_and_loaded_with_the_model) {
    rm_workspace w;
    const run_result r = run_gptx(w.rm_args("mean", 3) + " --pooling mean");
    BOOST_TEST_REQUIRE(r.code == 0, r.out);
    BOOST_TEST_REQUIRE(run_gptx(w.rm_args("last", 3)).code == 0);
    const gptx::model_config cfg = gptx::read_checkpoint_info(w.path / "lm" / "model.gptx").config;
    using gptx::reward_pooling;
    BOOST_TEST((gptx::load_reward_model<gptx::presets::tiny>((w.path / "mean").string(), cfg, "ppo")
                    ->pooling() == reward_pooling::mean));
    BOOST_TEST((gptx::load_reward_model<gptx::presets::tiny>((w.path / "last").string(), cfg, "ppo")
                    ->pooling() == reward_pooling::last));
    // A run is resumed with the pooling it was trained with.
    gptx::test::expect_error(run_gptx(w.rm_args("mean", 4) + " --resume"),
                             "--resume: --pooling last differs from the run in");
    BOOST_TEST_REQUIRE(run_gptx(w.rm_args("mean", 4) + " --pooling mean --resume").code == 0);
    // A run state without the key (checkpoints from before it), or not JSON: the end-of-text.
    BOOST_TEST((gptx::saved_reward_pooling(R"({"seed": 1})", "rm.gptx") == reward_pooling::last));
    BOOST_TEST((gptx::saved_reward_pooling("", "rm.gptx") == reward_pooling::last));
    // An unknown pooling is refused by the option parser: one line, a non-zero exit, no run.
    const run_result bad = run_gptx(w.rm_args("bad", 3) + " --pooling max");
    BOOST_TEST(bad.code != 0);
    BOOST_TEST(bad.out.find("--pooling: max not in {last,mean}") != std::string::npos, bad.out);
    BOOST_TEST(!fs::exists(w.path / "bad" / "model.gptx"));
    BOOST_TEST(gptx::test::error_of([] {
                   gptx::saved_reward_pooling(R"({"pooling": "max"})", "rm.gptx");
               }).find("rm.gptx: \"pooling\" must be last or mean, got 'max'") !=
               std::string::npos);
}

BOOST_AUTO_TEST_CASE(resumed_run_equals_uninterrupted_run) {
    rm_workspace w;
    BOOST_TEST_REQUIRE(run_gptx(w.rm_args("full", 8)).code == 0);
    BOOST_TEST_REQUIRE(run_gptx(w.rm_args("split", 4)).code == 0);
    const run_result r = run_gptx(w.rm_args("split", 8) + " --resume");
    BOOST_TEST_REQUIRE(r.code == 0, r.out);
    BOOST_TEST(r.out.find("resumed from") != std::string::npos, r.out);
    // Same batches, dropout masks, optimizer states (trunk and head) and raw bias: byte-identical.
    BOOST_TEST((file_bytes(w.path / "full" / "model.gptx") ==
                file_bytes(w.path / "split" / "model.gptx")));
}

// --evaluate scores a comparisons file with a trained model and writes nothing: on the held-out
// split (the last quarter of cmp.jsonl's prompts) it prints the training run's last figures.
BOOST_AUTO_TEST_CASE(evaluate_scores_a_file_with_the_trained_model_and_writes_nothing) {
    rm_workspace w;
    const run_result r = run_gptx(w.rm_args("rm", 6));
    BOOST_TEST_REQUIRE(r.code == 0, r.out);
    {
        std::ifstream in(w.path / "cmp.jsonl");
        std::ofstream out(w.path / "held_out.jsonl");
        std::string line;
        for (int i = 0; std::getline(in, line); ++i)
            if (i >= 18)
                out << line << "\n";
    }
    const std::string model = file_bytes(w.path / "rm" / "model.gptx"),
                      metrics = file_bytes(w.path / "rm" / "metrics.jsonl");
    const std::string eval = "rm --evaluate --init " + (w.path / "lm").string() +
                             " --end-of-text 0 --batch 3 --threads 2 --out " +
                             (w.path / "rm").string() + " --data ";
    const run_result e = run_gptx(eval + (w.path / "held_out.jsonl").string());
    BOOST_TEST_REQUIRE(e.code == 0, e.out);
    // "pairwise accuracy A over 10 pairs (6 prompts)..., loss L": training's held-out figures,
    // and the same A, counts and L from --evaluate.
    const auto figures = [](const std::string& out) {
        std::smatch m;
        const std::regex re(
            R"(pairwise accuracy ([0-9.]+) (over [0-9]+ pairs \([0-9]+ prompts\)).*, loss ([0-9.]+))");
        BOOST_TEST_REQUIRE(std::regex_search(out, m, re), out);
        return m[1].str() + " " + m[2].str() + " " + m[3].str();
    };
    BOOST_TEST(figures(e.out) == figures(r.out), r.out + e.out);
    BOOST_TEST(e.out.find("over 10 pairs (6 prompts) of") != std::string::npos, e.out);
    // The whole file: 8 ranked lines of three (3 pairs each) and 16 pairs.
    const run_result all = run_gptx(eval + (w.path / "cmp.jsonl").string());
    BOOST_TEST_REQUIRE(all.code == 0, all.out);
    BOOST_TEST(all.out.find("over 40 pairs (24 prompts) of") != std::string::npos, all.out);
    BOOST_TEST((file_bytes(w.path / "rm" / "model.gptx") == model));
    BOOST_TEST((file_bytes(w.path / "rm" / "metrics.jsonl") == metrics));
    // --out may name the checkpoint file itself.
    const run_result file =
        run_gptx("rm --evaluate --init " + (w.path / "lm").string() +
                 " --end-of-text 0 --batch 3 --out " + (w.path / "rm" / "model.gptx").string() +
                 " --data " + (w.path / "held_out.jsonl").string());
    BOOST_TEST_REQUIRE(file.code == 0, file.out);
    BOOST_TEST(figures(file.out) == figures(r.out), file.out);
    // A language model is not a reward model to score with.
    expect_rm_error(run_gptx("rm --evaluate --init " + (w.path / "lm").string() +
                             " --end-of-text 0 --data " + (w.path / "cmp.jsonl").string() +
                             " --out " + (w.path / "lm").string()),
                    "reward_head");
    // No model to score with; --resume with --evaluate.
    const run_result none =
        run_gptx("rm --evaluate --init " + (w.path / "lm").string() + " --end-of-text 0 --data " +
                 (w.path / "cmp.jsonl").string() + " --out " + (w.path / "nothing").string());
    expect_rm_error(none, "--evaluate: no reward model at");
    BOOST_TEST(!fs::exists(w.path / "nothing"));
    expect_rm_error(run_gptx(eval + (w.path / "cmp.jsonl").string() + " --resume"),
                    "--evaluate and --resume exclude each other");
}

BOOST_AUTO_TEST_CASE(bad_inputs_give_one_line_errors) {
    rm_workspace w;
    const std::string init = " --init " + (w.path / "lm").string();
    const std::string data = " --data " + (w.path / "cmp.jsonl").string();
    const std::string out = " --out " + (w.path / "bad").string() + " --end-of-text 0";
    {
        std::ofstream f(w.path / "broken.jsonl");
        f << "{\"prompt\": \"the \", \"chosen\": \"fox\", \"rejected\": \"dog\"}\n"
          << "{\"prompt\": \"the \", \"responses\": [\"fox\"]}\n";
    }
    expect_rm_error(run_gptx("rm" + init + " --data " + (w.path / "broken.jsonl").string() + out),
                    "broken.jsonl:2: \"responses\" has 1 entries; need 2 to 9");
    {
        std::ofstream f(w.path / "unknown.jsonl");
        for (int i = 0; i < 4; ++i)
            f << "{\"prompt\": \"the \", \"chosen\": \"fox\", \"rejected\": \"#\"}\n";
    }
    expect_rm_error(run_gptx("rm" + init + " --data " + (w.path / "unknown.jsonl").string() + out),
                    "unknown.jsonl:1: response 1 character '#'");
    expect_rm_error(run_gptx("rm --init " + (w.path / "none").string() + data + out),
                    "cannot open checkpoint");
    expect_rm_error(run_gptx("rm" + init + data + out + " --batch 0"), "--batch must be positive");
    expect_rm_error(run_gptx("rm" + init + data + out + " --val-fraction 1.5"),
                    "--val-fraction must be in (0, 1)");
    expect_rm_error(
        run_gptx("rm" + init + data + " --end-of-text 999 --out " + (w.path / "bad").string()),
        "--end-of-text 999 is outside the vocabulary");
    expect_rm_error(run_gptx("rm" + init + data + out + " --resume"), "--resume: no checkpoint");
    // A run that could never end is refused up front (the schedules count steps in an int).
    expect_rm_error(run_gptx("rm" + init + data + out + " --epochs 1e12"), "--epochs 1e+12 means");
    // A language-model checkpoint is not a reward model to resume.
    fs::create_directories(w.path / "lmcopy");
    fs::copy_file(w.path / "lm" / "model.gptx", w.path / "lmcopy" / "model.gptx");
    expect_rm_error(run_gptx("rm" + init + data + " --end-of-text 0 --resume --out " +
                             (w.path / "lmcopy").string()),
                    "no 'reward_head' section in this checkpoint");
}

BOOST_AUTO_TEST_SUITE_END()
