// Tests for samples/tasks/tasks.hpp: the instruction family, its labeler and the generators.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include <tasks/tasks.hpp>

using namespace gptx;
using namespace gptx::tasks;

BOOST_AUTO_TEST_SUITE(tasks)

BOOST_AUTO_TEST_CASE(solve_gives_the_exact_answers) {
    BOOST_TEST(*solve_instruction("reverse abc") == "cba");
    BOOST_TEST(*solve_instruction("uppercase hello") == "HELLO");
    BOOST_TEST(*solve_instruction("add 12 and 7") == "19");
    BOOST_TEST(*solve_instruction("add 0 and 0") == "0");
    BOOST_TEST(*solve_instruction("length of kopa") == "4");
    BOOST_TEST(*solve_instruction("sort d b a") == "a b d");
    BOOST_TEST(*solve_instruction("sort z a z m") == "a m z z");
    BOOST_TEST(*solve_instruction("first letter of hello") == "h");
    BOOST_TEST(*solve_instruction("last letter of hello") == "o");
}

BOOST_AUTO_TEST_CASE(solve_rejects_text_outside_the_family) {
    for (const char* s :
         {"", "reverse", "reverse ", "reverse ABC", "add 1 and", "add 01 and 2", "add -1 and 2",
          "add 1 plus 2", "sort ab c", "sort a  b", "sort a b ", "length of", "hello world"})
        BOOST_TEST(!solve_instruction(s).has_value(), "'" << s << "' should not parse");
}

BOOST_AUTO_TEST_CASE(prompt_round_trip) {
    BOOST_TEST(task_prompt("reverse abc") == "Q: reverse abc\nA: ");
    BOOST_TEST(*instruction_of_prompt("Q: reverse abc\nA: ") == "reverse abc");
    BOOST_TEST(!instruction_of_prompt("reverse abc").has_value());
    BOOST_TEST(!instruction_of_prompt("Q: reverse abc\nA:").has_value());
}

BOOST_AUTO_TEST_CASE(labeler_prefers_correct_complete_concise_ended_answers) {
    const labeler lab;
    const task t{"reverse abcd", "dcba"};
    BOOST_TEST(lab.score(t, "dcba", true) == 1.0);
    BOOST_TEST(lab.score(t, "dcba", false) == 0.8);
    // one wrong letter of four: 0.2 + 0.8 * 0.5 * 0.75
    BOOST_TEST(lab.score(t, "dcbx", true) == 0.2 + 0.8 * 0.5 * 0.75,
               boost::test_tools::tolerance(1e-12));
    // trailing junk: edit 3 over length 7
    BOOST_TEST(lab.score(t, "dcba ok", true) == 0.2 + 0.8 * 0.5 * (4.0 / 7.0),
               boost::test_tools::tolerance(1e-12));
    BOOST_TEST(lab.score(t, "", true) == 0.2);
    BOOST_TEST(lab.score(t, "", false) == 0.0);
    BOOST_TEST(lab.score("Q: add 2 and 3\nA: ", "5", true) == 1.0);
    BOOST_TEST(lab.score(t, "dcba", true) > lab.score(t, "dcba", false));
    BOOST_TEST(lab.score(t, "dcba", false) > lab.score(t, "dcbx", true));
    BOOST_TEST(lab.score(t, "dcbx", true) > lab.score(t, "dcba ok", true));

    const std::vector<std::string> rs{"dcba ok", "dcba", "xyz", "dcba"};
    const std::vector<bool> ended{true, false, true, true};
    BOOST_TEST(lab.rank(t, rs, ended) == (std::vector<int>{3, 1, 0, 2}));
}

