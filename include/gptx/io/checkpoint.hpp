// gptx/io/checkpoint.hpp: the native checkpoint (weights, AdamW moments, tokenizer, run state) in
// one checksummed little-endian file, written atomically. Tested by tests/io/test_checkpoint.cpp.
#pragma once
#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(_WIN32)
#include <io.h>
#else
#include <fcntl.h>
#include <unistd.h>
#endif

#include "../core/error.hpp"
#include "../core/file.hpp"
#include "../core/rng.hpp"
#include "../core/shape.hpp"
#include "../nn/transformer.hpp"
#include "../text/tokenizer.hpp"
#include "../train/optimizer.hpp"

// File layout, version 1. Little-endian; offsets in bytes.
//   0    "GPTXCKPT" | u32 version | u32 flags (bit 0: AdamW m and v present; bit 1: extras)
//   16   i32 width, heads, layers | u32 shape flags (bit 0: post-LN; bit 1: no biases;
//        bit 2: erf GELU) | i32 vocab, context
//   40   u64 parameters N | i64 optimizer steps | i64 train step
//   64   u64 tokenizer blob bytes | u64 run_json bytes | char[32] tokenizer kind (NUL-padded)
//   112  u32 bytes per value (4: float32) | u32 X, extras bytes (0 without flag bit 1) |
//        u64 XXH64 of bytes [0, 120)
//   128  tokenizer blob | run_json | u64 data rng[4], dropout seed, dropout counter |
//        zeros up to a multiple of 64
//   P    params (N x f32) | m (N x f32) | v (N x f32)   (m and v only with flag bit 0)
//   E    extras, X bytes (only with flag bit 1): named arenas beside the trunk (a reward,
//        value or classifier head), each with optional AdamW state:
//          u32 count | u32 0 | count x (u32 name bytes | u32 flags (bit 0: m and v) |
//          u64 values n | u64 optimizer steps | name) | zeros up to a multiple of 4 |
//          for each in order: values (n x f32) | m (n x f32) | v (n x f32)
//   end  u64 XXH64 (seed 0) of every byte before it
// A checkpoint without extras is byte-for-byte what version 1 always wrote.
// The header has its own hash so read_checkpoint_info trusts it without reading the whole file.

namespace gptx {

inline constexpr std::string_view checkpoint_magic = "GPTXCKPT";
inline constexpr std::uint32_t checkpoint_version = 1;
inline constexpr std::size_t checkpoint_header_bytes = 128;

// What a training run needs besides weights and optimizer to resume bit-exactly.
struct train_state {
    std::int64_t step = 0;      // optimizer steps taken by the run
    rng::state_type data_rng{}; // the batcher's generator; for nanogpt_batches its state, then 0
    // The model's dropout_seed() / dropout_counter(); load_checkpoint also sets them on the model.
    std::uint64_t dropout_seed = 0, dropout_counter = 0;
    std::string run_json; // the run's hyper-parameters; opaque to the checkpoint
};

// A named arena saved beside the trunk (e.g. reward_model's "reward_head"), with its optimizer.
// save_checkpoint reads through the pointers; load_checkpoint fills them.
struct checkpoint_extra {
    std::string name;                     // unique in a file, 1..255 bytes
    basic_arena<float>* params = nullptr; // required
    adamw<float>* opt = nullptr;          // its AdamW (m, v, step count); null: none
};

// An extra section as the file lists it.
struct checkpoint_extra_info {
    std::string name;
    std::size_t size = 0; // values
    bool has_optimizer = false;
    int optimizer_steps = 0;
};

// The header of a checkpoint, read without loading it: enough to pick the preset to build.
struct checkpoint_info {
    int version = 0;
    shape dims{};
    model_config config{};
    std::size_t num_parameters = 0;
    bool has_optimizer = false;
    int optimizer_steps = 0; // adamw::step_count() at save time
    std::int64_t step = 0;   // train_state::step
    std::string tokenizer_kind;
    std::string run_json;
    std::uint64_t file_size = 0;
    std::vector<checkpoint_extra_info> extras; // named arenas beside the trunk
};

namespace detail {

// XXH64 (Collet), streaming: ~10 GB/s, so hashing never dominates a save; and a standard
// hash, so other tools can verify a checkpoint.
class xxh64 {
  public:
    explicit xxh64(std::uint64_t seed = 0)
        : v_{seed + p1 + p2, seed + p2, seed, seed - p1}, seed_(seed) {}

