// gptx/io/safetensors.hpp: safetensors files, and Hugging Face GPT-2 weights in them (import and
// export). Tested by tests/io/test_import.cpp.
// Format: u64 N (little-endian) | N bytes of JSON {"name": {"dtype", "shape", "data_offsets":
// [begin, end]}, "__metadata__": {str: str}} | data, offsets relative to its start.
// GPT-2 names: wte.weight (V, C), wpe.weight (maxT, C), h.N.ln_1.{weight,bias} (C),
// h.N.attn.c_attn.{weight (C, 3C), bias (3C)}, h.N.attn.c_proj.{weight (C, C), bias},
// h.N.ln_2.*, h.N.mlp.c_fc.{weight (C, 4C), bias (4C)}, h.N.mlp.c_proj.{weight (4C, C), bias},
// ln_f.*, optionally all under "transformer.". Weights are Conv1D (in, out): transposed to our
// (out, in). Dtypes read: F32, F16, BF16 (converted to float). Written: F32.
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../core/file.hpp"
#include "../core/shape.hpp"
#include "../nn/transformer.hpp"
#include "weights.hpp"

namespace gptx {

struct safetensors_tensor {
    std::string name, dtype;
    std::vector<std::int64_t> shape;
    std::uint64_t begin = 0, end = 0; // byte offsets into the data section
};

// A parsed, validated safetensors header over an open file. Nothing read from the file is used
// as a size or an offset before it is checked against the file's size.
class safetensors_file {
  public:
    static constexpr std::uint64_t max_header_bytes = 100'000'000; // the reference library's limit