BOOST_AUTO_TEST_CASE(labeler_rejects_prompts_outside_the_family) {
    const labeler lab;
    try {
        (void)lab.score("Q: translate hello\nA: ", "x", true);
        BOOST_FAIL("no error");
    } catch (const gptx::error& e) {
        BOOST_TEST(std::string(e.what()).find("translate hello") != std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(generators_are_deterministic_and_disjoint) {
    const auto a = make_tasks(7, 200), b = make_tasks(7, 200);
    BOOST_TEST((a == b));
    std::set<int> kinds;
    std::unordered_set<std::string> seen;
    for (const auto& t : a) {
        BOOST_TEST(*solve_instruction(t.instruction) == t.answer);
        seen.insert(t.instruction);
    }
    BOOST_TEST(seen.size() == a.size());
    const auto held_out = make_tasks(8, 200, seen);
    for (const auto& t : held_out)
        BOOST_TEST(!seen.count(t.instruction));

    rng r(3);
    for (int k = 0; k < task_kind_count; ++k) {
        const task t = make_task(task_kind(k), r);
        BOOST_TEST(*solve_instruction(t.instruction) == t.answer);
    }
    rng r2(11);
    const task rev = make_task(task_kind::reverse, r2);
    BOOST_TEST(std::string(rev.answer.rbegin(), rev.answer.rend()) == rev.instruction.substr(8));
}

// The pipeline's sets at its default sizes. Held-out sets are distinct and disjoint; training sets
// are iid draws outside them and follow the same distribution: each kind about 1/7 of a set, words
// (and sorts) as long on average as the generator makes them (within 4 standard errors of the
// family's means; skipping the held-out instructions lowers the sums' share by about one). Drawing
// every set distinct from the sets before it failed this: PPO's prompts were 3% sums, their words
// 0.3-0.8 letters longer.
BOOST_AUTO_TEST_CASE(training_sets_follow_the_distribution_the_held_out_sets_are_drawn_from) {
    task_splits splits(1);
    const auto eval = splits.held_out(1, 300), select = splits.held_out(2, 128),
               rm_val = splits.held_out(3, 300);
    std::unordered_set<std::string> held;
    for (const auto* set : {&eval, &select, &rm_val})
        for (const auto& t : *set)
            BOOST_TEST_REQUIRE(held.insert(t.instruction).second, t.instruction);
    BOOST_TEST(held == splits.held_out_instructions());

    // Per kind (an instruction's first word, as the pipeline's table groups them): the count and
    // the sum of sizes (a sort's letters, a word's letters; sums have none).
    struct tally {
        double count = 0, size_sum = 0;
    };
    auto summarise = [](const std::vector<task>& ts) {
        std::map<std::string, tally> by_kind;
        for (const auto& t : ts) {
            const std::string& ins = t.instruction;
            const std::string kind = ins.substr(0, ins.find(' '));
            tally& k = by_kind[kind];
            k.count += 1;
            if (kind == "sort")
                k.size_sum += double(ins.size() - 4) / 2;
            else if (kind != "add")
                k.size_sum += double(ins.size() - ins.rfind(' ') - 1);
        }
        return by_kind;
    };
    // The generator's means and standard deviations: words of 3-5 letters (2-7 for lengths),
    // sorts of 3-4 letters.
    const double word_sd = std::sqrt(2.0 / 3);
    const std::map<std::string, std::pair<double, double>> size_of{
        {"reverse", {4, word_sd}},
        {"uppercase", {4, word_sd}},
        {"length", {4.5, std::sqrt(35.0 / 12)}},
        {"sort", {3.5, 0.5}},
        {"first", {4, word_sd}},
        {"last", {4, word_sd}}};
    std::uint64_t salt = 10;
    for (const int n : {12000, 12000, 2000}) {
        const auto train = splits.training(salt++, n);
        std::unordered_set<std::string> distinct;
        for (const auto& t : train) {
            BOOST_TEST_REQUIRE(!held.count(t.instruction), t.instruction);
            distinct.insert(t.instruction);
        }
        if (n == 12000) // 12,000 iid draws of 2,500 possible sums repeat some
            BOOST_TEST(distinct.size() < train.size());
        const auto by_kind = summarise(train);
        BOOST_TEST_REQUIRE(by_kind.size() == std::size_t(task_kind_count));
        const double p = 1.0 / task_kind_count, share_tol = 4 * std::sqrt(p * (1 - p) / n);
        for (const auto& [kind, k] : by_kind) {
            BOOST_TEST(std::abs(k.count / n - p) < share_tol, kind << " share " << k.count / n);
            if (const auto it = size_of.find(kind); it != size_of.end()) {
                const auto [mean, sd] = it->second;
                BOOST_TEST(std::abs(k.size_sum / k.count - mean) < 4 * sd / std::sqrt(k.count),
                           kind << " mean size " << k.size_sum / k.count);
            }
        }
    }
    BOOST_CHECK_THROW(splits.held_out(9, 10), gptx::error); // training sets would not exclude it
}

BOOST_AUTO_TEST_CASE(demonstrations_are_padded_in_the_given_fraction) {
    const auto ts = make_tasks(11, 4000);
    for (const double padded : {0.0, 0.3, 1.0}) {
        rng r(5);
        int n_padded = 0;
        std::set<std::string> phrases;
        for (const auto& t : ts) {
            BOOST_TEST_REQUIRE(!is_padded(t.answer), "'" << t.answer << "'");
            const std::string d = demonstration_response(t, r, padded);
            BOOST_TEST_REQUIRE(d.starts_with(t.answer));
            if (d == t.answer)
                continue;
            ++n_padded;
            BOOST_TEST(is_padded(d), "'" << d << "'");
            phrases.insert(d.substr(t.answer.size()));
        }
        // binomial: 4000 draws, 4 standard deviations at p = 0.3 is about 0.029
        BOOST_TEST(std::abs(double(n_padded) / double(ts.size()) - padded) < 0.03);
        BOOST_TEST(phrases.size() == (padded > 0 ? answer_padding.size() : 0u));
    }
    // the same seed gives the same demonstrations
    rng r1(9), r2(9);
    for (const auto& t : ts)
        BOOST_TEST_REQUIRE(demonstration_response(t, r1, 0.5) ==
                           demonstration_response(t, r2, 0.5));
    rng r(1);
    BOOST_CHECK_THROW((void)demonstration_response(ts[0], r, 1.5), gptx::error);
}

BOOST_AUTO_TEST_CASE(padded_demonstrations_fit_the_cap_and_are_recognised_when_cut_off) {
    // a 4-letter sort answer (7 characters) leaves room for the short phrases only
    const task sort4{"sort d c b a", "a b c d"};
    rng r(3);
    std::set<std::string> seen;
    for (int i = 0; i < 400; ++i) {
        const std::string d = demonstration_response(sort4, r, 1.0, 13);
        BOOST_TEST_REQUIRE(d.size() <= 13u, "'" << d << "'");
        seen.insert(d);
    }
    BOOST_TEST(seen == (std::set<std::string>{"a b c d maybe", "a b c d ok", "a b c d right"}));
    // nothing fits: the answer stays clean
    BOOST_TEST(demonstration_response(sort4, r, 1.0, 9) == "a b c d");
    // cut off by the sampler's cap
    BOOST_TEST(is_padded("a q x y and that is "));
    BOOST_TEST(is_padded("KAPOP ok"));
    BOOST_TEST(is_padded("cba i th"));
    // ... but a sort answer ending in " i t" is not padding
    BOOST_TEST(!is_padded("a i t"));
    BOOST_TEST(!is_padded("a b c"));
}

BOOST_AUTO_TEST_CASE(corpus_is_deterministic_and_covers_the_prompt_characters) {
    const std::string c = make_pretraining_corpus(5, 20000);
    BOOST_TEST(c == make_pretraining_corpus(5, 20000));
    BOOST_TEST(c != make_pretraining_corpus(6, 20000));
    BOOST_TEST(c.size() >= 20000u);
    BOOST_TEST(c.find("Q: ") != std::string::npos);
    for (const auto& t : make_tasks(9, 300))
        for (char ch : task_prompt(t.instruction) + t.answer)
            BOOST_TEST(c.find(ch) != std::string::npos, "character '" << ch << "' missing");
}

BOOST_AUTO_TEST_SUITE_END()