    void update(const void* data, std::size_t n) {
        const auto* p = static_cast<const unsigned char*>(data);
        total_ += n;
        if (buffered_ + n < 32) {
            if (n)
                std::memcpy(buf_ + buffered_, p, n);
            buffered_ += n;
            return;
        }
        if (buffered_) {
            const std::size_t k = 32 - buffered_;
            std::memcpy(buf_ + buffered_, p, k);
            stripe(buf_);
            p += k;
            n -= k;
            buffered_ = 0;
        }
        // Locals, so the four independent lanes stay in registers.
        std::uint64_t a = v_[0], b = v_[1], c = v_[2], d = v_[3];
        for (; n >= 32; p += 32, n -= 32) {
            a = round(a, read64(p));
            b = round(b, read64(p + 8));
            c = round(c, read64(p + 16));
            d = round(d, read64(p + 24));
        }
        v_[0] = a, v_[1] = b, v_[2] = c, v_[3] = d;
        if (n)
            std::memcpy(buf_, p, n);
        buffered_ = n;
    }

    std::uint64_t digest() const {
        std::uint64_t h;
        if (total_ >= 32) {
            h = std::rotl(v_[0], 1) + std::rotl(v_[1], 7) + std::rotl(v_[2], 12) +
                std::rotl(v_[3], 18);
            for (std::uint64_t v : v_)
                h = (h ^ round(0, v)) * p1 + p4;
        } else {
            h = seed_ + p5;
        }
        h += total_;
        const unsigned char* p = buf_;
        std::size_t n = buffered_;
        for (; n >= 8; p += 8, n -= 8)
            h = std::rotl(h ^ round(0, read64(p)), 27) * p1 + p4;
        if (n >= 4) {
            h = std::rotl(h ^ (read32(p) * p1), 23) * p2 + p3;
            p += 4;
            n -= 4;
        }
        for (; n > 0; ++p, --n)
            h = std::rotl(h ^ (*p * p5), 11) * p1;
        h = (h ^ (h >> 33)) * p2;
        h = (h ^ (h >> 29)) * p3;
        return h ^ (h >> 32);
    }

  private:
    static constexpr std::uint64_t p1 = 11400714785074694791ull, p2 = 14029467366897019727ull,
                                   p3 = 1609587929392839161ull, p4 = 9650029242287828579ull,
                                   p5 = 2870177450012600261ull;
    static std::uint64_t round(std::uint64_t acc, std::uint64_t in) {
        return std::rotl(acc + in * p2, 31) * p1;
    }
    // memcpy compiles to one load; the file is little-endian whatever the host.
    static std::uint64_t read64(const unsigned char* p) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        if constexpr (std::endian::native == std::endian::big)
            v = swap64(v);
        return v;
    }
    static std::uint64_t read32(const unsigned char* p) {
        std::uint32_t v;
        std::memcpy(&v, p, 4);
        if constexpr (std::endian::native == std::endian::big)
            v = std::uint32_t(swap64(v) >> 32);
        return v;
    }
    static std::uint64_t swap64(std::uint64_t v) {
        std::uint64_t r = 0;
        for (int i = 0; i < 8; ++i)
            r |= ((v >> (8 * i)) & 0xff) << (8 * (7 - i));
        return r;
    }
    void stripe(const unsigned char* p) {
        for (int i = 0; i < 4; ++i)
            v_[i] = round(v_[i], read64(p + 8 * i));
    }

    std::uint64_t v_[4];
    std::uint64_t seed_;
    std::uint64_t total_ = 0;
    unsigned char buf_[32] = {};
    std::size_t buffered_ = 0;
};

inline std::uint64_t xxh64_of(std::string_view s) {
    xxh64 h;
    h.update(s.data(), s.size());
    return h.digest();
}

inline void ckpt_put(std::string& out, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
        out += static_cast<char>((v >> (8 * i)) & 0xff);
}
inline std::uint64_t ckpt_get(std::string_view s, std::size_t at, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
        v |= std::uint64_t(static_cast<unsigned char>(s[at + i])) << (8 * i);
    return v;
}

// The parameter count transformer<S>::param_entries() lays out, from runtime values (the shape
// comes from a file here); nullopt if it overflows 64 bits (a nonsense header).
// total += a * b; false (and total unchanged) if that overflows 64 bits.
inline bool ckpt_add_product(std::uint64_t& total, std::uint64_t a, std::uint64_t b) {
    constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    if ((a != 0 && b > max / a) || a * b > max - total)
        return false;
    total += a * b;
    return true;
}

// The parameter count transformer<S>::param_entries() lays out, from runtime values (the shape
// comes from a file here); nullopt if it overflows 64 bits (a nonsense header).
inline std::optional<std::uint64_t> checkpoint_parameter_count(const shape& s,
                                                               const model_config& cfg) {
    const std::uint64_t c = std::uint64_t(s.width), l = std::uint64_t(s.layers);
    std::uint64_t total = 0;
    const bool ok =
        ckpt_add_product(total, std::uint64_t(cfg.vocab), c) &&   // wte
        ckpt_add_product(total, std::uint64_t(cfg.context), c) && // wpe
        ckpt_add_product(total, 12 * l, c * c) &&                 // qkvw, attprojw, fcw, fcprojw
        ckpt_add_product(total, (s.bias ? 13 : 2) * l, c) &&      // ln1, ln2 (+ biases)
        (s.placement == norm::post || ckpt_add_product(total, s.bias ? 2 : 1, c)); // lnf
    if (!ok)
        return std::nullopt;
    return total;
}

// False only for a real failure (e.g. EIO): a filesystem without fsync is not one.
inline bool ckpt_fsync(std::FILE* f) {
#if defined(_WIN32)
    return _commit(_fileno(f)) == 0;
#else
    return ::fsync(fileno(f)) == 0 || errno == EINVAL || errno == ENOTSUP;
#endif
}
// After a rename, the folder entry itself must reach the disk for the new file to survive a
// power cut. Best effort: some filesystems refuse to sync a folder.
inline void ckpt_fsync_dir(const std::filesystem::path& dir) {
#if !defined(_WIN32)
    const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)::fsync(fd);
        ::close(fd);
    }
