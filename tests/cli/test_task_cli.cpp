// Behaviour tests of gptx taskgen, finetune and eval: a round trip from a generated task corpus
// through pre-training, GPT-1 fine-tuning and few-shot evaluation on a tiny model, and bad input
// giving a one-line error that names the file and line.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/cli.hpp"
#include "support/scratch.hpp"

namespace fs = std::filesystem;
using gptx::test::expect_error;
using gptx::test::run_gptx;
using gptx::test::run_result;

namespace {

// `d / "name"` gives a path as a string, to build command lines with.
struct task_dir : gptx::test::scratch_dir {
    task_dir() : scratch_dir("task_cli") {}
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

} // namespace

BOOST_AUTO_TEST_SUITE(task_cli)

BOOST_AUTO_TEST_CASE(taskgen_train_finetune_eval_round_trip) {
    task_dir d;
    auto r = run_gptx("taskgen --out " + d / "tasks" + " --documents 200 --train-examples 40 " +
                      "--test-examples 12");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    for (const char* f :
         {"corpus.txt", "reverse.train.jsonl", "reverse.test.jsonl", "which.train.jsonl",
          "which.test.jsonl", "described.test.jsonl", "first.choice.test.jsonl"})
        BOOST_TEST(fs::exists(d.path / "tasks" / f), f);
    r = run_gptx(
        "train --text " + d / "tasks/corpus.txt" + " --preset tiny --context 48 --batch 4 " +
        "--iters 6 --warmup 1 --eval-every 6 --eval-iters 1 --threads 2 --out " + d / "pt");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);

    r = run_gptx("finetune --checkpoint " + d / "pt" + " --train " + d / "tasks/which.train.jsonl" +
                 " --test " + d / "tasks/which.test.jsonl" +
                 " --batch 8 --epochs 2 --lr 1e-3 --threads 2 --out " + d / "ft");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    BOOST_TEST(r.out.find("3 task tokens") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("test accuracy") != std::string::npos, r.out);
    BOOST_TEST(fs::exists(d.path / "ft" / "model.gptx"));
    BOOST_TEST(fs::exists(d.path / "ft" / "metrics.jsonl"));
    // The fine-tuned checkpoint (vocabulary + 3, head beside the trunk) still loads for eval.
    r = run_gptx("eval --checkpoint " + d / "ft" + " --test " +
                 d / "tasks/first.choice.test.jsonl" + " --train " +
                 d / "tasks/first.choice.train.jsonl" +
                 " --k 0,1 --format plain --answer-context '=>' --limit 6");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    for (const char* rule : {"total", "per-token", "unconditional"})
        BOOST_TEST(r.out.find(rule) != std::string::npos, r.out);

    r = run_gptx("eval --checkpoint " + d / "pt" + " --test " + d / "tasks/first.test.jsonl" +
                 " --train " + d / "tasks/first.train.jsonl" + " --k 0,2 --limit 5 --max-tokens 4");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    BOOST_TEST(r.out.find("exact-match") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("\n   2  exact-match") != std::string::npos, r.out);

    // Bad input: one line naming the file and line; nothing written.
    {
        std::ofstream bad(d.path / "bad.jsonl");
        bad << "{\"text\":\"abc => cba\",\"label\":0}\n{\"text\":\"x\",\"label\":\"zero\"}\n";
    }
    r = run_gptx("finetune --checkpoint " + d / "pt" + " --train " + d / "bad.jsonl" + " --out " +
                 d / "ft-bad");
    expect_error(r, "bad.jsonl:2: \"label\" must be an integer, got string");
    BOOST_TEST(!fs::exists(d.path / "ft-bad" / "model.gptx"));
    r = run_gptx("finetune --checkpoint " + d / "pt" + " --train " +
                 d / "tasks/reverse.train.jsonl" + " --out " + d / "ft-bad");
    expect_error(r, "have no labels to fine-tune a head on");
    // Settings past what the model or a run can hold are refused, not clamped or wrapped.
    const std::string which =
        " --train " + d / "tasks/which.train.jsonl" + " --out " + d / "ft-bad";
    r = run_gptx("finetune --checkpoint " + d / "pt" + which + " --context 100000");
    expect_error(r, "--context 100000 is longer than the model's");
    r = run_gptx("finetune --checkpoint " + d / "pt" + which + " --context -1");
    expect_error(r, "--context must be >= 0");
    r = run_gptx("finetune --checkpoint " + d / "pt" + which + " --batch 1 --epochs 2000000000");
    expect_error(r, "--epochs 2000000000 means");
    BOOST_TEST(!fs::exists(d.path / "ft-bad" / "model.gptx"));
    r = run_gptx("eval --checkpoint " + d / "pt" + " --test " + d / "tasks/first.test.jsonl" +
                 " --k 0,x");
    expect_error(r, "--k: 'x' is not a non-negative integer");
    r = run_gptx("eval --checkpoint " + d / "pt" + " --test " + d / "tasks/first.test.jsonl" +
                 " --k 2");
    expect_error(r, "--k 2 needs --train");
    r = run_gptx("eval --checkpoint " + d / "pt" + " --test " + d / "tasks/which.test.jsonl");
    expect_error(r, "need a fine-tuned head");
    // An example that cannot be evaluated is named by file and example, and by field.
    {
        std::ofstream bad(d.path / "bad_choice.jsonl");
        bad << "{\"context\":\"ab =>\",\"choices\":[\" a\",\" b\"],\"label\":0}\n"
            << "{\"context\":\"ab =>\",\"choices\":[\" a\",\" ~\"],\"label\":0}\n";
    }
    r = run_gptx("eval --checkpoint " + d / "pt" + " --test " + d / "bad_choice.jsonl");
    expect_error(r, "bad_choice.jsonl: example 2, choice 2 character '~'");
    r = run_gptx("eval --checkpoint " + d / "pt" + " --test " + d / "tasks/first.test.jsonl" +
                 " --max-tokens 100000");
    expect_error(r, "--max-tokens 100000 leaves no room for a prompt in the model's context");
}

BOOST_AUTO_TEST_SUITE_END()
