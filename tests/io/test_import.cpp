// Tests for gptx/io/llmc.hpp, safetensors.hpp, weights.hpp and nn/resize.hpp: golden parity of
// imported GPT-2 weights with PyTorch (tools/make_gpt2_fixture.py), export round trips, every
// bad file rejected with its message, preset hints, and growing the vocabulary.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include <gptx/io/llmc.hpp>
#include <gptx/io/safetensors.hpp>
#include <gptx/nn/lm_head.hpp>
#include <gptx/nn/resize.hpp>

#include "support/data.hpp"
#include "support/errors.hpp"
#include "support/scratch.hpp"
#include "support/shapes.hpp"

using namespace gptx;
namespace fs = std::filesystem;

namespace {

constexpr shape tiny_shape = test::shapes::tiny; // the fixture's
using tiny_model = transformer<tiny_shape>;

using test::error_of;

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void spit(const fs::path& p, std::string_view s) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(s.data(), std::streamsize(s.size()));
}

struct import_dir : gptx::test::scratch_dir {
    import_dir() : scratch_dir("import") {}
};

struct reference {
    int B = 0, T = 0, V = 0;
    std::vector<int> inputs, targets;
    double loss = 0;
    std::vector<float> logits; // (B, T, V)
};

const reference& ref() {
    static const reference r = [] {
        reference r;
        const auto j =
            nlohmann::json::parse(slurp(test::gpt2_tiny_fixture_dir() / "reference.json"));
        r.B = j.at("B");
        r.T = j.at("T");
        r.V = j.at("V");
        for (const auto& row : j.at("inputs"))
            for (int v : row)
                r.inputs.push_back(v);
        for (const auto& row : j.at("targets"))
            for (int v : row)
                r.targets.push_back(v);
        r.loss = j.at("loss");
        const std::string raw = slurp(test::gpt2_tiny_fixture_dir() / "reference_logits.bin");
        r.logits.resize(raw.size() / 4);
        std::memcpy(r.logits.data(), raw.data(), r.logits.size() * 4);
        return r;
    }();
    return r;
}

// Forward on the reference batch; checks logits (1e-4 relative) and loss against PyTorch.
template <shape S> void expect_reference_logits(transformer<S>& m, const char* label) {
    const reference& r = ref();
    BOOST_REQUIRE(m.vocab() == r.V);
    m.forward(r.inputs.data(), r.B, r.T);
    lm_head<transformer<S>> head;
    std::vector<float> logits(std::size_t(r.B) * r.T * r.V);
    head.logits(m, m.hidden(), logits.data(), std::int64_t(r.B) * r.T);
    double max_abs = 0, max_rel = 0;
    for (std::size_t i = 0; i < logits.size(); ++i) {
        const double d = std::abs(double(logits[i]) - r.logits[i]);
        max_abs = std::max(max_abs, d);
        max_rel = std::max(max_rel, d / std::max(1.0, std::abs(double(r.logits[i]))));
    }
    const double loss = head.loss(m, r.targets.data());
    BOOST_TEST_MESSAGE(label << ": logits max abs diff " << max_abs << ", max rel diff " << max_rel
                             << "; loss " << loss << " vs PyTorch " << r.loss);
    BOOST_TEST(max_rel <= 1e-4, label << ": logits max rel diff " << max_rel);
    BOOST_TEST(std::abs(loss - r.loss) <= 1e-4 * r.loss,
               label << ": loss " << loss << " vs " << r.loss);
}

tiny_model load_fixture_llmc() {
    const weights_info info = read_llmc_info(test::gpt2_tiny_fixture_dir() / "model_llmc.bin");
    tiny_model m(info.config);
    load_llmc<tiny_shape>(test::gpt2_tiny_fixture_dir() / "model_llmc.bin", m);
    return m;
}