#else
    (void)dir;
#endif
}

struct file_closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};
using file_ptr = std::unique_ptr<std::FILE, file_closer>;

// Values are stored little-endian; on a big-endian host they are swapped in place around I/O.
inline void ckpt_swap_floats(float* p, std::size_t n) {
    if constexpr (std::endian::native == std::endian::big) {
        for (std::size_t i = 0; i < n; ++i) {
            std::uint32_t u;
            std::memcpy(&u, p + i, 4);
            u = (u >> 24) | ((u >> 8) & 0xff00u) | ((u << 8) & 0xff0000u) | (u << 24);
            std::memcpy(p + i, &u, 4);
        }
    } else {
        (void)p, (void)n;
    }
}

inline constexpr std::size_t ckpt_chunk_bytes = std::size_t(1) << 20;
inline constexpr std::size_t ckpt_state_bytes = 6 * 8;

// Writes through a hash; every failure names the file.
class ckpt_writer {
  public:
    explicit ckpt_writer(const std::filesystem::path& p) : name_(p.string()) {
        f_.reset(std::fopen(name_.c_str(), "wb"));
        GPTX_CHECK(f_, "cannot open '", name_, "' for writing: ", std::strerror(errno));
    }
    void write(const void* p, std::size_t n) {
        hash_.update(p, n);
        raw(p, n);
    }
    // In 1 MiB chunks, so the bytes the hash just read are still in cache for fwrite.
    void write_floats(const float* p, std::size_t n) {
        constexpr std::size_t per = ckpt_chunk_bytes / sizeof(float);
        std::vector<float> swapped;
        if constexpr (std::endian::native == std::endian::big)
            swapped.resize(per);
        for (std::size_t i = 0; i < n; i += per) {
            const std::size_t k = std::min(per, n - i);
            const float* src = p + i;
            if constexpr (std::endian::native == std::endian::big) {
                std::memcpy(swapped.data(), src, k * sizeof(float));
                ckpt_swap_floats(swapped.data(), k);
                src = swapped.data();
            }
            write(src, k * sizeof(float));
        }
    }
    // The trailing hash, then flush, fsync and close: the file is complete on disk on return.
    void finish() {
        std::string tail;
        ckpt_put(tail, hash_.digest(), 8);
        raw(tail.data(), tail.size());
        GPTX_CHECK(std::fflush(f_.get()) == 0, "cannot write '", name_,
                   "': ", std::strerror(errno));
        GPTX_CHECK(ckpt_fsync(f_.get()), "cannot write '", name_, "': ", std::strerror(errno));
        std::FILE* f = f_.release();
        GPTX_CHECK(std::fclose(f) == 0, "cannot write '", name_, "': ", std::strerror(errno));
    }

  private:
    void raw(const void* p, std::size_t n) {
        if (n != 0 && std::fwrite(p, 1, n, f_.get()) != n)
            fail("cannot write '", name_, "': ", std::strerror(errno));
    }
    std::string name_;
    file_ptr f_;
    xxh64 hash_;
};

// A parsed, validated header plus where each section starts.
struct checkpoint_layout {
    checkpoint_info info;
    std::uint64_t tokenizer_bytes = 0, run_json_bytes = 0;
    std::uint64_t params_offset = 0;                   // P in the layout above
    std::uint64_t extras_offset = 0, extras_bytes = 0; // E and X
    std::uint64_t total_bytes = 0;                     // the file size the header implies
};

// Where the parameters start: after the header, tokenizer, run_json and state, 64-aligned.
inline std::uint64_t ckpt_prefix_bytes(std::uint64_t tok, std::uint64_t json) {
    const std::uint64_t end = checkpoint_header_bytes + tok + json + ckpt_state_bytes;
    return (end + 63) / 64 * 64;
}

inline std::string ckpt_shape_text(const shape& s) { return to_string(s); }

