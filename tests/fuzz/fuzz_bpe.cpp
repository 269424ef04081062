// Fuzz target: GPT-2 byte-level BPE. The first input byte picks what the rest is:
//   0: text for a fixed vocabulary (trained here on an embedded corpus; no data files needed):
//      decode(encode(x)) == x for any bytes, encode equals a naive reference BPE, and the
//      threaded encoder (forced small chunks) and every safe_cut() split equal it;
//   1: a corpus to train a small vocabulary on (train_bpe), then the same checks on the corpus,
//      and the vocabulary survives its payload and encoder.json/vocab.bpe round trips;
//   2: a gpt2 tokenizer payload (the checkpoint form): bad ones are gptx errors, good ones obey
//      the same checks;
//   3: a whole tokenizer blob (any kind) with its checksum fixed up, so the fuzzer gets past it.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gptx/text/bpe_trainer.hpp>
#include <gptx/text/tokenizer.hpp>

#include "fuzz_common.hpp"

namespace {

using gptx::gpt2_tokenizer;

constexpr std::string_view embedded_corpus =
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.\n"
    "It's what they've said: we'll see, I'm sure you'd agree. Don't they?\n"
    "  indented   text\twith\ttabs and    spaces   \r\n"
    "Numbers: 0 1 12 123 1234 3.14159 2026-11-26 100%\n"
    "Unicode: caf\xc3\xa9 na\xc3\xafve \xce\xb1\xce\xb2\xce\xb3 \xe4\xbd\xa0\xe5\xa5\xbd "
    "\xf0\x9f\x98\x80 \xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82\n"
    "int main() { return 0; } // code: x+=1; y->z[2] = \"s\";\n"
    "the the the then there their these those other another mother brother\n"
    "<|endoftext|> after the end of text, the text goes on and on and on.\n";

// GPT-2's bpe() read literally: merge the lowest-ranked adjacent pair, all its occurrences left
// to right, until no pair merges. Quadratic, obviously right; the library's heap must agree.
using rank_map = std::map<std::pair<int, int>, std::pair<int, int>>; // (a, b) -> (rank, merged)

rank_map ranks_of(const gpt2_tokenizer& tok) {
    rank_map rank;
    const auto& merges = tok.merges();
    for (std::size_t r = 0; r < merges.size(); ++r) {
        const auto [a, b] = merges[r];
        const std::string joined =
            std::string(tok.token_bytes(a)) + std::string(tok.token_bytes(b));
        rank.emplace(merges[r], std::pair<int, int>(int(r), *tok.token_id(joined)));
    }
    return rank;
}

std::vector<int> reference_bpe(const gpt2_tokenizer& tok, const rank_map& rank,
                               std::string_view piece) {
    std::vector<int> ids;
    for (char c : piece)
        ids.push_back(*tok.token_id(std::string(1, c)));
    for (;;) {
        int best = -1, merged = -1;
        std::pair<int, int> pair;
        for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
            const auto it = rank.find({ids[i], ids[i + 1]});
            if (it != rank.end() && (best < 0 || it->second.first < best)) {
                best = it->second.first;
                merged = it->second.second;
                pair = it->first;
            }
        }
        if (best < 0)
            return ids;
        std::vector<int> next;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            if (i + 1 < ids.size() && ids[i] == pair.first && ids[i + 1] == pair.second) {
                next.push_back(merged);
                ++i;
            } else {
                next.push_back(ids[i]);
            }
        }
        ids = std::move(next);
    }
}

