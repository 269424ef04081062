// Fuzz target: the native checkpoint reader (io/checkpoint.hpp). Input: one mode byte, then the
// file. Mode bit 0 rewrites the header's XXH64 and bit 1 the trailing XXH64 before the file is
// read, so mutations get past the checksums to the parsers behind them (seeds set both).
// A file whose shape is one of three small ones is loaded for real (trunk, AdamW, tokenizer,
// run state, every extra section it lists); a loaded file saves and loads back bit-exactly.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gptx/io/checkpoint.hpp>

#include "fuzz_common.hpp"

namespace {

using namespace gptx;

// The shapes make_seeds.cpp writes: width 8, 2 heads, 1 layer; pre-LN, post-LN, no biases.
constexpr shape pre_shape{8, 2, 1, norm::pre}, post_shape{8, 2, 1, norm::post},
    nobias_shape{8, 2, 1, norm::pre, false};

void fix_checksums(std::string& f, unsigned mode) {
    if ((mode & 1) && f.size() >= checkpoint_header_bytes) {
        const std::uint64_t h = detail::xxh64_of(std::string_view(f).substr(0, 120));
        for (int i = 0; i < 8; ++i)
            f[120 + std::size_t(i)] = static_cast<char>((h >> (8 * i)) & 0xff);
    }
    if ((mode & 2) && f.size() >= 8) {
        const std::uint64_t h = detail::xxh64_of(std::string_view(f).substr(0, f.size() - 8));
        for (int i = 0; i < 8; ++i)
            f[f.size() - 8 + std::size_t(i)] = static_cast<char>((h >> (8 * i)) & 0xff);
    }
}

std::string bytes_of(const basic_arena<float>& a) {
    return {reinterpret_cast<const char*>(a.data()), a.size() * sizeof(float)};
}

template <shape S>
void load_for_real(const std::filesystem::path& file, const checkpoint_info& info,
                   gptx_fuzz::temp_file& resaved) {
    // The model is the caller's to size (from the header); keep it small so a legal but huge
    // vocabulary does not count as a fuzz finding.
    if (info.config.vocab > 4096 || info.config.context > 4096)
        return;
    transformer<S, float> model(info.config);
    std::optional<adamw<float>> opt;
    if (info.has_optimizer)
        opt.emplace(model.params());
    struct extra_state {
        basic_arena<float> params;
        std::optional<adamw<float>> opt;
    };
    std::vector<extra_state> states;
    states.reserve(info.extras.size());
    std::vector<checkpoint_extra> extras;
    for (const auto& x : info.extras) {
        if (x.size > (1u << 20))
            return;
        auto& st = states.emplace_back();
        st.params.layout({{"values", x.size}});
        if (x.has_optimizer)
            st.opt.emplace(st.params);
        extras.push_back({x.name, &st.params, st.opt ? &*st.opt : nullptr});
    }
    tokenizer tok;
    train_state run;
    load_checkpoint<S>(file, model, opt ? &*opt : nullptr, &tok, &run, extras);
    GPTX_FUZZ_EXPECT(run.step == info.step && run.run_json == info.run_json);
    GPTX_FUZZ_EXPECT(tok.kind() == info.tokenizer_kind);

    // What loaded saves and loads back bit for bit.
    save_checkpoint<S>(resaved.path(), model, opt ? &*opt : nullptr, tok, run, extras);
    transformer<S, float> again(info.config);
    std::optional<adamw<float>> opt2;
    if (opt)
        opt2.emplace(again.params());
    std::vector<extra_state> states2(states.size());
    std::vector<checkpoint_extra> extras2;
    for (std::size_t i = 0; i < states.size(); ++i) {
        states2[i].params.layout({{"values", states[i].params.size()}});
        if (states[i].opt)
            states2[i].opt.emplace(states2[i].params);
        extras2.push_back(
            {extras[i].name, &states2[i].params, states2[i].opt ? &*states2[i].opt : nullptr});
    }
    tokenizer tok2;
    train_state run2;
    load_checkpoint<S>(resaved.path(), again, opt2 ? &*opt2 : nullptr, &tok2, &run2, extras2);
    GPTX_FUZZ_EXPECT(bytes_of(again.params()) == bytes_of(model.params()));
    if (opt)
        GPTX_FUZZ_EXPECT(bytes_of(opt2->m()) == bytes_of(opt->m()) &&
                         bytes_of(opt2->v()) == bytes_of(opt->v()) &&
                         opt2->step_count() == opt->step_count());
    for (std::size_t i = 0; i < states.size(); ++i)
        GPTX_FUZZ_EXPECT(bytes_of(states2[i].params) == bytes_of(states[i].params));
    GPTX_FUZZ_EXPECT(tok2 == tok && run2.run_json == run.run_json && run2.step == run.step &&
                     run2.data_rng == run.data_rng && run2.dropout_seed == run.dropout_seed &&
                     run2.dropout_counter == run.dropout_counter);

    // Weights only, ignoring the extras: a file with sections still loads as a plain trunk.
    transformer<S, float> plain(info.config);
    load_checkpoint<S>(file, plain, nullptr, nullptr, nullptr);
    GPTX_FUZZ_EXPECT(bytes_of(plain.params()) == bytes_of(model.params()));
    gptx_fuzz::note("loaded, saved and reloaded");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    static gptx_fuzz::temp_file input("checkpoint"), resaved("checkpoint_resaved");
    std::string file(reinterpret_cast<const char*>(data) + 1, size - 1);
    fix_checksums(file, data[0]);
    const auto& path = input.write(file);
    gptx_fuzz::expect_clean([&] {
        const checkpoint_info info = read_checkpoint_info(path);
        GPTX_FUZZ_EXPECT(info.file_size == file.size());
        if (info.dims == pre_shape)
            load_for_real<pre_shape>(path, info, resaved);
        else if (info.dims == post_shape)
            load_for_real<post_shape>(path, info, resaved);
        else if (info.dims == nobias_shape)
            load_for_real<nobias_shape>(path, info, resaved);
    });
    return 0;
}
