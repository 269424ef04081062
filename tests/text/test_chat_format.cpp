// Tests for gptx/text/chat_format.hpp: exact token layouts, loss masks, reward positions and
// truncation of the chat formatter.
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "support/errors.hpp"
#include <gptx/text/chat_format.hpp>
#include <gptx/text/tokenizer.hpp>

using namespace gptx;

// Characters "abcdefgh" are ids 0..7; the chat tokens follow: S=8 U=9 A=10 E=11.
struct chat_fixture {
    tokenizer tok = make_tokenizer("char", "abcdefgh");
    chat_format f = chat_format::register_tokens(tok);
    static constexpr int a = 0, b = 1, c = 2, d = 3, e = 4, g = 6, h = 7;
    static constexpr int S = 8, U = 9, A = 10, E = 11;
};

namespace {

using test::error_of;

using u8s = std::vector<std::uint8_t>;
using ints = std::vector<int>;

} // namespace

BOOST_AUTO_TEST_SUITE(chat_format_tests)

BOOST_FIXTURE_TEST_CASE(registers_four_special_tokens_after_the_vocabulary, chat_fixture) {
    BOOST_TEST(f.system == S);
    BOOST_TEST(f.user == U);
    BOOST_TEST(f.assistant == A);
    BOOST_TEST(f.end == E);
    BOOST_TEST(tok.vocab_size() == 12);
    // Registering again keeps the ids; a serialized tokenizer carries them (checkpoints).
    tokenizer again = tok;
    const chat_format f2 = chat_format::register_tokens(again);
    BOOST_TEST(f2.end == E);
    BOOST_TEST(again.vocab_size() == 12);
    const chat_format f3 = chat_format::of(tokenizer::deserialize(tok.serialize()));
    BOOST_TEST((ints{f3.system, f3.user, f3.assistant, f3.end} == ints{S, U, A, E}));
}

BOOST_AUTO_TEST_CASE(a_tokenizer_without_chat_tokens_is_a_clear_error) {
    const tokenizer tok = make_tokenizer("char", "abc");
    const std::string err = error_of([&] { chat_format::of(tok); });
    BOOST_TEST(err.find("has no '<|system|>' token") != std::string::npos, err);
}

BOOST_FIXTURE_TEST_CASE(exact_layout_mask_and_reward_position, chat_fixture) {
    const conversation conv{{chat_role::system, "h"},
                            {chat_role::user, "ab"},
                            {chat_role::assistant, "ba"},
                            {chat_role::user, "c"},
                            {chat_role::assistant, "dd"}};
    const chat_tokens t = f.format(tok, conv);
    BOOST_TEST(t.tokens == (ints{S, h, E, U, a, b, E, A, b, a, E, U, c, E, A, d, d, E}),
               boost::test_tools::per_element());
    BOOST_TEST(t.mask == (u8s{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1}),
               boost::test_tools::per_element());
    BOOST_TEST(t.reward_position == 17);
    BOOST_TEST(t.reply_start == 15); // the last reply's first token, after its marker
    BOOST_TEST(t.dropped == 0);
}

BOOST_FIXTURE_TEST_CASE(reward_position_is_the_last_assistant_end, chat_fixture) {
    // Ending with a user message: the reward position is the earlier assistant's end.
    const conversation conv{
        {chat_role::user, "a"}, {chat_role::assistant, "b"}, {chat_role::user, "c"}};
    const chat_tokens t = f.format(tok, conv);
    BOOST_TEST(t.tokens == (ints{U, a, E, A, b, E, U, c, E}), boost::test_tools::per_element());
    BOOST_TEST(t.reward_position == 5);
    BOOST_TEST(t.reply_start == 4);
    const chat_tokens none = f.format(tok, conversation{{chat_role::user, "a"}});
    BOOST_TEST(none.reward_position == -1);
    BOOST_TEST(none.reply_start == -1);
    BOOST_TEST(none.mask == (u8s{0, 0, 0}), boost::test_tools::per_element());
}

BOOST_FIXTURE_TEST_CASE(generation_prompt_appends_the_assistant_marker, chat_fixture) {
    const conversation conv{{chat_role::user, "ab"}};
    const chat_tokens t = f.format(tok, conv, {.generation_prompt = true});
    BOOST_TEST(t.tokens == (ints{U, a, b, E, A}), boost::test_tools::per_element());
    BOOST_TEST(t.mask == (u8s{0, 0, 0, 0, 0}), boost::test_tools::per_element());
}

BOOST_FIXTURE_TEST_CASE(empty_assistant_content_learns_only_the_end, chat_fixture) {
    const conversation conv{{chat_role::user, "a"}, {chat_role::assistant, ""}};
    const chat_tokens t = f.format(tok, conv);
    BOOST_TEST(t.tokens == (ints{U, a, E, A, E}), boost::test_tools::per_element());
    BOOST_TEST(t.mask == (u8s{0, 0, 0, 0, 1}), boost::test_tools::per_element());
    BOOST_TEST(t.reward_position == 4);
    BOOST_TEST(t.reply_start == 4); // an empty reply: only its end
}

