// gptx/io/weights.hpp: what the weight importers share: the file's model description, "which
// preset fits" messages, bounds-checked reads and 16-bit float conversion.
// Tested by tests/io/test_import.cpp.
#pragma once
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "../core/file.hpp"
#include "../core/shape.hpp"
#include "checkpoint.hpp"

namespace gptx {

// A weight file's model, read from its header without loading the weights.
struct weights_info {
    std::string format;    // "llm.c" or "safetensors"
    shape dims{};          // heads is 0 when the file does not record it (safetensors alone)
    model_config config{}; // vocab (unpadded) and context
    int padded_vocab = 0;  // llm.c's Vp (rows of wte in the file); = vocab for safetensors
    std::string dtype;     // "F32", "BF16", ...
    std::uint64_t file_size = 0;
};

namespace detail {

// A file's GPT-2 shape: "64/4/2 pre-LN", heads "?" when the file does not record them.
inline std::string weights_shape_text(const shape& s) {
    if (s.heads > 0)
        return to_string(s);
    return std::to_string(s.width) + "/?/" + std::to_string(s.layers) + " pre-LN";
}

// GPT-2 as the files hold it: pre-LN with biases, tanh GELU.
inline constexpr bool fits_file(const shape& s, const shape& file) {
    return s.width == file.width && s.layers == file.layers &&
           (file.heads == 0 || s.heads == file.heads) && s.placement == norm::pre && s.bias &&
           s.gelu == gelu_kind::tanh;
}

// "preset 'tiny' fits" / "no built-in preset fits: instantiate transformer<shape{...}>".
inline std::string preset_hint(const shape& file) {
    for (const auto& p : preset_table)
        if (fits_file(p.dims, file))
            return "preset '" + std::string(p.name) + "' fits";
    return "no built-in preset fits: instantiate transformer<shape{" + std::to_string(file.width) +
           ", " + (file.heads > 0 ? std::to_string(file.heads) : std::string("<heads>")) + ", " +
           std::to_string(file.layers) + "}>";
}

// Every importer checks the file's shape against the compile-time S the same way.
template <shape S> void check_weights_shape(const std::string& name, const weights_info& info) {
    if (!fits_file(S, info.dims))
        fail(name, ": the file holds a GPT-2 of ", weights_shape_text(info.dims),
             "; this model is ", to_string(S), "; ", preset_hint(info.dims));
}

template <shape S>
void check_weights_config(const std::string& name, const weights_info& info,
                          const model_config& mc) {
    GPTX_CHECK(info.config.vocab == mc.vocab && info.config.context == mc.context, name,
               ": the file has vocab ", info.config.vocab, " and context ", info.config.context,
               "; the model was built with vocab ", mc.vocab, " and context ", mc.context,
               " (build it from the file's weights_info)");
}

// IEEE half and bfloat16 to float (bit-exact; NaN payloads kept).
inline float f16_to_f32(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
    std::uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else { // subnormal: normalise
        exp = 113;
        while ((mant & 0x400u) == 0) {
            mant <<= 1;
            --exp;
        }
        bits = sign | (exp << 23) | ((mant & 0x3FFu) << 13);
    }
    return std::bit_cast<float>(bits);
}
inline float bf16_to_f32(std::uint16_t h) { return std::bit_cast<float>(std::uint32_t(h) << 16); }

// A read-only file whose every read is checked against its size first.
class bounded_file {
  public:
    explicit bounded_file(const std::filesystem::path& p, std::string_view what)
        : name_(p.string()) {
        std::error_code ec;
        const auto st = std::filesystem::status(p, ec);
        GPTX_CHECK(std::filesystem::exists(st), "cannot open ", what, " '", name_,
                   "': no such file");
        GPTX_CHECK(!std::filesystem::is_directory(st), "cannot open ", what, " '", name_,
                   "': it is a directory");
        size_ = std::filesystem::file_size(p, ec);
        GPTX_CHECK(!ec, "cannot open ", what, " '", name_, "': ", ec.message());
        f_.reset(std::fopen(name_.c_str(), "rb"));
        GPTX_CHECK(f_, "cannot open ", what, " '", name_, "': ", std::strerror(errno));
    }
    const std::string& name() const { return name_; }
    std::uint64_t size() const { return size_; }

