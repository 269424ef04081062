// Behaviour tests of `gptx sft` and `gptx pipeline`: train -> sft round trip, exact resume, bad
// JSONL as a one-line error, and the pipeline's --json table on its smoke-test sizes.
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

struct sft_run_result {
    int code = -1;
    std::string out;
};

sft_run_result run_gptx(const std::string& args) {
    const std::string cmd = std::string(GPTX_CLI_PATH) + " " + args + " 2>&1";
    sft_run_result r;
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

std::string read_all(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

// A pre-trained tiny checkpoint and demonstrations of a toy task.
struct sft_workspace {
    fs::path dir;
    sft_workspace() {
        static int counter = 0;
        dir = fs::temp_directory_path() /
              ("gptx_sft_cli_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::create_directories(dir);
        std::ofstream text(dir / "text.txt");
        std::ofstream demos(dir / "demos.jsonl"), val(dir / "val.jsonl");
        const char* words[] = {"cat", "dog", "sun", "map", "pen", "cup", "hat", "box"};
        for (int i = 0; i < 200; ++i) {
            const std::string w = words[i % 8];
            const std::string r(w.rbegin(), w.rend());
            text << "reverse " << w << ": " << r << ".\n";
        }
        for (int i = 0; i < 24; ++i) {
            const std::string w = words[i % 8];
            (i < 16 ? demos : val)
                << nlohmann::json{{"prompt", "reverse " + w + ":"},
                                  {"response", std::string(w.rbegin(), w.rend())}}
                       .dump()
                << "\n";
        }
    }
    ~sft_workspace() { fs::remove_all(dir); }
    std::string pretrain() const {
        return "train --text " + (dir / "text.txt").string() +
               " --preset tiny --context 32 --batch 4 --iters 10 --warmup 1 --eval-every 10 "
               "--eval-iters 1 --threads 2 --out " +
               (dir / "pre").string();
    }
    std::string sft(const std::string& out, const std::string& extra = "",
                    const std::string& batch = "2") const {
        return "sft --init " + (dir / "pre").string() + " --data " +
               (dir / "demos.jsonl").string() + " --val-data " + (dir / "val.jsonl").string() +
               " --epochs 3 --batch " + batch +
               " --lr 1e-3 --dropout 0.1 --select-every 2 --threads 2 --out " +
               (dir / out).string() + " " + extra;
    }
};

} // namespace

BOOST_AUTO_TEST_SUITE(sft_cli)

BOOST_AUTO_TEST_CASE(train_then_sft_selects_and_resumes_exactly) {
    sft_workspace w;
    BOOST_REQUIRE(run_gptx(w.pretrain()).code == 0);
    const auto full = run_gptx(w.sft("a"));
    BOOST_TEST_REQUIRE(full.code == 0, full.out);
    BOOST_TEST(full.out.find("added an end-of-text token") != std::string::npos, full.out);
    BOOST_TEST(fs::exists(w.dir / "a" / "model.gptx"));
    BOOST_TEST(fs::exists(w.dir / "a" / "best.gptx"));
    BOOST_TEST(full.out.find("selected step") != std::string::npos, full.out);
    // stopped at a selection point, then resumed: the same files, byte for byte
    const auto part = run_gptx(w.sft("b", "--stop-at 4"));
    BOOST_TEST_REQUIRE(part.code == 0, part.out);
    const auto rest = run_gptx(w.sft("b", "--resume"));
    BOOST_TEST_REQUIRE(rest.code == 0, rest.out);
    BOOST_TEST(rest.out.find("resumed from") != std::string::npos, rest.out);
    BOOST_TEST((read_all(w.dir / "a" / "model.gptx") == read_all(w.dir / "b" / "model.gptx")));
    BOOST_TEST((read_all(w.dir / "a" / "best.gptx") == read_all(w.dir / "b" / "best.gptx")));
    // resuming with different data settings is refused
    const auto bad = run_gptx(w.sft("b", "--resume", "3"));
    BOOST_TEST(bad.code == 1);
    BOOST_TEST(bad.out.find("--batch differs") != std::string::npos, bad.out);
}

BOOST_AUTO_TEST_CASE(bad_jsonl_is_a_one_line_error) {
    sft_workspace w;
    BOOST_REQUIRE(run_gptx(w.pretrain()).code == 0);
    std::ofstream(w.dir / "demos.jsonl")
        << "{\"prompt\":\"a\",\"response\":\"b\"}\n{\"prompt\":\"a\"}\n";
    const auto r = run_gptx(w.sft("c"));
    BOOST_TEST(r.code == 1);
    BOOST_TEST(r.out.find("gptx: error: ") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("demos.jsonl:2: missing \"response\"") != std::string::npos, r.out);
    BOOST_TEST(!fs::exists(w.dir / "c" / "model.gptx"));
}

BOOST_AUTO_TEST_CASE(pipeline_quick_prints_the_json_table) {
    sft_workspace w;
    const auto r = run_gptx("pipeline --quick --json --threads 2 --out " + (w.dir / "p").string());
    BOOST_TEST_REQUIRE(r.code == 0, r.out);
    const std::string last = r.out.substr(r.out.rfind('{'));
    const auto j = nlohmann::json::parse(last);
    for (const char* k : {"rm_accuracy", "ppo_win_rate", "ppo_ptx_win_rate", "ppo_kl", "ppo_ptx_kl",
                          "pretrain_val_loss_sft", "pretrain_val_loss_ppo",
                          "pretrain_val_loss_ppo_ptx", "dialogue_win_rate"})
        BOOST_TEST(j.contains(k), k);
    BOOST_TEST(j["ppo_kl"].get<double>() >= 0.0);
    BOOST_TEST(r.out.find("| dialogue: chat model (PPO-ptx) win rate over dialogue SFT") !=
               std::string::npos);
    for (const char* f :
         {"sft.jsonl", "comparisons.jsonl", "ppo_prompts.jsonl", "pretrain_train.bin",
          "dialogue_sft.jsonl", "dialogue_comparisons.jsonl", "chat.gptx"})
        BOOST_TEST(fs::exists(w.dir / "p" / f), f);
}

BOOST_AUTO_TEST_SUITE_END()