// A safetensors file from parts, for bad-file cases.
struct st_tensor {
    std::string name, dtype;
    std::vector<std::int64_t> shape;
    std::string data;
};
std::string make_safetensors(const std::vector<st_tensor>& ts,
                             const std::string& header_override = "") {
    nlohmann::ordered_json h;
    std::string data;
    for (const auto& t : ts) {
        h[t.name] = {{"dtype", t.dtype},
                     {"shape", t.shape},
                     {"data_offsets", {data.size(), data.size() + t.data.size()}}};
        data += t.data;
    }
    const std::string hs = header_override.empty() ? h.dump() : header_override;
    std::string out;
    for (int i = 0; i < 8; ++i)
        out += static_cast<char>((std::uint64_t(hs.size()) >> (8 * i)) & 0xff);
    return out + hs + data;
}

// The fixture's tensors, as parts (F32 data).
std::vector<st_tensor> fixture_parts() {
    safetensors_file f(test::gpt2_tiny_fixture_dir() / "model.safetensors");
    const std::string raw = slurp(test::gpt2_tiny_fixture_dir() / "model.safetensors");
    std::uint64_t n = 0;
    for (int i = 0; i < 8; ++i)
        n |= std::uint64_t(static_cast<unsigned char>(raw[std::size_t(i)])) << (8 * i);
    std::vector<st_tensor> out;
    for (const auto& t : f.tensors())
        out.push_back({t.name, t.dtype, t.shape, raw.substr(8 + n + t.begin, t.end - t.begin)});
    return out;
}

std::string load_error(const fs::path& file) {
    return error_of([&] {
        const weights_info info = read_safetensors_info(file);
        tiny_model m(info.config);
        load_safetensors<tiny_shape>(file, m);
    });
}

} // namespace

BOOST_AUTO_TEST_SUITE(io)
BOOST_AUTO_TEST_SUITE(import)

BOOST_AUTO_TEST_CASE(llmc_fixture_matches_pytorch) {
    const weights_info info = read_llmc_info(test::gpt2_tiny_fixture_dir() / "model_llmc.bin");
    BOOST_TEST(info.format == "llm.c");
    BOOST_TEST((info.dims == tiny_shape));
    BOOST_TEST(info.config.vocab == 317);
    BOOST_TEST(info.config.context == 64);
    BOOST_TEST(info.padded_vocab == 384);
    BOOST_TEST(info.dtype == "F32");
    tiny_model m = load_fixture_llmc();
    expect_reference_logits(m, "llm.c");
}

BOOST_AUTO_TEST_CASE(safetensors_fixture_matches_pytorch_and_llmc) {
    const fs::path file = test::gpt2_tiny_fixture_dir() / "model.safetensors";
    const weights_info info = read_safetensors_info(file);
    BOOST_TEST(info.format == "safetensors");
    BOOST_TEST((info.dims == tiny_shape)); // heads from config.json beside the file
    BOOST_TEST(info.config.vocab == 317);
    BOOST_TEST(info.config.context == 64);
    tiny_model m(info.config);
    load_safetensors<tiny_shape>(file, m);
    expect_reference_logits(m, "safetensors");
    const tiny_model l = load_fixture_llmc();
    BOOST_TEST(std::memcmp(m.params().data(), l.params().data(), m.num_parameters() * 4) == 0);

    bool dispatched = false;
    BOOST_TEST(with_weights_preset(info, [&]<shape S>() { dispatched = S == presets::tiny; }));
    BOOST_TEST(dispatched);
}