// An open checkpoint with its header checked against the file size: nothing read from the file
// is used as a size before this.
class ckpt_reader {
  public:
    explicit ckpt_reader(const std::filesystem::path& p) : name_(p.string()) {
        std::error_code ec;
        const auto st = std::filesystem::status(p, ec);
        GPTX_CHECK(std::filesystem::exists(st), "cannot open checkpoint '", name_,
                   "': no such file");
        GPTX_CHECK(!std::filesystem::is_directory(st), "cannot open checkpoint '", name_,
                   "': it is a directory");
        f_.reset(std::fopen(name_.c_str(), "rb"));
        GPTX_CHECK(f_, "cannot open checkpoint '", name_, "': ", std::strerror(errno));
        const auto size = std::filesystem::file_size(p, ec);
        GPTX_CHECK(!ec, "cannot open checkpoint '", name_, "': ", ec.message());
        size_ = size;
        parse_header();
    }

    const std::string& name() const { return name_; }
    const checkpoint_layout& layout() const { return lay_; }
    std::FILE* file() { return f_.get(); }

    void read(void* p, std::size_t n, std::string_view what) {
        if (n != 0 && std::fread(p, 1, n, f_.get()) != n)
            fail(name_, ": I/O error reading ", what,
                 std::ferror(f_.get()) ? "" : " (file shrank)");
    }
    void seek(std::uint64_t offset) {
        GPTX_CHECK(offset <= std::uint64_t(LONG_MAX) &&
                       std::fseek(f_.get(), long(offset), SEEK_SET) == 0,
                   name_, ": cannot seek to byte ", offset);
    }
    std::string read_string(std::uint64_t n, std::string_view what) {
        std::string s(n, '\0');
        read(s.data(), s.size(), what);
        return s;
    }

  private:
    void parse_header() {
        constexpr std::size_t hb = checkpoint_header_bytes;
        const std::size_t have = std::size_t(std::min<std::uint64_t>(size_, hb));
        std::string h(have, '\0');
        read(h.data(), have, "the header");
        const std::size_t m = std::min(have, checkpoint_magic.size());
        GPTX_CHECK(h.substr(0, m) == checkpoint_magic.substr(0, m), name_,
                   ": not a gptx checkpoint (bad magic; expected \"", checkpoint_magic, "\")");
        GPTX_CHECK(have == hb, name_, ": truncated: expected at least ", hb,
                   " bytes (the header), file has ", size_);
        checkpoint_info& info = lay_.info;
        const std::uint64_t version = ckpt_get(h, 8, 4);
        GPTX_CHECK(version == checkpoint_version, name_, ": checkpoint version ", version,
                   " is not supported (this build reads version ", checkpoint_version, ")");
        GPTX_CHECK(ckpt_get(h, 120, 8) == xxh64_of(std::string_view(h).substr(0, 120)), name_,
                   ": checksum mismatch in the header (file is corrupt)");
        // Below, the header is what a writer wrote; checks catch writers with bugs.
        auto i32 = [&](std::size_t at) {
            return int(std::int32_t(std::uint32_t(ckpt_get(h, at, 4))));
        };
        const std::uint64_t flags = ckpt_get(h, 12, 4);
        const std::uint64_t placement = ckpt_get(h, 28, 4);
        info.version = int(version);
        // Bit 0: post-LN; bit 1: no biases; bit 2: erf GELU.
        info.dims = {i32(16),
                     i32(20),
                     i32(24),
                     (placement & 1) ? norm::post : norm::pre,
                     (placement & 2) == 0,
                     (placement & 4) ? gelu_kind::erf : gelu_kind::tanh};
        info.config = {i32(32), i32(36)};
        const std::uint64_t n = ckpt_get(h, 40, 8);
        const auto opt_steps = std::int64_t(ckpt_get(h, 48, 8));
        info.step = std::int64_t(ckpt_get(h, 56, 8));
        lay_.tokenizer_bytes = ckpt_get(h, 64, 8);
        lay_.run_json_bytes = ckpt_get(h, 72, 8);
        const std::string_view kind(h.data() + 80, 32);
        const std::uint64_t value_bytes = ckpt_get(h, 112, 4);
        lay_.extras_bytes = ckpt_get(h, 116, 4);
        info.has_optimizer = (flags & 1) != 0;
        info.file_size = size_;

        auto corrupt = [&](auto... why) { fail(name_, ": corrupt header: ", why...); };
        if (flags > 3)
            corrupt("unknown flags ", flags);
        if ((flags & 2) == 0 && lay_.extras_bytes != 0)
            corrupt(lay_.extras_bytes, " bytes of extras without the extras flag");
        if ((flags & 2) != 0 && lay_.extras_bytes < 8)
            corrupt("extras section of ", lay_.extras_bytes, " bytes");
        if (placement > 7)
            corrupt("shape flags ", placement);
        if (!info.dims.valid())
            corrupt("invalid shape ", info.dims.width, "/", info.dims.heads, "/", info.dims.layers);
        if (info.config.vocab <= 0 || info.config.context <= 0)
            corrupt("vocab ", info.config.vocab, ", context ", info.config.context);
        if (value_bytes != sizeof(float))
            corrupt(value_bytes, " bytes per value (expected 4)");
        if (opt_steps < 0 || opt_steps > INT_MAX)
            corrupt("optimizer step count ", opt_steps);
        info.optimizer_steps = int(opt_steps);
        const auto kind_end = kind.find('\0');
        if (kind_end == std::string_view::npos || kind_end == 0)
            corrupt("bad tokenizer kind");
        info.tokenizer_kind = std::string(kind.substr(0, kind_end));
        const auto expected_n = checkpoint_parameter_count(info.dims, info.config);
        if (!expected_n || *expected_n != n)
            corrupt(n, " parameters, but shape ", ckpt_shape_text(info.dims), " with vocab ",
                    info.config.vocab, " and context ", info.config.context, " has ",
                    expected_n ? std::to_string(*expected_n) : std::string("too many"));
        if (n > std::numeric_limits<std::size_t>::max() / sizeof(float) / 3)
            corrupt(n, " parameters do not fit this machine's memory");
        info.num_parameters = std::size_t(n);

        // Checked sums: no size from the file is used before the total is compared with the file.
        const std::uint64_t arenas = info.has_optimizer ? 3 : 1;
        std::uint64_t end = 0;
        if (!ckpt_add_product(end, 1, checkpoint_header_bytes + ckpt_state_bytes + 63) ||
            !ckpt_add_product(end, 1, lay_.tokenizer_bytes) ||
            !ckpt_add_product(end, 1, lay_.run_json_bytes))
            corrupt("section sizes overflow");
        lay_.params_offset = end / 64 * 64;
        lay_.total_bytes = lay_.params_offset;
        if (!ckpt_add_product(lay_.total_bytes, n, sizeof(float) * arenas))
            corrupt("section sizes overflow");
        lay_.extras_offset = lay_.total_bytes;
        if (!ckpt_add_product(lay_.total_bytes, 1, lay_.extras_bytes) ||
            !ckpt_add_product(lay_.total_bytes, 1, 8))
            corrupt("section sizes overflow");
        GPTX_CHECK(lay_.total_bytes <= size_, name_, ": truncated: expected ", lay_.total_bytes,
                   " bytes, file has ", size_);
        GPTX_CHECK(lay_.total_bytes == size_, name_,
                   ": unexpected data after the checkpoint: expected ", lay_.total_bytes,
                   " bytes, file has ", size_);
    }

