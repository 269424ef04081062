// Behaviour tests of `gptx sft` and `gptx pipeline`: train -> sft round trip, exact resume, bad
// JSONL as a one-line error, and the pipeline's --json table on its smoke-test sizes.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gptx/gptx.hpp>
#include <nlohmann/json.hpp>

#include "support/cli.hpp"
#include "support/scratch.hpp"

namespace fs = std::filesystem;
namespace utf = boost::unit_test;
using gptx::test::run_gptx;
using gptx::test::run_result;

namespace {

std::string read_all(const fs::path& p) { return gptx::test::slurp(p); }

// A pre-trained tiny checkpoint and demonstrations of a toy task.
struct sft_workspace : gptx::test::scratch_dir {
    sft_workspace() : scratch_dir("sft_cli") {
        std::ofstream text(path / "text.txt");
        std::ofstream demos(path / "demos.jsonl"), val(path / "val.jsonl");
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
    std::string pretrain() const {
        return "train --text " + (path / "text.txt").string() +
               " --preset tiny --context 32 --batch 4 --iters 10 --warmup 1 --eval-every 10 "
               "--eval-iters 1 --threads 2 --out " +
               (path / "pre").string();
    }
    std::string sft(const std::string& out, const std::string& extra = "",
                    const std::string& batch = "2") const {
        return "sft --init " + (path / "pre").string() + " --data " +
               (path / "demos.jsonl").string() + " --val-data " + (path / "val.jsonl").string() +
               " --epochs 3 --batch " + batch +
               " --lr 1e-3 --dropout 0.1 --select-every 2 --threads 2 --out " +
               (path / out).string() + " " + extra;
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
    BOOST_TEST(fs::exists(w.path / "a" / "model.gptx"));
    BOOST_TEST(fs::exists(w.path / "a" / "best.gptx"));
    BOOST_TEST(full.out.find("selected step") != std::string::npos, full.out);
    // stopped at a selection point, then resumed: the same files, byte for byte
    const auto part = run_gptx(w.sft("b", "--stop-at 4"));
    BOOST_TEST_REQUIRE(part.code == 0, part.out);
    const auto rest = run_gptx(w.sft("b", "--resume"));
    BOOST_TEST_REQUIRE(rest.code == 0, rest.out);
    BOOST_TEST(rest.out.find("resumed from") != std::string::npos, rest.out);
    BOOST_TEST((read_all(w.path / "a" / "model.gptx") == read_all(w.path / "b" / "model.gptx")));
    BOOST_TEST((read_all(w.path / "a" / "best.gptx") == read_all(w.path / "b" / "best.gptx")));
    // resuming with different data settings is refused
    const auto bad = run_gptx(w.sft("b", "--resume", "3"));
    BOOST_TEST(bad.code == 1);
    BOOST_TEST(bad.out.find("--batch differs") != std::string::npos, bad.out);
}

// The id sft reserves after the char tokenizer's last is end-of-text, which the tokenizer
// cannot print: sampling ends there (it used to fail with "token id out of range"). Hot samples
// make it near certain to be drawn. With --precision bf16 the same runs decode from bf16 weights.
BOOST_AUTO_TEST_CASE(an_sft_model_samples_up_to_its_end_of_text_in_fp32_and_bf16) {
    sft_workspace w;
    BOOST_REQUIRE(run_gptx(w.pretrain()).code == 0);
    BOOST_REQUIRE(run_gptx(w.sft("a")).code == 0);
    for (const std::string precision : {"fp32", "bf16"}) {
        const auto r = run_gptx("--precision " + precision + " sample --checkpoint " +
                                (w.path / "a" / "best.gptx").string() +
                                " --prompt 'reverse cat:' --tokens 40 --num-samples 20 "
                                "--temperature 2 --threads 1");
        BOOST_TEST_REQUIRE(r.code == 0, precision << ": " << r.out);
        std::size_t samples = 0;
        for (std::size_t at = r.out.find("---------------"); at != std::string::npos;
             at = r.out.find("---------------", at + 1))
            ++samples;
        BOOST_TEST(samples == 20u, precision << ": " << r.out);
    }
}

BOOST_AUTO_TEST_CASE(bad_jsonl_is_a_one_line_error) {
    sft_workspace w;
    BOOST_REQUIRE(run_gptx(w.pretrain()).code == 0);
    std::ofstream(w.path / "demos.jsonl")
        << "{\"prompt\":\"a\",\"response\":\"b\"}\n{\"prompt\":\"a\"}\n";
    const auto r = run_gptx(w.sft("c"));
    BOOST_TEST(r.code == 1);
    BOOST_TEST(r.out.find("gptx: error: ") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("demos.jsonl:2: missing \"response\"") != std::string::npos, r.out);
    BOOST_TEST(!fs::exists(w.path / "c" / "model.gptx"));
    // A schedule that would climb from --lr to --min-lr, and settings no step can use.
    gptx::test::expect_error(run_gptx(w.sft("c", "--min-lr 1")), "--min-lr must be at most --lr");
    gptx::test::expect_error(run_gptx(w.sft("c", "--weight-decay -1")),
                             "--weight-decay must be a finite number >= 0");
    gptx::test::expect_error(run_gptx(w.sft("c", "--grad-clip nan")), "--grad-clip");
    BOOST_TEST(!fs::exists(w.path / "c" / "model.gptx"));
}

// Runs `gptx pipeline ARGS --out W/r`, which must stop with exit 1 and the one-line `error`;
// returns W/r.
fs::path expect_pipeline_error(const sft_workspace& w, const std::string& args,
                               const std::string& error) {
    const auto r = run_gptx("pipeline " + args + " --out " + (w.path / "r").string());
    BOOST_TEST(r.code == 1);
    BOOST_TEST(r.out.find("gptx: error: " + error) != std::string::npos, r.out);
    return w.path / "r";
}

// Settings no stage can use are refused by their flag before pre-training, not after it.
BOOST_AUTO_TEST_CASE(pipeline_refuses_unusable_settings_up_front) {
    sft_workspace w;
    for (const auto& [args, error] : std::vector<std::pair<std::string, std::string>>{
             {"--quick --rm-lr -1", "--rm-lr must be positive"},
             {"--quick --gae-lambda 2", "--gae-lambda must be in [0, 1]"},
             {"--quick --rm-hot 5", "--rm-hot must be in [0, --rm-k = 4]"},
             {"--quick --kl-coef nan", "--kl-coef must be a finite number >= 0"},
             {"--quick --rollouts 0", "--rollouts must be positive"},
             {"--quick --ppo-keep 257", "--ppo-keep must be in [0, --rollouts = 256]"},
             {"--quick --dialogue-rm-native nan", "--dialogue-rm-native must be in [0, 1]"}})
        BOOST_TEST(!fs::exists(expect_pipeline_error(w, args, error)), args);
}

// More RLHF rounds than PPO iterations: one line naming both options, before anything is made.
BOOST_AUTO_TEST_CASE(pipeline_rejects_more_rounds_than_iterations) {
    sft_workspace w;
    BOOST_TEST(
        !fs::exists(expect_pipeline_error(w, "--quick --ppo-iters 2 --rlhf-rounds 3",
                                          "--rlhf-rounds 3 must be between 1 and --ppo-iters 2")));
}

// ... and the chat model's own schedule is checked the same way.
BOOST_AUTO_TEST_CASE(pipeline_rejects_more_rounds_than_dialogue_iterations) {
    sft_workspace w;
    BOOST_TEST(!fs::exists(
        expect_pipeline_error(w, "--ppo-iters 4 --dialogue-ppo-iters 2 --rlhf-rounds 3",
                              "--rlhf-rounds 3 must be at most --dialogue-ppo-iters 2")));
}

// Iterated RLHF retrains one dialogue RM: with the default ensemble it is refused up front.
BOOST_AUTO_TEST_CASE(pipeline_rejects_rounds_with_the_dialogue_rm_ensemble) {
    sft_workspace w;
    BOOST_TEST(!fs::exists(expect_pipeline_error(w, "--rlhf-rounds 2",
                                                 "--dialogue-rm-ensemble 4 with --rlhf-rounds 2")));
}

// A by-kind accuracy object of `gptx pipeline --json` ({"add": {"accuracy", "pairs"}, ...}) as
// its whole: the pairs, and the accuracy weighted by them.
static std::pair<double, double> whole_of_kinds(const nlohmann::json& by) {
    double correct = 0, pairs = 0;
    for (const auto& [kind, c] : by.items()) {
        correct += c["accuracy"].get<double>() * c["pairs"].get<double>();
        pairs += c["pairs"].get<double>();
    }
    return {pairs, pairs > 0 ? correct / pairs : 0.0};
}

// Iterated RLHF with the instruction stage's ensemble retrains every member before round 2, each
// on the data --rm-ensemble-data names: member 0's new comparisons (shared) or its own samples of
// the policy (samples, here with members started from the pre-trained model). The ensemble's
// accuracy on the policy's samples is reported per round, and by kind at the end.
BOOST_AUTO_TEST_CASE(pipeline_quick_retrains_each_rm_of_the_ensemble_between_rounds) {
    sft_workspace w;
    for (const std::string data : {"shared", "samples"}) {
        const bool own = data == "samples";
        const auto r = run_gptx("pipeline --quick --no-dialogue --json --threads 2 --methods ppo "
                                "--rlhf-rounds 2 --rm-ensemble 3 --rm-ensemble-data " +
                                data + (own ? " --rm-ensemble-trunk pretrained" : "") + " --out " +
                                (w.path / data).string());
        BOOST_TEST_REQUIRE(r.code == 0, r.out);
        BOOST_TEST(r.out.find("ppo round 2: RM retrained on ") != std::string::npos);
        for (const std::string k : {"1", "2"}) {
            BOOST_TEST((r.out.find("RM member " + k + " (from the pre-trained model): held-out") !=
                        std::string::npos) == own);
            const auto at = r.out.find("ppo round 2: RM member " + k + " retrained on ");
            BOOST_TEST_REQUIRE(at != std::string::npos, k);
            const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
            BOOST_TEST(line.find(own ? "new comparisons (its own samples of the policy)"
                                     : "new comparisons (member 0's)") != std::string::npos,
                       line);
        }
        const auto j = nlohmann::json::parse(r.out.substr(r.out.rfind("\n{") + 1));
        BOOST_TEST(j["rlhf_rounds"].get<int>() == 2);
        BOOST_TEST(j["rm_ensemble_trunk"] == (own ? "pretrained" : "sft"));
        BOOST_TEST_REQUIRE(j["rm_ensemble_accuracy_on_ppo"].size() == 2u);
        BOOST_TEST_REQUIRE(j["rm_accuracy_on_ppo"].size() == 2u);
        for (const auto& a : j["rm_ensemble_accuracy_on_ppo"])
            BOOST_TEST((a.is_null() || (a.get<double>() >= 0.0 && a.get<double>() <= 1.0)));
        // Accuracy by kind of instruction: its pairs add up to the whole's, and its mean over
        // them is the whole's accuracy (member 0 and the ensemble on the temperature-1 held-out
        // pairs; the ensemble on the policy's samples at the end).
        const auto& t1 = j["rm_ensemble_diagnosis"]["held_out_t1"];
        const auto [n_rm, acc_rm] = whole_of_kinds(j["rm_accuracy_t1_by_kind"]);
        const auto [n_ens, acc_ens] = whole_of_kinds(t1["by_kind"]);
        BOOST_TEST(n_rm == t1["pairs"].get<double>());
        BOOST_TEST(n_ens == t1["pairs"].get<double>());
        BOOST_TEST(std::abs(acc_rm - j["rm_accuracy_t1"].get<double>()) <= 1.5 / n_rm);
        BOOST_TEST(std::abs(acc_ens - t1["accuracy"].get<double>()) < 1e-9);
        const auto& last = j["rm_ensemble_accuracy_on_ppo"][1];
        BOOST_TEST(last.is_null() == j["rm_accuracy_by_kind_on_ppo"].is_null());
        if (!last.is_null())
            BOOST_TEST(std::abs(whole_of_kinds(j["rm_accuracy_by_kind_on_ppo"]).second -
                                last.get<double>()) < 1e-9);
        BOOST_TEST(std::isfinite(j["ppo_win_rate"].get<double>()));
    }
}

// The ablation flag without the likelihood's weight, or the term with the labeler's reward: one
// line each, before anything is made.
BOOST_AUTO_TEST_CASE(pipeline_rejects_a_likelihood_term_it_cannot_add) {
    sft_workspace w;
    expect_pipeline_error(w, "--quick --rm-likelihood-only",
                          "--rm-likelihood-only needs --rm-likelihood > 0");
    BOOST_TEST(!fs::exists(w.path / "r" / "corpus.txt"));
    expect_pipeline_error(w, "--quick --rm-likelihood 1 --oracle-reward 1",
                          "--rm-likelihood adds to the reward model's reward; --oracle-reward");
    BOOST_TEST(!fs::exists(w.path / "r" / "corpus.txt"));
}

// --rm-likelihood: PPO's reward is the RM plus the SFT model's likelihood of the response. The
// run prints and reports that reward's held-out accuracy, whose kinds add up to its accuracy on
// the temperature-1 pairs. With --ppo-keep 64 of 256 (4 of --quick's 16 rollouts) each
// iteration's metrics give the kept quarter's share of the advantages.
BOOST_AUTO_TEST_CASE(pipeline_quick_rewards_with_the_sft_likelihood, *utf::label("slow")) {
    sft_workspace w;
    const auto r = run_gptx("pipeline --quick --no-dialogue --json --threads 2 --methods ppo "
                            "--rm-likelihood 1 --ppo-keep 64 --out " +
                            (w.path / "l").string());
    BOOST_TEST_REQUIRE(r.code == 0, r.out);
    BOOST_TEST(r.out.find("RM plus 1 x the SFT model's likelihood: held-out accuracy") !=
                   std::string::npos,
               r.out);
    const auto j = nlohmann::json::parse(r.out.substr(r.out.rfind("\n{") + 1));
    BOOST_TEST(j["rm_likelihood"].get<double>() == 1.0);
    BOOST_TEST(!j["rm_likelihood_only"].get<bool>());
    const auto& d = j["rm_likelihood_diagnosis"];
    const double acc = d["accuracy"].get<double>();
    BOOST_TEST((acc >= 0.0 && acc <= 1.0));
    BOOST_TEST_REQUIRE(d.contains("accuracy_t1_by_kind"));
    const auto [pairs, t1] = whole_of_kinds(d["accuracy_t1_by_kind"]);
    BOOST_TEST(pairs > 0.0);
    BOOST_TEST(std::abs(t1 - d["accuracy_t1"].get<double>()) < 1e-9);
    BOOST_TEST(std::isfinite(j["ppo_win_rate"].get<double>()));
    // PPO followed the RM plus a log-likelihood, which is below 0: every iteration's mean reward
    // ("score") is below the RM's own mean ("rm") on the same rollouts.
    std::ifstream metrics(w.path / "l" / "ppo_metrics.jsonl");
    int lines = 0;
    for (std::string line; std::getline(metrics, line); ++lines) {
        const auto m = nlohmann::json::parse(line);
        BOOST_TEST(m["score"].get<double>() < m["rm"].get<double>(), line);
        const double kept = m["kept_advantage"].get<double>();
        BOOST_TEST((kept > 0.0 && kept <= 1.0), line);
    }
    BOOST_TEST(lines > 0);
}

// --ptx-text is encoded with the run's tokenizer before anything is made: a character outside
// its vocabulary is one line naming the file and the character.
BOOST_AUTO_TEST_CASE(pipeline_rejects_ptx_text_outside_the_vocabulary) {
    sft_workspace w;
    const fs::path text = w.path / "mix.txt";
    std::ofstream(text) << "the cat ~ the dog\n";
    expect_pipeline_error(w, "--quick --ptx-text " + text.string(),
                          text.string() + " character '~' (position 8) is not in the tokenizer's");
    BOOST_TEST(!fs::exists(w.path / "r" / "corpus.txt"));
}

// PPO-ptx's mix from --ptx-text: given the pre-training split itself (the first 90% of
// corpus.txt, one token per character), the run is the default's, every PPO-ptx metric equal;
// another text, another run.
BOOST_AUTO_TEST_CASE(pipeline_ptx_text_replaces_the_pretraining_split, *utf::label("slow")) {
    sft_workspace w;
    const std::string common =
        "pipeline --quick --json --threads 2 --no-dialogue --methods ppo-ptx";
    const auto a = run_gptx(common + " --out " + (w.path / "a").string());
    BOOST_TEST_REQUIRE(a.code == 0, a.out);
    const std::string corpus = read_all(w.path / "a" / "corpus.txt");
    const std::string split = corpus.substr(0, std::size_t(0.9 * double(corpus.size())));
    std::ofstream(w.path / "mix.txt", std::ios::binary) << split;
    const auto b = run_gptx(common + " --ptx-text " + (w.path / "mix.txt").string() + " --out " +
                            (w.path / "b").string());
    BOOST_TEST_REQUIRE(b.code == 0, b.out);
    BOOST_TEST(b.out.find("PPO-ptx mix: " + std::to_string(split.size()) + " characters of ") !=
               std::string::npos);
    const auto jb = nlohmann::json::parse(b.out.substr(b.out.rfind("\n{") + 1));
    BOOST_TEST(jb["ptx_text"].get<std::string>() == (w.path / "mix.txt").string());
    // Every metric of every iteration but its time.
    auto lines = [](const fs::path& p) {
        std::vector<nlohmann::json> out;
        std::istringstream in(read_all(p));
        for (std::string l; std::getline(in, l);) {
            out.push_back(nlohmann::json::parse(l));
            out.back().erase("ms");
        }
        return out;
    };
    const auto ma = lines(w.path / "a" / "ppo_ptx_metrics.jsonl");
    const auto mb = lines(w.path / "b" / "ppo_ptx_metrics.jsonl");
    BOOST_TEST_REQUIRE(!ma.empty());
    BOOST_TEST(ma.front()["ptx_loss"].get<double>() > 0.0);
    BOOST_TEST((ma == mb));
    // ... and another text is another mix: the first update's pre-training loss differs.
    std::ofstream(w.path / "other.txt", std::ios::binary) << split.substr(split.size() / 2);
    const auto c = run_gptx(common + " --ptx-text " + (w.path / "other.txt").string() + " --out " +
                            (w.path / "c").string());
    BOOST_TEST_REQUIRE(c.code == 0, c.out);
    const auto mc = lines(w.path / "c" / "ppo_ptx_metrics.jsonl");
    BOOST_TEST_REQUIRE(!mc.empty());
    BOOST_TEST(mc.front()["ptx_loss"].get<double>() != ma.front()["ptx_loss"].get<double>());
}

// ... but only where the dialogue stage runs: without it the rounds are the instruction stage's,
// and the next check (DPO's) is the one that speaks.
BOOST_AUTO_TEST_CASE(pipeline_allows_rounds_without_the_dialogue_stage) {
    sft_workspace w;
    expect_pipeline_error(w, "--no-dialogue --rlhf-rounds 2 --dpo-beta 0",
                          "--dpo-beta must be positive, got 0");
}

// The defaults' dialogue stage (after PPO on two instruction RMs): four RMs reward the chat model,
// at its own learning rate (here with a warm-up, and by PPO without ptx), on its own iteration
// count, judged on its own number of held-out conversations, of which the diagnosis reads the first
// 300; every judgement is in dialogue_judgements.jsonl.
BOOST_AUTO_TEST_CASE(pipeline_quick_rewards_the_chat_model_by_an_ensemble, *utf::label("slow")) {
    sft_workspace w;
    const auto r = run_gptx(
        "pipeline --quick --json --threads 2 --methods ppo --rm-ensemble 2 "
        "--rm-ensemble-data samples --dialogue-ppo-iters 3 --dialogue-eval-conversations 320 "
        "--dialogue-ppo-lr-warmup 2 --dialogue-ptx-coef 0 "
        "--dialogue-ppo-min-turns 2 --out " +
        (w.path / "e").string());
    BOOST_TEST_REQUIRE(r.code == 0, r.out);
    const auto j = nlohmann::json::parse(r.out.substr(r.out.rfind("\n{") + 1));
    // The instruction stage's PPO rewarded by two RMs (--rm-ensemble), each one's accuracy given.
    BOOST_TEST(j["rm_ensemble"].get<int>() == 2);
    BOOST_TEST_REQUIRE(j["rm_member_accuracy"].size() == 2u);
    BOOST_TEST(j["rm_member_accuracy"][0].get<double>() == j["rm_accuracy"].get<double>());
    BOOST_TEST((j["rm_member_accuracy"][1].get<double>() >= 0.0 &&
                j["rm_member_accuracy"][1].get<double>() <= 1.0));
    BOOST_TEST(r.out.find("RM member 1: held-out accuracy") != std::string::npos);
    // Member 1 ranked its own samples of the same prompts: most of its prompts are member 0's
    // (ties drop some prompts from each file), with other responses.
    BOOST_TEST(j["rm_ensemble_data"].get<std::string>() == "samples");
    // The ensemble's held-out diagnosis: member 0 is the RM (rescaled, so it ranks as before,
    // up to a pair whose rewards round differently).
    const auto& d = j["rm_ensemble_diagnosis"]["held_out"];
    BOOST_TEST_REQUIRE(d["member_accuracy"].size() == 2u);
    BOOST_TEST(std::abs(d["member_accuracy"][0].get<double>() - j["rm_accuracy"].get<double>()) <=
               1.5 / d["pairs"].get<double>());
    for (const char* key : {"accuracy", "shared_errors"})
        BOOST_TEST((d[key].get<double>() >= 0.0 && d[key].get<double>() <= 1.0), key);
    // ... and on the PPO policy's own samples, beside member 0's.
    BOOST_TEST_REQUIRE(j["rm_ensemble_accuracy_on_ppo"].size() == 1u); // one per round
    const double on_ppo = j["rm_ensemble_accuracy_on_ppo"][0].get<double>();
    BOOST_TEST((on_ppo >= 0.0 && on_ppo <= 1.0));
    BOOST_TEST(r.out.find("(the ensemble: ") != std::string::npos);
    const auto prompts_and_responses = [](const fs::path& p) {
        std::vector<std::string> prompts, responses;
        std::istringstream in(read_all(p));
        for (std::string l; std::getline(in, l);) {
            const auto c = nlohmann::json::parse(l);
            prompts.push_back(c["prompt"].get<std::string>());
            responses.push_back(c["responses"].dump());
        }
        return std::pair{prompts, responses};
    };
    const auto [p0, r0] = prompts_and_responses(w.path / "e" / "comparisons.jsonl");
    const auto [p1, r1] = prompts_and_responses(w.path / "e" / "comparisons_rm1.jsonl");
    BOOST_TEST(p1.size() > p0.size() / 2); // ties dropped, so not always the same count
    const std::set<std::string> first(p0.begin(), p0.end());
    const auto shared = std::count_if(p1.begin(), p1.end(),
                                      [&](const std::string& q) { return first.count(q) > 0; });
    BOOST_TEST(shared > std::ptrdiff_t(p1.size() / 2));
    BOOST_TEST(r0 != r1);
    BOOST_TEST(std::isfinite(j["ppo_win_rate"].get<double>()));
    // As the trainer ran: its configuration and the reward's members.
    const auto& p = j["dialogue_ppo"];
    BOOST_TEST(p["rm_ensemble"].get<int>() == 4);
    BOOST_TEST(p["lr"].get<double>() == double(3e-5f));
    BOOST_TEST(p["iterations"].get<int>() == 3);
    BOOST_TEST(p["epochs"].get<int>() == 4); // --quick's instruction stage's
    BOOST_TEST(p["lr_warmup"].get<int>() == 2);
    BOOST_TEST(p["ptx_coef"].get<double>() == 0.0);
    // Only turns with an earlier exchange: each conversation of two or three user turns gives
    // at most two (none where the SFT model's own replies push a turn's history out of the
    // context, as --quick's barely trained model's long replies often do).
    BOOST_TEST(p["min_user_turns"].get<int>() == 2);
    const auto at = r.out.find("dialogue PPO: ");
    BOOST_TEST_REQUIRE(at != std::string::npos);
    int prompts = 0, least = 0, convs = 0;
    BOOST_TEST_REQUIRE(std::sscanf(r.out.c_str() + at,
                                   "dialogue PPO: %d prompts, the user turns with at least %d "
                                   "user messages of %d conversations",
                                   &prompts, &least, &convs) == 3);
    BOOST_TEST(prompts == p["prompts"].get<int>());
    BOOST_TEST(least == 2);
    BOOST_TEST(prompts > 0);
    BOOST_TEST(prompts <= 2 * convs);
    BOOST_TEST(r.out.find("| dialogue: chat model (PPO) over dialogue SFT") != std::string::npos);
    const std::string metrics = read_all(w.path / "e" / "dialogue_ppo_metrics.jsonl");
    BOOST_TEST(std::count(metrics.begin(), metrics.end(), '\n') == 3);
    // The rollouts' labeler mean by turn: no opening turns among the prompts, so none there.
    {
        std::istringstream lines(metrics);
        std::string line;
        while (std::getline(lines, line)) {
            const auto m = nlohmann::json::parse(line);
            BOOST_TEST(m["labeler_opening"].is_null());
            BOOST_TEST(m["labeler_later"].get<double>() == m["labeler"].get<double>(),
                       boost::test_tools::tolerance(1e-9));
        }
    }
    const auto& acc = j["dialogue_rm_member_accuracy"];
    BOOST_TEST_REQUIRE(acc.size() == 4u);
    for (const auto& a : acc)
        BOOST_TEST((a.is_number() && a.get<double>() >= 0.0 && a.get<double>() <= 1.0));
    for (int k = 0; k < 4; ++k)
        BOOST_TEST(r.out.find("dialogue RM member " + std::to_string(k) + ":") != std::string::npos,
                   k);
    BOOST_TEST(j["dialogue_conversations"].get<int>() == 320);
    BOOST_TEST(j["dialogue_diagnosis_conversations"].get<int>() == 300);
    BOOST_TEST(r.out.find("on the first 300 held-out conversations") != std::string::npos);
    BOOST_TEST(std::isfinite(j["dialogue_win_rate"].get<double>()));
    // One judgement per conversation, whose outcomes make the win rate.
    std::istringstream judged(read_all(w.path / "e" / "dialogue_judgements.jsonl"));
    double credit = 0;
    int n = 0;
    std::size_t wins = 0, losses = 0;
    for (std::string line; std::getline(judged, line); ++n) {
        const auto c = nlohmann::json::parse(line);
        BOOST_TEST(c["conversation"].get<int>() == n);
        const std::string o = c["outcome"];
        BOOST_TEST((o == "win" || o == "tie" || o == "loss"), o);
        credit += o == "win" ? 1.0 : o == "tie" ? 0.5 : 0.0;
        wins += o == "win";
        losses += o == "loss";
        BOOST_TEST(c["earlier_turns"].get<int>() >= 1); // multi-turn: judged on the last turn
    }
    BOOST_TEST(n == 320);
    BOOST_TEST(credit / n == j["dialogue_win_rate"].get<double>(),
               boost::test_tools::tolerance(1e-12));
    BOOST_TEST(gptx::sign_test_p(wins, losses) == j["dialogue_sign_test_p"].get<double>(),
               boost::test_tools::tolerance(1e-12));
}

// Label "slow": its own CTest test (cli_slow).
BOOST_AUTO_TEST_CASE(pipeline_quick_prints_the_json_table, *utf::label("slow")) {
    sft_workspace w;
    // Two rounds of iterated RLHF (one PPO iteration each at --quick sizes); the chat model's
    // PPO on its own schedule: 16 rollouts in updates of 4, one pass (the instruction stage's:
    // updates of 8, four passes).
    const auto r =
        run_gptx("pipeline --quick --json --threads 2 --rlhf-rounds 2 --dialogue-rm-ensemble 1 "
                 "--dialogue-ppo-minibatch 4 --dialogue-ppo-epochs 1 --out " +
                 (w.path / "p").string());
    BOOST_TEST_REQUIRE(r.code == 0, r.out);
    // The JSON object is the last line (it nests objects, so not from the last '{').
    const std::string last = r.out.substr(r.out.rfind("\n{") + 1);
    const auto j = nlohmann::json::parse(last);
    BOOST_TEST(j["rm_pooling"] == "last");
    // Every figure of the table and the lines: present and finite.
    auto finite = [&](const nlohmann::json& v) {
        return v.is_number() && std::isfinite(v.get<double>());
    };
    for (const char* k :
         {"rm_accuracy", "ppo_win_rate", "ppo_ptx_win_rate", "ppo_kl", "ppo_ptx_kl",
          "labeler_mean_sft", "labeler_mean_ppo", "labeler_mean_ppo_ptx", "exact_ppo",
          "pretrain_val_loss_sft", "pretrain_val_loss_ppo", "pretrain_val_loss_ppo_ptx",
          "dialogue_win_rate", "dialogue_rm_accuracy", "dialogue_conversations",
          "dialogue_exact_sft", "dialogue_exact_chat", "dialogue_exact_sft_greedy", "seconds"})
        BOOST_TEST((j.contains(k) && finite(j[k])), k);
    for (const char* k : {"ppo_sign_test_p", "ppo_ptx_sign_test_p", "dialogue_sign_test_p"})
        BOOST_TEST((j.contains(k) && finite(j[k]) && j[k] > 0.0 && j[k] <= 1.0), k);
    BOOST_TEST(r.out.find("sign test, wins against losses (ties dropped), two-sided p: PPO ") !=
               std::string::npos);
    // The dialogue RM on each model's own samples: a share, or null when every sample tied.
    for (const char* k : {"dialogue_rm_accuracy_on_sft", "dialogue_rm_accuracy_on_chat",
                          "dialogue_rm_accuracy_on_sft_first", "dialogue_rm_accuracy_on_sft_last"})
        BOOST_TEST(
            (j.contains(k) && (j[k].is_null() || (finite(j[k]) && j[k] >= 0.0 && j[k] <= 1.0))), k);
    for (const char* k : {"ppo_win_rate_ci", "ppo_ptx_win_rate_ci", "dialogue_win_rate_ci"})
        BOOST_TEST((j.contains(k) && j[k].size() == 2 && finite(j[k][0]) && finite(j[k][1]) &&
                    j[k][0].get<double>() <= j[k][1].get<double>()),
                   k);
    // Best of n of SFT's samples by the RM and by the labeler, for both stages: one entry per n,
    // n = 1 first (a fresh sample against SFT's own), the labeler's pick never worse than the RM's.
    for (const char* k : {"best_of_n", "dialogue_best_of_n"}) {
        BOOST_TEST_REQUIRE(j.contains(k), k);
        const auto& b = j[k];
        BOOST_TEST_REQUIRE((b["n"].size() == 5u && b["rm_win_rate"].size() == 5u &&
                            b["labeler_win_rate"].size() == 5u && b["rm_win_rate_ci"].size() == 5u),
                           k);
        BOOST_TEST(b["n"][0].get<int>() == 1, k);
        for (std::size_t i = 0; i < 5; ++i) {
            BOOST_TEST((finite(b["rm_win_rate"][i]) && finite(b["labeler_win_rate"][i]) &&
                        finite(b["kl"][i])),
                       k);
            BOOST_TEST(b["labeler_win_rate"][i].get<double>() >=
                           b["rm_win_rate"][i].get<double>() - 1e-12,
                       k << " n=" << b["n"][i]);
        }
    }
    BOOST_TEST(r.out.find("best of n SFT responses over SFT's one: n=1") != std::string::npos);
    BOOST_TEST(r.out.find("dialogue diagnosis: best of n SFT replies to the last turn") !=
               std::string::npos);
    // The RM's accuracy on each PPO policy's own samples, per round.
    BOOST_TEST(j["rlhf_rounds"].get<int>() == 2);
    BOOST_TEST(j["rm_accuracy_on_ppo"].size() == 2u);
    BOOST_TEST(j["dialogue_ppo"]["iterations"].get<int>() == 2); // --quick's --ppo-iters
    BOOST_TEST(j["dialogue_ppo"]["epochs"].get<int>() == 1);
    BOOST_TEST(j["dialogue_ppo"]["minibatch"].get<int>() == 4);
    BOOST_TEST(j["ppo_kl"].get<double>() >= 0.0);
    BOOST_TEST(r.out.find("| dialogue: chat model (PPO-ptx) over dialogue SFT on the last turn") !=
               std::string::npos);
    BOOST_TEST(r.out.find("ppo round 2: RM retrained on") != std::string::npos, r.out);
    // Iterated RLHF in the dialogue stage too: one retraining, before round 2.
    BOOST_TEST(r.out.find("dialogue round 2: RM retrained on") != std::string::npos, r.out);
    {
        const auto& a = j["dialogue_rlhf_rounds"];
        BOOST_TEST_REQUIRE(a.size() == 1u);
        const auto& r2 = a[0];
        // The new comparisons join the first round's: the RM trains on both.
        BOOST_TEST(r2["comparisons_added"].get<std::size_t>() > 0u);
        BOOST_TEST(r2["comparisons_total"].get<std::size_t>() ==
                   j["dialogue_rm_comparisons"].get<std::size_t>() +
                       r2["comparisons_added"].get<std::size_t>());
        BOOST_TEST(
            (finite(r2["rm_held_out"]) && r2["rm_held_out"] >= 0.0 && r2["rm_held_out"] <= 1.0));
        for (const char* k : {"rm_on_chat_t1_before", "rm_on_chat_t1_after"})
            BOOST_TEST((r2[k].is_null() || (finite(r2[k]) && r2[k] >= 0.0 && r2[k] <= 1.0)), k);
    }
    BOOST_TEST(r.out.find("dialogue diagnosis: last turn exact, dialogue SFT") !=
               std::string::npos);
    BOOST_TEST(j["dialogue_diagnosis_conversations"].get<int>() ==
               j["dialogue_conversations"].get<int>()); // --quick judges fewer than 300
    // Every dialogue PPO iteration logs the labeler's view beside the RM's (the report's curve).
    {
        std::ifstream f(w.path / "p" / "dialogue_ppo_metrics.jsonl");
        std::string line;
        int lines = 0;
        while (std::getline(f, line)) {
            const auto m = nlohmann::json::parse(line);
            BOOST_TEST((finite(m["labeler"]) && m["labeler"] >= 0.0 && m["labeler"] <= 1.0));
            BOOST_TEST((finite(m["kl_seq"]) && finite(m["score"])));
            ++lines;
            // Numbered on across the rounds: iteration k of 2 is in round k.
            BOOST_TEST(m["iteration"].get<int>() == lines);
            BOOST_TEST(m["round"].get<int>() == lines);
            // Round 2 goes on from round 1's policy (--quick has no critic warm-up): its
            // rollouts are no longer the reference's, where round 1's are.
            if (lines == 1)
                BOOST_TEST(m["kl_seq"].get<double>() == 0.0);
            else
                BOOST_TEST(m["kl_seq"].get<double>() != 0.0);
            // 16 rollouts in updates of 4, one pass; --quick has no critic warm-up, during
            // which the policy is not updated.
            BOOST_TEST(m["updates"].get<int>() + m["skipped"].get<int>() == 16 / 4);
        }
        BOOST_TEST(lines == 2); // --quick: two iterations
    }
    for (const char* f :
         {"sft.jsonl", "comparisons.jsonl", "ppo_prompts.jsonl", "pretrain_train.bin",
          "dialogue_sft.jsonl", "dialogue_comparisons.jsonl", "chat.gptx"})
        BOOST_TEST(fs::exists(w.path / "p" / f), f);
    // The PPO metrics carry the labeler's score beside the RM's, numbered on across rounds, so
    // gptx report draws the over-optimisation curves.
    const std::string ppo = read_all(w.path / "p" / "ppo_metrics.jsonl");
    BOOST_TEST(ppo.find("\"iteration\":2") != std::string::npos, ppo);
    BOOST_TEST(ppo.find("\"labeler\":") != std::string::npos, ppo);
    BOOST_TEST(ppo.find("\"kl_seq\":") != std::string::npos, ppo);
    BOOST_TEST_REQUIRE(run_gptx("report " + (w.path / "p").string()).code == 0);
    BOOST_TEST(read_all(w.path / "p" / "report.html").find("Labeler score (gold) vs sqrt KL") !=
               std::string::npos);
}

// Mean-pooled reward models through both stages and a second RLHF round (each retrains its RM
// on the policy's samples and re-centres it on the demonstrations, whose replies' starts the
// pooling needs); the saved RM reads back mean-pooled.
BOOST_AUTO_TEST_CASE(pipeline_quick_with_mean_pooled_reward_models, *utf::label("slow")) {
    sft_workspace w;
    const auto r = run_gptx("pipeline --quick --json --threads 2 --rlhf-rounds 2 --methods ppo "
                            "--dialogue-rm-ensemble 1 "
                            "--rm-pooling mean --out " +
                            (w.path / "m").string());
    BOOST_TEST_REQUIRE(r.code == 0, r.out);
    BOOST_TEST(r.out.find("RM (mean-pooled) held-out pairwise accuracy") != std::string::npos,
               r.out);
    const auto j = nlohmann::json::parse(r.out.substr(r.out.rfind("\n{") + 1));
    BOOST_TEST(j["rm_pooling"] == "mean");
    for (const char* k :
         {"rm_accuracy", "ppo_win_rate", "dialogue_rm_accuracy", "dialogue_win_rate"})
        BOOST_TEST((j.contains(k) && j[k].is_number() && std::isfinite(j[k].get<double>())), k);
    // One RM: its accuracy by kind on the policy's samples at the end has the round's total as
    // its mean (up to a pair whose rewards round differently in the two evaluations).
    const auto& on_ppo = j["rm_accuracy_on_ppo"][1];
    if (!on_ppo.is_null()) {
        const auto [pairs, acc] = whole_of_kinds(j["rm_accuracy_by_kind_on_ppo"]);
        BOOST_TEST(std::abs(acc - on_ppo.get<double>()) <= 1.5 / pairs);
    }
    const fs::path rm = w.path / "m" / "rm.gptx";
    const auto cfg = gptx::read_checkpoint_info(rm).config;
    BOOST_TEST((gptx::load_reward_model<gptx::presets::baby>(rm.string(), cfg, "ppo")->pooling() ==
                gptx::reward_pooling::mean));
}

BOOST_AUTO_TEST_SUITE_END()