BOOST_AUTO_TEST_CASE(export_then_import_is_identical) {
    import_dir d;
    const tiny_model m = load_fixture_llmc();
    save_hf_gpt2<tiny_shape>(d.path / "hf", m);
    const weights_info si = read_safetensors_info(d.path / "hf" / "model.safetensors");
    BOOST_TEST((si.dims == tiny_shape));
    tiny_model a(si.config);
    load_safetensors<tiny_shape>(d.path / "hf" / "model.safetensors", a);
    BOOST_TEST(std::memcmp(a.params().data(), m.params().data(), m.num_parameters() * 4) == 0);
    const auto config = nlohmann::json::parse(slurp(d.path / "hf" / "config.json"));
    BOOST_TEST(config.at("n_head").get<int>() == 4);
    BOOST_TEST(config.at("vocab_size").get<int>() == 317);

    // Our export has the tensors (names, shapes, Conv1D layout, bytes) of the PyTorch fixture.
    safetensors_file ours(d.path / "hf" / "model.safetensors"),
        theirs(test::gpt2_tiny_fixture_dir() / "model.safetensors");
    BOOST_TEST(ours.tensors().size() == theirs.tensors().size());
    std::vector<float> x, y;
    for (const auto& t : theirs.tensors()) {
        const safetensors_tensor* o = ours.find(t.name);
        BOOST_REQUIRE(o);
        BOOST_TEST(o->shape == t.shape);
        x.resize((t.end - t.begin) / 4);
        y.resize(x.size());
        theirs.read(t, x.data());
        ours.read(*o, y.data());
        BOOST_TEST(std::memcmp(x.data(), y.data(), x.size() * 4) == 0, t.name);
    }

    save_llmc<tiny_shape>(d.path / "m.bin", m);
    BOOST_TEST(
        (slurp(d.path / "m.bin") == slurp(test::gpt2_tiny_fixture_dir() / "model_llmc.bin")));
    save_llmc<tiny_shape>(d.path / "m320.bin", m, 320);
    const weights_info li = read_llmc_info(d.path / "m320.bin");
    BOOST_TEST(li.padded_vocab == 320);
    tiny_model b(li.config);
    load_llmc<tiny_shape>(d.path / "m320.bin", b);
    BOOST_TEST(std::memcmp(b.params().data(), m.params().data(), m.num_parameters() * 4) == 0);
}

BOOST_AUTO_TEST_CASE(prefix_and_16_bit_dtypes_are_read) {
    import_dir d;
    auto parts = fixture_parts();
    for (auto& p : parts)
        p.name = "transformer." + p.name;
    parts.push_back({"lm_head.weight", "F32", {1}, std::string(4, '\0')}); // ignored
    spit(d.path / "prefixed.safetensors", make_safetensors(parts));
    spit(d.path / "config.json", slurp(test::gpt2_tiny_fixture_dir() / "config.json"));
    tiny_model a(read_safetensors_info(d.path / "prefixed.safetensors").config);
    load_safetensors<tiny_shape>(d.path / "prefixed.safetensors", a);
    const tiny_model m = load_fixture_llmc();
    BOOST_TEST(std::memcmp(a.params().data(), m.params().data(), m.num_parameters() * 4) == 0);

    // F16 and BF16 convert exactly for values they represent.
    std::vector<st_tensor> half = fixture_parts();
    const float vals[] = {1.0f, -2.5f, 0.0f, 65504.0f, 5.9604645e-08f /* smallest subnormal */};
    const std::uint16_t f16[] = {0x3C00, 0xC100, 0x0000, 0x7BFF, 0x0001};
    const std::uint16_t bf16[] = {0x3F80, 0xC020, 0x0000, 0x477F, 0x3380};
    for (int i = 0; i < 5; ++i) {
        BOOST_TEST(detail::f16_to_f32(f16[i]) == vals[i]);
        if (i != 3)
            BOOST_TEST(detail::bf16_to_f32(bf16[i]) == vals[i]);
    }
    for (auto& t : half) {
        if (t.name != "ln_f.bias" && t.name != "ln_f.weight")
            continue;
        std::string h;
        for (int c = 0; c < 64; ++c) {
            const std::uint16_t v = t.name == "ln_f.bias" ? f16[c % 5] : bf16[c % 3];
            h += static_cast<char>(v & 0xff);
            h += static_cast<char>(v >> 8);
        }
        t.dtype = t.name == "ln_f.bias" ? "F16" : "BF16";
        t.data = h;
    }
    spit(d.path / "half.safetensors", make_safetensors(half));
    tiny_model b(read_safetensors_info(d.path / "half.safetensors").config);
    load_safetensors<tiny_shape>(d.path / "half.safetensors", b);
    for (int c = 0; c < 64; ++c) {
        BOOST_TEST(b.param(p_lnfb)[c] == vals[c % 5]);
        BOOST_TEST(b.param(p_lnfw)[c] == vals[c % 3]);
    }
}

