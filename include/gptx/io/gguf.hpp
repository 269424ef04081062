// gptx/io/gguf.hpp: GGUF v3 files (llama.cpp's format) for its `gpt2` architecture: read (F32,
// F16, BF16, Q8_0 dequantised) and write (F32, F16, BF16), with GPT-2's BPE tokenizer.
// Tested by tests/io/test_gguf.cpp, tests/fuzz/fuzz_gguf.cpp and tests/interop/ (llama.cpp).
// Layout (ggml/src/gguf.cpp, gguf-py/gguf/constants.py), little-endian:
//   "GGUF" | u32 version (3) | u64 tensor count | u64 key-value count | key-values | tensor infos
//   | padding to the alignment | data. A string is u64 length | bytes; a key-value is string key |
//   u32 value type | value; an array value is u32 element type | u64 count | elements. A tensor
//   info is string name | u32 n_dims (<= 4) | u64 ne[n_dims] (ne[0] varies fastest) | u32 ggml
//   type | u64 offset from the data start, a multiple of the alignment (general.alignment, u32,
//   a power of two; 32 when absent). ggml writes each tensor padded to the alignment, in order.
// gpt2 (src/llama-arch.cpp, src/models/gpt2.cpp): token_embd ne [C, V], position_embd [C, maxT],
// blk.N.{attn_norm, ffn_norm} weight/bias [C], blk.N.attn_qkv [C, 3C] + bias [3C],
// blk.N.attn_output [C, C] + bias, blk.N.ffn_up [C, 4C] + bias [4C], blk.N.ffn_down [4C, C] +
// bias [C], output_norm weight/bias, output [C, V] only when untied. ggml's ne [in, out] is
// our row-major (out, in), so nothing is transposed. Hyper-parameters: gpt2.context_length,
// .embedding_length, .block_count, .feed_forward_length, .attention.head_count (u32) and
// .attention.layer_norm_epsilon (f32).
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "../nn/transformer.hpp"
#include "../ops/layernorm.hpp"
#include "../text/tokenizer.hpp"
#include "weights.hpp"

