// Behaviour tests of `gptx export` and `--weights`: a GPT-2-tokenized checkpoint exported as
// GGUF, safetensors and llm.c; `gptx sft --weights model.gguf` starts from the loss the
// checkpoint starts from; sample, eval and train take --weights; a char model is refused by
// --format gguf in one line; --checkpoint and --weights exclude each other.
// llama.cpp itself runs the exported GGUF in tests/interop/.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"
#include "support/data.hpp"
#include "support/scratch.hpp"

namespace fs = std::filesystem;
namespace utf = boost::unit_test;
using gptx::test::expect_error;
using gptx::test::run_gptx;
using gptx::test::run_result;
using gptx::test::slurp;

namespace {

struct export_workspace : gptx::test::scratch_dir {
    export_workspace() : scratch_dir("export_cli") {
        gptx::test::write_training_text(path / "text.txt");
        std::ofstream demos(path / "demos.jsonl"), task(path / "task.jsonl");
        const char* words[] = {"cat", "dog", "sun", "map"};
        for (int i = 0; i < 8; ++i) {
            const std::string w = words[i % 4];
            demos << nlohmann::json{{"prompt", "reverse " + w + ":"},
                                    {"response", std::string(w.rbegin(), w.rend())}}
                         .dump()
                  << "\n";
            task << nlohmann::json{{"input", "reverse " + w},
                                   {"output", std::string(w.rbegin(), w.rend())}}
                        .dump()
                 << "\n";
        }
    }
    std::string vocab() const { return (gptx::test::data_dir() / "gpt2").string(); }
    // A tiny model with GPT-2's tokenizer (vocab 50257), a few steps.
    std::string pretrain(const std::string& out, const std::string& tokenizer = "gpt2") const {
        return "train --text " + (path / "text.txt").string() + " --tokenizer " + tokenizer +
               (tokenizer == "gpt2" ? " --vocab-dir " + vocab() : "") +
               " --preset tiny --context 32 --batch 2 --iters 3 --warmup 1 --eval-every 3 "
               "--eval-iters 1 --threads 2 --out " +
               (path / out).string();
    }
    std::string sft(const std::string& from, const std::string& out) const {
        return "sft " + from + " --data " + (path / "demos.jsonl").string() +
               " --epochs 1 --batch 2 --log-every 1 --threads 2 --out " + (path / out).string();
    }
};

// "step 1/N | loss 10.8271" -> "10.8271".
std::string first_loss(const std::string& out) {
    std::smatch m;
    BOOST_REQUIRE_MESSAGE(std::regex_search(out, m, std::regex("step 1/[0-9]+ \\| loss ([0-9.]+)")),
                          out);
    return m[1];
}

} // namespace

BOOST_AUTO_TEST_SUITE(export_cli)