    std::string name_;
    file_ptr f_;
    std::uint64_t size_ = 0;
    checkpoint_layout lay_;
};

// An extra section listed in the file, and where its values start.
struct ckpt_extra_entry {
    checkpoint_extra_info info;
    std::uint64_t data_offset = 0;
};

inline constexpr std::size_t ckpt_extra_entry_bytes = 24; // before the name

// Reads and checks the extras directory against the section size the header gives.
inline std::vector<ckpt_extra_entry> ckpt_read_extras(ckpt_reader& r) {
    const auto& lay = r.layout();
    std::vector<ckpt_extra_entry> out;
    if (lay.extras_bytes == 0)
        return out;
    const std::uint64_t X = lay.extras_bytes;
    auto corrupt = [&](auto... why) { fail(r.name(), ": corrupt extras section: ", why...); };
    r.seek(lay.extras_offset);
    const std::string top = r.read_string(8, "the extras section");
    const std::uint64_t count = ckpt_get(top, 0, 4);
    if (count > (X - 8) / ckpt_extra_entry_bytes)
        corrupt(count, " sections do not fit in ", X, " bytes");
    std::uint64_t at = 8;
    for (std::uint64_t i = 0; i < count; ++i) {
        if (at + ckpt_extra_entry_bytes > X)
            corrupt("the directory runs past the section");
        const std::string e = r.read_string(ckpt_extra_entry_bytes, "the extras section");
        const std::uint64_t name_bytes = ckpt_get(e, 0, 4), flags = ckpt_get(e, 4, 4);
        const std::uint64_t n = ckpt_get(e, 8, 8), steps = ckpt_get(e, 16, 8);
        at += ckpt_extra_entry_bytes;
        if (name_bytes == 0 || name_bytes > 255 || at + name_bytes > X)
            corrupt("section ", i, " has a name of ", name_bytes, " bytes");
        if (flags > 1)
            corrupt("section ", i, " has unknown flags ", flags);
        if (steps > INT_MAX)
            corrupt("section ", i, " has optimizer step count ", steps);
        ckpt_extra_entry x;
        x.info.name = r.read_string(name_bytes, "the extras section");
        at += name_bytes;
        for (const auto& y : out)
            if (y.info.name == x.info.name)
                corrupt("section '", x.info.name, "' appears twice");
        if (n > X)
            corrupt("section '", x.info.name, "' has ", n, " values");
        x.info.size = std::size_t(n);
        x.info.has_optimizer = (flags & 1) != 0;
        x.info.optimizer_steps = int(steps);
        out.push_back(std::move(x));
    }
    std::uint64_t data = (at + 3) / 4 * 4;
    for (auto& x : out) {
        x.data_offset = lay.extras_offset + data;
        data += std::uint64_t(x.info.size) * sizeof(float) * (x.info.has_optimizer ? 3 : 1);
        if (data > X)
            corrupt("the values run past the section");
    }
    if (data != X)
        corrupt("the sections hold ", data, " bytes, the header says ", X);
    return out;
}

} // namespace detail

