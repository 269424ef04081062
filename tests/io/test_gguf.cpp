// Tests for gptx/io/gguf.hpp and the format dispatch of io/import.hpp: gptx -> GGUF -> gptx (and
// -> safetensors ->, -> llm.c ->) give identical logits; F16/BF16 are rounded to nearest even;
// Q8_0 is dequantised; the GPT-2 tokenizer survives the trip; char tokenizers are refused; and
// truncated, oversized-count and misaligned files get one-line errors.
// llama.cpp itself reads these files in tests/interop/.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gptx/io/gguf.hpp>
#include <gptx/io/import.hpp>
#include <gptx/nn/lm_head.hpp>
#include <gptx/text/bpe_trainer.hpp>

#include "support/data.hpp"
#include "support/errors.hpp"
#include "support/scratch.hpp"
#include "support/shapes.hpp"

using namespace gptx;
namespace fs = std::filesystem;

namespace {

constexpr shape gguf_shape = test::shapes::tiny; // the fixture's
using gguf_model = transformer<gguf_shape>;

using test::error_of;

// The PyTorch fixture's GPT-2 (vocab 317, context 64 as the fixture has it).
gguf_model fixture_model() {
    const weights_info info = read_llmc_info(test::gpt2_tiny_fixture_dir() / "model_llmc.bin");
    gguf_model m(info.config);
    load_llmc<gguf_shape>(test::gpt2_tiny_fixture_dir() / "model_llmc.bin", m);
    return m;
}

// A byte-level BPE with exactly `vocab` tokens, <|endoftext|> last (as GPT-2's).
tokenizer small_bpe(int vocab) {
    const std::string text = "the cat sat on the mat; the hat is that hat. caf\xc3\xa9 caf\xc3\xa9 "
                             "to be or not to be, that is the question. whether tis nobler "
                             "in the mind to suffer the slings and arrows of outrageous fortune";
    bpe_train_options o;
    o.vocab_size = vocab;
    o.min_frequency = 1;
    return tokenizer(train_bpe(text, o));
}

// Logits of every position of a fixed batch.
template <shape S> std::vector<float> logits_of(transformer<S>& m) {
    const int B = 2, T = 16;
    std::vector<int> x(B * T);
    for (int i = 0; i < B * T; ++i)
        x[std::size_t(i)] = (i * 37 + 11) % m.vocab();
    m.forward(x.data(), B, T);
    lm_head<transformer<S>> head;
    std::vector<float> out(std::size_t(B) * T * std::size_t(m.vocab()));
    head.logits(m, m.hidden(), out.data(), std::int64_t(B) * T);
    return out;
}

gguf_model load_any(const fs::path& file) {
    const weights_info info = read_weights_info(file);
    gguf_model m(info.config);
    load_weights<gguf_shape>(file, m);
    return m;
}

// A GGUF from parts, for Q8_0 and bad-file cases: metadata built with gguf_builder, tensors
// given as raw bytes and laid out as ggml does unless an offset is forced.
struct part {
    std::string name;
    std::vector<std::uint64_t> ne;
    std::uint32_t type;
    std::string data;
    std::int64_t forced_offset = -1;
};
std::string make_gguf(const detail::gguf_builder& b, const std::vector<part>& ts,
                      std::uint64_t align = 32, std::uint64_t n_kv_override = 0) {
    std::string out;
    detail::gguf_put(out, gguf_magic, 4);
    detail::gguf_put(out, 3, 4);
    detail::gguf_put(out, ts.size(), 8);
    detail::gguf_put(out, n_kv_override ? n_kv_override : b.n_kv_, 8);
    out += b.kvs_;
    std::uint64_t at = 0;
    std::string data;
    for (const auto& t : ts) {
        detail::gguf_put(out, t.name.size(), 8);
        out += t.name;
        detail::gguf_put(out, t.ne.size(), 4);
        for (auto d : t.ne)
            detail::gguf_put(out, d, 8);
        detail::gguf_put(out, t.type, 4);
        detail::gguf_put(out, t.forced_offset >= 0 ? std::uint64_t(t.forced_offset) : at, 8);
        data += t.data;
        data.append((align - data.size() % align) % align, '\0');
        at = data.size();
    }
    out.append((align - out.size() % align) % align, '\0');
    return out + data;
}

detail::gguf_builder gpt2_metadata(int C, int L, int NH, int T) {
    detail::gguf_builder b;
    b.str("general.architecture", "gpt2");
    b.u32("gpt2.context_length", std::uint32_t(T));
    b.u32("gpt2.embedding_length", std::uint32_t(C));
    b.u32("gpt2.block_count", std::uint32_t(L));
    b.u32("gpt2.feed_forward_length", std::uint32_t(4 * C));
    b.u32("gpt2.attention.head_count", std::uint32_t(NH));
    b.f32("gpt2.attention.layer_norm_epsilon", 1e-5f);
    return b;
}

// The tensors of an F32 GGUF, 2-D ones quantised to Q8_0 as ggml does (d = max|x| / 127,
// q = round(x / d)); `expected` gets the values a reader must produce.
std::vector<part> q8_parts(const fs::path& f32_file, std::vector<std::vector<float>>& expected) {
    gguf_file f(f32_file);
    std::vector<part> out;
    for (const auto& t : f.tensors()) {
        std::vector<float> x(std::size_t(t.numel));
        f.read(t, x.data());
        part p{t.name, t.ne, 0, {}};
        if (t.ne.size() == 2) {
            p.type = 8;
            for (std::size_t b = 0; b < x.size() / 32; ++b) {
                float amax = 0;
                for (int k = 0; k < 32; ++k)
                    amax = std::max(amax, std::abs(x[b * 32 + std::size_t(k)]));
                const std::uint16_t dh = detail::f32_to_f16(amax / 127);
                const float d = detail::f16_to_f32(dh);
                detail::gguf_put(p.data, dh, 2);
                for (int k = 0; k < 32; ++k) {
                    const int q = d == 0 ? 0 : int(std::lround(x[b * 32 + std::size_t(k)] / d));
                    p.data += static_cast<char>(std::int8_t(std::clamp(q, -127, 127)));
                    x[b * 32 + std::size_t(k)] = d * float(std::int8_t(std::clamp(q, -127, 127)));
                }
            }
        } else {
            for (float v : x)
                detail::gguf_put(p.data, std::bit_cast<std::uint32_t>(v), 4);
        }
        expected.push_back(x);
        out.push_back(std::move(p));
    }
    return out;
}

void expect_one_line(const std::string& e, const std::string& needle) {
    BOOST_TEST(e.find(needle) != std::string::npos, "expected '" << needle << "' in: " << e);
    BOOST_TEST(e.find('\n') == std::string::npos, e);
}

} // namespace

