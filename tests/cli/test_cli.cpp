// Behaviour tests of the gptx command: train and sample round trips, exact resume, and every bad
// input giving a one-line error with a non-zero exit (never a crash).
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <gptx/recipes/pretrain.hpp>

#include "support/cli.hpp"
#include "support/scratch.hpp"

namespace fs = std::filesystem;
using gptx::test::expect_error;
using gptx::test::run_result;
using gptx::test::slurp;

namespace {

run_result run(const std::string& args) { return gptx::test::run_gptx(args); }

// A scratch folder with a small training text (written here, so no data download is needed).
struct workspace : gptx::test::scratch_dir {
    fs::path text = path / "text.txt";
    workspace() : scratch_dir("cli") { gptx::test::write_training_text(text, 300); }
    std::string train_args(const std::string& out, int iters) const {
        return "train --text " + text.string() + " --preset tiny --context 32 --batch 4 --iters " +
               std::to_string(iters) +
               " --decay-iters 20 --warmup 2 --lr 3e-3 --eval-every 5 --eval-iters 2 " +
               "--log-every 5 --dropout 0.1 --threads 2 --out " + (path / out).string();
    }
};

} // namespace

BOOST_AUTO_TEST_SUITE(cli)

BOOST_AUTO_TEST_CASE(train_then_sample) {
    workspace w;
    const run_result t = run(w.train_args("run", 20));
    BOOST_TEST_REQUIRE(t.code == 0, t.out);
    BOOST_TEST(t.out.find("step 10: train loss") != std::string::npos, t.out);
    BOOST_TEST(t.out.find("ms/step") != std::string::npos);
    BOOST_TEST(t.out.find("tok/s") != std::string::npos);
    BOOST_TEST(fs::exists(w.path / "run" / "model.gptx"));
    const std::string metrics = slurp(w.path / "run" / "metrics.jsonl");
    BOOST_TEST(metrics.find("\"val_loss\"") != std::string::npos);
    // The whole-val-split loss, once, at the last evaluation.
    BOOST_TEST(t.out.find("step 20: train loss") != std::string::npos, t.out);
    const std::size_t full_at = t.out.find(", val loss full ");
    BOOST_TEST_REQUIRE(full_at != std::string::npos, t.out);
    BOOST_TEST(full_at == t.out.rfind(", val loss full "), t.out);
    BOOST_TEST(full_at > t.out.find("step 20: train loss"), t.out);
    BOOST_TEST(metrics.find("\"val_loss_full\"") == metrics.rfind("\"val_loss_full\""));
    BOOST_TEST(metrics.find("\"val_loss_full\"") != std::string::npos);
    BOOST_TEST(std::count(metrics.begin(), metrics.end(), '\n') ==
               20 + 5); // 20 steps + 5 evaluations

    const std::string sample = "sample --checkpoint " + (w.path / "run").string() +
                               " --prompt 'the ' --tokens 50 --seed 3 --temperature 0.8";
    const run_result s = run(sample);
    BOOST_TEST_REQUIRE(s.code == 0, s.out);
    BOOST_TEST(s.out.rfind("the ", 0) == 0, s.out);
    BOOST_TEST(s.out.size() > 50u);
    BOOST_TEST(run(sample).out == s.out); // same seed, same text
}

BOOST_AUTO_TEST_CASE(resumed_run_equals_uninterrupted_run) {
    workspace w;
    BOOST_TEST_REQUIRE(run(w.train_args("full", 20)).code == 0);
    BOOST_TEST_REQUIRE(run(w.train_args("split", 10)).code == 0);
    const run_result r = run(w.train_args("split", 20) + " --resume");
    BOOST_TEST_REQUIRE(r.code == 0, r.out);
    BOOST_TEST(r.out.find("resumed from") != std::string::npos);
    // Same data order, dropout masks and optimizer state: the final checkpoints are byte-identical.
    BOOST_TEST((slurp(w.path / "full" / "model.gptx") == slurp(w.path / "split" / "model.gptx")));
}

// What the command does, a C++ program gets from its recipe: run_pretrain with the options the
// flags set writes the command's checkpoint, byte for byte.
BOOST_AUTO_TEST_CASE(the_pretrain_recipe_called_from_code_writes_what_the_command_writes) {
    workspace w;
    BOOST_TEST_REQUIRE(run(w.train_args("command", 10)).code == 0);
    gptx::pretrain_run_options o;
    o.text = w.text.string();
    o.preset_name = "tiny";
    o.context = 32;
    o.batch = 4;
    o.iters = 10;
    o.decay_iters = 20;
    o.warmup = 2;
    o.lr = 3e-3f;
    o.eval_every = 5;
    o.eval_iters = 2;
    o.log_every = 5;
    o.dropout = 0.1f;
    o.out = (w.path / "code").string();
    gptx::run_pretrain<gptx::presets::tiny>(o, gptx::read_pretrain_data(o));
    BOOST_TEST((slurp(w.path / "code" / "model.gptx") == slurp(w.path / "command" / "model.gptx")));
    o.lr = 2e-3f; // and the comparison can fail
    o.out = (w.path / "other").string();
    gptx::run_pretrain<gptx::presets::tiny>(o, gptx::read_pretrain_data(o));
    BOOST_TEST(
        (slurp(w.path / "other" / "model.gptx") != slurp(w.path / "command" / "model.gptx")));
}