namespace gptx {

inline constexpr std::uint32_t gguf_magic = 0x46554747; // "GGUF" read as a little-endian u32
inline constexpr std::uint32_t gguf_version = 3;
inline constexpr std::uint64_t gguf_default_alignment = 32;

// Metadata value types (GGUFValueType).
enum class gguf_type : std::uint32_t {
    u8 = 0,
    i8 = 1,
    u16 = 2,
    i16 = 3,
    u32 = 4,
    i32 = 5,
    f32 = 6,
    boolean = 7,
    string = 8,
    array = 9,
    u64 = 10,
    i64 = 11,
    f64 = 12
};

// The tensor types gptx writes or reads (GGMLQuantizationType); others are only measured.
enum class ggml_type : std::uint32_t { f32 = 0, f16 = 1, q8_0 = 8, bf16 = 30 };

// GGUF token types (gguf-py TokenType).
inline constexpr std::int32_t gguf_token_normal = 1, gguf_token_control = 3,
                              gguf_token_user_defined = 4, gguf_token_unused = 5;

// llama.cpp's file types (LlamaFileType) for general.file_type.
inline constexpr std::uint32_t gguf_file_all_f32 = 0, gguf_file_mostly_f16 = 1,
                               gguf_file_mostly_bf16 = 32;

struct gguf_value {
    gguf_type type = gguf_type::u8;
    gguf_type elem = gguf_type::u8;   // arrays: the element type
    std::uint64_t u = 0;              // unsigned and bool scalars
    std::int64_t i = 0;               // signed scalars
    double f = 0;                     // float scalars
    std::string s;                    // string scalars
    std::vector<std::string> strings; // arrays of strings
    std::vector<std::int64_t> ints;   // arrays of integers (and bools)
    std::vector<double> floats;       // arrays of floats
    std::uint64_t count = 0;          // arrays: elements
};

struct gguf_tensor {
    std::string name;
    std::vector<std::uint64_t> ne; // ggml order: ne[0] varies fastest
    std::uint32_t type = 0;
    std::uint64_t offset = 0; // from the start of the data section
    std::uint64_t bytes = 0;
    std::uint64_t numel = 0;
    std::string dims_text() const {
        std::string out = "[";
        for (std::size_t i = 0; i < ne.size(); ++i)
            out += (i ? ", " : "") + std::to_string(ne[i]);
        return out + "]";
    }
};

namespace detail {

// (block size, bytes per block) of ggml type t, from gguf-py's GGML_QUANT_SIZES; {0, 0}: unknown.
inline std::pair<std::uint64_t, std::uint64_t> ggml_type_size(std::uint32_t t) {
    constexpr std::uint64_t K = 256;
    switch (t) {
    case 0:
        return {1, 4}; // F32
    case 1:
        return {1, 2}; // F16
    case 2:
        return {32, 2 + 16}; // Q4_0
    case 3:
        return {32, 2 + 2 + 16}; // Q4_1
    case 6:
        return {32, 2 + 4 + 16}; // Q5_0
    case 7:
        return {32, 2 + 2 + 4 + 16}; // Q5_1
    case 8:
        return {32, 2 + 32}; // Q8_0
    case 9:
        return {32, 4 + 4 + 32}; // Q8_1
    case 10:
        return {K, 2 + 2 + K / 16 + K / 4}; // Q2_K
    case 11:
        return {K, 2 + K / 4 + K / 8 + 12}; // Q3_K
    case 12:
        return {K, 2 + 2 + K / 2 + 12}; // Q4_K
    case 13:
        return {K, 2 + 2 + K / 2 + K / 8 + 12}; // Q5_K
    case 14:
        return {K, 2 + K / 2 + K / 4 + K / 16}; // Q6_K
    case 15:
        return {K, 4 + K + K / 8}; // Q8_K
    case 16:
        return {K, 2 + K / 4}; // IQ2_XXS
    case 17:
        return {K, 2 + K / 4 + K / 32}; // IQ2_XS
    case 18:
        return {K, 2 + K / 4 + K / 8}; // IQ3_XXS
    case 19:
        return {K, 2 + K / 8 + K / 16}; // IQ1_S
    case 20:
        return {32, 2 + 16}; // IQ4_NL
    case 21:
        return {K, 2 + K / 4 + K / 8 + K / 32 + 4}; // IQ3_S
    case 22:
        return {K, 2 + K / 4 + K / 16}; // IQ2_S
    case 23:
        return {K, 2 + 2 + K / 2 + K / 64}; // IQ4_XS
    case 24:
        return {1, 1}; // I8
    case 25:
        return {1, 2}; // I16
    case 26:
        return {1, 4}; // I32
    case 27:
        return {1, 8}; // I64
    case 28:
        return {1, 8}; // F64
    case 29:
        return {K, K / 8 + K / 16 + K / 32}; // IQ1_M
    case 30:
        return {1, 2}; // BF16
    case 34:
        return {K, 2 + 4 * 13}; // TQ1_0
    case 35:
        return {K, 2 + 64}; // TQ2_0
    case 39:
        return {32, 1 + 16}; // MXFP4
    default:
        return {0, 0};
    }
}

inline std::string ggml_type_name(std::uint32_t t) {
    switch (t) {
    case 0:
        return "F32";
    case 1:
        return "F16";
    case 8:
        return "Q8_0";
    case 30:
        return "BF16";
    default:
        return "ggml type " + std::to_string(t);
    }
}

// Bytes per element of a metadata scalar type; 0 for string and array.
inline std::uint64_t gguf_scalar_size(gguf_type t) {
    switch (t) {
    case gguf_type::u8:
    case gguf_type::i8:
    case gguf_type::boolean:
        return 1;
    case gguf_type::u16:
    case gguf_type::i16:
        return 2;
    case gguf_type::u32:
    case gguf_type::i32:
    case gguf_type::f32:
        return 4;
    case gguf_type::u64:
    case gguf_type::i64:
    case gguf_type::f64:
        return 8;
    default:
        return 0;
    }
}

// Sequential reads over a bounded_file through a buffer; every read is checked against the file
// size first, so no count or length from the file allocates more than the file holds.
class gguf_cursor {
  public:
    explicit gguf_cursor(bounded_file& f) : f_(f) {}
    std::uint64_t pos() const { return pos_; }
    std::uint64_t left() const { return f_.size() - pos_; }
    const char* take(std::uint64_t n, std::string_view what) {
        GPTX_CHECK(n <= left(), f_.name(), ": truncated: ", what, " needs ", n, " bytes at offset ",
                   pos_, " but the file has ", left(), " after it");
        if (pos_ < buf_at_ || pos_ + n > buf_at_ + buf_.size()) {
            const std::uint64_t want =
                std::min<std::uint64_t>(left(), std::max<std::uint64_t>(n, 1 << 20));
            buf_.resize(std::size_t(want));
            f_.read_at(pos_, buf_.data(), buf_.size(), what);
            buf_at_ = pos_;
        }
        const char* p = buf_.data() + (pos_ - buf_at_);
        pos_ += n;
        return p;
    }
    std::uint64_t uint(int bytes, std::string_view what) {
        const auto* p = reinterpret_cast<const unsigned char*>(take(std::uint64_t(bytes), what));
        std::uint64_t v = 0;
        for (int k = 0; k < bytes; ++k)
            v |= std::uint64_t(p[k]) << (8 * k);
        return v;
    }
    std::string string(std::uint64_t max_len, std::string_view what) {
        const std::uint64_t n = uint(8, what);
        GPTX_CHECK(n <= left(), f_.name(), ": truncated: ", what, " has length ", n,
                   " but the file has ", left(), " bytes after it");
        GPTX_CHECK(n <= max_len, f_.name(), ": ", what, " has length ", n, " (at most ", max_len,
                   " allowed)");
        const char* p = take(n, what);
        return {p, std::size_t(n)};
    }

  private:
    bounded_file& f_;
    std::uint64_t pos_ = 0, buf_at_ = 0;
    std::vector<char> buf_;
};

} // namespace detail

// A parsed, validated GGUF file: metadata in memory, tensors read on demand. Nothing read from
// the file is used as a count, a length or an offset before it is checked against the file size.
class gguf_file {
  public:
    static constexpr std::uint64_t max_name_bytes = 65535; // keys and tensor names

