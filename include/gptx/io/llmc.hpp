// gptx/io/llmc.hpp: llm.c GPT-2 checkpoints (gpt2_124M.bin): import, and export for llm.c.
// Tested by tests/io/test_import.cpp.
// Layout: 256 x int32 header (little-endian): [0] magic 20240326, [1] version (3: fp32 params,
// 5: bf16 params), [2] maxT, [3] V, [4] L, [5] NH, [6] C, [7] Vp (vocab padded, e.g. 50304);
// then the parameters in llm.c's order, which is transformer's: wte (Vp, C), wpe (maxT, C), ln1w,
// ln1b, qkvw (L, 3C, C), qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw,
// lnfb. Linear weights are (out, in) in both, so nothing is transposed. Rows V..Vp-1 of wte are
// padding: dropped on import, zero on export.
#pragma once
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "../nn/transformer.hpp"
#include "weights.hpp"

namespace gptx {

inline constexpr std::int32_t llmc_magic = 20240326;
inline constexpr std::size_t llmc_header_ints = 256;

namespace detail {

struct llmc_layout {
    weights_info info;
    std::uint64_t value_bytes = 4, count = 0; // parameters in the file (wte padded to Vp)
};

inline llmc_layout llmc_parse(bounded_file& f) {
    const std::string& name = f.name();
    GPTX_CHECK(f.size() >= 4, name, ": too small for an llm.c checkpoint (", f.size(), " bytes)");
    std::int32_t h[llmc_header_ints] = {};
    f.read_at(0, h, 4, "the magic");
    auto le = [](std::int32_t v) {
        if constexpr (std::endian::native == std::endian::big)
            return std::int32_t(__builtin_bswap32(std::uint32_t(v)));
        return v;
    };
    GPTX_CHECK(le(h[0]) == llmc_magic, name, ": bad magic ", le(h[0]),
               " (an llm.c checkpoint starts with ", llmc_magic, ")");
    GPTX_CHECK(f.size() >= sizeof h, name, ": truncated: the header needs ", sizeof h,
               " bytes, the file has ", f.size());
    f.read_at(0, h, sizeof h, "the header");
    for (auto& v : h)
        v = le(v);
    const int version = h[1], maxT = h[2], V = h[3], L = h[4], NH = h[5], C = h[6], Vp = h[7];
    llmc_layout lay;
    GPTX_CHECK(version == 3 || version == 5, name, ": version ", version,
               " is not supported (3: fp32 parameters, 5: bf16 parameters)");
    lay.value_bytes = version == 3 ? 4 : 2;
    auto bad = [&](auto... why) { fail(name, ": corrupt header: ", why...); };
    if (maxT <= 0 || V <= 0 || L <= 0 || NH <= 0 || C <= 0 || Vp <= 0)
        bad("maxT ", maxT, ", V ", V, ", L ", L, ", NH ", NH, ", C ", C, ", Vp ", Vp,
            " (all must be positive)");
    if (Vp < V)
        bad("padded vocab Vp ", Vp, " is smaller than vocab V ", V);
    if (C % NH != 0)
        bad("channels C ", C, " is not divisible by heads NH ", NH);
    weights_info& info = lay.info;
    info.format = "llm.c";
    info.dims = {C, NH, L, norm::pre};
    info.config = {V, maxT};
    info.padded_vocab = Vp;
    info.dtype = version == 3 ? "F32" : "BF16";
    info.file_size = f.size();
    const auto n = checkpoint_parameter_count(info.dims, {Vp, maxT});
    std::uint64_t total = sizeof h;
    if (!n || !ckpt_add_product(total, *n, lay.value_bytes))
        bad("parameter count overflows");
    lay.count = *n;
    GPTX_CHECK(f.size() >= total, name, ": truncated: the header describes ", *n, " parameters (",
               total, " bytes), the file has ", f.size(), " bytes");
    GPTX_CHECK(f.size() == total, name, ": ", f.size() - total,
               " unexpected bytes after the parameters (expected a file of ", total, " bytes)");
    return lay;
}

} // namespace detail

// The model in an llm.c checkpoint, from its header (validated against the file size).
inline weights_info read_llmc_info(const std::filesystem::path& file) {
    detail::bounded_file f(file, "llm.c checkpoint");
    return detail::llmc_parse(f).info;
}

// Loads an llm.c checkpoint into `model`, built with the file's config (read_llmc_info).
// The shape must be S's; the error names the preset that would fit.
template <shape S> void load_llmc(const std::filesystem::path& file, transformer<S, float>& model) {
    detail::bounded_file f(file, "llm.c checkpoint");
    const detail::llmc_layout lay = detail::llmc_parse(f);
    detail::check_weights_shape<S>(f.name(), lay.info);
    detail::check_weights_config<S>(f.name(), lay.info, model.config());
    const std::uint64_t C = std::uint64_t(S.width), V = std::uint64_t(lay.info.config.vocab);
    const std::uint64_t Vp = std::uint64_t(lay.info.padded_vocab);
    const std::string_view dtype = lay.info.dtype;
    // Everything is read into a scratch copy first: a failure leaves the model untouched.
    std::vector<float> params(model.num_parameters());
    std::uint64_t at = llmc_header_ints * 4;
    f.read_floats(at, params.data(), V * C, dtype, "wte");
    at += Vp * C * lay.value_bytes;
    const std::uint64_t rest = model.num_parameters() - V * C;
    f.read_floats(at, params.data() + V * C, rest, dtype, "the parameters after wte");
    std::copy(params.begin(), params.end(), model.params().data());
}

// Writes `model` as an llm.c version-3 (fp32) checkpoint, wte padded to padded_vocab rows
// (0: the next multiple of 128, as llm.c pads 50257 to 50304). Atomic.
template <shape S>
void save_llmc(const std::filesystem::path& file, const transformer<S, float>& model,
               int padded_vocab = 0) {
    static_assert(S.placement == norm::pre && S.bias && S.gelu == gelu_kind::tanh,
                  "llm.c checkpoints hold GPT-2: pre-LN with biases, tanh GELU");
    const int V = model.vocab();
    const int Vp = padded_vocab > 0 ? padded_vocab : (V + 127) / 128 * 128;
    GPTX_CHECK(Vp >= V, file.string(), ": padded vocab ", Vp, " is smaller than the vocab ", V);
    std::int32_t h[llmc_header_ints] = {};
    h[0] = llmc_magic;
    h[1] = 3;
    h[2] = model.context();
    h[3] = V;
    h[4] = S.layers;
    h[5] = S.heads;
    h[6] = S.width;
    h[7] = Vp;
    std::string head;
    for (std::int32_t v : h)
        detail::append_le32(head, std::uint32_t(v));
    const std::size_t C = std::size_t(S.width);
    detail::write_atomically(file, [&](auto&& put) {
        put(head.data(), head.size());
        auto floats = [&](const float* p, std::size_t n) {
            if constexpr (std::endian::native == std::endian::big) {
                std::vector<float> tmp(p, p + n);
                detail::ckpt_swap_floats(tmp.data(), n);
                put(tmp.data(), n * 4);
            } else {
                put(p, n * 4);
            }
        };
        const float* all = model.params().data();
        floats(all, std::size_t(V) * C);
        const std::vector<float> pad(std::size_t(Vp - V) * C, 0.0f);
        floats(pad.data(), pad.size());
        floats(all + std::size_t(V) * C, model.num_parameters() - std::size_t(V) * C);
    });
}

} // namespace gptx
