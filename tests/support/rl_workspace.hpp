// Test support: the files the alignment commands (gptx ppo, grpo, dpo) start from, written into a
// scratch folder: an "SFT" checkpoint (char tokenizer over "abcdefgh ", the id after it reserved
// for end-of-text), a reward-model checkpoint in gptx rm's format (trunk + "reward_head"),
// prompts and a pre-training token file.
#pragma once
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <nlohmann/json.hpp>

#include <gptx/data/token_file.hpp>
#include <gptx/io/checkpoint.hpp>
#include <gptx/nn/heads.hpp>
#include <gptx/nn/transformer.hpp>
#include <gptx/text/tokenizer.hpp>

#include "scratch.hpp"

namespace gptx::test {

struct rl_workspace : scratch_dir {
    fs::path sft, rm, prompts, ptx;
    explicit rl_workspace(const std::string& tag) : scratch_dir(tag) {
        const tokenizer tok = make_tokenizer("char", "abcdefgh ");
        constexpr shape S = presets::tiny;
        transformer<S> m({tok.vocab_size() + 1, 24});
        m.init(3);
        sft = path / "sft.gptx";
        save_checkpoint<S>(sft, m, nullptr, tok, {});
        m.init(4);
        linear_head<float> head(S.width, 1);
        head.init(5, 0.1f);
        const checkpoint_extra extras[] = {{"reward_head", &head.params(), nullptr}};
        rm = path / "rm.gptx";
        save_checkpoint<S>(rm, m, nullptr, tok, {}, extras);
        prompts = write("prompts.jsonl", "{\"prompt\": \"abc\"}\n\n{\"prompt\": \"hg\", \"id\": "
                                         "2}\n{\"prompt\": \"fed\"}\n");
        ptx = path / "ptx.bin";
        std::vector<int> ids;
        for (int i = 0; i < 300; ++i)
            ids.push_back(i * 7 % tok.vocab_size());
        write_token_file(ptx, ids);
    }
    // --rm-likelihood A: run(folder, extra flags) runs the command for one iteration into
    // path / folder. The first iteration's rollouts come from the SFT policy under one seed
    // whatever the reward, so its mean reward with A = 2 must be the RM's plus twice the
    // likelihood alone's (a mean log-probability, < 0).
    template <class Run> void check_likelihood_term(Run&& run) const {
        auto score = [&](const std::string& name, const std::string& extra) {
            const auto r = run(path / name, extra);
            BOOST_TEST_REQUIRE(r.code == 0, r.out);
            return first_score(path / name);
        };
        const double rm = score("rm", ""),
                     ll = score("ll", " --rm-likelihood 1 --rm-likelihood-only"),
                     both = score("both", " --rm-likelihood 2");
        BOOST_TEST(std::isfinite(rm));
        BOOST_TEST(ll < 0.0, "a mean log-probability, got " << ll);
        BOOST_TEST(both == rm + 2 * ll, boost::test_tools::tolerance(1e-5));
        BOOST_TEST(std::abs(both - rm) > 1e-3, "the term changed nothing");
    }
    // The "score" (mean reward of the rollouts) of a run's first iteration, from its
    // metrics.jsonl; NaN when no line has one.
    static double first_score(const fs::path& run) {
        std::ifstream in(run / "metrics.jsonl");
        for (std::string line; std::getline(in, line);) {
            const auto j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_object() && j.contains("score"))
                return j["score"].get<double>();
        }
        return std::nan("");
    }
};

} // namespace gptx::test