BOOST_FIXTURE_TEST_CASE(marker_text_in_content_stays_text, chat_fixture) {
    tokenizer t2 = make_tokenizer("char", "<|end>abcdefghistuyr");
    const chat_format f2 = chat_format::register_tokens(t2);
    const chat_tokens t = f2.format(t2, conversation{{chat_role::user, "<|end|>"}});
    BOOST_TEST(t.tokens.size() == 9u); // marker, 7 characters, end
    for (std::size_t i = 1; i + 1 < t.tokens.size(); ++i)
        BOOST_TEST(!f2.is_marker(t.tokens[i]));
}

BOOST_FIXTURE_TEST_CASE(truncation_drops_oldest_turns_and_keeps_the_system_turn, chat_fixture) {
    const conversation conv{{chat_role::system, "h"},      // S h E      3
                            {chat_role::user, "aa"},       // U a a E    4
                            {chat_role::assistant, "bb"},  // A b b E    4
                            {chat_role::user, "c"},        // U c E      3
                            {chat_role::assistant, "dd"}}; // A d d E    4  -> 18 in all
    // 18 fits 18 exactly.
    BOOST_TEST(f.format(tok, conv, {.max_tokens = 18}).dropped == 0);
    // 17: the first turn (user + its reply) goes, the system turn stays.
    const chat_tokens t = f.format(tok, conv, {.max_tokens = 17});
    BOOST_TEST(t.dropped == 2);
    BOOST_TEST(t.tokens == (ints{S, h, E, U, c, E, A, d, d, E}), boost::test_tools::per_element());
    BOOST_TEST(t.mask == (u8s{0, 0, 0, 0, 0, 0, 0, 1, 1, 1}), boost::test_tools::per_element());
    BOOST_TEST(t.reward_position == 9);
    BOOST_TEST(t.reply_start == 7);
    // 9: only the last message is left, still with the system turn.
    const chat_tokens last = f.format(tok, conv, {.max_tokens = 9});
    BOOST_TEST(last.dropped == 3);
    BOOST_TEST(last.tokens == (ints{S, h, E, A, d, d, E}), boost::test_tools::per_element());
    BOOST_TEST(last.reward_position == 6);
    // 6: not even that fits.
    const std::string err = error_of([&] { f.format(tok, conv, {.max_tokens = 6}); });
    BOOST_TEST(err.find("chat format: the last message (4 tokens) with the system message needs "
                        "7 tokens; the limit is 6") != std::string::npos,
               err);
}

BOOST_FIXTURE_TEST_CASE(truncation_counts_the_generation_prompt_and_reserve, chat_fixture) {
    const conversation conv{{chat_role::user, "aa"},     // U a a E  4
                            {chat_role::assistant, "b"}, // A b E    3
                            {chat_role::user, "c"}};     // U c E    3
    // 10 tokens + marker + 5 reserved = 16.
    BOOST_TEST(f.format(tok, conv, {16, true, 5}).dropped == 0);
    const chat_tokens t = f.format(tok, conv, {15, true, 5});
    BOOST_TEST(t.dropped == 2);
    BOOST_TEST(t.tokens == (ints{U, c, E, A}), boost::test_tools::per_element());
}

BOOST_FIXTURE_TEST_CASE(history_starting_with_replies_drops_to_a_user_turn, chat_fixture) {
    // Several assistant messages in a row are one turn with the user message before them.
    const conversation conv{{chat_role::user, "a"},
                            {chat_role::assistant, "b"},
                            {chat_role::assistant, "c"},
                            {chat_role::user, "d"},
                            {chat_role::assistant, "e"}};
    const chat_tokens t = f.format(tok, conv, {.max_tokens = 12});
    BOOST_TEST(t.dropped == 3);
    BOOST_TEST(t.tokens == (ints{U, d, E, A, e, E}), boost::test_tools::per_element());
}

BOOST_FIXTURE_TEST_CASE(bad_conversations_are_clear_errors, chat_fixture) {
    BOOST_TEST(error_of([&] { f.format(tok, conversation{}); }).find("has no user or assistant") !=
               std::string::npos);
    BOOST_TEST(error_of([&] {
                   f.format(tok, conversation{{chat_role::system, "a"}});
               }).find("has no user or assistant") != std::string::npos);
    const std::string late = error_of([&] {
        f.format(tok, conversation{{chat_role::user, "a"}, {chat_role::system, "b"}});
    });
    BOOST_TEST(late.find("message 2 is a system message; only the first") != std::string::npos,
               late);
    const std::string unknown = error_of([&] {
        f.format(tok, conversation{{chat_role::user, "az"}});
    });
    BOOST_TEST(unknown.find("chat format: message 1 (user): ") != std::string::npos, unknown);
}

BOOST_AUTO_TEST_CASE(role_names_round_trip) {
    for (chat_role r : {chat_role::system, chat_role::user, chat_role::assistant})
        BOOST_TEST((parse_role(role_name(r)) == r));
    BOOST_TEST(!parse_role("bot").has_value());
}

BOOST_AUTO_TEST_SUITE_END()