BOOST_AUTO_TEST_SUITE(io)
BOOST_AUTO_TEST_SUITE(gguf)

BOOST_AUTO_TEST_CASE(round_trips_give_identical_logits) {
    test::scratch_dir d("gguf");
    gguf_model m = fixture_model();
    const tokenizer tok = small_bpe(m.vocab());
    BOOST_REQUIRE(tok.vocab_size() == m.vocab());
    const std::vector<float> want = logits_of(m);

    save_gguf<gguf_shape>(d / "m.gguf", m, tok);
    save_safetensors<gguf_shape>(d / "m.safetensors", m);
    save_llmc<gguf_shape>(d / "m.bin", m);
    for (const char* name : {"m.gguf", "m.safetensors", "m.bin"}) {
        const weights_info info = read_weights_info(d / name);
        BOOST_TEST((info.dims == gguf_shape), name);
        BOOST_TEST(info.config.vocab == m.vocab());
        BOOST_TEST(info.config.context == m.context());
        gguf_model back = load_any(d / name);
        BOOST_TEST(std::memcmp(back.params().data(), m.params().data(),
                               m.num_parameters() * sizeof(float)) == 0,
                   name);
        const std::vector<float> got = logits_of(back);
        BOOST_TEST(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0, name);
    }
    BOOST_TEST(read_weights_info(d / "m.gguf").format == "gguf");
    BOOST_TEST((read_gguf_tokenizer(d / "m.gguf").value() == tok)); // equal, not just alike
    BOOST_TEST(!fs::exists(d / "m.gguf.tmp"));

    // The layout llama.cpp expects: gpt2 names, ggml's [in, out] shapes, no output.weight.
    gguf_file f(d / "m.gguf");
    BOOST_TEST(f.get_string("general.architecture") == "gpt2");
    BOOST_TEST(f.get_uint("gpt2.block_count", 100) == 2u);
    BOOST_TEST(f.get_uint("gpt2.feed_forward_length", 1000) == 256u);
    BOOST_TEST(f.tensors().size() == 2 + 12 * 2 + 2u);
    BOOST_TEST(f.find_tensor("blk.1.attn_qkv.weight")->dims_text() == "[64, 192]");
    BOOST_TEST(f.find_tensor("blk.0.ffn_down.weight")->dims_text() == "[256, 64]");
    BOOST_TEST(f.find_tensor("token_embd.weight")->dims_text() == "[64, 317]");
    BOOST_TEST(!f.find_tensor("output.weight"));
    for (const auto& t : f.tensors())
        BOOST_TEST((f.data_start() + t.offset) % 32 == 0, t.name);
}

