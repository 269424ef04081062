// Tests for gptx/data/dialogue.hpp: the dialogue JSONL reader (with file:line errors), conversion
// of InstructGPT data, mixing at a ratio, the multi-turn generator and its labeler, and packing.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gptx/data/dialogue.hpp>
#include <tasks/dialogue_tasks.hpp>

#include "support/errors.hpp"
#include "support/scratch.hpp"

using namespace gptx;
using namespace gptx::tasks;
namespace fs = std::filesystem;

namespace {

struct dialogue_dir : gptx::test::scratch_dir {
    dialogue_dir() : scratch_dir("test_dialogue") {}
};

using test::error_of;

} // namespace

BOOST_AUTO_TEST_SUITE(dialogue)

BOOST_AUTO_TEST_CASE(jsonl_round_trip) {
    dialogue_dir d;
    const std::vector<conversation> ds{
        {{chat_role::system, "be brief"}, {chat_role::user, "hi"}, {chat_role::assistant, "yo"}},
        {{chat_role::user, "a\n\"b\""}, {chat_role::assistant, ""}}};
    write_dialogues_jsonl(d.path / "d.jsonl", ds);
    BOOST_TEST((read_dialogues_jsonl(d.path / "d.jsonl") == ds));
}

BOOST_AUTO_TEST_CASE(bad_lines_name_file_and_line) {
    dialogue_dir d;
    const std::string ok = R"({"messages":[{"role":"user","content":"a"}]})";
    auto err = [&](const std::string& bad) {
        const fs::path p = d.write("bad.jsonl", ok + "\n\n" + bad + "\n");
        return error_of([&] { read_dialogues_jsonl(p); });
    };
    const std::string at = (d.path / "bad.jsonl").string() + ":3: ";
    BOOST_TEST(err("{\"messages\":[").find(at + "not valid JSON") != std::string::npos);
    BOOST_TEST(err("{}") == at + "missing \"messages\"");
    BOOST_TEST(err(R"({"messages":[]})") == at + "\"messages\" is empty");
    BOOST_TEST(err(R"({"messages":[{"role":"bot","content":"x"}]})") ==
               at + "messages[0] has role \"bot\" (valid: system, user, assistant)");
    BOOST_TEST(err(R"({"messages":[{"role":"user"}]})") ==
               at + "messages[0] needs a string \"content\"");
    BOOST_TEST(
        err(R"({"messages":[{"role":"user","content":"a"},{"role":"system","content":"b"}]})") ==
        at + "messages[1] is a system message; only the first message may be one");
    BOOST_TEST(err(R"({"messages":[{"role":"system","content":"b"}]})") ==
               at + "\"messages\" has only a system message");
}

BOOST_AUTO_TEST_CASE(instructgpt_data_converts_to_dialogues) {
    const conversation c = dialogue_of(sft_example{"Q: reverse abc\nA: ", "cba"});
    BOOST_TEST((c == conversation{{chat_role::user, "Q: reverse abc\nA: "},
                                  {chat_role::assistant, "cba"}}));
    const dialogue_comparison dc = dialogue_comparison_of(comparison{"p", {"best", "worst"}, 7});
    BOOST_TEST((dc.context == conversation{{chat_role::user, "p"}}));
    BOOST_TEST((dc.responses == std::vector<std::string>{"best", "worst"}));
    dialogue_dir d;
    write_dialogue_comparisons(d.path / "c.jsonl", std::vector<dialogue_comparison>{dc});
    const auto back = read_dialogue_comparisons(d.path / "c.jsonl");
    BOOST_TEST_REQUIRE(back.size() == 1u);
    BOOST_TEST((back[0].context == dc.context));
    BOOST_TEST((back[0].responses == dc.responses));
    // The dialogue labeler reads converted task prompts too.
    BOOST_TEST(dialogue_labeler{}.score({{chat_role::user, "Q: reverse abc\nA: "}}, "cba", true) ==
               1.0);
}

// The dialogue stage trains on the instruction stage's data beside its own; those whose
// instruction opens a held-out conversation are dropped, whatever else the prompt is.
BOOST_AUTO_TEST_CASE(converted_data_skips_held_out_openings) {
    const std::unordered_set<std::string> openings{"reverse abc", "length of ab"};
    const auto es = without_openings(std::vector<sft_example>{{"Q: reverse abc\nA: ", "cba"},
                                                              {"Q: reverse abd\nA: ", "dba"},
                                                              {"reverse abc", "cba"},
                                                              {"Q: length of ab\nA: ", "2"}},
                                     openings);
    BOOST_TEST_REQUIRE(es.size() == 2u);
    BOOST_TEST(es[0].prompt == "Q: reverse abd\nA: ");
    BOOST_TEST(es[1].prompt == "reverse abc"); // not a task prompt: no instruction to hold out
    const auto cs =
        without_openings(std::vector<comparison>{{"Q: length of ab\nA: ", {"2", "3"}, 1},
                                                 {"Q: length of abc\nA: ", {"3", "2"}, 2}},
                         openings);
    BOOST_TEST_REQUIRE(cs.size() == 1u);
    BOOST_TEST(cs[0].line == 2);
}