// PyTorch's stream (--rng torch) resumes exactly too: the pending batch is redrawn from its
// position and the evaluations' draws are skipped.
BOOST_AUTO_TEST_CASE(resumed_torch_stream_run_equals_uninterrupted_run) {
    workspace w;
    const std::string torch = " --rng torch --dropout 0";
    BOOST_TEST_REQUIRE(run(w.train_args("full", 20) + torch).code == 0);
    BOOST_TEST_REQUIRE(run(w.train_args("split", 12) + torch).code == 0); // saved off the grid
    const run_result r = run(w.train_args("split", 20) + torch + " --resume");
    BOOST_TEST_REQUIRE(r.code == 0, r.out);
    BOOST_TEST((slurp(w.path / "full" / "model.gptx") == slurp(w.path / "split" / "model.gptx")));
    // ... and differs from gptx's own stream at the same seed.
    BOOST_TEST_REQUIRE(run(w.train_args("own", 20) + " --dropout 0").code == 0);
    BOOST_TEST((slurp(w.path / "own" / "model.gptx") != slurp(w.path / "full" / "model.gptx")));
    expect_error(run(w.train_args("own", 25) + " --dropout 0 --rng torch --resume"),
                 "the run used --rng gptx, not --rng torch");
    expect_error(run(w.train_args("x", 5) + " --rng torch"), "--rng torch needs --dropout 0");
    // Its position counts words, one per batch row: the batch size must stay.
    expect_error(run(w.train_args("split", 25) + torch + " --resume --batch 5"),
                 "the run used --batch 4; --rng torch resumes only with the same --batch");
}

// The step's train loss as the run prints it ("step 20: train loss 2.1234 ...").
double printed_loss(const std::string& out, int step) {
    const std::string key = "step " + std::to_string(step) + ": train loss ";
    const auto at = out.find(key);
    BOOST_TEST_REQUIRE(at != std::string::npos, out);
    return std::stod(out.substr(at + key.size()));
}

BOOST_AUTO_TEST_CASE(bf16_precision_trains_like_fp32_on_every_gemm_path) {
    workspace w;
    const run_result f = run(w.train_args("fp32", 20));
    BOOST_TEST_REQUIRE(f.code == 0, f.out);
    const double fp32 = printed_loss(f.out, 20);
    int paths = 0;
    for (const std::string isa : {"portable", "avx512bf16", "amx"}) {
        const std::string env = "GPTX_ISA=" + isa + " ";
        // gptx --version names the path in use, or why the forced one cannot run here.
        const run_result v = gptx::test::shell(env + gptx::test::gptx_path() + " --version");
        BOOST_TEST_REQUIRE(v.code == 0, v.out);
        if (v.out.find("bf16 GEMM path: " + isa + ")") == std::string::npos) {
            BOOST_TEST_MESSAGE("bf16 path " << isa << " not on this CPU: " << v.out);
            continue;
        }
        ++paths;
        const run_result b = gptx::test::shell(
            env + gptx::test::gptx_path() + " --precision bf16 " + w.train_args("bf16_" + isa, 20));
        BOOST_TEST_REQUIRE(b.code == 0, b.out);
        // bf16 operands (8-bit mantissa) with fp32 accumulation: the same run within a few
        // percent of the loss, and not the fp32 run itself.
        const double bf16 = printed_loss(b.out, 20);
        BOOST_TEST(std::abs(bf16 - fp32) < 0.05 * fp32,
                   isa << ": bf16 " << bf16 << ", fp32 " << fp32);
        BOOST_TEST(slurp(w.path / ("bf16_" + isa) / "model.gptx") !=
                   slurp(w.path / "fp32" / "model.gptx"));
    }
    BOOST_TEST(paths >= 1); // the portable path runs everywhere
    // An unknown precision is refused by the option parser: one line naming the option and the
    // choices, a non-zero exit, no run.
    const run_result bad = run("--precision fp16 " + w.train_args("bad", 2));
    BOOST_TEST(bad.code != 0);
    BOOST_TEST(bad.out.find("--precision: fp16 not in {fp32,bf16}") != std::string::npos, bad.out);
    BOOST_TEST(!fs::exists(w.path / "bad"));
}

