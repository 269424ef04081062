// Behaviour tests of `gptx dpo`: a run from an SFT checkpoint on ranked and pairwise comparisons;
// at step 0 the policy is the reference (held-out loss log 2); the implicit rewards reach
// metrics.jsonl; --resume continues exactly (byte-identical checkpoint); bad inputs give one-line
// errors.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"
#include "support/rl_workspace.hpp"

namespace fs = std::filesystem;
using gptx::test::expect_error;
using gptx::test::run_gptx;
using gptx::test::slurp;

namespace {

// The alignment commands' files (support/rl_workspace.hpp) and comparisons over the SFT
// checkpoint's characters: ranked K = 3 lines and pairwise lines.
struct dpo_workspace : gptx::test::rl_workspace {
    fs::path cmp;
    dpo_workspace() : rl_workspace("dpo_cli") {
        cmp = path / "cmp.jsonl";
        std::ofstream c(cmp);
        const char* words[] = {"abc", "hg", "fed", "bead", "cafe", "bag"};
        for (int i = 0; i < 20; ++i) {
            const std::string p = words[i % 6];
            if (i % 2 == 0)
                c << "{\"prompt\": \"" << p << "\", \"responses\": [\"" << p << "\", \"" << p[0]
                  << " h\", \"gg g\"]}\n";
            else
                c << "{\"prompt\": \"" << p << "\", \"chosen\": \"" << p
                  << "\", \"rejected\": \"hh\"}\n";
        }
    }
    std::string args(const fs::path& out, int iters) const {
        return "dpo --policy " + sft.string() + " --data " + cmp.string() + " --out " +
               out.string() + " --iters " + std::to_string(iters) +
               " --val-fraction 0.2 --batch 3 --grad-accum 2 --beta 0.5 --lr 1e-3 --warmup 2 "
               "--eval-every 2 --log-every 1 --seed 5 --threads 2";
    }
};

} // namespace

BOOST_AUTO_TEST_SUITE(dpo_cli)

BOOST_AUTO_TEST_CASE(resume_continues_exactly) {
    dpo_workspace w;
    const fs::path a = w.path / "a", b = w.path / "b";
    const auto full = run_gptx(w.args(a, 6));
    BOOST_TEST_REQUIRE(full.code == 0, full.out);
    BOOST_TEST(full.out.find("step 6: val loss") != std::string::npos, full.out);
    const auto first = run_gptx(w.args(b, 3)); // stops between evaluations: saved at step 3
    BOOST_TEST_REQUIRE(first.code == 0, first.out);
    const auto rest = run_gptx(w.args(b, 6) + " --resume");
    BOOST_TEST_REQUIRE(rest.code == 0, rest.out);
    BOOST_TEST(rest.out.find("resumed from") != std::string::npos, rest.out);
    BOOST_TEST(fs::exists(a / "model.gptx"));
    BOOST_TEST((slurp(a / "model.gptx") == slurp(b / "model.gptx")),
               "model.gptx differs after --resume");
    // The uninterrupted run moved the policy: its checkpoint is not the SFT model's weights.
    BOOST_TEST((slurp(a / "model.gptx") != slurp(w.sft)));

    // metrics.jsonl: at step 0 the policy is the reference, so every implicit reward is 0 and
    // the held-out loss is log 2; later evaluations carry the training pairs' rewards too.
    std::ifstream in(a / "metrics.jsonl");
    std::string line;
    int evals = 0;
    while (std::getline(in, line)) {
        const auto j = nlohmann::json::parse(line);
        if (!j.contains("val_loss"))
            continue;
        ++evals;
        for (const char* k :
             {"val_margin", "val_chosen_reward", "val_rejected_reward", "val_accuracy"})
            BOOST_TEST(j.contains(k), k);
        if (j["step"] == 0) {
            BOOST_TEST(std::abs(j["val_loss"].get<double>() - std::log(2.0)) < 1e-5, line);
            BOOST_TEST(std::abs(j["val_margin"].get<double>()) < 1e-5, line);
            BOOST_TEST(!j.contains("train_margin"));
        } else {
            BOOST_TEST(j.contains("train_margin"), line);
            BOOST_TEST(j.contains("train_accuracy"), line);
        }
    }
    BOOST_TEST(evals == 4); // steps 0, 2, 4, 6

    // A changed hyper-parameter is refused on resume; a longer run is not.
    const auto bad = run_gptx(w.args(b, 8) + " --resume --beta 0.25");
    expect_error(bad, "--beta differs");
}

BOOST_AUTO_TEST_CASE(bad_inputs_are_one_line_errors) {
    dpo_workspace w;
    const fs::path out = w.path / "bad";
    expect_error(run_gptx(w.args(out, 2) + " --beta 0"), "--beta must be positive");
    expect_error(run_gptx(w.args(out, 0) + " --epochs 1e300"), "--epochs 1e+300 means");
    expect_error(run_gptx(w.args(w.path / "none", 2) + " --resume"), "--resume: no DPO run");
    const fs::path bad = w.write("bad.jsonl", "{\"prompt\": \"ab\", \"chosen\": \"a\", "
                                              "\"rejected\": \"b\"}\n{\"prompt\": \"x\"}\n");
    expect_error(run_gptx("dpo --policy " + w.sft.string() + " --data " + bad.string() + " --out " +
                          out.string()),
                 "bad.jsonl:2");
}

BOOST_AUTO_TEST_SUITE_END()
