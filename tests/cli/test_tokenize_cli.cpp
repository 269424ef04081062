// Behaviour tests of `gptx tokenize`, `gptx train` on token files and `gptx sample --weights`:
// nanoGPT's token counts, files that read back, imported weights that generate, and one-line
// errors for bad input.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gptx/data/token_file.hpp>
#include <gptx/text/tokenizer.hpp>

#include "support/cli.hpp"
#include "support/data.hpp"
#include "support/scratch.hpp"

namespace fs = std::filesystem;
namespace utf = boost::unit_test;
using gptx::test::data_dir;
using gptx::test::data_files;
using gptx::test::expect_error;
using gptx::test::run_gptx;
using gptx::test::run_result;
using gptx::test::slurp;

namespace {

// A scratch folder with the training text.
struct scratch : gptx::test::scratch_dir {
    fs::path text = path / "text.txt";
    scratch() : scratch_dir("tok_cli") { gptx::test::write_training_text(text, 300); }
};

// The preconditions of the cases that need GPT-2's vocabulary, and tiny Shakespeare (label "data").
const data_files gpt2_vocab{{"gpt2/encoder.json", "gpt2/vocab.bpe"}};
const data_files gpt2_and_shakespeare{
    {"gpt2/encoder.json", "gpt2/vocab.bpe", "tinyshakespeare.txt"}};
std::string vocab_dir() { return (data_dir() / "gpt2").string(); }
fs::path fixture(const char* name) {
    return fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "gpt2_tiny" / name;
}

} // namespace

BOOST_AUTO_TEST_SUITE(cli_tokenize)

BOOST_AUTO_TEST_CASE(tinyshakespeare_gpt2_gives_nanogpts_counts,
                     *utf::label("data") * utf::precondition(gpt2_and_shakespeare)) {
    scratch w;
    const std::string prefix = (w.path / "shakespeare").string();
    const run_result r =
        run_gptx("tokenize --tokenizer gpt2 --vocab-dir " + vocab_dir() + " --text " +
                 (data_dir() / "tinyshakespeare.txt").string() + " --out " + prefix);
    BOOST_TEST(r.code == 0, r.out);
    BOOST_TEST(r.out.find("-> 338025 tokens") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("train: 301966 tokens") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("val:   36059 tokens") != std::string::npos, r.out);
    const auto train = gptx::read_token_file(prefix + "_train.bin");
    const auto val = gptx::read_token_file(prefix + "_val.bin");
    BOOST_TEST(train.size() == 301966u);
    BOOST_TEST(val.size() == 36059u);
    const gptx::tokenizer tok = gptx::tokenizer::deserialize(slurp(prefix + "_tokenizer.gtok"));
    BOOST_TEST(tok.kind() == "gpt2");
    BOOST_TEST(tok.decode(train) + tok.decode(val) == slurp(data_dir() / "tinyshakespeare.txt"));
}

// The whole file in one part, at 1 and 2 threads: GPT-2's 338,025 tokens (issue #17: the
// command's own 256 KiB pieces once cut inside "\n\n" and gave 338,024).
BOOST_AUTO_TEST_CASE(tinyshakespeare_whole_gives_gpt2s_count_at_any_thread_count,
                     *utf::label("data") * utf::precondition(gpt2_and_shakespeare)) {
    scratch w;
    const std::string text = (data_dir() / "tinyshakespeare.txt").string();
    std::vector<int> first;
    for (const char* threads : {"1", "2"}) {
        const std::string prefix = (w.path / (std::string("whole") + threads)).string();
        const run_result r =
            run_gptx("tokenize --tokenizer gpt2 --vocab-dir " + vocab_dir() + " --text " + text +
                     " --val-fraction 0 --threads " + threads + " --out " + prefix);
        BOOST_TEST(r.code == 0, r.out);
        BOOST_TEST(r.out.find("-> 338025 tokens") != std::string::npos, r.out);
        const auto ids = gptx::read_token_file(prefix + "_train.bin");
        BOOST_TEST(ids.size() == 338025u, threads << " threads");
        if (first.empty())
            first = ids;
        BOOST_TEST((ids == first), threads << " threads");
    }
}

BOOST_AUTO_TEST_CASE(char_and_byte_kinds_and_zero_val_fraction) {
    scratch w;
    const std::string prefix = (w.path / "c").string();
    run_result r = run_gptx("tokenize --tokenizer char --text " + w.text.string() + " --out " +
                            prefix + " --val-fraction 0");
    BOOST_TEST(r.code == 0, r.out);
    BOOST_TEST(r.out.find("val:   none") != std::string::npos, r.out);
    BOOST_TEST(!fs::exists(prefix + "_val.bin"));
    const auto ids = gptx::read_token_file(prefix + "_train.bin");
    const gptx::tokenizer tok = gptx::tokenizer::deserialize(slurp(prefix + "_tokenizer.gtok"));
    BOOST_TEST(tok.decode(ids) == slurp(w.text)); // every token, in order

    r = run_gptx("tokenize --tokenizer byte --text " + w.text.string() + " --out " + prefix +
                 "b --val-fraction 0.25");
    BOOST_TEST(r.code == 0, r.out);
    const auto t = gptx::read_token_file(prefix + "b_train.bin");
    const auto v = gptx::read_token_file(prefix + "b_val.bin");
    const std::size_t n = slurp(w.text).size();
    BOOST_TEST(t.size() == std::size_t(double(n) * 0.75));
    BOOST_TEST(t.size() + v.size() == n);
}