    // Reads n bytes at offset; `what` names the data in the error ("tensor 'wte.weight'").
    void read_at(std::uint64_t offset, void* dst, std::size_t n, std::string_view what) {
        GPTX_CHECK(offset <= size_ && n <= size_ - offset, name_, ": truncated: ", what,
                   " needs bytes [", offset, ", ", offset + n, ") but the file has ", size_);
        GPTX_CHECK(offset <= std::uint64_t(LONG_MAX) &&
                       std::fseek(f_.get(), long(offset), SEEK_SET) == 0,
                   name_, ": cannot seek to byte ", offset);
        if (n != 0 && std::fread(dst, 1, n, f_.get()) != n)
            fail(name_, ": I/O error reading ", what);
    }
    // n values of `dtype` (F32, F16, BF16; little-endian) at offset, as floats.
    void read_floats(std::uint64_t offset, float* dst, std::size_t n, std::string_view dtype,
                     std::string_view what) {
        if (dtype == "F32") {
            read_at(offset, dst, n * 4, what);
            ckpt_swap_floats(dst, n);
            return;
        }
        GPTX_CHECK(dtype == "F16" || dtype == "BF16", name_, ": ", what, " has dtype ", dtype,
                   " (supported: F32, F16, BF16)");
        std::vector<unsigned char> raw(n * 2);
        read_at(offset, raw.data(), raw.size(), what);
        for (std::size_t i = 0; i < n; ++i) {
            const auto h = std::uint16_t(raw[2 * i] | raw[2 * i + 1] << 8);
            dst[i] = dtype == "F16" ? f16_to_f32(h) : bf16_to_f32(h);
        }
    }

  private:
    std::string name_;
    std::uint64_t size_ = 0;
    file_ptr f_;
};

// Writes everything to path + ".tmp", fsyncs, renames over path: readers never see half a file.
template <class Write> void write_atomically(const std::filesystem::path& path, Write&& write) {
    const std::filesystem::path tmp = detail::atomic_temp_for(path);
    try {
        file_ptr f(std::fopen(tmp.string().c_str(), "wb"));
        GPTX_CHECK(f, "cannot open '", tmp.string(), "' for writing: ", std::strerror(errno));
        auto put = [&](const void* p, std::size_t n) {
            if (n != 0 && std::fwrite(p, 1, n, f.get()) != n)
                fail("cannot write '", tmp.string(), "': ", std::strerror(errno));
        };
        write(put);
        GPTX_CHECK(std::fflush(f.get()) == 0 && ckpt_fsync(f.get()), "cannot write '", tmp.string(),
                   "': ", std::strerror(errno));
        GPTX_CHECK(std::fclose(f.release()) == 0, "cannot write '", tmp.string(), "'");
        std::error_code ec;
        std::filesystem::rename(tmp, path, ec);
        GPTX_CHECK(!ec, "cannot rename '", tmp.string(), "' to '", path.string(),
                   "': ", ec.message());
        ckpt_fsync_dir(path.parent_path());
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove(tmp, ec);
        throw;
    }
}

inline void append_le32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        out += static_cast<char>((v >> (8 * i)) & 0xff);
}

} // namespace detail

// Calls f.template operator()<S>() with the preset whose shape fits the file (GPT-2: pre-LN with
// biases; width and layers, and heads when the file records them); false if none does.
template <class F> bool with_weights_preset(const weights_info& info, F&& f) {
    bool found = false;
    auto try_one = [&]<std::size_t I>() {
        constexpr shape s = preset_table[I].dims;
        if (!found && detail::fits_file(s, info.dims)) {
            found = true;
            f.template operator()<s>();
        }
    };
    [&]<std::size_t... I>(std::index_sequence<I...>) { (try_one.template operator()<I>(), ...); }
    (std::make_index_sequence<preset_table.size()>{});
    return found;
}

} // namespace gptx