    explicit gguf_file(const std::filesystem::path& path) : f_(path, "GGUF file") {
        const std::string& name = f_.name();
        detail::gguf_cursor c(f_);
        GPTX_CHECK(f_.size() >= 24, name, ": truncated: ", f_.size(),
                   " bytes (a GGUF header is 24 bytes)");
        const auto magic = std::uint32_t(c.uint(4, "the magic"));
        GPTX_CHECK(magic == gguf_magic, name, ": not a GGUF file (it does not start with 'GGUF')");
        version_ = std::uint32_t(c.uint(4, "the version"));
        GPTX_CHECK(version_ == 2 || version_ == 3, name, ": GGUF version ", version_,
                   " is not supported (2 and 3 are)");
        const std::uint64_t n_tensors = c.uint(8, "the tensor count");
        const std::uint64_t n_kv = c.uint(8, "the key-value count");
        // A key-value takes at least 14 bytes (length, one byte of key, type, a u8) and a tensor
        // info at least 25, so larger counts cannot fit in the file.
        GPTX_CHECK(n_kv <= c.left() / 14, name, ": key-value count ", n_kv,
                   " cannot fit in the file's ", f_.size(), " bytes (truncated or corrupt)");
        GPTX_CHECK(n_tensors <= c.left() / 25, name, ": tensor count ", n_tensors,
                   " cannot fit in the file's ", f_.size(), " bytes (truncated or corrupt)");

        for (std::uint64_t k = 0; k < n_kv; ++k) {
            const std::string where = "key " + std::to_string(k);
            std::string key = c.string(max_name_bytes, where);
            GPTX_CHECK(!key.empty(), name, ": ", where, " is empty");
            const std::string kw = "key '" + printable(key) + "'";
            GPTX_CHECK(!metadata_.count(key), name, ": ", kw, " appears twice");
            gguf_value v;
            v.type = gguf_type(c.uint(4, kw));
            if (v.type == gguf_type::array) {
                v.elem = gguf_type(c.uint(4, kw));
                v.count = c.uint(8, kw);
                read_array(c, v, kw);
            } else {
                read_scalar(c, v, v.type, kw);
            }
            metadata_.emplace(std::move(key), std::move(v));
        }

        if (const gguf_value* a = find("general.alignment")) {
            GPTX_CHECK(a->type == gguf_type::u32, name, ": key 'general.alignment' is not a u32");
            alignment_ = a->u;
            GPTX_CHECK(alignment_ != 0 && (alignment_ & (alignment_ - 1)) == 0, name,
                       ": key 'general.alignment' is ", alignment_, ", not a power of two");
        }

        for (std::uint64_t k = 0; k < n_tensors; ++k) {
            gguf_tensor t;
            t.name = c.string(max_name_bytes, "the name of tensor " + std::to_string(k));
            const std::string tw = "tensor '" + printable(t.name) + "'";
            auto bad = [&](auto... why) { detail::fail(name, ": ", tw, ": ", why...); };
            if (find_tensor(t.name))
                bad("appears twice");
            const auto n_dims = std::uint32_t(c.uint(4, tw));
            if (n_dims > 4)
                bad(n_dims, " dimensions (ggml allows at most 4)");
            t.numel = 1;
            for (std::uint32_t d = 0; d < n_dims; ++d) {
                const std::uint64_t x = c.uint(8, tw);
                if (x > std::uint64_t(std::numeric_limits<std::int64_t>::max()) ||
                    (x != 0 &&
                     t.numel > std::uint64_t(std::numeric_limits<std::int64_t>::max()) / x))
                    bad("shape overflows");
                t.numel *= x;
                t.ne.push_back(x);
            }
            t.type = std::uint32_t(c.uint(4, tw));
            const auto [block, block_bytes] = detail::ggml_type_size(t.type);
            if (block == 0)
                bad("unknown ggml type ", t.type);
            const std::uint64_t row = t.ne.empty() ? 1 : t.ne[0];
            if (row % block != 0)
                bad("rows of ", row, " values are not whole ", detail::ggml_type_name(t.type),
                    " blocks of ", block);
            if (t.numel / block > std::numeric_limits<std::uint64_t>::max() / block_bytes)
                bad("size overflows");
            t.bytes = t.numel / block * block_bytes;
            t.offset = c.uint(8, tw);
            tensors_.push_back(std::move(t));
        }

        // The data section starts at the next multiple of the alignment.
        const std::uint64_t end = c.pos();
        const std::uint64_t pad = (alignment_ - end % alignment_) % alignment_;
        GPTX_CHECK(pad <= f_.size() - end || tensors_.empty(), name,
                   ": truncated: the data section would start at byte ", end + pad,
                   " but the file has ", f_.size());
        data_start_ = std::min(end + pad, f_.size());
        const std::uint64_t data_bytes = f_.size() - data_start_;
        for (const auto& t : tensors_) {
            const std::string tw = "tensor '" + printable(t.name) + "'";
            GPTX_CHECK(t.offset % alignment_ == 0, name, ": ", tw, ": offset ", t.offset,
                       " is not a multiple of the alignment ", alignment_, " (misaligned)");
            GPTX_CHECK(t.offset <= data_bytes && t.bytes <= data_bytes - t.offset, name, ": ", tw,
                       ": bytes [", t.offset, ", ", t.offset + t.bytes,
                       ") fall outside the data section of ", data_bytes,
                       " bytes (file truncated?)");
        }
        std::vector<const gguf_tensor*> by_offset;
        for (const auto& t : tensors_)
            by_offset.push_back(&t);
        std::sort(by_offset.begin(), by_offset.end(),
                  [](auto* a, auto* b) { return a->offset < b->offset; });
        for (std::size_t i = 1; i < by_offset.size(); ++i)
            GPTX_CHECK(by_offset[i]->offset >= by_offset[i - 1]->offset + by_offset[i - 1]->bytes,
                       name, ": tensors '", printable(by_offset[i - 1]->name), "' and '",
                       printable(by_offset[i]->name), "' overlap");
    }

    const std::string& name() const { return f_.name(); }
    std::uint32_t version() const { return version_; }
    std::uint64_t alignment() const { return alignment_; }
    std::uint64_t data_start() const { return data_start_; }
    const std::map<std::string, gguf_value>& metadata() const { return metadata_; }
    const std::vector<gguf_tensor>& tensors() const { return tensors_; }

    const gguf_value* find(std::string_view key) const {
        const auto it = metadata_.find(std::string(key));
        return it == metadata_.end() ? nullptr : &it->second;
    }
    const gguf_tensor* find_tensor(std::string_view n) const {
        for (const auto& t : tensors_)
            if (t.name == n)
                return &t;
        return nullptr;
    }

