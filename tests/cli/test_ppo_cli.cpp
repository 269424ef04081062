// Behaviour tests of `gptx ppo`: a run from an SFT checkpoint and a reward-model checkpoint
// (trunk + "reward_head" section) with EMA, PPO-ptx and the adaptive KL controller; --resume
// continues exactly (byte-identical checkpoints); --keep; bad inputs give one-line errors.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/cli.hpp"
#include "support/rl_workspace.hpp"

namespace fs = std::filesystem;
using gptx::test::run_result;
using gptx::test::slurp;

namespace {

run_result gptx_cli(const std::string& args) { return gptx::test::run_gptx(args); }

struct ppo_workspace : gptx::test::rl_workspace {
    ppo_workspace() : rl_workspace("ppo_cli") {}
    std::string args(const fs::path& out, int iters) const {
        return "ppo --policy " + sft.string() + " --reward " + rm.string() + " --prompts " +
               prompts.string() + " --out " + out.string() + " --iters " + std::to_string(iters) +
               " --rollouts 6 --minibatch 4 --epochs 2 --max-new 6 --lr 1e-3 --ema 0.9 --ptx-coef 2"
               " --ptx-data " +
               ptx.string() +
               " --ptx-batch 2 --ptx-context 8 --kl-target 0.5 --kl-horizon 100 --seed 9 --threads "
               "2";
    }
};

} // namespace

BOOST_AUTO_TEST_SUITE(ppo_cli)

BOOST_AUTO_TEST_CASE(resume_continues_exactly) {
    ppo_workspace w;
    const fs::path a = w.path / "a", b = w.path / "b";
    auto full = gptx_cli(w.args(a, 4));
    BOOST_TEST_REQUIRE(full.code == 0, full.out);
    BOOST_TEST(full.out.find("step 4: score") != std::string::npos, full.out);
    BOOST_TEST(full.out.find("kl exact") != std::string::npos);
    auto first = gptx_cli(w.args(b, 2));
    BOOST_TEST_REQUIRE(first.code == 0, first.out);
    auto rest = gptx_cli(w.args(b, 4) + " --resume");
    BOOST_TEST_REQUIRE(rest.code == 0, rest.out);
    BOOST_TEST(rest.out.find("resumed from") != std::string::npos, rest.out);
    for (const char* f : {"policy.gptx", "value.gptx", "model.gptx"}) {
        BOOST_TEST(fs::exists(a / f), f);
        BOOST_TEST((slurp(a / f) == slurp(b / f)), f << " differs after --resume");
    }
    // metrics.jsonl: one line per step and one per evaluation point, the same after a resume.
    BOOST_TEST(slurp(a / "metrics.jsonl").size() > 0);
    BOOST_TEST((slurp(a / "metrics.jsonl").find("\"kl_exact\"") != std::string::npos));
    // The final policy samples.
    auto s = gptx_cli("sample --checkpoint " + a.string() + " --prompt abc --tokens 5");
    BOOST_TEST(s.code == 0, s.out);
    // A changed hyper-parameter is refused on resume.
    auto bad = gptx_cli(w.args(b, 6) + " --resume --lr 2e-3");
    BOOST_TEST(bad.code != 0);
    BOOST_TEST(bad.out.find("--lr differs") != std::string::npos, bad.out);
}

// --rm-likelihood A: the reward is the RM's score plus A times the SFT model's mean
// log-likelihood (rl_workspace::check_likelihood_term).
BOOST_AUTO_TEST_CASE(the_likelihood_term_adds_to_the_rms_score) {
    ppo_workspace w;
    w.check_likelihood_term([&](const fs::path& out, const std::string& extra) {
        return gptx_cli(w.args(out, 1) + extra);
    });
    // A resume must repeat the term; a run saved with it refuses one without.
    gptx::test::expect_error(gptx_cli(w.args(w.path / "both", 2) + " --resume"),
                             "--rm-likelihood 0 differs");
    gptx::test::expect_error(gptx_cli(w.args(w.path / "bad", 1) + " --rm-likelihood-only"),
                             "--rm-likelihood-only needs --rm-likelihood > 0");
}

