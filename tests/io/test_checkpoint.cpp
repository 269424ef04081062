// Tests for gptx/io/checkpoint.hpp: bit-exact round trips, the header, every kind of bad file,
// and the atomic write.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#if !defined(_WIN32)
#include <csignal>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include <gptx/io/checkpoint.hpp>

#include "support/bytes.hpp"
#include "support/errors.hpp"
#include "support/scratch.hpp"
#include "support/shapes.hpp"

using namespace gptx;
namespace fs = std::filesystem;

namespace {

using test::shapes::small_pre;

using test::bytes_of;
using test::error_of;

struct temp_dir : gptx::test::scratch_dir {
    temp_dir() : scratch_dir("test_io") {}
};

std::uint64_t le(const std::string& s, std::size_t at, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
        v |= std::uint64_t(static_cast<unsigned char>(s[at + i])) << (8 * i);
    return v;
}
void set_le(std::string& s, std::size_t at, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
        s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
// A small vocabulary for the small models (the byte tokenizer needs vocab >= 256).
tokenizer chars() { return char_tokenizer::from_corpus("abc"); }
std::vector<std::string> files_in(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
        names.push_back(e.path().filename().string());
    return names;
}

// A model and optimizer with non-trivial state: two AdamW steps, then values whose bits a
// lossy round trip would change (NaN payload, -0, a denormal, infinity).
template <shape S> struct trained {
    transformer<S> model;
    adamw<float> opt;
    explicit trained(model_config cfg, std::uint64_t seed = 7) : model(cfg), opt(model.params()) {
        model.init(seed);
        rng r(seed + 1);
        for (int s = 0; s < 2; ++s) {
            float* g = model.grads().data();
            for (std::size_t i = 0; i < model.grads().size(); ++i)
                g[i] = r.normal();
            opt.step(model.params(), model.grads(), 1e-3f);
        }
        float* p = model.params().data();
        std::uint32_t nan_bits = 0x7fc01234u;
        std::memcpy(&p[0], &nan_bits, 4);
        p[1] = -0.0f;
        p[2] = std::numeric_limits<float>::denorm_min();
        p[3] = -std::numeric_limits<float>::infinity();
        model.set_dropout_seed(0xabcdef0123456789ull);
        model.set_dropout_counter(4242);
    }
};

train_state sample_state() {
    train_state st;
    st.step = 1234567890123ll;
    st.data_rng = {1ull, 0xffffffffffffffffull, 0x0123456789abcdefull, 42ull};
    st.dropout_seed = 0xabcdef0123456789ull;
    st.dropout_counter = 4242;
    // UTF-8 and an embedded NUL: run_json is bytes to the checkpoint.
    const char json[] = "{\"lr\": 0.0006, \"name\": \"caf\xc3\xa9\"}\0tail";
    st.run_json = std::string(json, sizeof json - 1);
    return st;
}

template <shape S> void check_round_trip(const trained<S>& a, const fs::path& p, tokenizer tok) {
    const train_state st = sample_state();
    save_checkpoint(p, a.model, &a.opt, tok, st);
    BOOST_TEST(!fs::exists(fs::path(p.string() + ".tmp")));

    transformer<S> model(a.model.config());
    model.init(99);
    adamw<float> opt(model.params());
    tokenizer tok2;
    train_state st2;
    load_checkpoint(p, model, &opt, &tok2, &st2);

    BOOST_TEST((bytes_of(model.params()) == bytes_of(a.model.params())));
    BOOST_TEST((bytes_of(opt.m()) == bytes_of(a.opt.m())));
    BOOST_TEST((bytes_of(opt.v()) == bytes_of(a.opt.v())));
    BOOST_TEST(opt.step_count() == 2);
    BOOST_TEST((tok2 == tok));
    BOOST_TEST(st2.step == st.step);
    BOOST_TEST((st2.data_rng == st.data_rng));
    BOOST_TEST(st2.dropout_seed == st.dropout_seed);
    BOOST_TEST(st2.dropout_counter == st.dropout_counter);
    BOOST_TEST(st2.run_json == st.run_json);
    BOOST_TEST(model.dropout_seed() == st.dropout_seed);
    BOOST_TEST(model.dropout_counter() == st.dropout_counter);
}

} // namespace

BOOST_AUTO_TEST_SUITE(io)
BOOST_AUTO_TEST_SUITE(checkpoint)

BOOST_AUTO_TEST_CASE(xxh64_matches_the_reference_and_streams) {
    // Reference values from libxxhash 0.8.1, seed 0.
    BOOST_TEST(detail::xxh64_of("") == 0xef46db3751d8e999ull);
    BOOST_TEST(detail::xxh64_of("a") == 0xd24ec4f1a98c6e5bull);
    BOOST_TEST(detail::xxh64_of("abc") == 0x44bc2cf5ad770999ull);
    auto pattern = [](std::size_t n) {
        std::string s(n, '\0');
        for (std::size_t i = 0; i < n; ++i)
            s[i] = static_cast<char>((i * 7 + 3) & 255);
        return s;
    };
    const std::pair<std::size_t, std::uint64_t> ref[] = {
        {31, 0xa2aa5f33cc4a6119ull},  {32, 0x23c3c17ef790fd97ull},  {33, 0x50a7cfc7ba588784ull},
        {35, 0xa5b3456011d2913bull},  {39, 0x880bbeea606e4b37ull},  {40, 0xb620306b253d76b6ull},
        {63, 0x5e3e54b431c7493cull},  {64, 0x0eb64b3ef6eeb01full},  {65, 0xa383b724b2bd12f1ull},
        {100, 0xa61f8d4c170fe531ull}, {1000, 0x5f235fa033f1a3fbull}};
    for (const auto& [n, h] : ref) {
        const std::string s = pattern(n);
        BOOST_TEST(detail::xxh64_of(s) == h, "n = " << n);
        // Any split into update() calls gives the same digest.
        for (std::size_t step : {1u, 3u, 8u, 31u, 33u}) {
            detail::xxh64 x;
            for (std::size_t i = 0; i < n; i += step)
                x.update(s.data() + i, std::min(step, n - i));
            BOOST_TEST(x.digest() == h, "n = " << n << ", step = " << step);
        }
    }
}

BOOST_AUTO_TEST_CASE(parameter_count_matches_the_model) {
    BOOST_TEST(*detail::checkpoint_parameter_count(small_pre, {50, 16}) ==
               transformer<small_pre>({50, 16}).num_parameters());
    BOOST_TEST(*detail::checkpoint_parameter_count(presets::baby_post, {65, 64}) ==
               transformer<presets::baby_post>({65, 64}).num_parameters());
    BOOST_TEST(*detail::checkpoint_parameter_count(presets::baby, {65, 64}) ==
               transformer<presets::baby>({65, 64}).num_parameters()); // bias-free
    BOOST_TEST(*detail::checkpoint_parameter_count(presets::gpt2, {50257, 1024}) == 124439808u);
    BOOST_TEST(!detail::checkpoint_parameter_count({1 << 30, 1 << 30, 1 << 30}, {1, 1}));
}

BOOST_AUTO_TEST_CASE(round_trip_is_bit_exact) {
    temp_dir dir;
    const trained<small_pre> a({50, 16});
    check_round_trip(a, dir / "small.gptx", char_tokenizer::from_corpus("hello, world!\n"));
    const trained<presets::baby> b({256, 64}, 11);
    check_round_trip(b, dir / "baby.gptx", tokenizer{});
    const trained<presets::baby_post> c({65, 32}, 12);
    check_round_trip(c, dir / "post.gptx", chars());
}

BOOST_AUTO_TEST_CASE(file_layout_is_as_documented) {
    temp_dir dir;
    const fs::path p = dir / "ckpt.gptx";
    const trained<small_pre> a({50, 16});
    const tokenizer tok = char_tokenizer::from_corpus("abc");
    train_state st = sample_state();
    save_checkpoint(p, a.model, &a.opt, tok, st);
    const std::string f = test::slurp(p);
    const std::size_t n = a.model.num_parameters();

    BOOST_TEST(f.substr(0, 8) == "GPTXCKPT");
    BOOST_TEST(le(f, 8, 4) == 1u);  // version
    BOOST_TEST(le(f, 12, 4) == 1u); // flags: optimizer present
    BOOST_TEST(le(f, 16, 4) == 32u);
    BOOST_TEST(le(f, 20, 4) == 4u);
    BOOST_TEST(le(f, 24, 4) == 2u);
    BOOST_TEST(le(f, 28, 4) == 0u); // pre-LN
    BOOST_TEST(le(f, 32, 4) == 50u);
    BOOST_TEST(le(f, 36, 4) == 16u);
    BOOST_TEST(le(f, 40, 8) == n);
    BOOST_TEST(le(f, 48, 8) == 2u);
    BOOST_TEST(le(f, 56, 8) == std::uint64_t(st.step));
    const std::string blob = tok.serialize();
    BOOST_TEST(le(f, 64, 8) == blob.size());
    BOOST_TEST(le(f, 72, 8) == st.run_json.size());
    BOOST_TEST(f.substr(80, 5) == std::string("char\0", 5));
    BOOST_TEST(le(f, 112, 4) == 4u);
    BOOST_TEST(le(f, 120, 8) == detail::xxh64_of(f.substr(0, 120)));
    BOOST_TEST(f.substr(128, blob.size()) == blob);
    BOOST_TEST(f.substr(128 + blob.size(), st.run_json.size()) == st.run_json);
    const std::size_t state_at = 128 + blob.size() + st.run_json.size();
    BOOST_TEST(le(f, state_at + 8, 8) == st.data_rng[1]);
    BOOST_TEST(le(f, state_at + 40, 8) == st.dropout_counter);
    const std::size_t params_at = (state_at + 48 + 63) / 64 * 64;
    BOOST_TEST(f.size() == params_at + 3 * n * 4 + 8);
    BOOST_TEST((f.substr(params_at, n * 4) == bytes_of(a.model.params())));
    BOOST_TEST((f.substr(params_at + n * 4, n * 4) == bytes_of(a.opt.m())));
    BOOST_TEST((f.substr(params_at + 2 * n * 4, n * 4) == bytes_of(a.opt.v())));
    BOOST_TEST(le(f, f.size() - 8, 8) == detail::xxh64_of(f.substr(0, f.size() - 8)));
}

BOOST_AUTO_TEST_CASE(weights_only_round_trip) {
    temp_dir dir;
    const fs::path p = dir / "weights.gptx";
    const trained<small_pre> a({50, 16});
    save_checkpoint(p, a.model, nullptr, chars(), train_state{});
    BOOST_TEST(fs::file_size(p) < 2 * a.model.num_parameters() * sizeof(float));

    transformer<small_pre> model({50, 16});
    load_checkpoint(p, model, nullptr, nullptr, nullptr);
    BOOST_TEST((bytes_of(model.params()) == bytes_of(a.model.params())));

    // A checkpoint with an optimizer loads weights-only too.
    const fs::path full = dir / "full.gptx";
    save_checkpoint(full, a.model, &a.opt, chars(), train_state{});
    transformer<small_pre> model2({50, 16});
    load_checkpoint(full, model2, nullptr, nullptr, nullptr);
    BOOST_TEST((bytes_of(model2.params()) == bytes_of(a.model.params())));
}

BOOST_AUTO_TEST_CASE(info_reads_the_header) {
    temp_dir dir;
    const trained<presets::baby_post> a({65, 32});
    train_state st = sample_state();
    save_checkpoint(dir / "a.gptx", a.model, &a.opt, char_tokenizer::from_corpus("xyz"), st);
    const checkpoint_info info = read_checkpoint_info(dir / "a.gptx");
    BOOST_TEST(info.version == 1);
    BOOST_TEST((info.dims == presets::baby_post));
    BOOST_TEST(info.config.vocab == 65);
    BOOST_TEST(info.config.context == 32);
    BOOST_TEST(info.num_parameters == a.model.num_parameters());
    BOOST_TEST(info.has_optimizer);
    BOOST_TEST(info.optimizer_steps == 2);
    BOOST_TEST(info.step == st.step);
    BOOST_TEST(info.tokenizer_kind == "char");
    BOOST_TEST(info.run_json == st.run_json);
    BOOST_TEST(info.file_size == fs::file_size(dir / "a.gptx"));

    save_checkpoint(dir / "b.gptx", a.model, nullptr, chars(), train_state{});
    const checkpoint_info b = read_checkpoint_info(dir / "b.gptx");
    BOOST_TEST(!b.has_optimizer);
    BOOST_TEST(b.optimizer_steps == 0);
    BOOST_TEST(b.tokenizer_kind == "char");
    BOOST_TEST(b.run_json.empty());
}

BOOST_AUTO_TEST_CASE(with_checkpoint_preset_picks_the_matching_shape) {
    temp_dir dir;
    const trained<presets::baby_post> a({65, 32});
    save_checkpoint(dir / "post.gptx", a.model, &a.opt, chars(), train_state{});
    const checkpoint_info info = read_checkpoint_info(dir / "post.gptx");
    shape seen{};
    bool loaded = false;
    const bool found = with_checkpoint_preset(info, [&]<shape S>() {
        seen = S;
        transformer<S> model(info.config);
        adamw<float> opt(model.params());
        load_checkpoint(dir / "post.gptx", model, &opt, nullptr, nullptr);
        loaded = bytes_of(model.params()) == bytes_of(a.model.params());
    });
    BOOST_TEST(found);
    BOOST_TEST((seen == presets::baby_post)); // not baby: placement counts
    BOOST_TEST(loaded);

    const trained<small_pre> b({50, 16});
    save_checkpoint(dir / "small.gptx", b.model, nullptr, chars(), train_state{});
    bool called = false;
    BOOST_TEST(!with_checkpoint_preset(read_checkpoint_info(dir / "small.gptx"),
                                       [&]<shape S>() { called = true; }));
    BOOST_TEST(!called);
}

BOOST_AUTO_TEST_CASE(shape_and_config_mismatches_name_both_sides) {
    temp_dir dir;
    const fs::path p = dir / "ckpt.gptx";
    const std::string n = p.string();
    const trained<presets::baby> a({256, 64});
    save_checkpoint(p, a.model, &a.opt, tokenizer{}, train_state{});

    transformer<presets::gpt2> big({256, 64});
    BOOST_TEST(error_of([&] { load_checkpoint(p, big, nullptr, nullptr, nullptr); }) ==
               n + ": shape mismatch: file has width 128, heads 4, layers 4 (128/4/4 pre-LN, no "
                   "bias, erf GELU); this model is 768/12/12 pre-LN");
    transformer<presets::baby_post> post({256, 64});
    BOOST_TEST(error_of([&] { load_checkpoint(p, post, nullptr, nullptr, nullptr); }) ==
               n + ": shape mismatch: file has width 128, heads 4, layers 4 (128/4/4 pre-LN, no "
                   "bias, erf GELU); this model is 128/4/4 post-LN");
    transformer<presets::baby_bias> biased({256, 64});
    BOOST_TEST(error_of([&] { load_checkpoint(p, biased, nullptr, nullptr, nullptr); }) ==
               n + ": shape mismatch: file has width 128, heads 4, layers 4 (128/4/4 pre-LN, no "
                   "bias, erf GELU); this model is 128/4/4 pre-LN, erf GELU");
    // The GELU is part of the shape: same tensors, other numerics.
    constexpr shape baby_tanh{128, 4, 4, norm::pre, false, gelu_kind::tanh};
    transformer<baby_tanh> tanh_gelu({256, 64});
    BOOST_TEST(error_of([&] { load_checkpoint(p, tanh_gelu, nullptr, nullptr, nullptr); }) ==
               n + ": shape mismatch: file has width 128, heads 4, layers 4 (128/4/4 pre-LN, no "
                   "bias, erf GELU); this model is 128/4/4 pre-LN, no bias");
    BOOST_TEST((read_checkpoint_info(p).dims == presets::baby));
    BOOST_TEST(le(test::slurp(p), 28, 4) == 6u); // shape flags: no biases (2) | erf GELU (4)

    transformer<presets::baby> vocab({300, 64});
    BOOST_TEST(error_of([&] { load_checkpoint(p, vocab, nullptr, nullptr, nullptr); }) ==
               n + ": config mismatch: file has vocab 256, context 64; this model has vocab 300, "
                   "context 64");
    transformer<presets::baby> context({256, 128});
    BOOST_TEST(error_of([&] { load_checkpoint(p, context, nullptr, nullptr, nullptr); }) ==
               n + ": config mismatch: file has vocab 256, context 64; this model has vocab 256, "
                   "context 128");
}

BOOST_AUTO_TEST_CASE(truncated_files_are_reported_with_sizes) {
    temp_dir dir;
    const fs::path p = dir / "ckpt.gptx";
    const std::string n = p.string();
    const trained<small_pre> a({50, 16});
    save_checkpoint(p, a.model, &a.opt, chars(), sample_state());
    const std::string good = test::slurp(p);
    const std::size_t params_at = good.size() - 8 - 3 * a.model.num_parameters() * 4;

    for (std::size_t cut : {std::size_t(0), std::size_t(5), std::size_t(60), std::size_t(127)}) {
        test::write_file(p, good.substr(0, cut));
        const std::string want = n + ": truncated: expected at least 128 bytes (the header), " +
                                 "file has " + std::to_string(cut);
        transformer<small_pre> model({50, 16});
        BOOST_TEST(error_of([&] { load_checkpoint(p, model, nullptr, nullptr, nullptr); }) == want);
        BOOST_TEST(error_of([&] { read_checkpoint_info(p); }) == want);
    }
    for (std::size_t cut : {std::size_t(128), std::size_t(140), params_at + 100, good.size() - 100,
                            good.size() - 1}) {
        test::write_file(p, good.substr(0, cut));
        const std::string want = n + ": truncated: expected " + std::to_string(good.size()) +
                                 " bytes, file has " + std::to_string(cut);
        transformer<small_pre> model({50, 16});
        adamw<float> opt(model.params());
        BOOST_TEST(error_of([&] { load_checkpoint(p, model, &opt, nullptr, nullptr); }) == want,
                   "cut at " << cut);
        BOOST_TEST(error_of([&] { read_checkpoint_info(p); }) == want);
    }
    test::write_file(p, good + "x");
    transformer<small_pre> model({50, 16});
    BOOST_TEST(error_of([&] { load_checkpoint(p, model, nullptr, nullptr, nullptr); }) ==
               n + ": unexpected data after the checkpoint: expected " +
                   std::to_string(good.size()) + " bytes, file has " +
                   std::to_string(good.size() + 1));
}

BOOST_AUTO_TEST_CASE(corrupt_bytes_fail_the_checksum_and_leave_everything_untouched) {
    temp_dir dir;
    const fs::path p = dir / "ckpt.gptx";
    const std::string n = p.string();
    const trained<small_pre> a({50, 16});
    save_checkpoint(p, a.model, &a.opt, char_tokenizer::from_corpus("abc"), sample_state());
    const std::string good = test::slurp(p);
    const std::size_t np = a.model.num_parameters();
    const std::size_t params_at = good.size() - 8 - 3 * np * 4;

    // The loader's targets, with state of their own that a failed load must keep.
    const trained<small_pre> b({50, 16}, 1234);
    transformer<small_pre> model({50, 16});
    adamw<float> opt(model.params());
    std::memcpy(model.params().data(), b.model.params().data(), np * 4);
    std::memcpy(opt.m().data(), b.opt.m().data(), np * 4);
    opt.set_step_count(9);
    model.set_dropout_counter(77);
    tokenizer tok;
    train_state st;
    st.step = 5;
    const std::string params0 = bytes_of(model.params()), m0 = bytes_of(opt.m());

    const std::size_t where[] = {params_at + 4 * (np / 2) + 1, // params
                                 params_at + 4 * np + 3,       // m
                                 good.size() - 9,              // the last byte of v
                                 good.size() - 1,              // the checksum itself
                                 200};                         // run_json
    for (std::size_t at : where) {
        std::string bad = good;
        bad[at] = static_cast<char>(bad[at] ^ 0x10);
        test::write_file(p, bad);
        BOOST_TEST(error_of([&] { load_checkpoint(p, model, &opt, &tok, &st); }) ==
                       n + ": checksum mismatch (file is corrupt)",
                   "flipped byte " << at);
    }
    BOOST_TEST((bytes_of(model.params()) == params0));
    BOOST_TEST((bytes_of(opt.m()) == m0));
    BOOST_TEST(opt.step_count() == 9);
    BOOST_TEST(model.dropout_counter() == 77u);
    BOOST_TEST(tok.kind() == "byte");
    BOOST_TEST(st.step == 5);
    BOOST_TEST(st.run_json.empty());

    // The header has its own checksum, so read_checkpoint_info catches it too.
    std::string bad = good;
    bad[17] = static_cast<char>(bad[17] ^ 1); // width
    test::write_file(p, bad);
    const std::string header_msg = n + ": checksum mismatch in the header (file is corrupt)";
    BOOST_TEST(error_of([&] { read_checkpoint_info(p); }) == header_msg);
    BOOST_TEST(error_of([&] { load_checkpoint(p, model, &opt, &tok, &st); }) == header_msg);
    BOOST_TEST((bytes_of(model.params()) == params0));
}

BOOST_AUTO_TEST_CASE(bad_magic_version_and_missing_files) {
    temp_dir dir;
    const fs::path p = dir / "ckpt.gptx";
    const std::string n = p.string();
    transformer<small_pre> model({50, 16});

    test::write_file(p, std::string(300, 'x'));
    BOOST_TEST(error_of([&] { load_checkpoint(p, model, nullptr, nullptr, nullptr); }) ==
               n + ": not a gptx checkpoint (bad magic; expected \"GPTXCKPT\")");
    test::write_file(p, "GPTX");
    BOOST_TEST(error_of([&] { read_checkpoint_info(p); }) ==
               n + ": truncated: expected at least 128 bytes (the header), file has 4");

    const trained<small_pre> a({50, 16});
    save_checkpoint(p, a.model, nullptr, chars(), train_state{});
    std::string v2 = test::slurp(p);
    set_le(v2, 8, 2, 4);
    test::write_file(p, v2);
    BOOST_TEST(error_of([&] { read_checkpoint_info(p); }) ==
               n + ": checkpoint version 2 is not supported (this build reads version 1)");

    const fs::path missing = dir / "missing.gptx";
    BOOST_TEST(error_of([&] { load_checkpoint(missing, model, nullptr, nullptr, nullptr); }) ==
               "cannot open checkpoint '" + missing.string() + "': no such file");
    BOOST_TEST(error_of([&] { read_checkpoint_info(missing); }) ==
               "cannot open checkpoint '" + missing.string() + "': no such file");
    BOOST_TEST(error_of([&] { read_checkpoint_info(dir.path); }) ==
               "cannot open checkpoint '" + dir.path.string() + "': it is a directory");
}

// Found by fuzzing: a header whose tokenizer kind disagrees with the blob (both checksums
// valid) loaded, so read_checkpoint_info and the loaded tokenizer told different stories.
BOOST_AUTO_TEST_CASE(header_tokenizer_kind_must_match_the_blob) {
    temp_dir dir;
    const fs::path p = dir / "ckpt.gptx";
    const trained<small_pre> a({50, 16});
    save_checkpoint(p, a.model, nullptr, chars(), train_state{});
    std::string f = test::slurp(p);
    BOOST_TEST(f.substr(80, 5) == std::string("char\0", 5));
    f.replace(80, 5, std::string("byte\0", 5)); // a kind the build knows, not the blob's
    set_le(f, 120, detail::xxh64_of(std::string_view(f).substr(0, 120)), 8);
    set_le(f, f.size() - 8, detail::xxh64_of(std::string_view(f).substr(0, f.size() - 8)), 8);
    test::write_file(p, f);
    BOOST_TEST(read_checkpoint_info(p).tokenizer_kind == "byte"); // the header alone is sound
    transformer<small_pre> model({50, 16});
    tokenizer tok;
    BOOST_TEST(error_of([&] { load_checkpoint(p, model, nullptr, &tok, nullptr); }) ==
               p.string() + ": corrupt: the header says tokenizer 'byte', the tokenizer blob "
                            "holds 'char'");
    BOOST_TEST(tok.kind() == "byte");                     // untouched
    load_checkpoint(p, model, nullptr, nullptr, nullptr); // weights alone do not read the blob
}

BOOST_AUTO_TEST_CASE(optimizer_requested_but_absent_or_mismatched) {
    temp_dir dir;
    const fs::path p = dir / "weights.gptx";
    const std::string n = p.string();
    const trained<small_pre> a({50, 16});
    save_checkpoint(p, a.model, nullptr, chars(), train_state{});
    transformer<small_pre> model({50, 16});
    model.init(3);
    const std::string params0 = bytes_of(model.params());
    adamw<float> opt(model.params());
    BOOST_TEST(error_of([&] { load_checkpoint(p, model, &opt, nullptr, nullptr); }) ==
               n + ": no optimizer state in this checkpoint (it was saved weights-only)");
    BOOST_TEST((bytes_of(model.params()) == params0));

    // An optimizer built for another model is refused on save and on load.
    transformer<small_pre> other({40, 16});
    adamw<float> wrong(other.params());
    const fs::path q = dir / "never.gptx";
    BOOST_TEST(error_of([&] { save_checkpoint(q, a.model, &wrong, chars(), {}); }) ==
               q.string() + ": the optimizer holds state for " + std::to_string(wrong.m().size()) +
                   " parameters, the model has " + std::to_string(a.model.num_parameters()));
    BOOST_TEST(files_in(dir.path).size() == 1u);
    save_checkpoint(q, a.model, &a.opt, chars(), {});
    BOOST_TEST(error_of([&] { load_checkpoint(q, model, &wrong, nullptr, nullptr); }) ==
               q.string() + ": the optimizer holds state for " + std::to_string(wrong.m().size()) +
                   " parameters, the file " + std::to_string(a.model.num_parameters()));

    // A tokenizer bigger than the model's vocabulary is a bug worth stopping at save.
    transformer<small_pre> tiny_vocab({100, 16});
    BOOST_TEST(error_of([&] { save_checkpoint(q, tiny_vocab, nullptr, tokenizer{}, {}); }) ==
               q.string() + ": the tokenizer has 256 tokens but the model's vocabulary is 100");
}

BOOST_AUTO_TEST_CASE(atomic_write_leaves_no_temp_and_keeps_the_old_file_on_failure) {
    temp_dir dir;
    const fs::path p = dir / "ckpt.gptx";
    const trained<small_pre> a({50, 16});
    save_checkpoint(p, a.model, &a.opt, chars(), sample_state());
    BOOST_TEST((files_in(dir.path) == std::vector<std::string>{"ckpt.gptx"}));
    const std::string good = test::slurp(p);

    // A folder that does not exist: an error, and nothing is created.
    const fs::path nowhere = dir / "no_such_dir" / "ckpt.gptx";
    const std::string msg =
        error_of([&] { save_checkpoint(nowhere, a.model, nullptr, chars(), {}); });
    BOOST_TEST(msg.rfind("cannot open '" + nowhere.string() + ".tmp' for writing: ", 0) == 0, msg);
    BOOST_TEST(!fs::exists(dir / "no_such_dir"));

    // The temp file cannot be created (its name is taken by a non-empty folder): the good
    // checkpoint survives, byte for byte.
    fs::create_directory(dir / "ckpt.gptx.tmp");
    test::write_file(dir / "ckpt.gptx.tmp" / "keep", "x");
    const trained<small_pre> b({50, 16}, 99);
    BOOST_TEST(error_of([&] { save_checkpoint(p, b.model, nullptr, chars(), {}); }) !=
               "<no error>");
    BOOST_TEST((test::slurp(p) == good));
    fs::remove_all(dir / "ckpt.gptx.tmp");

    // A target the rename would replace (a folder) is refused before anything is written.
    const fs::path folder = dir / "folder.gptx";
    fs::create_directory(folder);
    test::write_file(folder / "keep", "x");
    const std::string folder_msg =
        error_of([&] { save_checkpoint(folder, a.model, nullptr, chars(), {}); });
    BOOST_TEST(folder_msg == "cannot write '" + folder.string() +
                                 "': it exists and is not a regular file (a folder)",
               folder_msg);
    BOOST_TEST(!fs::exists(dir / "folder.gptx.tmp"));
    BOOST_TEST(fs::exists(folder / "keep"));
    fs::remove_all(folder);

    // A checkpoint name that links to a shared checkpoint (a run started from a pre-trained
    // model by a link): the save replaces the link and leaves the shared file byte for byte.
    fs::create_directory(dir / "run");
    fs::create_symlink(p, dir / "run" / "model.gptx");
    const std::string shared = test::slurp(p);
    save_checkpoint(dir / "run" / "model.gptx", b.model, nullptr, chars(), {});
    BOOST_TEST(!fs::is_symlink(dir / "run" / "model.gptx"));
    BOOST_TEST((test::slurp(p) == shared));
    BOOST_TEST((files_in(dir / "run") == std::vector<std::string>{"model.gptx"}));
    fs::remove_all(dir / "run");

    // A stale temp file from a killed save is simply replaced.
    test::write_file(dir / "ckpt.gptx.tmp", "half a checkpoint");
    save_checkpoint(p, b.model, nullptr, chars(), {});
    BOOST_TEST((files_in(dir.path) == std::vector<std::string>{"ckpt.gptx"}));
    transformer<small_pre> model({50, 16});
    load_checkpoint(p, model, nullptr, nullptr, nullptr);
    BOOST_TEST((bytes_of(model.params()) == bytes_of(b.model.params())));
}

#if !defined(_WIN32)
// kill -9 at arbitrary moments of repeated saves: the checkpoint at the target name always loads.
BOOST_AUTO_TEST_CASE(kill_during_save_never_leaves_a_corrupt_checkpoint) {
    temp_dir dir;
    const fs::path p = dir / "ckpt.gptx";
    const trained<presets::baby> a({256, 256});
    train_state st;
    save_checkpoint(p, a.model, &a.opt, tokenizer{}, st);
    for (int round = 0; round < 4; ++round) {
        const pid_t pid = ::fork();
        BOOST_REQUIRE(pid >= 0);
        if (pid == 0) {
            for (std::int64_t s = 1;; ++s) {
                st.step = s;
                try {
                    save_checkpoint(p, a.model, &a.opt, tokenizer{}, st);
                } catch (...) {
                    ::_exit(1);
                }
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20 + 17 * round));
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        BOOST_TEST((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
        transformer<presets::baby> model({256, 256});
        adamw<float> opt(model.params());
        train_state got;
        BOOST_TEST(error_of([&] { load_checkpoint(p, model, &opt, nullptr, &got); }) ==
                   "<no error>");
        BOOST_TEST((bytes_of(model.params()) == bytes_of(a.model.params())));
        std::error_code ec;
        fs::remove(dir / "ckpt.gptx.tmp", ec);
    }
}
#endif

BOOST_AUTO_TEST_SUITE_END()
BOOST_AUTO_TEST_SUITE_END()