    // An integer scalar of any width and signedness, which must be in [0, max].
    std::uint64_t get_uint(std::string_view key, std::uint64_t max) const {
        const gguf_value& v = require(key);
        std::uint64_t x = 0;
        switch (v.type) {
        case gguf_type::u8:
        case gguf_type::u16:
        case gguf_type::u32:
        case gguf_type::u64:
            x = v.u;
            break;
        case gguf_type::i8:
        case gguf_type::i16:
        case gguf_type::i32:
        case gguf_type::i64:
            GPTX_CHECK(v.i >= 0, name(), ": key '", key, "' is negative (", v.i, ")");
            x = std::uint64_t(v.i);
            break;
        default:
            detail::fail(name(), ": key '", key, "' is not an integer");
        }
        GPTX_CHECK(x <= max, name(), ": key '", key, "' is ", x, " (at most ", max, " allowed)");
        return x;
    }
    double get_float(std::string_view key) const {
        const gguf_value& v = require(key);
        GPTX_CHECK(v.type == gguf_type::f32 || v.type == gguf_type::f64, name(), ": key '", key,
                   "' is not a float");
        return v.f;
    }
    const std::string& get_string(std::string_view key) const {
        const gguf_value& v = require(key);
        GPTX_CHECK(v.type == gguf_type::string, name(), ": key '", key, "' is not a string");
        return v.s;
    }
    const gguf_value& require(std::string_view key) const {
        const gguf_value* v = find(key);
        GPTX_CHECK(v, name(), ": key '", key, "' is missing");
        return *v;
    }

    // Reads tensor t (F32, F16, BF16 or Q8_0) as floats into dst, which holds t.numel values.
    void read(const gguf_tensor& t, float* dst) {
        const std::uint64_t at = data_start_ + t.offset;
        const std::string what = "tensor '" + t.name + "'";
        switch (t.type) {
        case std::uint32_t(ggml_type::f32):
            return f_.read_floats(at, dst, std::size_t(t.numel), "F32", what);
        case std::uint32_t(ggml_type::f16):
            return f_.read_floats(at, dst, std::size_t(t.numel), "F16", what);
        case std::uint32_t(ggml_type::bf16):
            return f_.read_floats(at, dst, std::size_t(t.numel), "BF16", what);
        case std::uint32_t(ggml_type::q8_0): {
            // block_q8_0: f16 scale d, then 32 int8 q; value = d * q.
            std::vector<unsigned char> raw(std::size_t(t.bytes));
            f_.read_at(at, raw.data(), raw.size(), what);
            for (std::uint64_t b = 0; b < t.numel / 32; ++b) {
                const unsigned char* p = raw.data() + b * 34;
                const float d = detail::f16_to_f32(std::uint16_t(p[0] | p[1] << 8));
                for (int k = 0; k < 32; ++k)
                    dst[b * 32 + std::uint64_t(k)] = d * float(static_cast<std::int8_t>(p[2 + k]));
            }
            return;
        }
        default:
            detail::fail(name(), ": ", what, " has type ", detail::ggml_type_name(t.type),
                         " (gptx reads F32, F16, BF16 and Q8_0)");
        }
    }

    // Text safe to print in a one-line error: control bytes as '?', at most 80 bytes.
    static std::string printable(std::string_view s) {
        std::string out(s.substr(0, 80));
        for (char& ch : out)
            if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
                ch = '?';
        return s.size() > 80 ? out + "..." : out;
    }

  private:
    void read_scalar(detail::gguf_cursor& c, gguf_value& v, gguf_type t, const std::string& kw) {
        switch (t) {
        case gguf_type::u8:
        case gguf_type::u16:
        case gguf_type::u32:
        case gguf_type::u64:
        case gguf_type::boolean:
            v.u = c.uint(int(detail::gguf_scalar_size(t)), kw);
            return;
        case gguf_type::i8:
        case gguf_type::i16:
        case gguf_type::i32:
        case gguf_type::i64: {
            const int bytes = int(detail::gguf_scalar_size(t));
            const std::uint64_t u = c.uint(bytes, kw);
            const int shift = 64 - 8 * bytes; // sign-extend
            v.i = static_cast<std::int64_t>(u << shift) >> shift;
            return;
        }
        case gguf_type::f32:
            v.f = std::bit_cast<float>(std::uint32_t(c.uint(4, kw)));
            return;
        case gguf_type::f64:
            v.f = std::bit_cast<double>(c.uint(8, kw));
            return;
        case gguf_type::string:
            v.s = c.string(c.left(), kw);
            return;
        default:
            detail::fail(f_.name(), ": ", kw, " has unknown value type ", std::uint32_t(t));
        }
    }
    void read_array(detail::gguf_cursor& c, gguf_value& v, const std::string& kw) {
        const gguf_type t = v.elem;
        GPTX_CHECK(t != gguf_type::array, f_.name(), ": ", kw,
                   " is an array of arrays (not supported)");
        const std::uint64_t es = t == gguf_type::string ? 8 : detail::gguf_scalar_size(t);
        GPTX_CHECK(es != 0, f_.name(), ": ", kw, " has unknown element type ", std::uint32_t(t));
        GPTX_CHECK(v.count <= c.left() / es, f_.name(), ": ", kw, ": array of ", v.count,
                   " elements cannot fit in the ", c.left(), " bytes left in the file");
        gguf_value e;
        for (std::uint64_t k = 0; k < v.count; ++k) {
            read_scalar(c, e, t, kw);
            if (t == gguf_type::string)
                v.strings.push_back(std::move(e.s));
            else if (t == gguf_type::f32 || t == gguf_type::f64)
                v.floats.push_back(e.f);
            else if (t == gguf_type::i8 || t == gguf_type::i16 || t == gguf_type::i32 ||
                     t == gguf_type::i64)
                v.ints.push_back(e.i);
            else
                v.ints.push_back(std::int64_t(e.u)); // u64 above 2^63 wraps; gptx reads none
        }
    }