    explicit safetensors_file(const std::filesystem::path& path) : f_(path, "safetensors file") {
        const std::string& name = f_.name();
        GPTX_CHECK(f_.size() >= 8, name, ": truncated: ", f_.size(),
                   " bytes (a safetensors file starts with an 8-byte header length)");
        unsigned char n8[8];
        f_.read_at(0, n8, 8, "the header length");
        std::uint64_t n = 0;
        for (int i = 0; i < 8; ++i)
            n |= std::uint64_t(n8[i]) << (8 * i);
        GPTX_CHECK(n <= max_header_bytes, name, ": header length ", n, " exceeds the ",
                   max_header_bytes, "-byte limit (not a safetensors file?)");
        GPTX_CHECK(n <= f_.size() - 8, name, ": truncated: the header needs ", n,
                   " bytes, the file has ", f_.size() - 8, " after the length");
        std::string header(n, '\0');
        f_.read_at(8, header.data(), n, "the header");
        data_start_ = 8 + n;
        const std::uint64_t data_bytes = f_.size() - data_start_;

        nlohmann::json j;
        try {
            j = nlohmann::json::parse(header);
        } catch (const nlohmann::json::exception& e) {
            detail::fail(name, ": the header is not valid JSON: ", e.what());
        }
        GPTX_CHECK(j.is_object(), name, ": the header is not a JSON object");
        for (const auto& item : j.items()) {
            // Named, not structured bindings: clang before 16 cannot capture those in lambdas.
            const std::string& key = item.key();
            const nlohmann::json& v = item.value();
            if (key == "__metadata__") {
                GPTX_CHECK(v.is_object(), name, ": __metadata__ is not an object");
                for (const auto& [mk, mv] : v.items())
                    if (mv.is_string())
                        metadata_[mk] = mv.get<std::string>();
                continue;
            }
            auto bad = [&](auto... why) { detail::fail(name, ": tensor '", key, "': ", why...); };
            if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
                !v.contains("data_offsets"))
                bad("expected an object with dtype, shape and data_offsets");
            safetensors_tensor t;
            t.name = key;
            if (!v["dtype"].is_string())
                bad("dtype is not a string");
            t.dtype = v["dtype"].get<std::string>();
            const std::uint64_t es = element_size(t.dtype);
            if (es == 0)
                bad("unknown dtype '", t.dtype, "'");
            const auto& sh = v["shape"];
            if (!sh.is_array())
                bad("shape is not an array");
            std::uint64_t numel = 1;
            for (const auto& d : sh) {
                if (!d.is_number_unsigned())
                    bad("shape has an entry that is not a non-negative integer");
                const auto x = d.get<std::uint64_t>();
                if (x > std::uint64_t(std::numeric_limits<std::int64_t>::max()) ||
                    (x != 0 && numel > std::numeric_limits<std::uint64_t>::max() / x))
                    bad("shape overflows");
                numel *= x;
                t.shape.push_back(std::int64_t(x));
            }
            const auto& off = v["data_offsets"];
            if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
                !off[1].is_number_unsigned())
                bad("data_offsets is not [begin, end]");
            t.begin = off[0].get<std::uint64_t>();
            t.end = off[1].get<std::uint64_t>();
            if (t.begin > t.end || t.end > data_bytes)
                bad("data_offsets [", t.begin, ", ", t.end, "] fall outside the ", data_bytes,
                    "-byte data section (file truncated?)");
            if (numel > std::numeric_limits<std::uint64_t>::max() / es ||
                numel * es != t.end - t.begin)
                bad("shape ", shape_text(t.shape), " of ", t.dtype, " needs ", numel, " x ", es,
                    " bytes, data_offsets span ", t.end - t.begin);
            tensors_.push_back(std::move(t));
        }
        std::vector<const safetensors_tensor*> by_offset;
        for (const auto& t : tensors_)
            by_offset.push_back(&t);
        std::sort(by_offset.begin(), by_offset.end(),
                  [](auto* a, auto* b) { return a->begin < b->begin; });
        for (std::size_t i = 1; i < by_offset.size(); ++i)
            GPTX_CHECK(by_offset[i]->begin >= by_offset[i - 1]->end, name, ": tensors '",
                       by_offset[i - 1]->name, "' and '", by_offset[i]->name, "' overlap");
    }

    const std::string& name() const { return f_.name(); }
    const std::vector<safetensors_tensor>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const safetensors_tensor* find(std::string_view n) const {
        for (const auto& t : tensors_)
            if (t.name == n)
                return &t;
        return nullptr;
    }
    // Reads tensor `t` as floats (F32, F16 or BF16) into dst, which holds numel values.
    void read(const safetensors_tensor& t, float* dst) {
        const std::uint64_t n = (t.end - t.begin) / element_size(t.dtype);
        f_.read_floats(data_start_ + t.begin, dst, std::size_t(n), t.dtype,
                       "tensor '" + t.name + "'");
    }

    static std::uint64_t element_size(std::string_view dtype) {
        if (dtype == "F64" || dtype == "I64" || dtype == "U64")
            return 8;
        if (dtype == "F32" || dtype == "I32" || dtype == "U32")
            return 4;
        if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16")
            return 2;
        if (dtype == "BOOL" || dtype == "U8" || dtype == "I8" || dtype == "F8_E4M3" ||
            dtype == "F8_E5M2")
            return 1;
        return 0;
    }
    static std::string shape_text(const std::vector<std::int64_t>& s) {
        std::string out = "[";
        for (std::size_t i = 0; i < s.size(); ++i)
            out += (i ? ", " : "") + std::to_string(s[i]);
        return out + "]";
    }

  private:
    detail::bounded_file f_;
    std::uint64_t data_start_ = 0;
    std::vector<safetensors_tensor> tensors_;
    std::map<std::string, std::string> metadata_;
};