BOOST_AUTO_TEST_CASE(the_tokenizer_survives_the_trip) {
    test::scratch_dir d("gguf");
    tokenizer tok = small_bpe(300);
    const int eot = tok.special_token_id("<|endoftext|>").value();
    const int user = tok.add_special_token("<|user|>");    // a runtime special after the vocabulary
    transformer<gguf_shape> m({tok.vocab_size() + 3, 32}); // 3 rows no token uses
    m.init(7);
    save_gguf<gguf_shape>(d / "t.gguf", m, tok);

    gguf_file f(d / "t.gguf");
    BOOST_TEST(f.get_string("tokenizer.ggml.model") == "gpt2");
    BOOST_TEST(f.get_string("tokenizer.ggml.pre") == "gpt-2");
    BOOST_TEST(f.get_uint("tokenizer.ggml.eos_token_id", 1000) == std::uint64_t(eot));
    const gguf_value& types = f.require("tokenizer.ggml.token_type");
    BOOST_TEST(types.ints.size() == std::size_t(m.vocab()));
    BOOST_TEST(types.ints[std::size_t(eot)] == gguf_token_control);
    BOOST_TEST(types.ints[std::size_t(user)] == gguf_token_control);
    BOOST_TEST(types.ints[std::size_t(m.vocab() - 1)] == gguf_token_unused);
    BOOST_TEST(types.ints[0] == gguf_token_normal);
    // GPT-2's byte-to-unicode text: a space is "Ġ".
    const auto& toks = f.require("tokenizer.ggml.tokens").strings;
    BOOST_TEST(std::count(toks.begin(), toks.end(), "\xc4\xa0the") == 1);

    const tokenizer back = read_gguf_tokenizer(d / "t.gguf").value();
    BOOST_TEST(back.kind() == "gpt2");
    BOOST_TEST(back.vocab_size() == m.vocab());
    BOOST_TEST(back.special_token_id("<|user|>").value() == user);
    BOOST_TEST(back.special_token_id("<|endoftext|>").value() == eot);
    const std::string text = "whether tis nobler, the cat sat on the mat<|user|> caf\xc3\xa9!";
    BOOST_TEST(back.encode(text, "t", specials::allowed) ==
               tok.encode(text, "t", specials::allowed));
    BOOST_TEST(back.encode(text) == tok.encode(text));
    BOOST_TEST(back.decode(tok.encode(text)) == text);

    // Through load_model: weights and tokenizer from one file.
    const checkpoint_info info = read_model_info(d / "t.gguf");
    BOOST_TEST((info.dims == gguf_shape));
    transformer<gguf_shape> m2(info.config);
    tokenizer t2;
    load_model<gguf_shape>(d / "t.gguf", m2, &t2);
    BOOST_TEST(t2.vocab_size() == m.vocab());
    BOOST_TEST(std::memcmp(m2.params().data(), m.params().data(), m.num_parameters() * 4) == 0);
}