// Reads and validates the header (and the small run_json and extras directory), not the weights.
inline checkpoint_info read_checkpoint_info(const std::filesystem::path& file) {
    detail::ckpt_reader r(file);
    const auto& lay = r.layout();
    r.seek(checkpoint_header_bytes + lay.tokenizer_bytes);
    checkpoint_info info = lay.info;
    info.run_json = r.read_string(lay.run_json_bytes, "run_json");
    for (auto& x : detail::ckpt_read_extras(r))
        info.extras.push_back(std::move(x.info));
    return info;
}

// Calls f.template operator()<S>() with the preset whose shape is the file's; false if none.
template <class F> bool with_checkpoint_preset(const checkpoint_info& info, F&& f) {
    bool found = false;
    auto try_one = [&]<std::size_t I>() {
        if (!found && preset_table[I].dims == info.dims) {
            found = true;
            f.template operator()<preset_table[I].dims>();
        }
    };
    [&]<std::size_t... I>(std::index_sequence<I...>) { (try_one.template operator()<I>(), ...); }
    (std::make_index_sequence<preset_table.size()>{});
    return found;
}

// Writes `file` atomically: everything goes to file + ".tmp", which is fsynced and then renamed
// over `file`, so a crash at any moment leaves either the old checkpoint or the new one.
// opt may be null (weights only). The dropout fields of st are written as given. extras are
// named arenas saved beside the trunk (heads), each with its optimizer when opt is set.
template <shape S>
void save_checkpoint(const std::filesystem::path& file, const transformer<S, float>& model,
                     const adamw<float>* opt, const tokenizer& tok, const train_state& st,
                     std::span<const checkpoint_extra> extras = {}) {
    const std::string name = file.string();
    const std::size_t n = model.num_parameters();
    // Validate before creating a file, so a failure leaves nothing behind.
    if (opt)
        GPTX_CHECK(opt->m().size() == n && opt->v().size() == n, name,
                   ": the optimizer holds state for ", opt->m().size(),
                   " parameters, the model has ", n);
    const std::string_view kind = tok.kind();
    GPTX_CHECK(!kind.empty() && kind.size() < 32, name, ": tokenizer kind '", kind,
               "' does not fit the header (at most 31 characters)");
    GPTX_CHECK(tok.vocab_size() <= model.vocab(), name, ": the tokenizer has ", tok.vocab_size(),
               " tokens but the model's vocabulary is ", model.vocab());
    const std::string blob = tok.serialize();
    std::string extras_dir;
    std::uint64_t extras_bytes = 0;
    if (!extras.empty()) {
        detail::ckpt_put(extras_dir, extras.size(), 4);
        detail::ckpt_put(extras_dir, 0, 4);
        std::uint64_t values = 0;
        for (std::size_t i = 0; i < extras.size(); ++i) {
            const checkpoint_extra& e = extras[i];
            GPTX_CHECK(!e.name.empty() && e.name.size() <= 255, name, ": extra section name '",
                       e.name, "' must have 1 to 255 bytes");
            for (std::size_t k = 0; k < i; ++k)
                GPTX_CHECK(extras[k].name != e.name, name, ": extra section '", e.name,
                           "' is given twice");
            GPTX_CHECK(e.params, name, ": extra section '", e.name, "' has no parameters");
            const std::size_t en = e.params->size();
            if (e.opt)
                GPTX_CHECK(e.opt->m().size() == en && e.opt->v().size() == en, name,
                           ": the optimizer of '", e.name, "' holds state for ", e.opt->m().size(),
                           " values, the section has ", en);
            detail::ckpt_put(extras_dir, e.name.size(), 4);
            detail::ckpt_put(extras_dir, e.opt ? 1 : 0, 4);
            detail::ckpt_put(extras_dir, en, 8);
            detail::ckpt_put(extras_dir, std::uint64_t(e.opt ? e.opt->step_count() : 0), 8);
            extras_dir += e.name;
            values += std::uint64_t(en) * (e.opt ? 3 : 1);
        }
        extras_dir.resize((extras_dir.size() + 3) / 4 * 4, '\0');
        extras_bytes = extras_dir.size() + values * sizeof(float);
        GPTX_CHECK(extras_bytes <= 0xffffffffu, name, ": extra sections of ", extras_bytes,
                   " bytes exceed the format's 4 GiB");
    }

    std::string head;
    head.reserve(checkpoint_header_bytes);
    head += checkpoint_magic;
    detail::ckpt_put(head, checkpoint_version, 4);
    detail::ckpt_put(head, (opt ? 1 : 0) | (extras.empty() ? 0 : 2), 4);
    detail::ckpt_put(head, std::uint32_t(S.width), 4);
    detail::ckpt_put(head, std::uint32_t(S.heads), 4);
    detail::ckpt_put(head, std::uint32_t(S.layers), 4);
    detail::ckpt_put(head,
                     static_cast<std::uint32_t>(S.placement) | (S.bias ? 0u : 2u) |
                         (S.gelu == gelu_kind::erf ? 4u : 0u),
                     4);
    detail::ckpt_put(head, std::uint32_t(model.vocab()), 4);
    detail::ckpt_put(head, std::uint32_t(model.context()), 4);
    detail::ckpt_put(head, n, 8);
    detail::ckpt_put(head, std::uint64_t(std::int64_t(opt ? opt->step_count() : 0)), 8);
    detail::ckpt_put(head, std::uint64_t(st.step), 8);
    detail::ckpt_put(head, blob.size(), 8);
    detail::ckpt_put(head, st.run_json.size(), 8);
    head += kind;
    head.append(32 - kind.size(), '\0');
    detail::ckpt_put(head, sizeof(float), 4);
    detail::ckpt_put(head, extras_bytes, 4);
    detail::ckpt_put(head, detail::xxh64_of(head), 8);

    std::string prefix = std::move(head);
    prefix += blob;
    prefix += st.run_json;
    for (std::uint64_t w : st.data_rng)
        detail::ckpt_put(prefix, w, 8);
    detail::ckpt_put(prefix, st.dropout_seed, 8);
    detail::ckpt_put(prefix, st.dropout_counter, 8);
    prefix.resize(detail::ckpt_prefix_bytes(blob.size(), st.run_json.size()), '\0');

    const std::filesystem::path tmp = detail::atomic_temp_for(file);
    try {
        {
            detail::ckpt_writer w(tmp);
            w.write(prefix.data(), prefix.size());
            w.write_floats(model.params().data(), n);
            if (opt) {
                w.write_floats(opt->m().data(), n);
                w.write_floats(opt->v().data(), n);
            }
            w.write(extras_dir.data(), extras_dir.size());
            for (const checkpoint_extra& e : extras) {
                w.write_floats(e.params->data(), e.params->size());
                if (e.opt) {
                    w.write_floats(e.opt->m().data(), e.params->size());
                    w.write_floats(e.opt->v().data(), e.params->size());
                }
            }
            w.finish();
        }
        std::error_code ec;
        std::filesystem::rename(tmp, file, ec);
        GPTX_CHECK(!ec, "cannot rename '", tmp.string(), "' to '", name, "': ", ec.message());
        detail::ckpt_fsync_dir(file.parent_path());
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove(tmp, ec);
        throw;
    }
}