BOOST_AUTO_TEST_CASE(gguf_export_and_weights_on_every_command,
                     *utf::label("data") *
                         utf::precondition(gptx::test::data_files{{"gpt2/encoder.json"}})) {
    export_workspace w;
    const fs::path run = w.path / "pre", gguf = w.path / "model.gguf";
    BOOST_REQUIRE(run_gptx(w.pretrain("pre")).code == 0);

    for (const auto& [format, file] :
         {std::pair{"gguf", "model.gguf"}, std::pair{"safetensors", "model.safetensors"},
          std::pair{"llmc", "model.bin"}}) {
        const auto r = run_gptx("export --checkpoint " + run.string() + " --format " + format +
                                " --out " + (w.path / file).string());
        BOOST_TEST(r.code == 0, r.out);
        BOOST_TEST(r.out.find("exported") != std::string::npos, r.out);
        BOOST_TEST(fs::file_size(w.path / file) > 50257u * 64 * 4, file);
    }
    const auto h = run_gptx("export --checkpoint " + run.string() +
                            " --format gguf --dtype f16 --out " + (w.path / "f16.gguf").string());
    BOOST_TEST(h.code == 0, h.out);
    BOOST_TEST(fs::file_size(w.path / "f16.gguf") < fs::file_size(gguf) * 6 / 10);
    expect_error(run_gptx("export --checkpoint " + run.string() +
                          " --format llmc --dtype f16 --out " + (w.path / "x.bin").string()),
                 "--format llmc is written as f32");

    // SFT from the GGUF starts where SFT from the checkpoint starts.
    const auto from_ckpt = run_gptx(w.sft("--init " + run.string(), "s1"));
    const auto from_gguf = run_gptx(w.sft("--weights " + gguf.string(), "s2"));
    BOOST_TEST(from_ckpt.code == 0, from_ckpt.out);
    BOOST_TEST(from_gguf.code == 0, from_gguf.out);
    BOOST_TEST(first_loss(from_gguf.out) == first_loss(from_ckpt.out));

    // Greedy sampling is the same from the checkpoint, the GGUF and the safetensors file (its
    // tokenizer: GPT-2's files, named by --vocab-dir).
    const std::string greedy = " --prompt 'the quick' --tokens 12 --temperature 0 --threads 2";
    const auto a = run_gptx("sample --checkpoint " + run.string() + greedy);
    const auto b = run_gptx("sample --weights " + gguf.string() + greedy);
    const auto c = run_gptx("sample --weights " + (w.path / "model.safetensors").string() +
                            " --vocab-dir " + w.vocab() + greedy);
    BOOST_TEST(a.code == 0, a.out);
    BOOST_TEST(b.out == a.out);
    BOOST_TEST(c.out == a.out);

    // eval and train read it too; train continues from the file's weights.
    const std::string task = " --test " + (w.path / "task.jsonl").string() + " --threads 2";
    const auto e1 = run_gptx("eval --checkpoint " + run.string() + task);
    const auto e2 = run_gptx("eval --weights " + gguf.string() + task);
    BOOST_TEST(e1.code == 0, e1.out);
    // The same table; only the first line (which file) differs.
    BOOST_TEST(e2.out.substr(e2.out.find('\n')) == e1.out.substr(e1.out.find('\n')));
    // train starts from the file's weights: the same first loss from the GGUF and from the
    // checkpoint, another one from a random start.
    auto cont = [&](const std::string& from, const std::string& out) {
        return run_gptx("train --text " + (w.path / "text.txt").string() + " " + from +
                        " --context 32 --batch 2 --iters 2 --warmup 1 --eval-every 2 "
                        "--eval-iters 1 --log-every 1 --threads 2 --out " +
                        (w.path / out).string());
    };
    const auto t1 = cont("--weights " + gguf.string(), "c1");
    const auto t2 = cont("--weights " + (run / "model.gptx").string(), "c2");
    const auto t3 = cont("--tokenizer gpt2 --vocab-dir " + w.vocab() + " --preset tiny", "c3");
    BOOST_TEST(t1.code == 0, t1.out);
    BOOST_TEST(t1.out.find("vocab 50257") != std::string::npos, t1.out);
    BOOST_TEST(first_loss(t1.out) == first_loss(t2.out));
    BOOST_TEST(first_loss(t1.out) != first_loss(t3.out));

    // One source at a time (CLI11's parse errors).
    const auto both =
        run_gptx("eval --checkpoint " + run.string() + " --weights " + gguf.string() + task);
    BOOST_TEST(both.code != 0, both.out);
    BOOST_TEST(both.out.find("excludes") != std::string::npos, both.out);
    const auto none = run_gptx("eval" + task);
    BOOST_TEST(none.code != 0, none.out);
    BOOST_TEST(none.out.find("[--checkpoint,--weights] is required") != std::string::npos,
               none.out);
}

BOOST_AUTO_TEST_CASE(char_models_are_refused_by_gguf_in_one_line) {
    export_workspace w;
    BOOST_REQUIRE(run_gptx(w.pretrain("chars", "char")).code == 0);
    const fs::path out = w.path / "chars.gguf";
    const auto r = run_gptx("export --checkpoint " + (w.path / "chars").string() +
                            " --format gguf --out " + out.string());
    expect_error(r, "tokenizer is 'char'");
    BOOST_TEST(std::count(r.out.begin(), r.out.end(), '\n') == 1, r.out);
    BOOST_TEST(!fs::exists(out));
    BOOST_TEST(!fs::exists(w.path / "chars.gguf.tmp"));
    // The other formats hold no tokenizer, so a char model exports to them.
    BOOST_TEST(run_gptx("export --checkpoint " + (w.path / "chars").string() +
                        " --format safetensors --out " + (w.path / "c.safetensors").string())
                   .code == 0);
    expect_error(run_gptx("export --checkpoint " + (w.path / "nothing").string() +
                          " --format gguf --out " + out.string()),
                 "nothing");
    // --out never destroys the input or what a rename would replace (a folder, a pipe).
    const fs::path ckpt = w.path / "chars" / "model.gptx";
    const std::string before = slurp(ckpt);
    const std::string safetensors = "export --format safetensors --checkpoint " + ckpt.string();
    expect_error(run_gptx(safetensors + " --out " + ckpt.string()), "is the input file");
    BOOST_TEST((slurp(ckpt) == before));
    expect_error(run_gptx(safetensors + " --out " + w.path.string()),
                 "not a regular file (a folder)");
    BOOST_TEST_REQUIRE(gptx::test::shell("mkfifo " + (w.path / "pipe").string()).code == 0);
    expect_error(run_gptx(safetensors + " --out " + (w.path / "pipe").string()),
                 "not a regular file (a device, socket or pipe)");
    BOOST_TEST(fs::is_fifo(w.path / "pipe"));
}

BOOST_AUTO_TEST_SUITE_END()
