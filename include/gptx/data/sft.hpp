// gptx/data/sft.hpp: supervised fine-tuning data: the JSONL {"prompt","response"} reader and
// writer, the token layout with its loss mask, packing into context-sized rows, and the batches
// of an epoch schedule. Tested by tests/data/test_sft.cpp. Legend: B batch rows, T time.
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../core/file.hpp"
#include "../core/rng.hpp"
#include "../text/tokenizer.hpp"
#include "lm_batch.hpp"

namespace gptx {

struct sft_example {
    std::string prompt, response;
    friend bool operator==(const sft_example&, const sft_example&) = default;
};

namespace detail {
// Reads a JSONL file line by line: on_object(json, line number). Blank lines are skipped; a line
// that is not a JSON object is an error naming the file and line.
template <class F> void read_jsonl(const std::filesystem::path& path, F&& on_object) {
    std::ifstream in(path, std::ios::binary);
    GPTX_CHECK(in.good(), "cannot open '", path.string(), "'");
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos)
            continue;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) { // parse_error, or out_of_range (1e999)
            detail::fail(path.string(), ":", n, ": not valid JSON (", e.what(), ")");
        }
        GPTX_CHECK(j.is_object(), path.string(), ":", n, ": expected a JSON object, got ",
                   j.type_name());
        on_object(j, n);
    }
    GPTX_CHECK(!in.bad(), "cannot read '", path.string(), "'");
}

inline std::string jsonl_string(const nlohmann::json& j, const char* key,
                                const std::filesystem::path& path, int n) {
    const auto it = j.find(key);
    GPTX_CHECK(it != j.end(), path.string(), ":", n, ": missing \"", key, "\"");
    GPTX_CHECK(it->is_string(), path.string(), ":", n, ": \"", key, "\" must be a string, got ",
               it->type_name());
    return it->get<std::string>();
}

// Writes `lines` to path + ".tmp" and renames it over path, so readers never see half a file.
inline void write_lines_atomically(const std::filesystem::path& path,
                                   const std::vector<std::string>& lines) {
    std::string text;
    for (const auto& l : lines)
        text.append(l).push_back('\n');
    write_whole_file(path, text);
}
} // namespace detail

// Every non-blank line must be an object with string "prompt" and "response" (other keys are
// ignored); the prompt may be empty, the response may not (there would be nothing to learn but
// the end-of-text). Errors name the file, the line and what is wrong.
inline std::vector<sft_example> read_sft_jsonl(const std::filesystem::path& path) {
    std::vector<sft_example> out;
    detail::read_jsonl(path, [&](const nlohmann::json& j, int n) {
        sft_example e{detail::jsonl_string(j, "prompt", path, n),
                      detail::jsonl_string(j, "response", path, n)};
        GPTX_CHECK(!e.response.empty(), path.string(), ":", n, ": \"response\" is empty");
        out.push_back(std::move(e));
    });
    GPTX_CHECK(!out.empty(), path.string(), ": no examples");
    return out;
}

inline void write_sft_jsonl(const std::filesystem::path& path,
                            std::span<const sft_example> examples) {
    std::vector<std::string> lines;
    lines.reserve(examples.size());
    for (const auto& e : examples)
        lines.push_back(nlohmann::json{{"prompt", e.prompt}, {"response", e.response}}.dump());
    detail::write_lines_atomically(path, lines);
}

// JSONL {"prompt"} (RM comparison prompts, PPO prompts); other keys are ignored.
inline std::vector<std::string> read_prompts_jsonl(const std::filesystem::path& path) {
    std::vector<std::string> out;
    detail::read_jsonl(path, [&](const nlohmann::json& j, int n) {
        out.push_back(detail::jsonl_string(j, "prompt", path, n));
    });
    GPTX_CHECK(!out.empty(), path.string(), ": no prompts");
    return out;
}
inline void write_prompts_jsonl(const std::filesystem::path& path,
                                std::span<const std::string> prompts) {
    std::vector<std::string> lines;
    lines.reserve(prompts.size());
    for (const auto& p : prompts)
        lines.push_back(nlohmann::json{{"prompt", p}}.dump());
    detail::write_lines_atomically(path, lines);
}

