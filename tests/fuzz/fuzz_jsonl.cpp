// Fuzz target: every JSONL reader of data/. The first input byte picks the reader, the rest is
// the file: 0 task files (task_jsonl.hpp), 1 comparisons (comparisons.hpp), 2 SFT
// {"prompt","response"} (sft.hpp), 3 prompts {"prompt"} (sft.hpp). What a reader accepts, its
// writer writes and the reader reads back unchanged.
// A new reader (e.g. the chat formatter's) joins by adding a case here or, for a different
// kind of input, by copying this file to fuzz_<name>.cpp, adding <name> to GPTX_FUZZ_TARGETS in
// tests/fuzz/CMakeLists.txt and seeds under tests/fuzz/corpus/<name>/.
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <gptx/data/comparisons.hpp>
#include <gptx/data/sft.hpp>
#include <gptx/data/task_jsonl.hpp>

#include "fuzz_common.hpp"

namespace {

using namespace gptx;

void tasks(std::string_view text, gptx_fuzz::temp_file& out) {
    const task_set s = parse_task_jsonl(text, "fuzz.jsonl");
    GPTX_FUZZ_EXPECT(!s.examples.empty());
    for (const auto& e : s.examples) {
        if (s.form == task_form::choice)
            GPTX_FUZZ_EXPECT(e.label >= 0 && e.label < int(e.choices.size()));
        else if (s.form == task_form::generation)
            GPTX_FUZZ_EXPECT(e.label == -1 && !e.second.empty());
        else
            GPTX_FUZZ_EXPECT(e.label >= 0 && e.label < 1000000);
    }
    write_task_jsonl(out.path(), s);
    const task_set again = read_task_jsonl(out.path());
    GPTX_FUZZ_EXPECT(again.form == s.form && again.examples == s.examples);
}

void comparisons(std::string_view text) {
    const std::vector<comparison> cs = parse_comparisons(text, "fuzz.jsonl");
    for (const auto& c : cs) {
        GPTX_FUZZ_EXPECT(c.responses.size() >= std::size_t(min_ranked_responses) &&
                         c.responses.size() <= std::size_t(max_ranked_responses));
        GPTX_FUZZ_EXPECT(c.line >= 1);
    }
    // Every comparison tokenizes (byte tokenizer: any text) into in-context sequences.
    const tokenizer tok;
    const tokenized_comparisons t = tokenize_comparisons(cs, tok, 256, 16, "fuzz.jsonl");
    GPTX_FUZZ_EXPECT(t.groups.size() == cs.size() && t.pairs() == count_pairs(cs));
    for (const auto& g : t.groups)
        for (const auto& seq : g.responses)
            GPTX_FUZZ_EXPECT(seq.size() >= 2 && seq.size() <= 16 && seq.back() == 256);
}

void sft(gptx_fuzz::temp_file& in, gptx_fuzz::temp_file& out) {
    const std::vector<sft_example> ex = read_sft_jsonl(in.path());
    write_sft_jsonl(out.path(), ex);
    GPTX_FUZZ_EXPECT(read_sft_jsonl(out.path()) == ex);
}

void prompts(gptx_fuzz::temp_file& in, gptx_fuzz::temp_file& out) {
    const std::vector<std::string> p = read_prompts_jsonl(in.path());
    write_prompts_jsonl(out.path(), p);
    GPTX_FUZZ_EXPECT(read_prompts_jsonl(out.path()) == p);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    static gptx_fuzz::temp_file in("in.jsonl"), out("out.jsonl");
    const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
    gptx_fuzz::expect_clean([&] {
        switch (data[0] % 4) {
        case 0:
            tasks(text, out);
            break;
        case 1:
            comparisons(text);
            break;
        case 2:
            in.write(text);
            sft(in, out);
            break;
        case 3:
            in.write(text);
            prompts(in, out);
            break;
        }
        gptx_fuzz::note("accepted");
    });
    return 0;
}