    detail::bounded_file f_;
    std::uint32_t version_ = 0;
    std::uint64_t alignment_ = gguf_default_alignment, data_start_ = 0;
    std::map<std::string, gguf_value> metadata_;
    std::vector<gguf_tensor> tensors_;
};

namespace detail {

// IEEE half and bfloat16 from float, rounding to nearest even (as ggml's converters).
inline std::uint16_t f32_to_f16(float x) {
    const std::uint32_t b = std::bit_cast<std::uint32_t>(x);
    const std::uint32_t sign = (b >> 16) & 0x8000u;
    const std::uint32_t abs = b & 0x7FFFFFFFu;
    if (abs >= 0x7F800000u) // inf or NaN (keep NaN quiet)
        return std::uint16_t(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u));
    if (abs >= 0x477FF000u) // rounds to >= 65520: inf
        return std::uint16_t(sign | 0x7C00u);
    if (abs < 0x38800000u) { // below the smallest normal half: subnormal (or zero)
        const float f = std::bit_cast<float>(abs) * 16777216.0f; // * 2^24, exact
        return std::uint16_t(sign | std::uint32_t(std::nearbyint(f)));
    }
    const std::uint32_t mant_odd = (abs >> 13) & 1u;
    const std::uint32_t r = abs + 0xFFFu + mant_odd - (112u << 23);
    return std::uint16_t(sign | (r >> 13));
}
inline std::uint16_t f32_to_bf16(float x) {
    const std::uint32_t b = std::bit_cast<std::uint32_t>(x);
    if ((b & 0x7FFFFFFFu) > 0x7F800000u)
        return std::uint16_t((b >> 16) | 64u); // quiet NaN
    return std::uint16_t((b + (0x7FFFu + ((b >> 16) & 1u))) >> 16);
}

// The model a gpt2 GGUF describes, from its metadata and tensor shapes.
inline weights_info gguf_gpt2_info(const gguf_file& f) {
    const std::string& name = f.name();
    const std::string& arch = f.get_string("general.architecture");
    GPTX_CHECK(arch == "gpt2", name, ": general.architecture is '", gguf_file::printable(arch),
               "'; gptx reads the gpt2 architecture");
    constexpr std::uint64_t imax = std::uint64_t(std::numeric_limits<int>::max());
    const auto C = int(f.get_uint("gpt2.embedding_length", imax));
    const auto L = int(f.get_uint("gpt2.block_count", imax));
    const auto NH = int(f.get_uint("gpt2.attention.head_count", imax));
    const auto maxT = int(f.get_uint("gpt2.context_length", imax));
    const auto ff =
        f.get_uint("gpt2.feed_forward_length", std::numeric_limits<std::uint64_t>::max());
    GPTX_CHECK(C > 0 && L > 0 && NH > 0 && maxT > 0, name,
               ": embedding_length, block_count, head_count and context_length must be positive");
    GPTX_CHECK(C % NH == 0, name, ": embedding_length ", C, " is not divisible by head_count ", NH);
    GPTX_CHECK(ff == 4 * std::uint64_t(C), name, ": feed_forward_length is ", ff,
               "; GPT-2 (and gptx) use 4 x embedding_length = ", 4 * std::uint64_t(C));
    const double eps = f.get_float("gpt2.attention.layer_norm_epsilon");
    GPTX_CHECK(std::abs(eps - ops::layernorm_eps) <= 1e-3 * ops::layernorm_eps, name,
               ": gpt2.attention.layer_norm_epsilon is ", eps, "; gptx's LayerNorm uses ",
               ops::layernorm_eps);
    const gguf_tensor* wte = f.find_tensor("token_embd.weight");
    GPTX_CHECK(wte, name, ": tensor 'token_embd.weight' is missing");
    GPTX_CHECK(wte->ne.size() == 2 && wte->ne[0] == std::uint64_t(C) && wte->ne[1] > 0 &&
                   wte->ne[1] <= imax,
               name, ": tensor 'token_embd.weight' has shape ", wte->dims_text(), ", expected [", C,
               ", V]");
    weights_info info;
    info.format = "gguf";
    info.dims = {C, NH, L, norm::pre};
    info.config = {int(wte->ne[1]), maxT};
    info.padded_vocab = info.config.vocab;
    info.dtype = ggml_type_name(wte->type);
    return info;
}

} // namespace detail

// The GPT-2 in a gpt2-architecture GGUF file, from its metadata (validated against the file).
inline weights_info read_gguf_info(const std::filesystem::path& file) {
    gguf_file f(file);
    weights_info info = detail::gguf_gpt2_info(f);
    info.file_size = std::filesystem::file_size(file);
    return info;
}