// Loads a checkpoint into model (and opt, tok, st when not null). Everything is validated,
// the checksum included, before anything is modified: a bad file leaves them as they were.
// opt null skips the moments; a non-null opt needs a file saved with an optimizer. Each of
// extras must be in the file with its size (and its optimizer state when e.opt is set); sections
// of the file not asked for are skipped, so a reward model's file loads as a plain trunk.
template <shape S>
void load_checkpoint(const std::filesystem::path& file, transformer<S, float>& model,
                     adamw<float>* opt, tokenizer* tok, train_state* st,
                     std::span<const checkpoint_extra> extras = {}) {
    detail::ckpt_reader r(file);
    const std::string& name = r.name();
    const auto& lay = r.layout();
    const checkpoint_info& info = lay.info;
    if (info.dims != S) {
        const shape& d = info.dims;
        detail::fail(name, ": shape mismatch: file has width ", d.width, ", heads ", d.heads,
                     ", layers ", d.layers, " (", to_string(d), "); this model is ", to_string(S));
    }
    const model_config& mc = model.config();
    GPTX_CHECK(info.config.vocab == mc.vocab && info.config.context == mc.context, name,
               ": config mismatch: file has vocab ", info.config.vocab, ", context ",
               info.config.context, "; this model has vocab ", mc.vocab, ", context ", mc.context);
    const std::size_t n = info.num_parameters;
    GPTX_CHECK(n == model.num_parameters(), name, ": file has ", n, " parameters, this model ",
               model.num_parameters());
    if (opt) {
        GPTX_CHECK(info.has_optimizer, name,
                   ": no optimizer state in this checkpoint (it was saved weights-only)");
        GPTX_CHECK(opt->m().size() == n && opt->v().size() == n, name,
                   ": the optimizer holds state for ", opt->m().size(), " parameters, the file ",
                   n);
    }

    // Pass 1: hash the whole file; keep the small sections.
    detail::xxh64 hash;
    std::string prefix(lay.params_offset, '\0');
    r.seek(0);
    r.read(prefix.data(), prefix.size(), "the header");
    hash.update(prefix.data(), prefix.size());
    {
        std::vector<char> chunk(detail::ckpt_chunk_bytes);
        for (std::uint64_t left = lay.total_bytes - 8 - prefix.size(); left > 0;) {
            const std::size_t k = std::size_t(std::min<std::uint64_t>(left, chunk.size()));
            r.read(chunk.data(), k, "the weights");
            hash.update(chunk.data(), k);
            left -= k;
        }
    }
    std::string tail = r.read_string(8, "the checksum");
    GPTX_CHECK(detail::ckpt_get(tail, 0, 8) == hash.digest(), name,
               ": checksum mismatch (file is corrupt)");
    const std::vector<detail::ckpt_extra_entry> sections = detail::ckpt_read_extras(r);
    std::vector<const detail::ckpt_extra_entry*> wanted;
    for (const checkpoint_extra& e : extras) {
        const detail::ckpt_extra_entry* found = nullptr;
        std::string have;
        for (const auto& x : sections) {
            have += (have.empty() ? "'" : ", '") + x.info.name + "'";
            if (x.info.name == e.name)
                found = &x;
        }
        GPTX_CHECK(found, name, ": no '", e.name, "' section in this checkpoint (it has ",
                   have.empty() ? std::string("none") : have, ")");
        GPTX_CHECK(e.params, name, ": no arena to load '", e.name, "' into");
        GPTX_CHECK(found->info.size == e.params->size(), name, ": section '", e.name, "' has ",
                   found->info.size, " values, this model's has ", e.params->size());
        if (e.opt) {
            GPTX_CHECK(found->info.has_optimizer, name, ": no optimizer state for '", e.name,
                       "' in this checkpoint");
            GPTX_CHECK(e.opt->m().size() == found->info.size &&
                           e.opt->v().size() == found->info.size,
                       name, ": the optimizer of '", e.name, "' holds state for ",
                       e.opt->m().size(), " values, the file ", found->info.size);
        }
        wanted.push_back(found);
    }

    const std::string_view pre(prefix);
    std::size_t at = checkpoint_header_bytes;
    std::optional<tokenizer> loaded_tok;
    if (tok) {
        try {
            loaded_tok = tokenizer::deserialize(pre.substr(at, lay.tokenizer_bytes));
        } catch (const error& e) { // e.g. a kind this build does not know
            detail::fail(name, ": ", e.what());
        }
        // read_checkpoint_info reports the header's kind; the blob must agree with it.
        GPTX_CHECK(loaded_tok->kind() == info.tokenizer_kind, name,
                   ": corrupt: the header says tokenizer '", info.tokenizer_kind,
                   "', the tokenizer blob holds '", loaded_tok->kind(), "'");
    }
    at += lay.tokenizer_bytes;
    train_state loaded;
    loaded.step = info.step;
    loaded.run_json = std::string(pre.substr(at, lay.run_json_bytes));
    at += lay.run_json_bytes;
    for (auto& w : loaded.data_rng) {
        w = detail::ckpt_get(pre, at, 8);
        at += 8;
    }
    loaded.dropout_seed = detail::ckpt_get(pre, at, 8);
    loaded.dropout_counter = detail::ckpt_get(pre, at + 8, 8);

    // Pass 2, on the same open file (a concurrent atomic save replaces the name, not these
    // bytes): read straight into the arenas.
    r.seek(lay.params_offset);
    auto read_arena = [&](float* dst, std::string_view what) {
        r.read(dst, n * sizeof(float), what);
        detail::ckpt_swap_floats(dst, n);
    };
    read_arena(model.params().data(), "the weights");
    if (opt) {
        read_arena(opt->m().data(), "the optimizer's m");
        read_arena(opt->v().data(), "the optimizer's v");
        opt->set_step_count(info.optimizer_steps);
    }
    for (std::size_t i = 0; i < extras.size(); ++i) {
        const checkpoint_extra& e = extras[i];
        const std::size_t en = e.params->size();
        r.seek(wanted[i]->data_offset);
        auto read_values = [&](float* dst, const char* what) {
            r.read(dst, en * sizeof(float), what);
            detail::ckpt_swap_floats(dst, en);
        };
        read_values(e.params->data(), "an extra section");
        if (e.opt) {
            read_values(e.opt->m().data(), "an extra section's m");
            read_values(e.opt->v().data(), "an extra section's v");
            e.opt->set_step_count(wanted[i]->info.optimizer_steps);
        }
    }
    model.set_dropout_seed(loaded.dropout_seed);
    model.set_dropout_counter(loaded.dropout_counter);
    if (tok)
        *tok = std::move(*loaded_tok);
    if (st)
        *st = std::move(loaded);
}

} // namespace gptx
