// Tests of what produces `gptx pipeline`'s headline numbers (samples/instructgpt/): the labeler's
// ranking into comparisons, the labelling of responses (mean, exact, padded), the dialogue
// stage's conversations and the judgement of the last turn, and comparisons made from a model's
// samples. A change that breaks the table fails here, not only in a rerun.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <instructgpt/dialogue_stage.hpp>

#include "support/shapes.hpp"

using namespace gptx;
using namespace gptx::instructgpt;

namespace {

// A char tokenizer that knows every character of the task family's prompts and answers.
tokenizer judging_tokenizer() { return make_tokenizer("char", make_pretraining_corpus(3, 20000)); }

generation generated(const tokenizer& tok, const std::string& text, bool ended) {
    return {tok.encode(text), text, ended ? stop_reason::end_of_text : stop_reason::length};
}

// A two-turn conversation's PPO prompts, one per user turn, and the conversation prefix each
// formats (the labeler reads a reply at its turn).
struct two_turn_prompts {
    tokenizer tok = judging_tokenizer();
    int eot = tok.add_special_token("<|endoftext|>");
    chat_format fmt = chat_format::register_tokens(tok);
    conversation c{{chat_role::user, "reverse kopa"},
                   {chat_role::assistant, "apok"},
                   {chat_role::user, "same for tiba"},
                   {chat_role::assistant, "abit"}};
    std::vector<conversation> prefixes;
    std::vector<std::vector<int>> prompts;
    std::map<std::vector<int>, conversation> context_of;
    two_turn_prompts(int T, int max_new)
        : prompts(instructgpt::detail::reply_prompts(c, tok, fmt, T, max_new, &prefixes)) {
        BOOST_TEST_REQUIRE(prompts.size() == 2u);
        for (std::size_t k = 0; k < prompts.size(); ++k)
            context_of.emplace(prompts[k], prefixes[k]);
    }
};

} // namespace

BOOST_AUTO_TEST_SUITE(pipeline_judging)

BOOST_AUTO_TEST_CASE(rank_responses_orders_best_first_and_drops_ties_and_duplicates) {
    const auto r = rank_responses({{0.5, "b"}, {0.9, "a"}, {0.5, "c"}, {0.9, "a"}, {0.1, "d"}});
    // "a" once; "b" and "c" tie, the first drawn is kept; "d" last.
    BOOST_TEST(r == (std::vector<std::string>{"a", "b", "d"}), boost::test_tools::per_element());
    BOOST_TEST(rank_responses({{0.3, "x"}, {0.3, "y"}}).size() == 1u); // a tie: nothing to learn
    BOOST_TEST(rank_responses({}).empty());
}

