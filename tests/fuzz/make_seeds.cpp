// Writes the valid seed inputs of the fuzz targets: fuzz_make_seeds tests/fuzz/corpus
// (built with GPTX_FUZZ=ON; run by hand, outputs committed). Hand-written seeds (JSONL lines,
// broken variants) sit beside these in the same folders.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <gptx/io/checkpoint.hpp>
#include <gptx/io/gguf.hpp>
#include <gptx/io/llmc.hpp>
#include <gptx/io/safetensors.hpp>
#include <gptx/text/bpe_trainer.hpp>

namespace fs = std::filesystem;
using namespace gptx;

namespace {

constexpr shape pre_shape{8, 2, 1, norm::pre}, post_shape{8, 2, 1, norm::post},
    nobias_shape{8, 2, 1, norm::pre, false};

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void put(const fs::path& p, const std::string& bytes) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    std::printf("%8zu  %s\n", bytes.size(), p.c_str());
}

gpt2_tokenizer small_bpe() {
    return train_bpe("the cat sat on the mat; the hat is that hat. caf\xc3\xa9 caf\xc3\xa9",
                     {.vocab_size = 256 + 12 + 1});
}

template <shape S> void trained(transformer<S, float>& m, adamw<float>* opt, std::uint64_t seed) {
    m.init(seed);
    if (!opt)
        return;
    rng r(seed + 1);
    for (std::size_t i = 0; i < m.grads().size(); ++i)
        m.grads().data()[i] = r.normal();
    opt->step(m.params(), m.grads(), 1e-3f);
}