// --keep K: updates on the K rollouts with the largest |advantage|; the metrics say what share of
// the advantages they hold; a resume must repeat it; more than --rollouts is refused.
BOOST_AUTO_TEST_CASE(keep_trains_on_part_of_the_rollouts) {
    ppo_workspace w;
    const fs::path out = w.path / "keep";
    const auto run = gptx_cli(w.args(out, 2) + " --keep 3");
    BOOST_TEST_REQUIRE(run.code == 0, run.out);
    const std::string metrics = slurp(out / "metrics.jsonl");
    BOOST_TEST((metrics.find("\"kept_advantage\"") != std::string::npos), metrics);
    gptx::test::expect_error(gptx_cli(w.args(out, 3) + " --resume"), "--keep differs");
    gptx::test::expect_error(gptx_cli(w.args(w.path / "more", 1) + " --keep 7"),
                             "--keep must be in [0, --rollouts = 6]");
    BOOST_TEST(!fs::exists(w.path / "more" / "policy.gptx"));
}

BOOST_AUTO_TEST_CASE(bad_inputs_are_one_line_errors) {
    ppo_workspace w;
    const fs::path out = w.path / "bad";
    auto no_ptx =
        gptx_cli("ppo --policy " + w.sft.string() + " --reward " + w.rm.string() + " --prompts " +
                 w.prompts.string() + " --out " + out.string() + " --ptx-coef 27.8");
    BOOST_TEST(no_ptx.code == 1);
    BOOST_TEST(no_ptx.out.find("--ptx-coef needs --ptx-data") != std::string::npos, no_ptx.out);
    // A plain trunk is not a reward model.
    auto no_head = gptx_cli("ppo --policy " + w.sft.string() + " --reward " + w.sft.string() +
                            " --prompts " + w.prompts.string() + " --out " + out.string());
    BOOST_TEST(no_head.code == 1);
    BOOST_TEST(no_head.out.find("reward_head") != std::string::npos, no_head.out);
    const fs::path bad_prompts = w.path / "bad.jsonl";
    std::ofstream(bad_prompts) << "{\"prompt\": \"ab\"}\n{\"text\": \"x\"}\n";
    auto bp = gptx_cli("ppo --policy " + w.sft.string() + " --reward " + w.rm.string() +
                       " --prompts " + bad_prompts.string() + " --out " + out.string());
    BOOST_TEST(bp.code == 1);
    BOOST_TEST(bp.out.find("bad.jsonl:2") != std::string::npos, bp.out);
    auto no_run =
        gptx_cli("ppo --policy " + w.sft.string() + " --reward " + w.rm.string() + " --prompts " +
                 w.prompts.string() + " --out " + (w.path / "none").string() + " --resume");
    BOOST_TEST(no_run.code == 1);
    BOOST_TEST(no_run.out.find("--resume: no PPO run") != std::string::npos, no_run.out);
    // Prompts are checked where they stand: outside the vocabulary, too long (21 fit).
    std::ofstream(bad_prompts) << "{\"prompt\": \"ab\"}\n{\"prompt\": \"ab~\"}\n";
    gptx::test::expect_error(gptx_cli("ppo --policy " + w.sft.string() + " --reward " +
                                      w.rm.string() + " --prompts " + bad_prompts.string() +
                                      " --out " + out.string()),
                             "bad.jsonl:2: prompt character '~'");
    std::ofstream(bad_prompts) << "{\"prompt\": \"" << std::string(22, 'a') << "\"}\n";
    gptx::test::expect_error(gptx_cli("ppo --policy " + w.sft.string() + " --reward " +
                                      w.rm.string() + " --prompts " + bad_prompts.string() +
                                      " --out " + out.string()),
                             "bad.jsonl:1: the prompt has 22 tokens; the model's context of 24");
    BOOST_TEST(!fs::exists(out / "policy.gptx"));
    // The longest that fits, and an empty prompt (generation after the end-of-text alone), run.
    std::ofstream(bad_prompts) << "{\"prompt\": \"" << std::string(21, 'a')
                               << "\"}\n{\"prompt\": \"\"}\n";
    const auto fits = gptx_cli("ppo --policy " + w.sft.string() + " --reward " + w.rm.string() +
                               " --prompts " + bad_prompts.string() + " --out " + out.string() +
                               " --iters 1 --rollouts 2 --minibatch 2 --max-new 1");
    BOOST_TEST(fits.code == 0, fits.out);
}

BOOST_AUTO_TEST_SUITE_END()