BOOST_AUTO_TEST_CASE(mixing_keeps_the_ratio) {
    std::vector<conversation> native, converted;
    for (int i = 0; i < 30; ++i)
        native.push_back({{chat_role::user, std::to_string(i).insert(0, 1, 'n')}});
    for (int i = 0; i < 100; ++i)
        converted.push_back({{chat_role::user, std::to_string(i).insert(0, 1, 'c')}});
    auto count_native = [](const std::vector<conversation>& m) {
        int n = 0;
        for (const auto& c : m)
            n += c[0].content[0] == 'n';
        return n;
    };
    const auto half = mix_dialogues(native, converted, 0.5, 1);
    BOOST_TEST(half.size() == 60u); // native is the scarce side: 30 + 30
    BOOST_TEST(count_native(half) == 30);
    const auto quarter = mix_dialogues(native, converted, 0.25, 1);
    BOOST_TEST(quarter.size() == 120u); // 30 native + 90 converted
    BOOST_TEST(count_native(quarter) == 30);
    const auto most = mix_dialogues(native, converted, 0.8, 1);
    BOOST_TEST(count_native(most) == 30);
    BOOST_TEST(most.size() == 37u); // 37.5 in all: 30 native + 7 converted
    BOOST_TEST(count_native(mix_dialogues(native, converted, 0.0, 1)) == 0);
    BOOST_TEST(mix_dialogues(native, converted, 1.0, 1).size() == 30u);
    BOOST_TEST(
        (mix_dialogues(native, converted, 0.5, 9) == mix_dialogues(native, converted, 0.5, 9)));
    BOOST_TEST((mix_dialogues(native, converted, 0.5, 9) != half));
    BOOST_TEST(error_of([&] {
                   mix_dialogues(native, converted, 1.5, 1);
               }).find("native fraction must be in [0, 1]") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(reward_model_comparisons_mix_like_dialogues) {
    // Native comparisons (replies to a later turn) with converted one-turn ones: the same ratio
    // rule, and each comparison arrives whole (its context and its ranking together).
    std::vector<dialogue_comparison> native, converted;
    // Strings appended, not literal + string: GCC 12 warns falsely (-Wrestrict) on the latter.
    auto numbered = [](std::string s, int i) { return s.append(std::to_string(i)); };
    for (int i = 0; i < 10; ++i)
        native.push_back({{{chat_role::user, "reverse ab"},
                           {chat_role::assistant, "ba"},
                           {chat_role::user, numbered("same for n", i)}},
                          {numbered("best", i), "worst"},
                          i + 1});
    for (int i = 0; i < 50; ++i)
        converted.push_back(
            dialogue_comparison_of(comparison{numbered("c", i), {"x", "y", "z"}, i + 1}));
    const auto m = mix_dialogue_comparisons(native, converted, 0.5, 3);
    BOOST_TEST(m.size() == 20u);
    int n = 0;
    for (const auto& c : m) {
        if (c.context.size() == 3) {
            ++n;
            BOOST_TEST(c.responses[0] ==
                       numbered("best", std::stoi(c.context[2].content.substr(10))));
        } else {
            BOOST_TEST(c.context.size() == 1u);
            BOOST_TEST(c.responses.size() == 3u);
        }
    }
    BOOST_TEST(n == 10);
    BOOST_TEST(mix_dialogue_comparisons(native, converted, 0.2, 3).size() == 50u); // 10 + 40
    BOOST_TEST(mix_dialogue_comparisons(native, converted, 1.0, 3).size() == 10u);
}

BOOST_AUTO_TEST_CASE(later_turns_refer_to_earlier_ones) {
    const conversation c{{chat_role::user, "reverse kopa"},
                         {chat_role::assistant, "apok"},
                         {chat_role::user, "uppercase tiba"},
                         {chat_role::assistant, "TIBA"},
                         {chat_role::user, "now do the same to the first word"},
                         {chat_role::assistant, "KOPA"},
                         {chat_role::user, "now last letter of it"},
                         {chat_role::assistant, "a"},
                         {chat_role::user, "now do the same to mel"}};
    const auto a = solve_dialogue(c);
    BOOST_TEST_REQUIRE(a.size() == 5u);
    BOOST_TEST(*a[0] == "apok");
    BOOST_TEST(*a[1] == "TIBA");
    BOOST_TEST(*a[2] == "KOPA");
    BOOST_TEST(*a[3] == "a");
    BOOST_TEST(*a[4] == "l");
    // The compact phrasing means the same.
    conversation compact = c;
    compact[4].content = "same for the first word";
    compact[8].content = "same for mel";
    BOOST_TEST((solve_dialogue(compact) == a));
    rng r(3);
    const conversation g = make_dialogue(r, 4, true);
    for (const auto& m : g)
        BOOST_TEST(m.content.find("now do the same") == std::string::npos);
    // A reference to a word never mentioned, or "same" before any operation: not of the family.
    BOOST_TEST(!solve_dialogue({{chat_role::user, "reverse ab"},
                                {chat_role::user, "now do the same to the third word"}})[1]
                    .has_value());
    BOOST_TEST(!solve_dialogue({{chat_role::user, "now do the same to ab"}})[0].has_value());
    // The labeler scores the answer of the last user message, whatever the assistant said.
    conversation ctx(c.begin(), c.begin() + 5);
    ctx[3].content = "wrong";
    const dialogue_labeler lab;
    BOOST_TEST(lab.score(ctx, "KOPA", true) == 1.0);
    BOOST_TEST(lab.score(ctx, "KOPA", false) == 0.8);
    BOOST_TEST(lab.score(ctx, "kopa", true) < 0.5);
    BOOST_TEST(error_of([&] {
                   lab.score({{chat_role::user, "hello"}}, "x", true);
               }).find("'hello' is not a turn of the dialogue task family") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(generated_dialogues_are_correct_and_refer_back) {
    const auto ds = make_dialogues(5, 300, 2, 4);
    BOOST_TEST(ds.size() == 300u);
    int ordinal = 0, same = 0, it = 0;
    for (const auto& c : ds) {
        BOOST_TEST_REQUIRE(c.size() % 2 == 0u);
        const auto answers = solve_dialogue(c);
        for (std::size_t i = 0; i < c.size(); i += 2) {
            BOOST_TEST((c[i].role == chat_role::user));
            BOOST_TEST((c[i + 1].role == chat_role::assistant));
            BOOST_TEST_REQUIRE(answers[i / 2].has_value());
            BOOST_TEST(*answers[i / 2] == c[i + 1].content);
            const std::string& m = c[i].content;
            ordinal += m.find(" word") != std::string::npos;
            same += m.rfind("now do the same to ", 0) == 0;
            it += m.size() > 3 && m.substr(m.size() - 3) == " it";
        }
    }
    BOOST_TEST(ordinal > 30);
    BOOST_TEST(same > 60);
    BOOST_TEST(it > 30);
    // Training sets exclude the held-out dialogues' openings; iid draws may repeat a dialogue,
    // distinct ones may not.
    std::unordered_set<std::string> first;
    for (const auto& c : ds)
        first.insert(c[0].content);
    const auto train = make_dialogues(6, 2000, 1, 1, first, true, draws::iid);
    std::unordered_set<std::string> keys;
    for (const auto& c : train) {
        BOOST_TEST(!first.count(c[0].content));
        keys.insert(c[0].content + "\n" + c[1].content);
    }
    BOOST_TEST(keys.size() < train.size()); // one exchange: instructions repeat in 2,000 draws
    const auto held = make_dialogues(6, 2000, 1, 1, first, true);
    keys.clear();
    for (const auto& c : held) {
        BOOST_TEST(!first.count(c[0].content));
        BOOST_TEST(keys.insert(c[0].content + "\n" + c[1].content).second);
    }
}

BOOST_AUTO_TEST_CASE(packing_shifts_the_mask_onto_targets) {
    tokenizer tok = make_tokenizer("char", "ab");
    const chat_format f = chat_format::register_tokens(tok); // a=0 b=1 S=2 U=3 A=4 E=5
    const std::vector<conversation> ds{{{chat_role::user, "a"}, {chat_role::assistant, "b"}},
                                       {{chat_role::user, "b"}, {chat_role::assistant, "ab"}}};
    const auto ct = format_dialogues(ds, tok, f, 10);
    // Dialogue 1: U a E A b E (6); dialogue 2: U b E A a b E (7): one per row of T + 1 = 11.
    const std::vector<int> order{0, 1};
    const packed_rows rows = pack_dialogues(ct, order, 10, f.end);
    BOOST_TEST_REQUIRE(rows.rows() == 2);
    const std::vector<int> row0(rows.tokens.begin(), rows.tokens.begin() + 11);
    BOOST_TEST(row0 == (std::vector<int>{3, 0, 5, 4, 1, 5, 5, 5, 5, 5, 5}),
               boost::test_tools::per_element());
    const std::vector<std::uint8_t> m0(rows.mask.begin(), rows.mask.begin() + 10);
    // targets a E A b E pad...: b and its E count.
    BOOST_TEST(m0 == (std::vector<std::uint8_t>{0, 0, 0, 1, 1, 0, 0, 0, 0, 0}),
               boost::test_tools::per_element());
    // Two short dialogues share a row when they fit.
    const packed_rows wide = pack_dialogues(ct, order, 13, f.end);
    BOOST_TEST(wide.rows() == 1);
    BOOST_TEST(wide.mask[6 + 3] == 1); // the 'a' of dialogue 2 (token 10, target 9)
    sft_batches batches(wide, 1, 3);
    BOOST_TEST(batches.response_tokens() == 5);
}

BOOST_AUTO_TEST_SUITE_END()
