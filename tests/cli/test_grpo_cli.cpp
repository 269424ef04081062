// Behaviour tests of `gptx grpo`: GRPO and RLOO runs from an SFT checkpoint and a reward-model
// checkpoint (trunk + "reward_head" section) with the ptx term; --resume continues exactly
// (byte-identical checkpoints) under both baselines; bad inputs give one-line errors.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/cli.hpp"
#include "support/rl_workspace.hpp"

namespace fs = std::filesystem;
using gptx::test::expect_error;
using gptx::test::run_gptx;
using gptx::test::slurp;

namespace {

struct grpo_workspace : gptx::test::rl_workspace {
    grpo_workspace() : rl_workspace("grpo_cli") {}
    std::string args(const fs::path& out, int iters, const std::string& baseline) const {
        return "grpo --policy " + sft.string() + " --reward " + rm.string() + " --prompts " +
               prompts.string() + " --out " + out.string() + " --iters " + std::to_string(iters) +
               " --baseline " + baseline +
               " --prompts-per-iter 2 --group-size 3 --minibatch 4 --epochs 2 --max-new 6 --lr "
               "1e-3 --kl-coef 0.1 --ptx-coef 2 --ptx-data " +
               ptx.string() + " --ptx-batch 2 --ptx-context 8 --seed 9 --threads 2";
    }
};

} // namespace

BOOST_AUTO_TEST_SUITE(grpo_cli)

BOOST_AUTO_TEST_CASE(resume_continues_exactly_under_both_baselines) {
    grpo_workspace w;
    std::string final_group;
    for (const std::string baseline : {"group", "loo"}) {
        const fs::path a = w.path / (baseline + "_a"), b = w.path / (baseline + "_b");
        const auto full = run_gptx(w.args(a, 4, baseline));
        BOOST_TEST_REQUIRE(full.code == 0, full.out);
        BOOST_TEST(full.out.find("step 4: score") != std::string::npos, full.out);
        BOOST_TEST(full.out.find("kl k3") != std::string::npos, full.out);
        const auto first = run_gptx(w.args(b, 2, baseline));
        BOOST_TEST_REQUIRE(first.code == 0, first.out);
        const auto rest = run_gptx(w.args(b, 4, baseline) + " --resume");
        BOOST_TEST_REQUIRE(rest.code == 0, rest.out);
        BOOST_TEST(rest.out.find("resumed from") != std::string::npos, rest.out);
        for (const char* f : {"policy.gptx", "model.gptx"}) {
            BOOST_TEST(fs::exists(a / f), f);
            BOOST_TEST((slurp(a / f) == slurp(b / f)),
                       baseline << ": " << f << " differs after --resume");
        }
        BOOST_TEST((slurp(a / "metrics.jsonl").find("\"flat_groups\"") != std::string::npos));
        if (baseline == "group")
            final_group = slurp(a / "model.gptx");
        else // the same prompts and first samples; only the baseline differs
            BOOST_TEST((slurp(a / "model.gptx") != final_group), "RLOO and GRPO gave one policy");
    }
    // The final policy samples.
    const auto s =
        run_gptx("sample --checkpoint " + (w.path / "loo_a").string() + " --prompt abc --tokens 5");
    BOOST_TEST(s.code == 0, s.out);
    // A changed hyper-parameter is refused on resume.
    expect_error(run_gptx(w.args(w.path / "group_b", 6, "loo") + " --resume"),
                 "--baseline differs");
}

// --rm-likelihood A, as in gptx ppo (rl_workspace::check_likelihood_term).
BOOST_AUTO_TEST_CASE(the_likelihood_term_adds_to_the_rms_score) {
    grpo_workspace w;
    w.check_likelihood_term([&](const fs::path& out, const std::string& extra) {
        return run_gptx(w.args(out, 1, "loo") + extra);
    });
    expect_error(run_gptx(w.args(w.path / "ll", 2, "loo") + " --rm-likelihood 1 --resume"),
                 "--rm-likelihood 1 differs");
}

BOOST_AUTO_TEST_CASE(bad_inputs_are_one_line_errors) {
    grpo_workspace w;
    const fs::path out = w.path / "bad";
    // Refused before anything is written, not by the sampler after the first save.
    expect_error(run_gptx(w.args(out, 2, "group") + " --temperature inf"),
                 "--temperature must be a finite positive number");
    BOOST_TEST(!fs::exists(out / "policy.gptx"));
    expect_error(run_gptx(w.args(out, 2, "group") + " --group-size 1"),
                 "--group-size must be at least 2");
    expect_error(run_gptx("grpo --policy " + w.sft.string() + " --reward " + w.rm.string() +
                          " --prompts " + w.prompts.string() + " --out " + out.string() +
                          " --ptx-coef 1"),
                 "--ptx-coef needs --ptx-data");
    // A plain trunk is not a reward model.
    expect_error(run_gptx("grpo --policy " + w.sft.string() + " --reward " + w.sft.string() +
                          " --prompts " + w.prompts.string() + " --out " + out.string()),
                 "reward_head");
    expect_error(run_gptx(w.args(w.path / "none", 2, "group") + " --resume"),
                 "--resume: no GRPO run");
    const auto bad_baseline = run_gptx(w.args(out, 2, "mean"));
    BOOST_TEST(bad_baseline.code != 0);
    BOOST_TEST(bad_baseline.out.find("--baseline") != std::string::npos, bad_baseline.out);
}

BOOST_AUTO_TEST_SUITE_END()