BOOST_AUTO_TEST_CASE(label_responses_scores_exactness_endings_and_padding) {
    const tokenizer tok = judging_tokenizer();
    const std::vector<std::string> prompts{task_prompt("reverse kopa"), task_prompt("reverse kopa"),
                                           task_prompt("length of kopa"),
                                           task_prompt("uppercase kopa")};
    const std::vector<generation> gen{
        generated(tok, "apok", true),         // exact and ended: 1
        generated(tok, "apok i think", true), // correct but padded: not exact
        generated(tok, "4", false),           // right, but the cap cut it: 0.8
        generated(tok, "KOPB", true),         // one letter wrong: 0.2 + 0.8 * 0.5 * 3/4
    };
    const labelled l = label_responses(prompts, gen, tok);
    BOOST_TEST_REQUIRE(l.scores.size() == 4u);
    BOOST_TEST(l.scores[0] == 1.0, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(l.scores[1] == 0.2 + 0.8 * 0.5 * (1.0 - 8.0 / 12.0),
               boost::test_tools::tolerance(1e-12));
    BOOST_TEST(l.scores[2] == 0.8, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(l.scores[3] == 0.2 + 0.8 * 0.5 * 0.75, boost::test_tools::tolerance(1e-12));
    BOOST_TEST((l.exact_each == std::vector<bool>{true, false, false, false}));
    BOOST_TEST(l.exact == 0.25);
    BOOST_TEST(l.padded == 0.25);
    BOOST_TEST(l.mean == (l.scores[0] + l.scores[1] + l.scores[2] + l.scores[3]) / 4,
               boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(best_of_n_picks_by_the_rm_judges_by_the_labeler_against_the_base) {
    // Three prompts, four samples each; base: the model's own single sample's score.
    const std::vector<std::vector<double>> gold{{0.2, 0.9, 0.5, 1.0},  // RM prefers 0.9, then 0.5
                                                {0.6, 0.3, 0.3, 0.3},  // RM prefers the worst
                                                {0.4, 0.4, 0.4, 0.4}}; // all alike
    const std::vector<std::vector<bool>> exact{
        {false, false, false, true}, {false, false, false, false}, {false, false, false, false}};
    const std::vector<std::vector<float>> rm{{0, 3, 2, 1}, {0, 5, 1, 1}, {1, 2, 3, 4}};
    const std::vector<double> base{0.5, 0.5, 0.4};
    const auto c = best_of_n(gold, exact, rm, base, {1, 2, 4});
    BOOST_TEST((c.n == std::vector<int>{1, 2, 4}));
    // n = 1: the first sample, whatever the RM says: 0.2 < 0.5, 0.6 > 0.5, a tie.
    BOOST_TEST((c.by_rm[0].wins == 1u && c.by_rm[0].ties == 1u && c.by_rm[0].losses == 1u));
    BOOST_TEST((c.by_labeler[0].wins == 1u && c.by_labeler[0].losses == 1u));
    // n = 2: the RM picks 0.9 (win) and 0.3 (loss); the labeler's best, 0.9 and 0.6, wins both.
    BOOST_TEST((c.by_rm[1].wins == 1u && c.by_rm[1].ties == 1u && c.by_rm[1].losses == 1u));
    BOOST_TEST((c.by_labeler[1].wins == 2u && c.by_labeler[1].ties == 1u));
    // n = 4: the RM still picks 0.9 over the exact 1.0 it ranks third, so exact stays 0.
    BOOST_TEST(c.by_rm[2].wins == 1u);
    BOOST_TEST(c.exact_by_rm[2] == 0.0);
    BOOST_TEST(c.by_labeler[2].wins == 2u);
    BOOST_TEST(best_of_n_curve::kl(1) == 0.0);
    BOOST_TEST(best_of_n_curve::kl(4) == std::log(4.0) - 0.75, boost::test_tools::tolerance(1e-12));
    // Asking for more samples than there are is an error, not a read past the end.
    BOOST_CHECK_THROW(best_of_n(gold, exact, rm, base, {8}), std::exception);
    // The JSON form: one entry per n.
    const auto j = bon_json(c);
    BOOST_TEST(j["rm_win_rate"].size() == 3u);
    BOOST_TEST(j["rm_win_rate"][1].get<double>() == 0.5, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(j["labeler_win_rate"][1].get<double>() == 2.5 / 3,
               boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(the_dialogue_judgement_is_on_the_last_turn) {
    instructgpt::detail::rolled_out sft, chat;
    // Three conversations: chat wins the first on its last turn though it lost the first turn;
    // the second is tied on the last turn; chat loses the third.
    sft.scores = {{1.0, 0.2}, {0.5, 0.7}, {0.3, 0.9}};
    chat.scores = {{0.0, 0.6}, {0.9, 0.7}, {0.3, 0.4}};
    sft.exact = {{true, false}, {false, true}, {false, true}};
    chat.exact = {{false, false}, {true, true}, {false, false}};
    // The SFT roll-out's user turns name each last turn's kind (the replies do not matter).
    auto conv = [](const char* first, const char* last) {
        return conversation{{chat_role::user, first},
                            {chat_role::assistant, "x"},
                            {chat_role::user, last},
                            {chat_role::assistant, "y"}};
    };
    sft.convs = {conv("reverse kopa", "same for the first word"),
                 conv("uppercase tiba", "now reverse it"), conv("length of mel", "same for gub")};
    dialogue_stage_result r;
    instructgpt::detail::judge_last_turns(sft, chat, r);
    BOOST_TEST(r.win.wins == 1u);
    BOOST_TEST(r.win.ties == 1u);
    BOOST_TEST(r.win.losses == 1u);
    BOOST_TEST(r.turns == 6u);
    BOOST_TEST(r.sft_last == (0.2 + 0.7 + 0.9) / 3, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.rlhf_last == (0.6 + 0.7 + 0.4) / 3, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.sft_mean == 3.6 / 6, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.rlhf_mean == 2.9 / 6, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.sft_exact_last == 2.0 / 3, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.rlhf_exact_last == 1.0 / 3, boost::test_tools::tolerance(1e-12));
    // Last-turn exactness by kind: an earlier word (neither right), a new operation (both
    // right), a new word (SFT right); no fresh instruction.
    BOOST_TEST(r.kinds[0].n == 0u);
    BOOST_TEST(r.kinds[1].n == 1u);
    BOOST_TEST(r.kinds[1].sft_exact == 1u);
    BOOST_TEST(r.kinds[1].chat_exact == 0u);
    BOOST_TEST(r.kinds[2].n == 1u);
    BOOST_TEST(r.kinds[2].sft_exact == 0u);
    BOOST_TEST(r.kinds[2].chat_exact == 0u);
    BOOST_TEST(r.kinds[3].n == 1u);
    BOOST_TEST(r.kinds[3].sft_exact == 1u);
    BOOST_TEST(r.kinds[3].chat_exact == 1u);
    BOOST_TEST(instructgpt::turn_kind("uppercase gub") == 0u);
    BOOST_TEST(instructgpt::turn_kind("now do the same to gub") == 1u);
    BOOST_TEST(instructgpt::turn_kind("now do the same to the second word") == 2u);
    // The per-conversation record: the last turn's kind, replies and outcome for the chat model,
    // and how many earlier turns each model got exact.
    chat.convs = {conv("reverse kopa", "same for the first word"),
                  conv("uppercase tiba", "now reverse it"), conv("length of mel", "same for gub")};
    chat.convs[0].back().content = "z";
    std::vector<nlohmann::json> lines;
    {
        std::istringstream in(instructgpt::detail::judgements_jsonl(sft, chat));
        for (std::string line; std::getline(in, line);)
            lines.push_back(nlohmann::json::parse(line));
    }
    BOOST_REQUIRE(lines.size() == 3u);
    BOOST_TEST(lines[0]["outcome"] == "win");
    BOOST_TEST(lines[1]["outcome"] == "tie");
    BOOST_TEST(lines[2]["outcome"] == "loss");
    BOOST_TEST(lines[0]["kind"] == "same op, earlier word");
    BOOST_TEST(lines[1]["kind"] == "new op, same word");
    BOOST_TEST(lines[2]["user"] == "same for gub");
    BOOST_TEST(lines[0]["sft"] == "y");
    BOOST_TEST(lines[0]["chat"] == "z");
    BOOST_TEST(lines[0]["chat_score"].get<double>() == 0.6);
    BOOST_TEST(lines[1]["chat_exact"] == true);
    BOOST_TEST(lines[0]["earlier_turns"] == 1);
    BOOST_TEST(lines[0]["sft_earlier_exact"] == 1);
    BOOST_TEST(lines[0]["chat_earlier_exact"] == 0);
    BOOST_TEST(lines[1]["chat_earlier_exact"] == 1);
    // Roll-outs of different conversations are not comparable.
    chat.scores.pop_back();
    dialogue_stage_result bad;
    BOOST_CHECK_THROW(instructgpt::detail::judge_last_turns(sft, chat, bad), gptx::error);
}

BOOST_AUTO_TEST_CASE(every_turn_of_a_judged_conversation_is_answered_in_full_context) {
    tokenizer tok = judging_tokenizer();
    tok.add_special_token("<|endoftext|>");
    const chat_format fmt = chat_format::register_tokens(tok);
    const conversation c{{chat_role::user, "reverse kopa"},
                         {chat_role::assistant, "apok"},
                         {chat_role::user, "same for tiba"},
                         {chat_role::assistant, "abit"},
                         {chat_role::user, "same for the first word"},
                         {chat_role::assistant, "apok"}};
    const int max_new = 12;
    const auto prompts = instructgpt::detail::reply_prompts(c, tok, fmt, 96, max_new);
    BOOST_TEST_REQUIRE(prompts.size() == 3u); // one per user turn
    for (const auto& p : prompts) {
        BOOST_TEST(p.back() == fmt.assistant); // the reply follows
        BOOST_TEST(int(p.size()) + max_new + 1 <= 96);
    }
    BOOST_TEST(instructgpt::detail::every_turn_fits(c, tok, fmt, 96, max_new));
    // In a context too small for the last turn's history and reply, that turn would lose the
    // first exchange (the word "the first word" names): the conversation is not judged.
    const int tight = int(prompts[2].size()) + max_new;
    BOOST_TEST(!instructgpt::detail::every_turn_fits(c, tok, fmt, tight, max_new));
    BOOST_TEST(instructgpt::detail::reply_prompts(c, tok, fmt, tight, max_new).size() == 2u);
}

BOOST_AUTO_TEST_CASE(ppo_prompts_can_keep_only_turns_with_an_earlier_exchange) {
    tokenizer tok = judging_tokenizer();
    tok.add_special_token("<|endoftext|>");
    const chat_format fmt = chat_format::register_tokens(tok);
    const conversation c{{chat_role::user, "reverse kopa"},     {chat_role::assistant, "apok"},
                         {chat_role::user, "same for tiba"},    {chat_role::assistant, "abit"},
                         {chat_role::user, "now uppercase it"}, {chat_role::assistant, "TIBA"}};
    const int max_new = 12;
    std::vector<conversation> all_prefixes, later_prefixes;
    const auto all = instructgpt::detail::reply_prompts(c, tok, fmt, 96, max_new, &all_prefixes);
    const auto later =
        instructgpt::detail::reply_prompts(c, tok, fmt, 96, max_new, &later_prefixes, 2);
    BOOST_TEST_REQUIRE(all.size() == 3u);
    BOOST_TEST_REQUIRE(later.size() == 2u); // the opening turn is left out
    BOOST_TEST_REQUIRE(later_prefixes.size() == 2u);
    for (std::size_t k = 0; k < later.size(); ++k) {
        // The same prompts as the second and third of every turn's, each with its history.
        BOOST_TEST(later[k] == all[k + 1], boost::test_tools::per_element());
        BOOST_TEST(later_prefixes[k].size() == all_prefixes[k + 1].size());
        BOOST_TEST(later_prefixes[k].back().content == all_prefixes[k + 1].back().content);
    }
    // Three user messages at least: the last turn alone; four: none.
    BOOST_TEST(instructgpt::detail::reply_prompts(c, tok, fmt, 96, max_new, nullptr, 3).size() ==
               1u);
    BOOST_TEST(instructgpt::detail::reply_prompts(c, tok, fmt, 96, max_new, nullptr, 4).empty());
}

BOOST_AUTO_TEST_CASE(ppo_rollouts_are_labelled_at_their_turn_and_by_opening_or_later_turn) {
    const two_turn_prompts s(96, 6);
    const tokenizer& tok = s.tok;
    const auto& ps = s.prompts;
    const auto& prefixes = s.prefixes;
    const auto& context_of = s.context_of;
    // Rollouts as the PPO buffer holds them: prompt, reply, the appended end-of-text.
    struct rolled {
        std::vector<int> tokens;
        std::size_t prompt;
        bool stopped, ended;
    };
    auto roll = [&](const std::vector<int>& prompt, const std::string& reply) {
        rolled r{prompt, prompt.size(), false, true};
        for (int t : tok.encode(reply))
            r.tokens.push_back(t);
        r.tokens.push_back(s.eot);
        return r;
    };
    // The opening turn answered right twice; the later one wrongly ("apok" is the first word's).
    const std::vector<rolled> rs{roll(ps[0], "apok"), roll(ps[0], "apok"), roll(ps[1], "apok")};
    const auto l = instructgpt::detail::label_rollouts(rs, context_of, tok);
    const dialogue_labeler lab;
    const double right = lab.score(prefixes[0], "apok", true),
                 wrong = lab.score(prefixes[1], "apok", true);
    BOOST_TEST(right > wrong); // read at its own turn: "apok" answers only the first
    BOOST_TEST(l.openings == 2u);
    BOOST_TEST(l.laters == 1u);
    BOOST_TEST(l.opening == right, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(l.later == wrong, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(l.mean == (2 * right + wrong) / 3, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(l.exact == 2.0 / 3, boost::test_tools::tolerance(1e-12));
    // A rollout of a prompt PPO never had is an error, not a silent zero.
    const std::vector<rolled> stray{roll(std::vector<int>{ps[1].begin(), ps[1].end() - 1}, "a")};
    BOOST_CHECK_THROW(instructgpt::detail::label_rollouts(stray, context_of, tok), gptx::error);
}

BOOST_AUTO_TEST_CASE(comparisons_of_a_models_samples_are_ranked_by_the_labeler) {
    const tokenizer tok = judging_tokenizer();
    const int eot = tok.vocab_size();
    transformer<test::shapes::toy> model({tok.vocab_size() + 1, 48});
    model.init(5);
    const std::vector<std::string> prompts{task_prompt("reverse kopa"), task_prompt("sort d b a"),
                                           task_prompt("first letter of tiba")};
    const auto cs = make_comparisons(model, tok, prompts, 4, 6, eot, 9, 2, 2.0f);
    BOOST_TEST_REQUIRE(!cs.empty()); // an untrained model's samples differ
    const labeler lab;
    for (const comparison& c : cs) {
        BOOST_TEST(c.responses.size() >= 2u);
        BOOST_TEST(c.responses.size() <= 4u);
        const task t = labeler::task_of_prompt(c.prompt);
        for (std::size_t k = 1; k < c.responses.size(); ++k) {
            // Strictly better first: a 6-token sample that did not end is scored as not ended,
            // one shorter than the cap as ended.
            auto score = [&](const std::string& r) { return lab.score(t, r, r.size() < 6); };
            BOOST_TEST(score(c.responses[k - 1]) > score(c.responses[k]));
            BOOST_TEST(c.responses[k - 1] != c.responses[k]);
        }
    }
    // The same seed gives the same comparisons (the pipeline's files are reproducible).
    const auto again = make_comparisons(model, tok, prompts, 4, 6, eot, 9, 2, 2.0f);
    BOOST_TEST_REQUIRE(again.size() == cs.size());
    for (std::size_t i = 0; i < cs.size(); ++i)
        BOOST_TEST(again[i].responses == cs[i].responses, boost::test_tools::per_element());
}

// The reward's accuracy by kind: each group's pairs, in pair_outcomes' order, go to the kind of
// its prompt; a count of outcomes that does not match the pairs is an error.
BOOST_AUTO_TEST_CASE(pairwise_accuracy_by_kind_follows_each_groups_prompt) {
    const tokenizer tok = judging_tokenizer();
    const int eot = tok.vocab_size();
    const std::vector<comparison> cs{
        {task_prompt("uppercase kopa"), {"KOPA", "KOPE", "KOP"}}, // 3 pairs
        {task_prompt("add 12 and 30"), {"42", "41"}},             // 1 pair
        {task_prompt("uppercase tiba"), {"TIBA", "TIBE"}}};       // 1 pair
    const auto cmp = tokenize_for_rm(cs, tok, eot, 64);
    const std::vector<double> outcomes{1, 0, 0.5, 0, 1};
    const kind_accuracy by = accuracy_by_kind(outcomes, cmp, tok);
    BOOST_TEST_REQUIRE(by.size() == 2u);
    BOOST_TEST(by.at("uppercase").pairs == 4u);
    BOOST_TEST(by.at("uppercase").correct == 2.5); // 1 + 0 + 0.5, then the last group's 1
    BOOST_TEST(by.at("add").pairs == 1u);
    BOOST_TEST(by.at("add").correct == 0.0);
    BOOST_TEST(describe(by) == "add 0% (1), uppercase 63% (4)");
    BOOST_TEST(to_json(by)["uppercase"]["accuracy"].get<double>() == 0.625);
    BOOST_CHECK_THROW(accuracy_by_kind(std::vector<double>{1, 0}, cmp, tok), std::exception);
    BOOST_CHECK_THROW(accuracy_by_kind(std::vector<double>(6, 1.0), cmp, tok), std::exception);
}

BOOST_AUTO_TEST_CASE(dialogue_comparisons_rank_the_reply_at_the_turn_asked_for) {
    tokenizer tok = judging_tokenizer();
    tok.add_special_token("<|endoftext|>");
    const chat_format fmt = chat_format::register_tokens(tok);
    std::vector<conversation> ds;
    for (const char* w : {"kopa", "tiba", "lerav", "mune", "zebur", "gubi"})
        ds.push_back({{chat_role::user, std::string("reverse ") + w},
                      {chat_role::assistant, "x"},
                      {chat_role::user, "same for abo"},
                      {chat_role::assistant, "x"},
                      {chat_role::user, "now uppercase it"},
                      {chat_role::assistant, "x"}});
    transformer<test::shapes::toy> model({tok.vocab_size(), 96});
    model.init(7);
    using instructgpt::detail::user_turns;
    const auto first = instructgpt::detail::make_dialogue_comparisons(
        model, tok, fmt, ds, 4, 6, 3, 0, 1.0f, instructgpt::detail::ranked_reply::first);
    const auto last = instructgpt::detail::make_dialogue_comparisons(
        model, tok, fmt, ds, 4, 6, 3, 0, 1.0f, instructgpt::detail::ranked_reply::last);
    const auto any = instructgpt::detail::make_dialogue_comparisons(model, tok, fmt, ds, 4, 6, 3);
    BOOST_TEST_REQUIRE(!first.empty()); // an untrained model's alternatives differ
    BOOST_TEST_REQUIRE(!last.empty());
    BOOST_TEST_REQUIRE(!any.empty());
    for (const auto& c : first) {
        BOOST_TEST(user_turns(c.context) == 1u); // the opening turn, no history
        BOOST_TEST(c.context.size() == 1u);
    }
    for (const auto& c : last) {
        BOOST_TEST(user_turns(c.context) == 3u); // the last turn, after two model-written replies
        BOOST_TEST(c.context.size() == 5u);
        BOOST_TEST((c.context.back().role == chat_role::user));
        BOOST_TEST(c.context[1].content != "x"); // the history is the model's, not the input's
    }
    // Drawn uniformly: over 6 conversations the turns differ.
    std::vector<int> turns;
    for (const auto& c : any)
        turns.push_back(int(user_turns(c.context)));
    BOOST_TEST(*std::min_element(turns.begin(), turns.end()) <
               *std::max_element(turns.begin(), turns.end()));
}

BOOST_AUTO_TEST_CASE(the_dialogue_oracle_reward_is_the_labelers_score_with_the_real_end_flag) {
    // Prompts for both user turns of a conversation: the labeler reads each reply at its turn.
    const int T = 64, max_new = 6;
    const two_turn_prompts s(T, max_new);
    const tokenizer& tok = s.tok;
    const int eot = s.eot;
    const chat_format& fmt = s.fmt;
    const auto& ps = s.prompts;
    const auto& context_of = s.context_of;
    // An untrained policy: its replies end at <|end|>, stop at another marker, or run to the cap.
    using toy_t = transformer<test::shapes::toy>;
    toy_t policy({tok.vocab_size(), T});
    policy.init(11);
    const double coef = 3.0;
    // The reward the stage gives PPO with --oracle-reward 3 (no reward model is read).
    dialogue_sizes z;
    z.oracle_reward = coef;
    reward_ensemble<test::shapes::toy> no_rms;
    const auto reward = instructgpt::detail::dialogue_reward_of(z, context_of, tok, no_rms);
    rollout_buffer<toy_t> buf(policy, policy, reward.fn,
                              {.end_of_text = fmt.end,
                               .max_new_tokens = max_new,
                               .missing_eot_penalty = reward.missing_eot_penalty,
                               .score_batch = 8,
                               .stop_tokens = {fmt.system, fmt.user, fmt.assistant, eot}});
    std::vector<std::vector<int>> prompts;
    for (int i = 0; i < 48; ++i)
        prompts.push_back(ps[std::size_t(i) % 2]);
    rng r(7);
    buf.collect(prompts, r, [](auto&&...) {});
    const dialogue_labeler lab;
    int ended = 0, stopped = 0, capped = 0;
    for (std::size_t i = 0; i < buf.sequences().size(); ++i) {
        const auto& s = buf.sequences()[i];
        const conversation& ctx =
            context_of.at(std::vector<int>(s.tokens.begin(), s.tokens.begin() + s.prompt));
        const std::string reply = tok.decode(
            std::vector<int>(s.tokens.begin() + s.prompt, s.tokens.end() - (s.stopped ? 2 : 1)));
        // Absolute: a reply that did not end and shares nothing with the answer scores 0.
        BOOST_TEST(std::abs(buf.scores()[i] - coef * lab.score(ctx, reply, s.ended)) < 1e-5);
        ended += s.ended;
        stopped += s.stopped;
        capped += !s.ended && !s.stopped;
    }
    BOOST_TEST_MESSAGE(ended << " ended, " << stopped << " stopped, " << capped << " capped");
    BOOST_TEST(ended > 0); // seed 7 draws all three; another sampler may need another seed
    BOOST_TEST(stopped > 0);
    BOOST_TEST(capped > 0);
    // A reply whose prompt is not a PPO prompt is an error, not a silent zero.
    const std::vector<int> row{fmt.user, fmt.assistant, fmt.end};
    const int end_at = 2, start_at = 2;
    BOOST_CHECK_THROW(instructgpt::detail::oracle_dialogue_reward(coef, context_of, tok)(
                          row.data(), 1, 3, &end_at, &start_at),
                      gptx::error);
}

BOOST_AUTO_TEST_SUITE_END()