// Loads a gpt2 GGUF into `model`, built with the file's config (read_gguf_info). Every tensor
// must be present with its exact shape; an untied `output.weight` must equal the embedding
// (gptx ties them). A failure leaves the model untouched.
template <shape S> void load_gguf(const std::filesystem::path& file, transformer<S, float>& model) {
    gguf_file f(file);
    const std::string& name = f.name();
    const weights_info info = detail::gguf_gpt2_info(f);
    detail::check_weights_shape<S>(name, info);
    detail::check_weights_config<S>(name, info, model.config());
    constexpr std::uint64_t C = std::uint64_t(S.width);
    const std::uint64_t V = std::uint64_t(info.config.vocab),
                        maxT = std::uint64_t(info.config.context);
    std::vector<float> staged(model.num_parameters());
    auto dst = [&](param_id i) { return staged.data() + (model.param(i) - model.params().data()); };
    auto fetch = [&](const std::string& tname, std::vector<std::uint64_t> ne, float* out) {
        const gguf_tensor* t = f.find_tensor(tname);
        gguf_tensor want;
        want.ne = ne;
        GPTX_CHECK(t, name, ": tensor '", tname, "' is missing (expected shape ", want.dims_text(),
                   ")");
        GPTX_CHECK(t->ne == ne, name, ": tensor '", tname, "' has shape ", t->dims_text(),
                   ", expected ", want.dims_text());
        f.read(*t, out);
    };
    fetch("token_embd.weight", {C, V}, dst(p_wte));
    fetch("position_embd.weight", {C, maxT}, dst(p_wpe));
    for (std::uint64_t l = 0; l < std::uint64_t(S.layers); ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        fetch(b + "attn_norm.weight", {C}, dst(p_ln1w) + l * C);
        fetch(b + "attn_norm.bias", {C}, dst(p_ln1b) + l * C);
        fetch(b + "attn_qkv.weight", {C, 3 * C}, dst(p_qkvw) + l * 3 * C * C);
        fetch(b + "attn_qkv.bias", {3 * C}, dst(p_qkvb) + l * 3 * C);
        fetch(b + "attn_output.weight", {C, C}, dst(p_attprojw) + l * C * C);
        fetch(b + "attn_output.bias", {C}, dst(p_attprojb) + l * C);
        fetch(b + "ffn_norm.weight", {C}, dst(p_ln2w) + l * C);
        fetch(b + "ffn_norm.bias", {C}, dst(p_ln2b) + l * C);
        fetch(b + "ffn_up.weight", {C, 4 * C}, dst(p_fcw) + l * 4 * C * C);
        fetch(b + "ffn_up.bias", {4 * C}, dst(p_fcb) + l * 4 * C);
        fetch(b + "ffn_down.weight", {4 * C, C}, dst(p_fcprojw) + l * C * 4 * C);
        fetch(b + "ffn_down.bias", {C}, dst(p_fcprojb) + l * C);
    }
    GPTX_CHECK(!f.find_tensor("blk." + std::to_string(S.layers) + ".attn_norm.weight"), name,
               ": more layers than gpt2.block_count ", S.layers);
    fetch("output_norm.weight", {C}, dst(p_lnfw));
    fetch("output_norm.bias", {C}, dst(p_lnfb));
    if (f.find_tensor("output.weight")) {
        std::vector<float> out(std::size_t(V * C));
        fetch("output.weight", {C, V}, out.data());
        GPTX_CHECK(std::equal(out.begin(), out.end(), dst(p_wte)), name,
                   ": tensor 'output.weight' differs from 'token_embd.weight'; gptx ties the "
                   "output layer to the token embedding");
    }
    std::copy(staged.begin(), staged.end(), model.params().data());
}

// The GPT-2 BPE tokenizer a GGUF holds (tokenizer.ggml.model "gpt2"), or nullopt when the file
// has no tokenizer. Normal tokens are GPT-2's byte-to-unicode text; control, user-defined and
// unused ones are literal text and become special tokens.
inline std::optional<tokenizer> read_gguf_tokenizer(const gguf_file& f) {
    const std::string& name = f.name();
    if (!f.find("tokenizer.ggml.model"))
        return std::nullopt;
    const std::string& model = f.get_string("tokenizer.ggml.model");
    GPTX_CHECK(model == "gpt2", name, ": tokenizer.ggml.model is '", gguf_file::printable(model),
               "'; gptx reads GPT-2's byte-level BPE ('gpt2')");
    if (const gguf_value* pre = f.find("tokenizer.ggml.pre")) {
        GPTX_CHECK(pre->type == gguf_type::string && (pre->s == "gpt-2" || pre->s == "default"),
                   name, ": tokenizer.ggml.pre is '", gguf_file::printable(pre->s),
                   "'; gptx splits text as GPT-2 does ('gpt-2')");
    }
    const gguf_value& toks = f.require("tokenizer.ggml.tokens");
    GPTX_CHECK(toks.type == gguf_type::array && toks.elem == gguf_type::string, name,
               ": key 'tokenizer.ggml.tokens' is not an array of strings");
    const std::size_t n = toks.strings.size();
    const gguf_value* types = f.find("tokenizer.ggml.token_type");
    GPTX_CHECK(!types || (types->type == gguf_type::array && types->ints.size() == n), name,
               ": key 'tokenizer.ggml.token_type' is not an array of ", n, " integers");
    std::size_t base = n; // gptx's base vocabulary; tokens after it are runtime specials
    if (f.find("gptx.tokenizer.base_vocab_size"))
        base = std::size_t(f.get_uint("gptx.tokenizer.base_vocab_size", n));
    std::vector<std::string> raw(base);
    std::unordered_map<std::string, int> index;
    index.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t type = types ? types->ints[i] : gguf_token_normal;
        std::string bytes;
        if (type == gguf_token_normal) {
            auto r = detail::gpt2_text_to_bytes(toks.strings[i]);
            GPTX_CHECK(r.has_value(), name, ": token ", i, " ('",
                       gguf_file::printable(toks.strings[i]),
                       "') has a character outside GPT-2's byte alphabet");
            bytes = std::move(*r);
        } else {
            bytes = toks.strings[i];
        }
        index.emplace(toks.strings[i], int(i));
        if (i < base)
            raw[i] = std::move(bytes);
    }
    std::vector<std::pair<int, int>> merges;
    if (const gguf_value* m = f.find("tokenizer.ggml.merges")) {
        GPTX_CHECK(m->type == gguf_type::array && m->elem == gguf_type::string, name,
                   ": key 'tokenizer.ggml.merges' is not an array of strings");
        merges.reserve(m->strings.size());
        for (std::size_t r = 0; r < m->strings.size(); ++r) {
            const std::string& s = m->strings[r];
            const std::size_t sp = s.find(' ', 1); // as llama.cpp splits them
            GPTX_CHECK(sp != std::string::npos, name, ": merge ", r, " ('", gguf_file::printable(s),
                       "') is not two tokens separated by a space");
            const auto a = index.find(s.substr(0, sp)), b = index.find(s.substr(sp + 1));
            GPTX_CHECK(a != index.end() && b != index.end(), name, ": merge ", r, " ('",
                       gguf_file::printable(s), "') names a token that is not in the vocabulary");
            merges.emplace_back(a->second, b->second);
        }
    }
    tokenizer tok = gpt2_tokenizer::from_vocab(std::move(raw), std::move(merges),
                                               name + ": tokenizer.ggml.tokens");
    for (std::size_t i = base; i < n; ++i) {
        const int id = tok.add_special_token(toks.strings[i]);
        GPTX_CHECK(std::size_t(id) == i, name, ": token ", i, " ('",
                   gguf_file::printable(toks.strings[i]), "') repeats token ", id);
    }
    return tok;
}
inline std::optional<tokenizer> read_gguf_tokenizer(const std::filesystem::path& file) {
    return read_gguf_tokenizer(gguf_file(file));
}