BOOST_AUTO_TEST_CASE(train_on_token_files_then_sample) {
    scratch w;
    const std::string prefix = (w.path / "c").string();
    BOOST_TEST(
        run_gptx("tokenize --tokenizer char --text " + w.text.string() + " --out " + prefix).code ==
        0);
    const std::string common =
        " --preset tiny --context 16 --batch 2 --iters 2 --eval-every 2 --eval-iters 1"
        " --warmup 1 --threads 2 --out " +
        (w.path / "run").string();
    run_result r = run_gptx("train --train-bin " + prefix + "_train.bin --val-bin " + prefix +
                            "_val.bin --tokenizer-file " + prefix + "_tokenizer.gtok" + common);
    BOOST_TEST(r.code == 0, r.out);
    BOOST_TEST(r.out.find("vocab 30") != std::string::npos, r.out);
    r = run_gptx("sample --checkpoint " + (w.path / "run").string() + " --prompt the --tokens 8");
    BOOST_TEST(r.code == 0, r.out);
    BOOST_TEST(r.out.starts_with("the"), r.out);

    expect_error(run_gptx("train --train-bin " + prefix + "_train.bin --tokenizer char" + common),
                 "--tokenizer char with token files needs --tokenizer-file");
    expect_error(run_gptx("train --text " + w.text.string() + " --train-bin " + prefix +
                          "_train.bin" + common),
                 "give either --text or --train-bin");
    expect_error(
        run_gptx("train --val-bin " + prefix + "_val.bin --text " + w.text.string() + common),
        "--val-bin needs --train-bin");
}

// The same with GPT-2's vocabulary: token files of ids up to 50,256.
BOOST_AUTO_TEST_CASE(train_on_gpt2_token_files,
                     *utf::label("data") * utf::precondition(gpt2_vocab)) {
    scratch w;
    const std::string prefix = (w.path / "c").string();
    const std::string common =
        " --preset tiny --context 16 --batch 2 --iters 2 --eval-every 2 --eval-iters 1"
        " --warmup 1 --threads 2 --out " +
        (w.path / "run").string();
    BOOST_TEST(run_gptx("tokenize --tokenizer gpt2 --vocab-dir " + vocab_dir() + " --text " +
                        w.text.string() + " --out " + prefix + "g")
                   .code == 0);
    const run_result r =
        run_gptx("train --train-bin " + prefix + "g_train.bin --tokenizer gpt2 --vocab-dir " +
                 vocab_dir() + " --iters 2" + common);
    BOOST_TEST(r.code == 0, r.out);
    BOOST_TEST(r.out.find("vocab 50257") != std::string::npos, r.out);
    // GPT-2 ids do not fit the byte tokenizer.
    expect_error(run_gptx("train --train-bin " + prefix + "g_train.bin --tokenizer byte" + common),
                 "is outside the byte tokenizer's vocabulary (256 tokens)");
}

BOOST_AUTO_TEST_CASE(sample_from_imported_weights,
                     *utf::label("data") * utf::precondition(gpt2_vocab)) {
    const std::string args = " --tokenizer gpt2 --vocab-dir " + vocab_dir() +
                             " --prompt 'in the' --tokens 12 --seed 3 --temperature 1";
    const run_result st =
        run_gptx("sample --weights " + fixture("model.safetensors").string() + args);
    BOOST_TEST(st.code == 0, st.out);
    BOOST_TEST(st.out.starts_with("in the"), st.out);
    const run_result bin =
        run_gptx("sample --weights " + fixture("model_llmc.bin").string() + args);
    BOOST_TEST(bin.code == 0, bin.out);
    BOOST_TEST(bin.out == st.out); // the same weights in two formats
    expect_error(run_gptx("sample --weights " + fixture("model.safetensors").string() +
                          " --vocab-dir " + vocab_dir() + " --prompt Hello"),
                 "prompt token 15496 ('Hello') is outside the model's vocabulary of 317 tokens");
    expect_error(run_gptx("sample --weights " + fixture("reference.json").string() + args),
                 "header length");
    expect_error(
        run_gptx("sample --weights " + fixture("model.safetensors").string() + " --prompt x"),
        "the gpt2 tokenizer needs a vocabulary folder");
}

BOOST_AUTO_TEST_CASE(tokenize_bad_inputs) {
    scratch w;
    const std::string out = " --out " + (w.path / "x").string();
    expect_error(run_gptx("tokenize --tokenizer gpt2 --text " + w.text.string() + out),
                 "the gpt2 tokenizer needs a vocabulary folder with encoder.json and vocab.bpe "
                 "(--vocab-dir)");
    expect_error(run_gptx("tokenize --tokenizer gpt2 --vocab-dir " + w.path.string() + " --text " +
                          w.text.string() + out),
                 "encoder.json': no such file");
    expect_error(
        run_gptx("tokenize --tokenizer byte --val-fraction 1 --text " + w.text.string() + out),
        "--val-fraction must be in [0, 1), got 1");
    expect_error(
        run_gptx("tokenize --tokenizer byte --text " + (w.path / "missing.txt").string() + out),
        "no such file");
}

BOOST_AUTO_TEST_SUITE_END()
