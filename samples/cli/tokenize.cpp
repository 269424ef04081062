// samples/cli/tokenize.cpp: `gptx tokenize`, a text file to llm.c/nanoGPT token files
// (PREFIX_train.bin, PREFIX_val.bin) plus the tokenizer (PREFIX_tokenizer.gtok).
// Tested by tests/cli/test_tokenize_cli.cpp.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace gptx::cli {

struct tokenize_options {
    std::string tokenizer_kind = "gpt2", vocab_dir, text, out;
    double val_fraction = 0.1;
    bool allow_special = false;
};

inline void add_tokenize_command(CLI::App& app, tokenize_options& o, std::function<void()>& run) {
    auto* c =
        app.add_subcommand("tokenize", "Encode a text file into train/val token files (.bin)");
    c->add_option("--tokenizer", o.tokenizer_kind, "gpt2, char or byte")
        ->check(CLI::IsMember({"gpt2", "char", "byte"}));
    c->add_option("--vocab-dir", o.vocab_dir, "Folder with encoder.json and vocab.bpe (gpt2)");
    c->add_option("--text", o.text, "Text file to encode")->required();
    c->add_option("--out", o.out,
                  "Output prefix: PREFIX_train.bin, PREFIX_val.bin, PREFIX_tokenizer.gtok")
        ->required();
    c->add_option("--val-fraction", o.val_fraction,
                  "Share of the text (by characters, as nanoGPT) for validation; 0: all to train");
    c->add_flag("--allow-special", o.allow_special,
                "Turn special-token text (<|endoftext|>) in the file into special ids");
    c->callback([&] { run(); });
}

namespace detail {
// Byte offset of UTF-8 character `k` (an invalid byte counts as one character), so the split is
// nanoGPT's data[:int(n * 0.9)] on the decoded text.
inline std::size_t utf8_char_offset(std::string_view s, std::size_t k, std::size_t& chars) {
    std::size_t at = 0, n = 0, offset = s.size();
    bool found = false;
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::uint8_t* tab = gptx::detail::unicode_class_table();
    while (at < s.size()) {
        if (n == k && !found) {
            offset = at;
            found = true;
        }
        at += gptx::detail::next_uchar(p + at, p + s.size(), tab).len;
        ++n;
    }
    chars = n;
    return found ? offset : s.size();
}

} // namespace detail

inline void run_tokenize(const tokenize_options& o) {
    GPTX_CHECK(!o.out.empty() && o.out.back() != '/',
               "--out is a prefix of three file names (PREFIX_train.bin, ...), got '", o.out, "'");
    GPTX_CHECK(o.val_fraction >= 0 && o.val_fraction < 1, "--val-fraction must be in [0, 1), got ",
               o.val_fraction);
    const std::string text = read_text_file(o.text);
    const tokenizer tok = make_tokenizer(o.tokenizer_kind, text, o.vocab_dir);
    std::size_t chars = 0;
    detail::utf8_char_offset(text, 0, chars);
    const auto k = static_cast<std::size_t>(static_cast<double>(chars) * (1.0 - o.val_fraction));
    const std::size_t cut = detail::utf8_char_offset(text, k, chars);
    const specials mode = o.allow_special ? specials::allowed : specials::as_text;
    progress bar("tokenize", std::int64_t(text.size()), {.unit = "B"});
    std::size_t before = 0; // bytes of the parts already encoded
    auto encode = [&](std::string_view part) {
        std::vector<int> ids;
        if (const auto* g = tok.get_if<gpt2_tokenizer>()) {
            // Every thread; the library cuts only where the ids cannot change (safe_cut).
            ids = g->encode(part, {.mode = mode, .threads = 0, .on_progress = [&](std::size_t n) {
                                       bar.update(std::int64_t(before + n));
                                   }});
        } else {
            ids = tok.encode(part, "text", mode); // char and byte: one pass, fast
        }
        before += part.size();
        bar.update(std::int64_t(before));
        return ids;
    };
    const std::vector<int> train = encode(std::string_view(text).substr(0, cut));
    const std::vector<int> val = encode(std::string_view(text).substr(cut));
    bar.finish();
    GPTX_CHECK(tok.vocab_size() <= 65536, "the ", tok.kind(), " tokenizer has ", tok.vocab_size(),
               " tokens; .bin files hold uint16 ids (at most 65536)");
    // An empty split is a file nothing can train or validate on: refuse it before writing any.
    GPTX_CHECK(!train.empty(), o.text, ": the training split is empty (", chars,
               " characters, --val-fraction ", o.val_fraction, ")");
    GPTX_CHECK(o.val_fraction == 0 || !val.empty(), o.text, ": the validation split is empty (",
               chars, " characters, --val-fraction ", o.val_fraction,
               "; give a larger fraction, or 0 for none)");

    const std::string prefix = o.out;
    const fs::path parent = fs::path(prefix).parent_path();
    if (!parent.empty())
        fs::create_directories(parent);
    write_token_file(prefix + "_train.bin", train);
    if (o.val_fraction > 0)
        write_token_file(prefix + "_val.bin", val);
    gptx::detail::write_whole_file(prefix + "_tokenizer.gtok", tok.serialize());

    std::printf(
        "gptx tokenize: %s tokenizer (vocab %d), %s: %zu bytes, %zu characters -> %zu tokens\n",
        std::string(tok.kind()).c_str(), tok.vocab_size(), o.text.c_str(), text.size(), chars,
        train.size() + val.size());
    std::printf("  train: %zu tokens -> %s_train.bin\n", train.size(), prefix.c_str());
    if (o.val_fraction > 0)
        std::printf("  val:   %zu tokens -> %s_val.bin\n", val.size(), prefix.c_str());
    else
        std::printf("  val:   none (--val-fraction 0)\n");
    std::printf("  tokenizer -> %s_tokenizer.gtok\n", prefix.c_str());
}

void add_tokenize_command(commands& cmds) { cmds.add(add_tokenize_command, run_tokenize); }

} // namespace gptx::cli