// The tensor types save_gguf writes for matrices; 1-D tensors (norms, biases) stay F32, as
// llama.cpp's converter keeps them.
enum class gguf_dtype { f32, f16, bf16 };

inline gguf_dtype parse_gguf_dtype(std::string_view s) {
    if (s == "f32")
        return gguf_dtype::f32;
    if (s == "f16")
        return gguf_dtype::f16;
    if (s == "bf16")
        return gguf_dtype::bf16;
    detail::fail("unknown dtype '", s, "' (choose f32, f16 or bf16)");
}

namespace detail {

// Metadata and tensor infos as GGUF bytes.
class gguf_builder {
  public:
    void u32(std::string_view key, std::uint32_t v) {
        kv(key, gguf_type::u32);
        put(v, 4);
    }
    void f32(std::string_view key, float v) {
        kv(key, gguf_type::f32);
        put(std::bit_cast<std::uint32_t>(v), 4);
    }
    void str(std::string_view key, std::string_view v) {
        kv(key, gguf_type::string);
        string(v);
    }
    void strings(std::string_view key, const std::vector<std::string>& v) {
        kv(key, gguf_type::array);
        put(std::uint32_t(gguf_type::string), 4);
        put(v.size(), 8);
        for (const auto& s : v)
            string(s);
    }
    void i32s(std::string_view key, const std::vector<std::int32_t>& v) {
        kv(key, gguf_type::array);
        put(std::uint32_t(gguf_type::i32), 4);
        put(v.size(), 8);
        for (auto x : v)
            put(std::uint32_t(x), 4);
    }
    std::string kvs_;
    std::uint64_t n_kv_ = 0;

  private:
    void kv(std::string_view key, gguf_type t) {
        string(key);
        put(std::uint32_t(t), 4);
        ++n_kv_;
    }
    void string(std::string_view s) {
        put(s.size(), 8);
        kvs_.append(s);
    }
    void put(std::uint64_t v, int bytes) {
        for (int k = 0; k < bytes; ++k)
            kvs_ += static_cast<char>((v >> (8 * k)) & 0xff);
    }
};

inline void gguf_put(std::string& out, std::uint64_t v, int bytes) {
    for (int k = 0; k < bytes; ++k)
        out += static_cast<char>((v >> (8 * k)) & 0xff);
}

// A gptx tokenizer as llama.cpp's gpt2 vocabulary; refuses kinds GGUF cannot express.
inline void gguf_put_tokenizer(gguf_builder& b, const tokenizer& tok, int model_vocab) {
    const gpt2_tokenizer* g = tok.get_if<gpt2_tokenizer>();
    GPTX_CHECK(g, "the model's tokenizer is '", tok.kind(),
               "': GGUF (llama.cpp) holds byte-level BPE vocabularies, and a ", tok.kind(),
               " tokenizer maps text to ids differently; export it with --format safetensors or "
               "llmc, or train with --tokenizer gpt2");
    GPTX_CHECK(model_vocab >= tok.vocab_size(), "the tokenizer has ", tok.vocab_size(),
               " tokens but the model only ", model_vocab, " embedding rows");
    std::vector<std::string> tokens;
    std::vector<std::int32_t> types;
    tokens.reserve(std::size_t(model_vocab));
    for (int id = 0; id < tok.vocab_size(); ++id) {
        const std::string_view bytes = g->token_bytes(id);
        if (g->special_token_id(bytes) == id) {
            tokens.emplace_back(bytes);
            types.push_back(gguf_token_control);
        } else {
            tokens.push_back(gpt2_bytes_to_text(bytes));
            types.push_back(gguf_token_normal);
        }
    }
    for (int id = tok.vocab_size(); id < model_vocab; ++id) { // rows no token uses
        tokens.push_back("[PAD" + std::to_string(id) + "]");
        types.push_back(gguf_token_unused);
    }
    std::vector<std::string> merges;
    merges.reserve(g->merges().size());
    for (const auto& [a, c] : g->merges())
        merges.push_back(gpt2_bytes_to_text(g->token_bytes(a)) + " " +
                         gpt2_bytes_to_text(g->token_bytes(c)));
    b.str("tokenizer.ggml.model", "gpt2");
    b.str("tokenizer.ggml.pre", "gpt-2");
    b.strings("tokenizer.ggml.tokens", tokens);
    b.i32s("tokenizer.ggml.token_type", types);
    b.strings("tokenizer.ggml.merges", merges);
    b.u32("gptx.tokenizer.base_vocab_size", std::uint32_t(g->base_vocab_size()));
    if (const int eot = g->eot_token(); eot >= 0) {
        b.u32("tokenizer.ggml.bos_token_id", std::uint32_t(eot));
        b.u32("tokenizer.ggml.eos_token_id", std::uint32_t(eot));
    }
}

} // namespace detail