BOOST_AUTO_TEST_CASE(sixteen_bit_exports_round_to_nearest_even) {
    test::scratch_dir d("gguf");
    gguf_model m = fixture_model();
    const tokenizer tok = small_bpe(m.vocab());
    for (auto [dtype, type] :
         {std::pair{gguf_dtype::f16, "F16"}, std::pair{gguf_dtype::bf16, "BF16"}}) {
        save_gguf<gguf_shape>(d / "h.gguf", m, tok, dtype);
        BOOST_TEST(read_weights_info(d / "h.gguf").dtype == type);
        gguf_model back = load_any(d / "h.gguf");
        std::size_t differ = 0;
        for (int id = 0; id < num_param_tensors; ++id) {
            const auto& a = m.params().view(id);
            const auto& b = back.params().view(id);
            const bool matrix = id == p_wte || id == p_wpe || id == p_qkvw || id == p_attprojw ||
                                id == p_fcw || id == p_fcprojw;
            for (std::size_t k = 0; k < a.size; ++k) {
                const float x = a.data[k];
                const float want = !matrix ? x
                                   : dtype == gguf_dtype::f16
                                       ? detail::f16_to_f32(detail::f32_to_f16(x))
                                       : detail::bf16_to_f32(detail::f32_to_bf16(x));
                differ += b.data[k] != want;
            }
        }
        BOOST_TEST(differ == 0u, type);
    }
    // Rounding: ties to even, overflow to inf, subnormals kept.
    BOOST_TEST(detail::f32_to_f16(1.0f) == 0x3C00);
    BOOST_TEST(detail::f32_to_f16(1.0f + 1.0f / 2048) == 0x3C00); // tie -> even
    BOOST_TEST(detail::f32_to_f16(1.0f + 3.0f / 2048) == 0x3C02); // tie -> even (up)
    BOOST_TEST(detail::f32_to_f16(65520.0f) == 0x7C00);
    BOOST_TEST(detail::f32_to_f16(-65504.0f) == 0xFBFF);
    BOOST_TEST(detail::f32_to_f16(5.960464477539063e-08f) == 0x0001); // smallest subnormal
    BOOST_TEST(detail::f32_to_bf16(1.0f + 1.0f / 256) == 0x3F80);     // tie -> even
    BOOST_TEST(detail::f32_to_bf16(1.0f + 3.0f / 256) == 0x3F82);
    for (std::uint32_t h = 0; h < 0x7C00; ++h) // every finite half survives half -> float -> half
        BOOST_TEST_REQUIRE(detail::f32_to_f16(detail::f16_to_f32(std::uint16_t(h))) == h);
}