namespace detail {

// The "transformer." prefix GPT2LMHeadModel uses, or "".
inline std::string hf_prefix(const safetensors_file& f) {
    if (f.find("wte.weight"))
        return "";
    if (f.find("transformer.wte.weight"))
        return "transformer.";
    fail(f.name(), ": tensor 'wte.weight' (or 'transformer.wte.weight') is missing: not a GPT-2");
}

// Heads are not in any tensor's shape: from the metadata gptx writes, else a config.json beside
// the file (Hugging Face's layout), else unknown (0).
inline int hf_heads(const safetensors_file& f, const std::filesystem::path& file) {
    if (const auto it = f.metadata().find("n_head"); it != f.metadata().end()) {
        try {
            return std::stoi(it->second);
        } catch (const std::exception&) {
            fail(f.name(), ": metadata n_head '", it->second, "' is not a number");
        }
    }
    const auto config = file.parent_path() / "config.json";
    std::error_code ec;
    if (std::filesystem::is_regular_file(config, ec)) {
        try {
            const auto j = nlohmann::json::parse(read_whole_file(config, "config"));
            if (j.contains("n_head") && j["n_head"].is_number_integer())
                return j["n_head"].get<int>();
        } catch (const nlohmann::json::exception& e) {
            fail(config.string(), ": not valid JSON: ", e.what());
        }
    }
    return 0;
}

inline weights_info hf_gpt2_info(const safetensors_file& f, const std::filesystem::path& file) {
    const std::string p = hf_prefix(f);
    const safetensors_tensor* wte = f.find(p + "wte.weight");
    const safetensors_tensor* wpe = f.find(p + "wpe.weight");
    GPTX_CHECK(wte->shape.size() == 2 && wte->shape[0] > 0 && wte->shape[1] > 0, f.name(),
               ": tensor '", wte->name, "' has shape ", safetensors_file::shape_text(wte->shape),
               ", expected [V, C]");
    GPTX_CHECK(wpe, f.name(), ": tensor '", p, "wpe.weight' is missing");
    GPTX_CHECK(wpe->shape.size() == 2 && wpe->shape[0] > 0 && wpe->shape[1] == wte->shape[1],
               f.name(), ": tensor '", wpe->name, "' has shape ",
               safetensors_file::shape_text(wpe->shape), ", expected [maxT, ", wte->shape[1], "]");
    GPTX_CHECK(wte->shape[0] < std::numeric_limits<int>::max() &&
                   wte->shape[1] < std::numeric_limits<int>::max() &&
                   wpe->shape[0] < std::numeric_limits<int>::max(),
               f.name(), ": tensor sizes do not fit int");
    int layers = 0;
    while (f.find(p + "h." + std::to_string(layers) + ".ln_1.weight"))
        ++layers;
    GPTX_CHECK(layers > 0, f.name(), ": tensor '", p, "h.0.ln_1.weight' is missing: no layers");
    weights_info info;
    info.format = "safetensors";
    info.dims = {int(wte->shape[1]), hf_heads(f, file), layers, norm::pre};
    info.config = {int(wte->shape[0]), int(wpe->shape[0])};
    info.padded_vocab = info.config.vocab;
    info.dtype = wte->dtype;
    return info;
}

} // namespace detail

// The GPT-2 in a Hugging Face model.safetensors: width, layers, vocab and context from tensor
// shapes; heads from the metadata or a config.json beside the file (0 if neither has it).
inline weights_info read_safetensors_info(const std::filesystem::path& file) {
    safetensors_file f(file);
    weights_info info = detail::hf_gpt2_info(f, file);
    info.file_size = std::filesystem::file_size(file);
    return info;
}