// A 16-bit copy of an F32 safetensors file ("F16" or "BF16"), values truncated.
std::string to_16bit(const std::string& f32, const std::string& dtype) {
    std::uint64_t n = 0;
    for (int i = 0; i < 8; ++i)
        n |= std::uint64_t(static_cast<unsigned char>(f32[std::size_t(i)])) << (8 * i);
    nlohmann::ordered_json h = nlohmann::ordered_json::parse(f32.substr(8, n));
    const std::string data = f32.substr(8 + n);
    std::string out_data;
    for (auto& [key, v] : h.items()) {
        if (key == "__metadata__")
            continue;
        const auto b = v["data_offsets"][0].get<std::uint64_t>();
        const auto e = v["data_offsets"][1].get<std::uint64_t>();
        v["dtype"] = dtype;
        v["data_offsets"] = {out_data.size(), out_data.size() + (e - b) / 2};
        for (std::uint64_t at = b; at < e; at += 4) {
            float x;
            std::memcpy(&x, data.data() + at, 4);
            std::uint32_t u;
            std::memcpy(&u, &x, 4);
            std::uint16_t half;
            if (dtype == "BF16") {
                half = std::uint16_t(u >> 16);
            } else { // F16 of a small normal value, truncating the mantissa
                const std::uint32_t sign = (u >> 16) & 0x8000u;
                const int exp = int((u >> 23) & 0xff) - 127 + 15;
                half = exp <= 0
                           ? std::uint16_t(sign)
                           : std::uint16_t(sign | std::uint32_t(exp) << 10 | ((u >> 13) & 0x3ffu));
            }
            out_data += static_cast<char>(half & 0xff);
            out_data += static_cast<char>(half >> 8);
        }
    }
    const std::string hs = h.dump();
    std::string out;
    for (int i = 0; i < 8; ++i)
        out += static_cast<char>((std::uint64_t(hs.size()) >> (8 * i)) & 0xff);
    return out + hs + out_data;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: fuzz_make_seeds CORPUS_DIR (tests/fuzz/corpus)\n");
        return 2;
    }
    const fs::path root = argv[1];
    const fs::path tmp = fs::temp_directory_path() / "gptx_make_seeds";
    fs::create_directories(tmp);

    // ---- bpe: mode byte + body ----
    const gpt2_tokenizer bpe = small_bpe();
    put(root / "bpe/payload", std::string(1, '\x02') + bpe.payload());
    tokenizer with_specials = char_tokenizer::from_corpus("abc xyz\n");
    with_specials.add_special_token("<|endoftext|>");
    with_specials.add_special_token("<|user|>");
    put(root / "bpe/blob_char", std::string(1, '\x03') + with_specials.serialize());
    put(root / "bpe/blob_byte", std::string(1, '\x03') + tokenizer().serialize());
    put(root / "bpe/blob_gpt2", std::string(1, '\x03') + tokenizer(bpe).serialize());

    // ---- checkpoint: mode 3 (fix both checksums) + file ----
    const fs::path ck = tmp / "ck.gptx";
    {
        transformer<pre_shape, float> m({16, 8});
        adamw<float> opt(m.params());
        trained(m, &opt, 1);
        train_state st{.step = 7,
                       .data_rng = {1, 2, 3, 4},
                       .dropout_seed = 5,
                       .dropout_counter = 6,
                       .run_json = R"({"lr":0.001})"};
        save_checkpoint<pre_shape>(ck, m, &opt, with_specials, st);
        put(root / "checkpoint/pre_char_adamw", "\x03" + read_bytes(ck));
    }
    {
        transformer<post_shape, float> m({257, 4});
        trained(m, nullptr, 2);
        save_checkpoint<post_shape>(ck, m, nullptr, tokenizer(), {});
        put(root / "checkpoint/post_byte_weights", "\x03" + read_bytes(ck));
    }
    {
        transformer<nobias_shape, float> m({bpe.vocab_size(), 4});
        adamw<float> opt(m.params());
        trained(m, &opt, 3);
        basic_arena<float> rh({{"w", 8}, {"b", 1}}), vh({{"w", 8}});
        adamw<float> rh_opt(rh);
        const checkpoint_extra extras[] = {{"reward_head", &rh, &rh_opt},
                                           {"value_head", &vh, nullptr}};
        save_checkpoint<nobias_shape>(ck, m, &opt, tokenizer(bpe), {.step = 3}, extras);
        put(root / "checkpoint/nobias_gpt2_extras", "\x03" + read_bytes(ck));
    }

    // ---- safetensors and llm.c: the file itself ----
    {
        transformer<pre_shape, float> m({16, 8});
        trained(m, nullptr, 4);
        const fs::path st = tmp / "model.safetensors";
        save_safetensors<pre_shape>(st, m);
        const std::string f32 = read_bytes(st);
        put(root / "safetensors/f32", f32);
        put(root / "safetensors/bf16", to_16bit(f32, "BF16"));
        put(root / "safetensors/f16", to_16bit(f32, "F16"));

        const fs::path bin = tmp / "model.bin";
        save_llmc<pre_shape>(bin, m, 32);
        const std::string v3 = read_bytes(bin);
        put(root / "llmc/v3_padded", v3);
        // Version 5: the same parameters as bf16 (the upper half of each float).
        std::string v5 = v3.substr(0, 1024);
        v5[4] = 5;
        for (std::size_t at = 1024; at < v3.size(); at += 4)
            v5 += v3.substr(at + 2, 2);
        put(root / "llmc/v5_bf16", v5);
    }
    // ---- gguf: the file itself (F32, F16, BF16 with a BPE tokenizer; a truncated copy) ----
    {
        tokenizer tok(bpe);
        tok.add_special_token("<|user|>");
        transformer<pre_shape, float> m({tok.vocab_size() + 1, 8});
        trained(m, nullptr, 5);
        const fs::path g = tmp / "model.gguf";
        save_gguf<pre_shape>(g, m, tok);
        const std::string f32 = read_bytes(g);
        put(root / "gguf/f32", f32);
        put(root / "gguf/truncated", f32.substr(0, f32.size() / 2));
        save_gguf<pre_shape>(g, m, tok, gguf_dtype::f16);
        put(root / "gguf/f16", read_bytes(g));
        save_gguf<pre_shape>(g, m, tok, gguf_dtype::bf16);
        put(root / "gguf/bf16", read_bytes(g));
    }
    fs::remove_all(tmp);
    return 0;
}