BOOST_AUTO_TEST_CASE(wrong_shape_names_the_preset_that_fits) {
    const fs::path file = test::gpt2_tiny_fixture_dir() / "model_llmc.bin";
    const weights_info info = read_llmc_info(file);
    transformer<presets::baby> baby(info.config);
    BOOST_TEST(error_of([&] { load_llmc<presets::baby>(file, baby); }) ==
               file.string() + ": the file holds a GPT-2 of 64/4/2 pre-LN; this model is 128/4/4 "
                               "pre-LN, no bias, erf GELU; preset 'tiny' fits");
    constexpr shape eight{64, 8, 2, norm::pre};
    transformer<eight> e(info.config);
    BOOST_TEST(error_of([&] { load_llmc<eight>(file, e); }).ends_with("preset 'tiny' fits"));
    tiny_model wrong_vocab({300, 64});
    BOOST_TEST(error_of([&] { load_llmc<tiny_shape>(file, wrong_vocab); }) ==
               file.string() + ": the file has vocab 317 and context 64; the model was built with "
                               "vocab 300 and context 64 (build it from the file's weights_info)");

    import_dir d;
    constexpr shape odd{32, 4, 1, norm::pre};
    transformer<odd> small({50, 16});
    small.init(1);
    save_llmc<odd>(d.path / "odd.bin", small);
    const weights_info oi = read_llmc_info(d.path / "odd.bin");
    BOOST_TEST(!with_weights_preset(oi, []<shape>() {}));
    tiny_model t(oi.config);
    BOOST_TEST(error_of([&] {
                   load_llmc<tiny_shape>(d.path / "odd.bin", t);
               }).ends_with("no built-in preset fits: instantiate transformer<shape{32, 4, 1}>"));
    transformer<odd> back(oi.config);
    load_llmc<odd>(d.path / "odd.bin", back);
    BOOST_TEST(
        std::memcmp(back.params().data(), small.params().data(), small.num_parameters() * 4) == 0);
}

BOOST_AUTO_TEST_CASE(bad_llmc_files_are_rejected) {
    import_dir d;
    const std::string good = slurp(test::gpt2_tiny_fixture_dir() / "model_llmc.bin");
    const fs::path f = d.path / "bad.bin";
    auto err = [&](const std::string& bytes) {
        spit(f, bytes);
        return error_of([&] {
            const weights_info info = read_llmc_info(f);
            tiny_model m(info.config);
            load_llmc<tiny_shape>(f, m);
        });
    };
    auto with_int = [&](int index, std::int32_t v) {
        std::string s = good;
        std::memcpy(s.data() + 4 * index, &v, 4);
        return s;
    };
    const std::string n = f.string();
    BOOST_TEST(err("") == n + ": too small for an llm.c checkpoint (0 bytes)");
    BOOST_TEST(err(with_int(0, 1234)) ==
               n + ": bad magic 1234 (an llm.c checkpoint starts with 20240326)");
    BOOST_TEST(err(good.substr(0, 100)) ==
               n + ": truncated: the header needs 1024 bytes, the file has 100");
    BOOST_TEST(err(with_int(1, 4)) ==
               n + ": version 4 is not supported (3: fp32 parameters, 5: bf16 parameters)");
    BOOST_TEST(err(with_int(3, -1)) ==
               n + ": corrupt header: maxT 64, V -1, L 2, NH 4, C 64, Vp 384 "
                   "(all must be positive)");
    BOOST_TEST(err(with_int(7, 300)) ==
               n + ": corrupt header: padded vocab Vp 300 is smaller than vocab V 317");
    BOOST_TEST(err(with_int(5, 5)) ==
               n + ": corrupt header: channels C 64 is not divisible by heads NH 5");
    BOOST_TEST(
        err(good.substr(0, good.size() - 4)) ==
        n + ": truncated: the header describes 128768 parameters (516096 bytes), the file has "
            "516092 bytes");
    BOOST_TEST(err(good + "xx") ==
               n + ": 2 unexpected bytes after the parameters (expected a file of 516096 bytes)");
    BOOST_TEST(err(with_int(4, 1 << 30)).starts_with(n + ": truncated: the header describes"));
    BOOST_TEST(error_of([] { read_llmc_info("/nonexistent-gptx.bin"); }) ==
               "cannot open llm.c checkpoint '/nonexistent-gptx.bin': no such file");
}