BOOST_AUTO_TEST_CASE(bad_inputs_give_one_line_errors) {
    workspace w;
    const std::string text = " --text " + w.text.string() + " --out " + (w.path / "bad").string();
    expect_error(
        run("train --text " + (w.path / "missing.txt").string() + " --out " + w.path.string()),
        "cannot open");
    std::ofstream(w.path / "empty.txt").close();
    expect_error(
        run("train --text " + (w.path / "empty.txt").string() + " --out " + w.path.string()),
        "is empty");
    expect_error(run("train --batch 0" + text), "--batch must be positive");
    expect_error(run("train --iters -3" + text), "--iters must be positive");
    expect_error(run("train --context 64 --model-context 32" + text),
                 "larger than the model's context 32");
    expect_error(run("train --preset nope" + text), "unknown preset 'nope'");
    expect_error(run("sample --checkpoint " + (w.path / "nothing").string()),
                 "cannot open checkpoint");
    {
        std::ofstream f(w.path / "junk.gptx");
        f << "this is not a checkpoint";
    }
    expect_error(run("sample --checkpoint " + (w.path / "junk.gptx").string()), "junk.gptx");

    BOOST_TEST_REQUIRE(run(w.train_args("ok", 5)).code == 0);
    expect_error(run("sample --checkpoint " + (w.path / "ok").string() + " --prompt 'the #'"),
                 "prompt character '#' (position 4)");
    // Resuming into another shape names the mismatch.
    expect_error(run(w.train_args("ok", 10) + " --resume --preset baby"), "shape mismatch");
    // A diverging run stops at the NaN and keeps the last good checkpoint.
    const std::string before = slurp(w.path / "ok" / "model.gptx");
    const run_result nan = run(w.train_args("ok", 10) + " --resume --lr 1e30 --min-lr 0");
    BOOST_TEST(nan.code == 1, nan.out);
    BOOST_TEST(nan.out.find("nan") != std::string::npos, nan.out);
    BOOST_TEST(nan.out.find("last good checkpoint") != std::string::npos, nan.out);
    BOOST_TEST((slurp(w.path / "ok" / "model.gptx") == before));
    // A resume never goes back: --iters below the checkpoint's step is refused, not a no-op.
    expect_error(run(w.train_args("ok", 2) + " --resume"), "past the run's last step 2");
    // Optimizer settings no step can use are refused before the first step.
    expect_error(run("train --beta1 1" + text), "beta1 (--beta1) must be in [0, 1)");
    expect_error(run("train --weight-decay nan" + text), "--weight-decay");
    // A thread count from the environment that is not one is said, not silently ignored.
    const run_result junk = gptx::test::shell("GPTX_NUM_THREADS=abc " + gptx::test::gptx_path() +
                                              " " + w.train_args("junk", 1));
    BOOST_TEST(junk.out.find("GPTX_NUM_THREADS='abc' is not a thread count") != std::string::npos,
               junk.out);
    BOOST_TEST(!fs::exists(w.path / "bad" / "model.gptx"));
}

// Usage errors (CLI11's) read as every other error: one line naming the command, exit code 2.
BOOST_AUTO_TEST_CASE(usage_errors_are_one_line) {
    for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
             {"bogus", "unknown command 'bogus'"},
             {"rm --lr abc", "Could not convert: --lr = abc (gptx rm --help"},
             // An unknown option is named before a missing required one.
             {"rm --bogus", "The following arguments were not expected: --bogus (gptx rm"},
             {"--threads 0 sample --checkpoint x", "--threads"},
             // A checkpoint carries its tokenizer; these options belong to --weights.
             {"sample --checkpoint x --tokenizer byte", "--tokenizer requires --weights"}}) {
        const run_result r = run(args);
        BOOST_TEST(r.code == 2, args << ": " << r.out);
        BOOST_TEST(r.out.find("gptx: error: " + needle) != std::string::npos, r.out);
        BOOST_TEST(std::count(r.out.begin(), r.out.end(), '\n') == 1, r.out);
    }
    BOOST_TEST(run("rm --help").code == 0);
}

// gptx tokenize refuses a split nothing could train or validate on, writing none of its files.
BOOST_AUTO_TEST_CASE(tokenize_refuses_an_empty_split) {
    workspace w;
    const std::string args = "tokenize --tokenizer char --text " + w.text.string() + " --out ";
    expect_error(run(args + (w.path / "t" / "a").string() + " --val-fraction 0.99999"),
                 "the training split is empty");
    std::ofstream(w.path / "one.txt") << "x";
    expect_error(run("tokenize --tokenizer char --text " + (w.path / "one.txt").string() +
                     " --out " + (w.path / "t" / "b").string()),
                 "the training split is empty");
    expect_error(run(args + "''"), "--out is a prefix");
    BOOST_TEST(!fs::exists(w.path / "t"));
    BOOST_TEST(run(args + (w.path / "t" / "c").string()).code == 0);
}

BOOST_AUTO_TEST_SUITE_END()