// The promises of a gpt2 tokenizer on any bytes.
void check_gpt2(const gpt2_tokenizer& tok, std::string_view text) {
    const std::vector<int> ids = tok.encode(text);
    for (int id : ids)
        GPTX_FUZZ_EXPECT(id >= 0 && id < tok.base_vocab_size());
    GPTX_FUZZ_EXPECT(tok.decode(ids) == text);

    const rank_map rank = ranks_of(tok);
    std::vector<int> ref;
    std::string joined;
    gptx::gpt2_pretokenize(text, [&](std::string_view piece) {
        GPTX_FUZZ_EXPECT(!piece.empty());
        joined += piece;
        const std::vector<int> p = reference_bpe(tok, rank, piece);
        ref.insert(ref.end(), p.begin(), p.end());
    });
    GPTX_FUZZ_EXPECT(joined == text); // pre-tokenization loses nothing
    GPTX_FUZZ_EXPECT(ids == ref);

    // Threaded == unthreaded: chunks as small as the input allows cut at every safe place a
    // thread count picks (issue #17); a cut the pre-tokenizer could see would change the ids.
    for (const int threads : {2, 3})
        for (const std::size_t chunk : {std::size_t(1), std::size_t(5)})
            GPTX_FUZZ_EXPECT(tok.encode(text, {.threads = threads, .chunk_bytes = chunk}) == ids);
    int cuts = 0; // each split re-encodes the input: a few dozen keep the target fast
    for (std::size_t at = gpt2_tokenizer::safe_cut(text, 0);
         at != std::string_view::npos && cuts++ < 32; at = gpt2_tokenizer::safe_cut(text, at + 1)) {
        std::vector<int> halves = tok.encode(text.substr(0, at));
        const std::vector<int> rest = tok.encode(text.substr(at));
        halves.insert(halves.end(), rest.begin(), rest.end());
        GPTX_FUZZ_EXPECT(halves == ids);
    }

    // With special tokens allowed, their text becomes their id and still decodes back.
    const std::vector<int> with_specials = tok.encode(text, gptx::specials::allowed);
    for (int id : with_specials)
        GPTX_FUZZ_EXPECT(id >= 0 && id < tok.vocab_size());
    GPTX_FUZZ_EXPECT(tok.decode(with_specials) == text);
}

const gpt2_tokenizer& fixed_vocabulary() {
    static const gpt2_tokenizer tok =
        gptx::train_bpe(embedded_corpus, {.vocab_size = 256 + 160 + 1, .min_frequency = 2});
    return tok;
}

void train_mode(std::string_view corpus) {
    const gpt2_tokenizer tok =
        gptx::train_bpe(corpus, {.vocab_size = 256 + 48 + 1, .min_frequency = 2});
    check_gpt2(tok, corpus);
    const gpt2_tokenizer again = gpt2_tokenizer::from_payload(tok.payload());
    GPTX_FUZZ_EXPECT(again == tok);
    const gpt2_tokenizer files = gpt2_tokenizer::from_text(tok.encoder_json(), tok.vocab_bpe());
    GPTX_FUZZ_EXPECT(files.encode(corpus) == tok.encode(corpus));
}

void blob_mode(std::string blob) {
    // The blob's last 4 bytes are FNV-1a of the rest; recompute so mutations reach the parser.
    if (blob.size() >= 4) {
        std::uint32_t h = 2166136261u;
        for (std::size_t i = 0; i + 4 < blob.size(); ++i)
            h = (h ^ static_cast<unsigned char>(blob[i])) * 16777619u;
        for (int i = 0; i < 4; ++i)
            blob[blob.size() - 4 + std::size_t(i)] = static_cast<char>((h >> (8 * i)) & 0xff);
    }
    const gptx::tokenizer t = gptx::tokenizer::deserialize(blob);
    GPTX_FUZZ_EXPECT(gptx::tokenizer::deserialize(t.serialize()) == t);
    if (const auto* g = t.get_if<gpt2_tokenizer>())
        check_gpt2(*g, embedded_corpus.substr(0, 200));
    // Any id in range decodes; one past the end is an error.
    for (int id = 0; id < t.vocab_size() && id < 1024; ++id)
        (void)t.decode_token(id);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
    gptx_fuzz::expect_clean([&] {
        switch (data[0] % 4) {
        case 0:
            check_gpt2(fixed_vocabulary(), body);
            break;
        case 1:
            train_mode(body);
            break;
        case 2:
            check_gpt2(gpt2_tokenizer::from_payload(body), embedded_corpus.substr(0, 200));
            break;
        case 3:
            blob_mode(std::string(body));
            break;
        }
        gptx_fuzz::note("round trips hold");
    });
    return 0;
}