BOOST_AUTO_TEST_CASE(q8_0_is_dequantised) {
    test::scratch_dir d("gguf");
    gguf_model m = fixture_model();
    save_gguf<gguf_shape>(d / "f32.gguf", m, small_bpe(m.vocab()));
    std::vector<std::vector<float>> expected;
    const auto parts = q8_parts(d / "f32.gguf", expected);
    test::write_file(d / "q8.gguf", make_gguf(gpt2_metadata(64, 2, 4, m.context()), parts));
    BOOST_TEST(read_weights_info(d / "q8.gguf").dtype == "Q8_0");
    gguf_model back = load_any(d / "q8.gguf");
    gguf_file f(d / "q8.gguf");
    std::vector<float> x;
    double worst = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        x.resize(expected[i].size());
        f.read(f.tensors()[i], x.data());
        BOOST_TEST(std::memcmp(x.data(), expected[i].data(), x.size() * 4) == 0, parts[i].name);
    }
    for (std::size_t k = 0; k < m.num_parameters(); ++k)
        worst = std::max(worst, double(std::abs(back.params().data()[k] - m.params().data()[k])));
    BOOST_TEST_MESSAGE("Q8_0: max |w - dequant(quant(w))| = " << worst);
    BOOST_TEST(worst < 0.01); // weights of ~0.1: 1/254 of a block's largest
    BOOST_TEST(worst > 0);
}

BOOST_AUTO_TEST_CASE(char_and_byte_tokenizers_are_refused) {
    test::scratch_dir d("gguf");
    const tokenizer chars = make_tokenizer("char", "hello world");
    transformer<gguf_shape> m({chars.vocab_size(), 16});
    m.init(1);
    const std::string e = error_of([&] { save_gguf<gguf_shape>(d / "c.gguf", m, chars); });
    expect_one_line(e, "tokenizer is 'char'");
    expect_one_line(e, "--format safetensors");
    BOOST_TEST(!fs::exists(d / "c.gguf"));
    BOOST_TEST(!fs::exists(d / "c.gguf.tmp"));
    const tokenizer bytes = make_tokenizer("byte", "");
    transformer<gguf_shape> mb({bytes.vocab_size(), 16});
    expect_one_line(error_of([&] { save_gguf<gguf_shape>(d / "b.gguf", mb, bytes); }),
                    "tokenizer is 'byte'");
}