// Writes `model` and its GPT-2 tokenizer as a gpt2-architecture GGUF v3 file that llama.cpp
// loads: matrices in `dtype`, 1-D tensors F32, the output layer tied (no `output.weight`).
// Atomic (temporary file, then rename). Refuses char and byte tokenizers.
template <shape S>
void save_gguf(const std::filesystem::path& file, const transformer<S, float>& model,
               const tokenizer& tok, gguf_dtype dtype = gguf_dtype::f32) {
    static_assert(S.placement == norm::pre && S.bias && S.gelu == gelu_kind::tanh,
                  "llama.cpp's gpt2 is pre-LN with biases and tanh GELU");
    constexpr std::uint64_t C = std::uint64_t(S.width);
    const std::uint64_t V = std::uint64_t(model.vocab()), maxT = std::uint64_t(model.context());
    detail::gguf_builder b;
    b.str("general.architecture", "gpt2");
    b.str("general.name", "gptx");
    b.u32("general.file_type", dtype == gguf_dtype::f32   ? gguf_file_all_f32
                               : dtype == gguf_dtype::f16 ? gguf_file_mostly_f16
                                                          : gguf_file_mostly_bf16);
    b.u32("gpt2.context_length", std::uint32_t(maxT));
    b.u32("gpt2.embedding_length", std::uint32_t(C));
    b.u32("gpt2.block_count", std::uint32_t(S.layers));
    b.u32("gpt2.feed_forward_length", std::uint32_t(4 * C));
    b.u32("gpt2.attention.head_count", std::uint32_t(S.heads));
    b.f32("gpt2.attention.layer_norm_epsilon", float(ops::layernorm_eps));
    detail::gguf_put_tokenizer(b, tok, model.vocab());

    struct item {
        std::string name;
        std::vector<std::uint64_t> ne;
        const float* src;
        ggml_type type;
        std::uint64_t numel, bytes, offset;
    };
    const ggml_type mat = dtype == gguf_dtype::f32   ? ggml_type::f32
                          : dtype == gguf_dtype::f16 ? ggml_type::f16
                                                     : ggml_type::bf16;
    std::vector<item> items;
    auto add = [&](std::string n, std::vector<std::uint64_t> ne, const float* src) {
        std::uint64_t numel = 1;
        for (auto d : ne)
            numel *= d;
        const ggml_type t = ne.size() == 1 ? ggml_type::f32 : mat;
        items.push_back(
            {std::move(n), ne, src, t, numel, numel * (t == ggml_type::f32 ? 4 : 2), 0});
    };
    add("token_embd.weight", {C, V}, model.param(p_wte));
    add("position_embd.weight", {C, maxT}, model.param(p_wpe));
    for (std::uint64_t l = 0; l < std::uint64_t(S.layers); ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        add(p + "attn_norm.weight", {C}, model.param(p_ln1w) + l * C);
        add(p + "attn_norm.bias", {C}, model.param(p_ln1b) + l * C);
        add(p + "attn_qkv.weight", {C, 3 * C}, model.param(p_qkvw) + l * 3 * C * C);
        add(p + "attn_qkv.bias", {3 * C}, model.param(p_qkvb) + l * 3 * C);
        add(p + "attn_output.weight", {C, C}, model.param(p_attprojw) + l * C * C);
        add(p + "attn_output.bias", {C}, model.param(p_attprojb) + l * C);
        add(p + "ffn_norm.weight", {C}, model.param(p_ln2w) + l * C);
        add(p + "ffn_norm.bias", {C}, model.param(p_ln2b) + l * C);
        add(p + "ffn_up.weight", {C, 4 * C}, model.param(p_fcw) + l * 4 * C * C);
        add(p + "ffn_up.bias", {4 * C}, model.param(p_fcb) + l * 4 * C);
        add(p + "ffn_down.weight", {4 * C, C}, model.param(p_fcprojw) + l * C * 4 * C);
        add(p + "ffn_down.bias", {C}, model.param(p_fcprojb) + l * C);
    }
    add("output_norm.weight", {C}, model.param(p_lnfw));
    add("output_norm.bias", {C}, model.param(p_lnfb));

    constexpr std::uint64_t align = gguf_default_alignment;
    auto padded = [&](std::uint64_t n) { return (n + align - 1) / align * align; };
    std::string head;
    detail::gguf_put(head, gguf_magic, 4);
    detail::gguf_put(head, gguf_version, 4);
    detail::gguf_put(head, items.size(), 8);
    detail::gguf_put(head, b.n_kv_, 8);
    head += b.kvs_;
    std::uint64_t at = 0;
    for (auto& it : items) {
        it.offset = at;
        at += padded(it.bytes);
        detail::gguf_put(head, it.name.size(), 8);
        head += it.name;
        detail::gguf_put(head, it.ne.size(), 4);
        for (auto d : it.ne)
            detail::gguf_put(head, d, 8);
        detail::gguf_put(head, std::uint32_t(it.type), 4);
        detail::gguf_put(head, it.offset, 8);
    }
    head.append(std::size_t(padded(head.size()) - head.size()), '\0');
    detail::write_atomically(file, [&](auto&& put) {
        put(head.data(), head.size());
        std::string buf;
        for (const auto& it : items) {
            buf.clear();
            for (std::uint64_t k = 0; k < it.numel; ++k) {
                const float x = it.src[k];
                if (it.type == ggml_type::f32)
                    detail::gguf_put(buf, std::bit_cast<std::uint32_t>(x), 4);
                else
                    detail::gguf_put(buf,
                                     it.type == ggml_type::f16 ? detail::f32_to_f16(x)
                                                               : detail::f32_to_bf16(x),
                                     2);
            }
            buf.append(std::size_t(padded(it.bytes) - it.bytes), '\0');
            put(buf.data(), buf.size());
        }
    });
}

} // namespace gptx