// The end-of-text id to use with a tokenizer and a model vocabulary: the id just past the
// tokenizer's vocabulary, which the model reserves (model vocab = tokenizer's + 1): how the char
// and byte tokenizers get one. (A tokenizer's registered <|endoftext|> takes over once the
// tokenizer value exposes its special tokens.)
inline int end_of_text_id(const tokenizer& tok, int model_vocab) {
    GPTX_CHECK(model_vocab > tok.vocab_size(), "no end-of-text token: the tokenizer (", tok.kind(),
               ", ", tok.vocab_size(), " tokens) has no <|endoftext|> and the model's vocabulary (",
               model_vocab, ") reserves no id after it");
    return tok.vocab_size();
}

// One tokenized example.
struct sft_tokens {
    std::vector<int> prompt, response;
};

inline std::vector<sft_tokens> tokenize_sft(std::span<const sft_example> examples,
                                            const tokenizer& tok,
                                            const std::string& source = "sft data") {
    std::vector<sft_tokens> out;
    out.reserve(examples.size());
    for (std::size_t i = 0; i < examples.size(); ++i) {
        try {
            out.push_back({tok.encode(examples[i].prompt, "prompt"),
                           tok.encode(examples[i].response, "response")});
        } catch (const error& e) {
            detail::fail(source, ": example ", i + 1, ": ", e.what());
        }
    }
    return out;
}

// Rows of T + 1 tokens: inputs are tokens [0, T), targets [1, T]. Each row starts with
// end-of-text and holds whole examples, each laid out as prompt, response, end-of-text:
//   tokens  EOT p p p r r EOT p p r r r EOT EOT(pad) ...
//   mask         0 0 0 1 1  1  0 0 1 1 1  1   0
// (mask[t] says whether target t = tokens[t + 1] counts). The loss covers each response and the
// end-of-text after it, never a prompt token or padding. A row's first end-of-text and the one
// closing the previous example are one token, so every prompt follows an end-of-text, just as
// generation starts from [EOT, prompt...].
struct packed_rows {
    int T = 0;
    std::vector<int> tokens;        // (R, T + 1)
    std::vector<std::uint8_t> mask; // (R, T)
    int rows() const { return T > 0 ? int(mask.size() / std::size_t(T)) : 0; }
};

// Packing rule: examples go into rows greedily in the given order; one that does not fit in
// the rest of the current row starts a new row. An example is never split across rows (a
// response must be seen with its prompt); one that cannot fit an empty row (|p| + |r| + 1 > T)
// is an error naming it. Padding is end-of-text with mask 0.
inline packed_rows pack_sft(std::span<const sft_tokens> examples, std::span<const int> order, int T,
                            int eot, const std::string& source = "sft data") {
    GPTX_CHECK(T >= 2, "pack_sft: T must be >= 2, got ", T);
    packed_rows out;
    out.T = T;
    std::size_t used = 0; // tokens in the current row, the leading end-of-text included
    auto new_row = [&] {
        out.tokens.resize(out.tokens.size() + std::size_t(T) + 1, eot);
        out.mask.resize(out.mask.size() + std::size_t(T), 0);
        used = 1;
    };
    for (int idx : order) {
        const sft_tokens& e = examples[std::size_t(idx)];
        const std::size_t need = e.prompt.size() + e.response.size() + 1;
        GPTX_CHECK(need <= std::size_t(T), source, ": example ", idx + 1, " needs ", need,
                   " tokens (prompt, response, end-of-text) but the context holds ", T);
        if (out.rows() == 0 || used + need > std::size_t(T) + 1)
            new_row();
        const std::size_t row = std::size_t(out.rows() - 1);
        int* tok = out.tokens.data() + row * (std::size_t(T) + 1);
        std::uint8_t* m = out.mask.data() + row * std::size_t(T);
        std::size_t at = used;
        for (int id : e.prompt)
            tok[at++] = id;
        for (int id : e.response) {
            tok[at] = id;
            m[at - 1] = 1;
            ++at;
        }
        tok[at] = eot;
        m[at - 1] = 1;
        used = at + 1;
    }
    return out;
}