BOOST_AUTO_TEST_CASE(bad_safetensors_files_are_rejected) {
    import_dir d;
    spit(d.path / "config.json", slurp(test::gpt2_tiny_fixture_dir() / "config.json"));
    const fs::path f = d.path / "bad.safetensors";
    const std::string n = f.string();
    auto err = [&](const std::string& bytes) {
        spit(f, bytes);
        return load_error(f);
    };
    const auto parts = fixture_parts();
    auto without = [&](const std::string& name) {
        std::vector<st_tensor> p;
        for (const auto& t : parts)
            if (t.name != name)
                p.push_back(t);
        return p;
    };
    BOOST_TEST(err("abc") ==
               n + ": truncated: 3 bytes (a safetensors file starts with an 8-byte header length)");
    BOOST_TEST(err(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}") ==
               n + ": header length 9223372036854775807 exceeds the 100000000-byte limit (not a "
                   "safetensors file?)");
    BOOST_TEST(err(std::string("\x40\0\0\0\0\0\0\0", 8) + "{}") ==
               n + ": truncated: the header needs 64 bytes, the file has 2 after the length");
    BOOST_TEST(
        err(make_safetensors({}, "{\"a\":")).starts_with(n + ": the header is not valid JSON: "));
    BOOST_TEST(err(make_safetensors({}, "[1]")) == n + ": the header is not a JSON object");
    BOOST_TEST(err(make_safetensors({}, "{\"x\": {\"dtype\": \"F32\"}}")) ==
               n + ": tensor 'x': expected an object with dtype, shape and data_offsets");
    BOOST_TEST(err(make_safetensors({{"x", "F33", {1}, "abcd"}})) ==
               n + ": tensor 'x': unknown dtype 'F33'");
    BOOST_TEST(
        err(make_safetensors(
            {}, "{\"x\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}")) ==
        n + ": tensor 'x': shape has an entry that is not a non-negative integer");
    BOOST_TEST(
        err(make_safetensors(
            {}, "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}")) ==
        n + ": tensor 'x': data_offsets [0, 4] fall outside the 0-byte data section (file "
            "truncated?)");
    BOOST_TEST(err(make_safetensors({{"x", "F32", {2}, "abcd"}})) ==
               n + ": tensor 'x': shape [2] of F32 needs 2 x 4 bytes, data_offsets span 4");
    BOOST_TEST(
        err(make_safetensors(
                {}, "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                    " \"y\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [2, 6]}}") +
            "12345678") == n + ": tensors 'x' and 'y' overlap");
    BOOST_TEST(err(make_safetensors({{"x", "F32", {1}, "abcd"}})) ==
               n + ": tensor 'wte.weight' (or 'transformer.wte.weight') is missing: not a GPT-2");
    BOOST_TEST(err(make_safetensors(without("h.1.mlp.c_fc.weight"))) ==
               n + ": tensor 'h.1.mlp.c_fc.weight' is missing (expected shape [64, 256] (C, 4C))");
    BOOST_TEST(err(make_safetensors(without("wpe.weight"))) ==
               n + ": tensor 'wpe.weight' is missing");
    auto changed = parts;
    for (auto& t : changed)
        if (t.name == "h.0.attn.c_attn.weight") {
            t.shape = {192, 64}; // (out, in): a Linear layout where Conv1D is expected
        }
    BOOST_TEST(
        err(make_safetensors(changed)) ==
        n + ": tensor 'h.0.attn.c_attn.weight' has shape [192, 64], expected [64, 192] (C, 3C)");
    changed = parts;
    for (auto& t : changed)
        if (t.name == "h.1.ln_2.bias")
            t.dtype = "I32";
    BOOST_TEST(err(make_safetensors(changed)) ==
               n + ": tensor 'h.1.ln_2.bias' has dtype I32 (supported: F32, F16, BF16)");
    const std::string good = make_safetensors(parts);
    BOOST_TEST(err(good.substr(0, good.size() - 10)).ends_with("(file truncated?)"));
    BOOST_TEST(err(good) == "<no error>");
    // A bad file leaves the model untouched.
    tiny_model m({317, 64});
    m.init(3);
    const std::vector<float> before(m.params().data(), m.params().data() + m.num_parameters());
    spit(f, make_safetensors(without("ln_f.bias")));
    BOOST_CHECK_THROW(load_safetensors<tiny_shape>(f, m), gptx::error);
    BOOST_TEST(std::memcmp(before.data(), m.params().data(), before.size() * 4) == 0);
}

