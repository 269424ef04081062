// Behaviour tests of gptx taskgen, finetune and eval: a round trip from a generated task corpus
// through pre-training, GPT-1 fine-tuning and few-shot evaluation on a tiny model, and bad input
// giving a one-line error that names the file and line.
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

struct result {
    int code = -1;
    std::string out;
};

result gptx(const std::string& args) {
    const std::string cmd = std::string(GPTX_CLI_PATH) + " " + args + " 2>&1";
    result r;
    FILE* p = popen(cmd.c_str(), "r");
    BOOST_REQUIRE(p);
    std::array<char, 4096> buf;
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
        r.out.append(buf.data(), n);
    const int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

void expect_error(const result& r, const std::string& needle) {
    BOOST_TEST(r.code == 1, "exit code " << r.code << " for output: " << r.out);
    BOOST_TEST(r.out.find("gptx: error: ") != std::string::npos, r.out);
    BOOST_TEST(r.out.find(needle) != std::string::npos,
               "expected '" << needle << "' in: " << r.out);
}

struct scratch_dir {
    fs::path dir = fs::temp_directory_path() / ("gptx_task_cli_" + std::to_string(::getpid()));
    scratch_dir() { fs::create_directories(dir); }
    ~scratch_dir() { fs::remove_all(dir); }
    std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

} // namespace

BOOST_AUTO_TEST_SUITE(task_cli)

BOOST_AUTO_TEST_CASE(taskgen_train_finetune_eval_round_trip) {
    scratch_dir d;
    auto r = gptx("taskgen --out " + d / "tasks" + " --documents 200 --train-examples 40 " +
                  "--test-examples 12");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    for (const char* f :
         {"corpus.txt", "reverse.train.jsonl", "reverse.test.jsonl", "which.train.jsonl",
          "which.test.jsonl", "described.test.jsonl", "first.choice.test.jsonl"})
        BOOST_TEST(fs::exists(d.dir / "tasks" / f), f);
    r = gptx("train --text " + d / "tasks/corpus.txt" + " --preset tiny --context 48 --batch 4 " +
             "--iters 6 --warmup 1 --eval-every 6 --eval-iters 1 --threads 2 --out " + d / "pt");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);

    r = gptx("finetune --checkpoint " + d / "pt" + " --train " + d / "tasks/which.train.jsonl" +
             " --test " + d / "tasks/which.test.jsonl" +
             " --batch 8 --epochs 2 --lr 1e-3 --threads 2 --out " + d / "ft");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    BOOST_TEST(r.out.find("3 task tokens") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("test accuracy") != std::string::npos, r.out);
    BOOST_TEST(fs::exists(d.dir / "ft" / "model.gptx"));
    BOOST_TEST(fs::exists(d.dir / "ft" / "metrics.jsonl"));
    // The fine-tuned checkpoint (vocabulary + 3, head beside the trunk) still loads for eval.
    r = gptx("eval --checkpoint " + d / "ft" + " --test " + d / "tasks/first.choice.test.jsonl" +
             " --train " + d / "tasks/first.choice.train.jsonl" +
             " --k 0,1 --format plain --answer-context '=>' --limit 6");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    for (const char* rule : {"total", "per-token", "unconditional"})
        BOOST_TEST(r.out.find(rule) != std::string::npos, r.out);

    r = gptx("eval --checkpoint " + d / "pt" + " --test " + d / "tasks/first.test.jsonl" +
             " --train " + d / "tasks/first.train.jsonl" + " --k 0,2 --limit 5 --max-tokens 4");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    BOOST_TEST(r.out.find("exact-match") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("\n   2  exact-match") != std::string::npos, r.out);

    // Bad input: one line naming the file and line; nothing written.
    {
        std::ofstream bad(d.dir / "bad.jsonl");
        bad << "{\"text\":\"abc => cba\",\"label\":0}\n{\"text\":\"x\",\"label\":\"zero\"}\n";
    }
    r = gptx("finetune --checkpoint " + d / "pt" + " --train " + d / "bad.jsonl" + " --out " +
             d / "ft-bad");
    expect_error(r, "bad.jsonl:2: \"label\" must be an integer, got string");
    BOOST_TEST(!fs::exists(d.dir / "ft-bad" / "model.gptx"));
    r = gptx("finetune --checkpoint " + d / "pt" + " --train " + d / "tasks/reverse.train.jsonl" +
             " --out " + d / "ft-bad");
    expect_error(r, "have no labels to fine-tune a head on");
    r = gptx("eval --checkpoint " + d / "pt" + " --test " + d / "tasks/first.test.jsonl" +
             " --k 0,x");
    expect_error(r, "--k: 'x' is not a non-negative integer");
    r = gptx("eval --checkpoint " + d / "pt" + " --test " + d / "tasks/first.test.jsonl" +
             " --k 2");
    expect_error(r, "--k 2 needs --train");
    r = gptx("eval --checkpoint " + d / "pt" + " --test " + d / "tasks/which.test.jsonl");
    expect_error(r, "need a fine-tuned head");
}

BOOST_AUTO_TEST_SUITE_END()