// Loads Hugging Face GPT-2 weights into `model`, built with the file's config. Every expected
// tensor must be present with its exact shape; others (attn.bias masks, a tied lm_head) are
// ignored. A failure leaves the model untouched.
template <shape S>
void load_safetensors(const std::filesystem::path& file, transformer<S, float>& model) {
    safetensors_file f(file);
    const std::string& name = f.name();
    const weights_info info = detail::hf_gpt2_info(f, file);
    detail::check_weights_shape<S>(name, info);
    detail::check_weights_config<S>(name, info, model.config());
    const std::string p = detail::hf_prefix(f);
    constexpr std::int64_t C = S.width;
    const std::int64_t V = info.config.vocab, maxT = info.config.context;

    // Staged in a copy of the parameter arena, copied into the model only when all is read.
    std::vector<float> staged(model.num_parameters());
    auto dst = [&](param_id i) { return staged.data() + (model.param(i) - model.params().data()); };
    std::vector<float> buf;
    auto fetch = [&](const std::string& tname, std::vector<std::int64_t> want, const char* dims) {
        const safetensors_tensor* t = f.find(p + tname);
        GPTX_CHECK(t, name, ": tensor '", p + tname, "' is missing (expected shape ",
                   safetensors_file::shape_text(want), " ", dims, ")");
        GPTX_CHECK(t->shape == want, name, ": tensor '", t->name, "' has shape ",
                   safetensors_file::shape_text(t->shape), ", expected ",
                   safetensors_file::shape_text(want), " ", dims);
        std::uint64_t n = 1;
        for (auto d : want)
            n *= std::uint64_t(d);
        buf.resize(n);
        f.read(*t, buf.data());
        return buf.data();
    };
    auto copy = [&](float* dst, const float* src, std::int64_t n) { std::copy(src, src + n, dst); };
    // Conv1D (in, out) -> (out, in).
    auto transpose = [&](float* dst, const float* src, std::int64_t in, std::int64_t out) {
        for (std::int64_t i = 0; i < in; ++i)
            for (std::int64_t o = 0; o < out; ++o)
                dst[o * in + i] = src[i * out + o];
    };
    copy(dst(p_wte), fetch("wte.weight", {V, C}, "(V, C)"), V * C);
    copy(dst(p_wpe), fetch("wpe.weight", {maxT, C}, "(maxT, C)"), maxT * C);
    for (int l = 0; l < S.layers; ++l) {
        const std::string h = "h." + std::to_string(l) + ".";
        copy(dst(p_ln1w) + l * C, fetch(h + "ln_1.weight", {C}, "(C)"), C);
        copy(dst(p_ln1b) + l * C, fetch(h + "ln_1.bias", {C}, "(C)"), C);
        transpose(dst(p_qkvw) + l * 3 * C * C,
                  fetch(h + "attn.c_attn.weight", {C, 3 * C}, "(C, 3C)"), C, 3 * C);
        copy(dst(p_qkvb) + l * 3 * C, fetch(h + "attn.c_attn.bias", {3 * C}, "(3C)"), 3 * C);
        transpose(dst(p_attprojw) + l * C * C, fetch(h + "attn.c_proj.weight", {C, C}, "(C, C)"), C,
                  C);
        copy(dst(p_attprojb) + l * C, fetch(h + "attn.c_proj.bias", {C}, "(C)"), C);
        copy(dst(p_ln2w) + l * C, fetch(h + "ln_2.weight", {C}, "(C)"), C);
        copy(dst(p_ln2b) + l * C, fetch(h + "ln_2.bias", {C}, "(C)"), C);
        transpose(dst(p_fcw) + l * 4 * C * C, fetch(h + "mlp.c_fc.weight", {C, 4 * C}, "(C, 4C)"),
                  C, 4 * C);
        copy(dst(p_fcb) + l * 4 * C, fetch(h + "mlp.c_fc.bias", {4 * C}, "(4C)"), 4 * C);
        transpose(dst(p_fcprojw) + l * C * 4 * C,
                  fetch(h + "mlp.c_proj.weight", {4 * C, C}, "(4C, C)"), 4 * C, C);
        copy(dst(p_fcprojb) + l * C, fetch(h + "mlp.c_proj.bias", {C}, "(C)"), C);
    }
    GPTX_CHECK(!f.find(p + "h." + std::to_string(S.layers) + ".ln_1.weight"), name,
               ": more layers than the model's ", S.layers);
    copy(dst(p_lnfw), fetch("ln_f.weight", {C}, "(C)"), C);
    copy(dst(p_lnfb), fetch("ln_f.bias", {C}, "(C)"), C);
    std::copy(staged.begin(), staged.end(), model.params().data());
}