BOOST_AUTO_TEST_CASE(hostile_files_get_one_line_errors) {
    test::scratch_dir d("gguf");
    gguf_model m = fixture_model();
    save_gguf<gguf_shape>(d / "good.gguf", m, small_bpe(m.vocab()));
    const std::string good = test::slurp(d / "good.gguf");
    auto err = [&](const std::string& bytes) {
        const fs::path p = d.write("bad.gguf", bytes);
        return error_of([&] { load_any(p); });
    };

    // Truncated anywhere: in the header, the metadata, the tensor infos, the data.
    for (std::size_t cut :
         {std::size_t(3), std::size_t(20), std::size_t(100), good.size() / 3, good.size() - 1})
        expect_one_line(err(good.substr(0, cut)), "truncated");
    expect_one_line(err("GGUF"), "truncated");
    expect_one_line(error_of([&] { gguf_file f(d.write("bad.gguf", "GGML" + good.substr(4))); }),
                    "not a GGUF file");
    std::string v9 = good;
    v9[4] = 9;
    expect_one_line(err(v9), "GGUF version 9");

    // Oversized counts: key-values, tensors, an array, a string.
    std::string many = good;
    for (int k = 0; k < 8; ++k)
        many[16 + std::size_t(k)] = char(0xff);
    expect_one_line(err(many), "key-value count 18446744073709551615 cannot fit");
    many = good;
    many[8 + 7] = 0x10;
    expect_one_line(err(many), "tensor count");
    {
        detail::gguf_builder b = gpt2_metadata(64, 2, 4, 64);
        b.strings("tokenizer.ggml.tokens", {"a", "b"});
        std::string s = make_gguf(b, {});
        const std::size_t at = s.find("tokenizer.ggml.tokens") + 21 + 4; // the u64 count
        for (int k = 0; k < 8; ++k)
            s[at + std::size_t(k)] = k == 6 ? char(0x10) : '\0';
        expect_one_line(err(s), "key 'tokenizer.ggml.tokens': array of");
        expect_one_line(err(s), "cannot fit");
        s = make_gguf(b, {});
        const std::size_t len_at = s.find("\x01\0\0\0\0\0\0\0a", 0, 9);
        BOOST_REQUIRE(len_at != std::string::npos);
        s[len_at + 5] = 0x7f; // the string "a" now claims ~2^47 bytes
        expect_one_line(err(s), "truncated");
    }

    // Misaligned: a tensor offset off the alignment; an alignment that is not a power of two.
    {
        std::vector<part> ts = {{"token_embd.weight", {64, 2}, 0, std::string(512, '\0'), 4}};
        expect_one_line(err(make_gguf(gpt2_metadata(64, 2, 4, 64), ts)), "misaligned");
        expect_one_line(err(make_gguf(gpt2_metadata(64, 2, 4, 64), ts)),
                        "tensor 'token_embd.weight'");
        detail::gguf_builder b = gpt2_metadata(64, 2, 4, 64);
        b.u32("general.alignment", 48);
        expect_one_line(err(make_gguf(b, {})), "not a power of two");
        ts[0].forced_offset = 1 << 20;
        expect_one_line(err(make_gguf(gpt2_metadata(64, 2, 4, 64), ts)), "outside the data");
        ts[0].forced_offset = -1;
        ts.push_back(ts[0]);
        ts[1].name = "position_embd.weight";
        ts[1].forced_offset = 0;
        expect_one_line(err(make_gguf(gpt2_metadata(64, 2, 4, 64), ts)), "overlap");
        ts[1].forced_offset = -1;
        ts[1].name = "token_embd.weight";
        expect_one_line(err(make_gguf(gpt2_metadata(64, 2, 4, 64), ts)), "appears twice");
    }

    // Model-level: another architecture, a missing tensor, a wrong shape, a bad type.
    {
        detail::gguf_builder b;
        b.str("general.architecture", "llama");
        expect_one_line(err(make_gguf(b, {})), "general.architecture is 'llama'");
        expect_one_line(err(make_gguf(gpt2_metadata(64, 2, 4, 64), {})),
                        "tensor 'token_embd.weight' is missing");
        std::vector<part> ts = {
            {"token_embd.weight", {64, 317}, 0, std::string(64 * 317 * 4, '\0')},
            {"position_embd.weight", {32, 64}, 0, std::string(32 * 64 * 4, '\0')}};
        expect_one_line(err(make_gguf(gpt2_metadata(64, 2, 4, 64), ts)),
                        "tensor 'position_embd.weight' has shape [32, 64], expected [64, 64]");
        ts[1] = {"position_embd.weight", {64, 64}, 9, std::string(64 * 64 / 32 * 40, '\0')};
        expect_one_line(err(make_gguf(gpt2_metadata(64, 2, 4, 64), ts)),
                        "has type ggml type 9 (gptx reads F32, F16, BF16 and Q8_0)");
        ts[1] = {"position_embd.weight", {64, 64}, 77, ""};
        expect_one_line(err(make_gguf(gpt2_metadata(64, 2, 4, 64), ts)), "unknown ggml type 77");
        ts[1] = {"position_embd.weight", {40, 64}, 8, ""};
        expect_one_line(err(make_gguf(gpt2_metadata(64, 2, 4, 64), ts)), "not whole Q8_0 blocks");
        detail::gguf_builder eps;
        eps.str("general.architecture", "gpt2");
        eps.u32("gpt2.context_length", 64);
        eps.u32("gpt2.embedding_length", 64);
        eps.u32("gpt2.block_count", 2);
        eps.u32("gpt2.feed_forward_length", 256);
        eps.u32("gpt2.attention.head_count", 4);
        eps.f32("gpt2.attention.layer_norm_epsilon", 1e-6f);
        expect_one_line(err(make_gguf(eps, {})), "layer_norm_epsilon is 1e-06");
    }
    // The good file still loads (the cases above broke copies).
    BOOST_TEST(load_any(d / "good.gguf").vocab() == 317);
}

BOOST_AUTO_TEST_SUITE_END()
BOOST_AUTO_TEST_SUITE_END()