BOOST_AUTO_TEST_CASE(grow_vocab_adds_rows_and_keeps_the_model) {
    tiny_model m = load_fixture_llmc();
    const tiny_model g = grow_vocab(m, 3, 77);
    BOOST_TEST(g.vocab() == 320);
    BOOST_TEST(g.context() == m.context());
    const std::size_t C = 64, V = 317;
    BOOST_TEST(std::memcmp(g.param(p_wte), m.param(p_wte), V * C * 4) == 0);
    BOOST_TEST(std::memcmp(g.param(p_wpe), m.param(p_wpe), (m.num_parameters() - V * C) * 4) == 0);
    double sum = 0, sq = 0;
    for (std::size_t i = V * C; i < (V + 3) * C; ++i) {
        sum += g.param(p_wte)[i];
        sq += double(g.param(p_wte)[i]) * g.param(p_wte)[i];
    }
    const double mean = sum / (3 * C), sd = std::sqrt(sq / (3 * C) - mean * mean);
    BOOST_TEST(std::abs(mean) < 0.01);
    BOOST_TEST(std::abs(sd - 0.02) < 0.005);
    // Old tokens give the same logits over the old vocabulary.
    tiny_model h = grow_vocab(m, 3, 77);
    expect_reference_logits(m, "before grow");
    const reference& r = ref();
    h.forward(r.inputs.data(), r.B, r.T);
    lm_head<tiny_model> head;
    std::vector<float> logits(std::size_t(r.B) * r.T * 320);
    head.logits(h, h.hidden(), logits.data(), std::int64_t(r.B) * r.T);
    double max_diff = 0;
    for (std::size_t row = 0; row < std::size_t(r.B * r.T); ++row)
        for (std::size_t v = 0; v < V; ++v)
            max_diff =
                std::max(max_diff, std::abs(double(logits[row * 320 + v]) - r.logits[row * V + v]));
    BOOST_TEST(max_diff < 1e-4);
    BOOST_TEST(error_of([&] { grow_vocab(m, -1, 1); }) == "grow_vocab: cannot add -1 tokens");
}

BOOST_AUTO_TEST_SUITE_END()
BOOST_AUTO_TEST_SUITE_END()