// Writes `model` as a Hugging Face GPT-2 model.safetensors (F32, Conv1D layout, names without
// a prefix, metadata format=pt plus n_head/n_embd/n_layer/n_positions/vocab_size). Atomic.
template <shape S>
void save_safetensors(const std::filesystem::path& file, const transformer<S, float>& model) {
    static_assert(S.placement == norm::pre && S.bias && S.gelu == gelu_kind::tanh,
                  "Hugging Face GPT-2 is pre-LN with biases and gelu_new (tanh GELU)");
    constexpr std::int64_t C = S.width;
    const std::int64_t V = model.vocab(), maxT = model.context();
    struct item {
        std::string name;
        std::vector<std::int64_t> shape;
        const float* src;
        std::int64_t transpose_in; // > 0: write the (out, in) source as (in, out)
    };
    std::vector<item> items;
    items.push_back({"wte.weight", {V, C}, model.param(p_wte), 0});
    items.push_back({"wpe.weight", {maxT, C}, model.param(p_wpe), 0});
    for (int l = 0; l < S.layers; ++l) {
        const std::string h = "h." + std::to_string(l) + ".";
        items.push_back({h + "ln_1.weight", {C}, model.param(p_ln1w) + l * C, 0});
        items.push_back({h + "ln_1.bias", {C}, model.param(p_ln1b) + l * C, 0});
        items.push_back(
            {h + "attn.c_attn.weight", {C, 3 * C}, model.param(p_qkvw) + l * 3 * C * C, C});
        items.push_back({h + "attn.c_attn.bias", {3 * C}, model.param(p_qkvb) + l * 3 * C, 0});
        items.push_back({h + "attn.c_proj.weight", {C, C}, model.param(p_attprojw) + l * C * C, C});
        items.push_back({h + "attn.c_proj.bias", {C}, model.param(p_attprojb) + l * C, 0});
        items.push_back({h + "ln_2.weight", {C}, model.param(p_ln2w) + l * C, 0});
        items.push_back({h + "ln_2.bias", {C}, model.param(p_ln2b) + l * C, 0});
        items.push_back({h + "mlp.c_fc.weight", {C, 4 * C}, model.param(p_fcw) + l * 4 * C * C, C});
        items.push_back({h + "mlp.c_fc.bias", {4 * C}, model.param(p_fcb) + l * 4 * C, 0});
        items.push_back(
            {h + "mlp.c_proj.weight", {4 * C, C}, model.param(p_fcprojw) + l * C * 4 * C, 4 * C});
        items.push_back({h + "mlp.c_proj.bias", {C}, model.param(p_fcprojb) + l * C, 0});
    }
    items.push_back({"ln_f.weight", {C}, model.param(p_lnfw), 0});
    items.push_back({"ln_f.bias", {C}, model.param(p_lnfb), 0});

    nlohmann::ordered_json header;
    header["__metadata__"] = {{"format", "pt"},
                              {"n_head", std::to_string(S.heads)},
                              {"n_embd", std::to_string(S.width)},
                              {"n_layer", std::to_string(S.layers)},
                              {"n_positions", std::to_string(maxT)},
                              {"vocab_size", std::to_string(V)}};
    std::uint64_t at = 0;
    for (const auto& it : items) {
        std::uint64_t n = 1;
        for (auto d : it.shape)
            n *= std::uint64_t(d);
        header[it.name] = {
            {"dtype", "F32"}, {"shape", it.shape}, {"data_offsets", {at, at + 4 * n}}};
        at += 4 * n;
    }
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' '); // the reference writer pads to 8 bytes with spaces
    std::string len;
    for (int i = 0; i < 8; ++i)
        len += static_cast<char>((std::uint64_t(h.size()) >> (8 * i)) & 0xff);
    detail::write_atomically(file, [&](auto&& put) {
        put(len.data(), 8);
        put(h.data(), h.size());
        std::vector<float> buf;
        for (const auto& it : items) {
            std::uint64_t n = 1;
            for (auto d : it.shape)
                n *= std::uint64_t(d);
            buf.assign(it.src, it.src + n);
            if (it.transpose_in > 0) { // source (out, in) -> file (in, out)
                const std::int64_t in = it.transpose_in, out = std::int64_t(n) / in;
                for (std::int64_t o = 0; o < out; ++o)
                    for (std::int64_t i = 0; i < in; ++i)
                        buf[std::size_t(i * out + o)] = it.src[o * in + i];
            }
            detail::ckpt_swap_floats(buf.data(), buf.size());
            put(buf.data(), buf.size() * 4);
        }
    });
}

// A folder Hugging Face's GPT2LMHeadModel.from_pretrained loads: model.safetensors + config.json.
template <shape S>
void save_hf_gpt2(const std::filesystem::path& dir, const transformer<S, float>& model) {
    std::filesystem::create_directories(dir);
    save_safetensors<S>(dir / "model.safetensors", model);
    nlohmann::ordered_json c = {{"architectures", {"GPT2LMHeadModel"}},
                                {"model_type", "gpt2"},
                                {"vocab_size", model.vocab()},
                                {"n_positions", model.context()},
                                {"n_ctx", model.context()},
                                {"n_embd", S.width},
                                {"n_layer", S.layers},
                                {"n_head", S.heads},
                                {"n_inner", nullptr},
                                {"activation_function", "gelu_new"},
                                {"layer_norm_epsilon", 1e-5},
                                {"resid_pdrop", 0.0},
                                {"embd_pdrop", 0.0},
                                {"attn_pdrop", 0.0},
                                {"tie_word_embeddings", true},
                                {"bos_token_id", 50256},
                                {"eos_token_id", 50256}};
    detail::write_whole_file(dir / "config.json", c.dump(2) + "\n");
}

} // namespace gptx