// Batches of B packed rows for epochs of SFT. Examples are packed once, in an order shuffled by
// the seed; every epoch visits the rows in its own shuffled order, B at a time (the last batch
// of an epoch may be smaller). batch(step) depends only on step, so a resumed run sees exactly
// the batches an uninterrupted one would.
class sft_batches {
  public:
    sft_batches(std::span<const sft_tokens> examples, int B, int T, int eot, std::uint64_t seed,
                const std::string& source = "sft data")
        : B_(B), seed_(seed) {
        GPTX_CHECK(B > 0, "sft: batch must be positive, got ", B);
        GPTX_CHECK(!examples.empty(), source, ": no examples");
        std::vector<int> order(examples.size());
        std::iota(order.begin(), order.end(), 0);
        rng r(seed);
        shuffle(order, r);
        rows_ = pack_sft(examples, order, T, eot, source);
        for (std::uint8_t m : rows_.mask)
            response_tokens_ += m;
    }

    // Rows packed elsewhere (dialogues: data/dialogue.hpp's pack_dialogues).
    sft_batches(packed_rows rows, int B, std::uint64_t seed) : B_(B), seed_(seed) {
        GPTX_CHECK(B > 0, "sft: batch must be positive, got ", B);
        GPTX_CHECK(rows.rows() > 0, "sft: no rows");
        rows_ = std::move(rows);
        for (std::uint8_t m : rows_.mask)
            response_tokens_ += m;
    }

    int rows() const { return rows_.rows(); }
    int steps_per_epoch() const { return (rows() + B_ - 1) / B_; }
    std::int64_t response_tokens() const { return response_tokens_; } // masked-in targets per epoch
    const packed_rows& packed() const { return rows_; }

    // The batch of global step `step` (0-based). The view points into this object's buffers
    // and stays valid until the next call.
    lm_batch batch(std::int64_t step) {
        const int spe = steps_per_epoch();
        const std::int64_t epoch = step / spe;
        const int j = int(step % spe);
        if (epoch != perm_epoch_) {
            perm_.resize(std::size_t(rows()));
            std::iota(perm_.begin(), perm_.end(), 0);
            rng r(mix64(seed_ ^ mix64(std::uint64_t(epoch) + 1)));
            shuffle(perm_, r);
            perm_epoch_ = epoch;
        }
        const int first = j * B_, n = std::min(B_, rows() - first), T = rows_.T;
        x_.resize(std::size_t(n) * T);
        y_.resize(std::size_t(n) * T);
        m_.resize(std::size_t(n) * T);
        for (int b = 0; b < n; ++b) {
            const std::size_t r = std::size_t(perm_[std::size_t(first + b)]);
            const int* tok = rows_.tokens.data() + r * (std::size_t(T) + 1);
            std::copy(tok, tok + T, x_.data() + std::size_t(b) * T);
            std::copy(tok + 1, tok + T + 1, y_.data() + std::size_t(b) * T);
            std::copy_n(rows_.mask.data() + r * std::size_t(T), T, m_.data() + std::size_t(b) * T);
        }
        return {x_.data(), y_.data(), m_.data(), n, T};
    }

  private:
    static void shuffle(std::vector<int>& v, rng& r) { // Fisher-Yates, the same on every platform
        for (std::size_t i = v.size(); i > 1; --i)
            std::swap(v[i - 1], v[std::size_t(r.below(i))]);
    }

    int B_;
    std::uint64_t seed_;
    packed_rows rows_;
    std::int64_t response_tokens_ = 0;
    std::int64_t perm_epoch_ = -1;
    std::vector<int> perm_, x_, y_;
    std::vector<std::uint8_t> m_;
};

} // namespace gptx
