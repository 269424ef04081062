// bench/bench_tokenizer.cpp: GPT-2 tokenizer throughput on tiny Shakespeare (MB/s of input):
// encode on 1 and N threads, decode, and the hand-written pre-tokenizer against PCRE2's JIT on
// the same pattern (PCRE2 is loaded at run time when present, so the bench needs no link flag).
// Data: $GPTX_DATA_DIR, else ../shared/data beside the repository.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <dlfcn.h>

#include <gptx/text/gpt2_tokenizer.hpp>

namespace fs = std::filesystem;

namespace {

fs::path data_dir() {
    if (const char* e = std::getenv("GPTX_DATA_DIR"))
        return e;
    return fs::path(__FILE__).parent_path().parent_path().parent_path() / "shared" / "data";
}

const std::string& shakespeare() {
    static const std::string s = [] {
        std::ifstream in(data_dir() / "tinyshakespeare.txt", std::ios::binary);
        return std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }();
    return s;
}

const gptx::gpt2_tokenizer* tokenizer() {
    static const gptx::gpt2_tokenizer* t = []() -> const gptx::gpt2_tokenizer* {
        try {
            return new gptx::gpt2_tokenizer(gptx::gpt2_tokenizer::from_dir(data_dir() / "gpt2"));
        } catch (const gptx::error& e) {
            std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
            return nullptr;
        }
    }();
    return t;
}

bool ready(benchmark::State& state) {
    if (tokenizer() && !shakespeare().empty())
        return true;
    state.SkipWithError("GPT-2 vocabulary or tinyshakespeare.txt not found (set GPTX_DATA_DIR)");
    return false;
}

void BM_gpt2_encode(benchmark::State& state) {
    if (!ready(state))
        return;
    const int threads = int(state.range(0));
    const std::string& text = shakespeare();
    std::size_t tokens = 0;
    for (auto _ : state) {
        const auto ids = tokenizer()->encode(text, gptx::specials::as_text, threads);
        tokens = ids.size();
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(text.size()));
    state.counters["tokens"] = double(tokens);
    state.counters["threads"] = threads;
}
BENCHMARK(BM_gpt2_encode)->Arg(1)->Arg(2)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

// 8 copies: a large file, where the multi-threaded path pays off.
void BM_gpt2_encode_8x(benchmark::State& state) {
    if (!ready(state))
        return;
    const int threads = int(state.range(0));
    std::string text;
    for (int i = 0; i < 8; ++i)
        text += shakespeare();
    for (auto _ : state) {
        const auto ids = tokenizer()->encode(text, gptx::specials::as_text, threads);
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(text.size()));
    state.counters["threads"] = threads;
}
BENCHMARK(BM_gpt2_encode_8x)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_gpt2_decode(benchmark::State& state) {
    if (!ready(state))
        return;
    const auto ids = tokenizer()->encode(shakespeare());
    for (auto _ : state) {
        const std::string s = tokenizer()->decode(ids);
        benchmark::DoNotOptimize(s.data());
    }
    state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(shakespeare().size()));
}
BENCHMARK(BM_gpt2_decode)->Unit(benchmark::kMillisecond);

void BM_pretokenize_handwritten(benchmark::State& state) {
    if (!ready(state))
        return;
    std::size_t pieces = 0;
    for (auto _ : state) {
        pieces = 0;
        gptx::gpt2_pretokenize(shakespeare(), [&](std::string_view) { ++pieces; });
        benchmark::DoNotOptimize(pieces);
    }
    state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(shakespeare().size()));
    state.counters["pieces"] = double(pieces);
}
BENCHMARK(BM_pretokenize_handwritten)->Unit(benchmark::kMillisecond);

// PCRE2 (8-bit) through dlopen: the few entry points the loop needs.
struct pcre2_api {
    using compile_t = void* (*)(const unsigned char*, std::size_t, std::uint32_t, int*,
                                std::size_t*, void*);
    using jit_t = int (*)(void*, std::uint32_t);
    using md_create_t = void* (*)(const void*, void*);
    using match_t = int (*)(const void*, const unsigned char*, std::size_t, std::size_t,
                            std::uint32_t, void*, void*);
    using ovector_t = std::size_t* (*)(void*);
    compile_t compile = nullptr;
    jit_t jit = nullptr;
    md_create_t md_create = nullptr;
    match_t match = nullptr;
    ovector_t ovector = nullptr;
    void* code = nullptr;
    void* md = nullptr;

    static const pcre2_api* get() {
        static const pcre2_api* api = []() -> const pcre2_api* {
            void* h = dlopen("libpcre2-8.so.0", RTLD_NOW);
            if (!h)
                return nullptr;
            auto* a = new pcre2_api;
            a->compile = reinterpret_cast<compile_t>(dlsym(h, "pcre2_compile_8"));
            a->jit = reinterpret_cast<jit_t>(dlsym(h, "pcre2_jit_compile_8"));
            a->md_create =
                reinterpret_cast<md_create_t>(dlsym(h, "pcre2_match_data_create_from_pattern_8"));
            a->match = reinterpret_cast<match_t>(dlsym(h, "pcre2_match_8"));
            a->ovector = reinterpret_cast<ovector_t>(dlsym(h, "pcre2_get_ovector_pointer_8"));
            if (!a->compile || !a->jit || !a->md_create || !a->match || !a->ovector)
                return nullptr;
            // GPT-2's pattern; \s spelled as White_Space (see tests/text/test_gpt2_tokenizer.cpp).
            const std::string ws = "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}"
                                   "\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
            const std::string pat = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" + ws +
                                    "\\p{L}\\p{N}]+|[" + ws + "]+(?![^" + ws + "])|[" + ws + "]+";
            constexpr std::uint32_t utf = 0x00080000u, ucp = 0x00020000u, jit_complete = 1;
            int err = 0;
            std::size_t off = 0;
            a->code = a->compile(reinterpret_cast<const unsigned char*>(pat.data()), pat.size(),
                                 utf | ucp, &err, &off, nullptr);
            if (!a->code || a->jit(a->code, jit_complete) != 0)
                return nullptr;
            a->md = a->md_create(a->code, nullptr);
            return a;
        }();
        return api;
    }
};

void BM_pretokenize_pcre2_jit(benchmark::State& state) {
    if (!ready(state))
        return;
    const pcre2_api* re = pcre2_api::get();
    if (!re) {
        state.SkipWithError("libpcre2-8.so.0 not found");
        return;
    }
    const std::string& s = shakespeare();
    constexpr std::uint32_t no_utf_check = 0x40000000u;
    std::size_t pieces = 0;
    for (auto _ : state) {
        pieces = 0;
        for (std::size_t at = 0; at < s.size();) {
            if (re->match(re->code, reinterpret_cast<const unsigned char*>(s.data()), s.size(), at,
                          at ? no_utf_check : 0, re->md, nullptr) < 0)
                break;
            at = re->ovector(re->md)[1];
            ++pieces;
        }
        benchmark::DoNotOptimize(pieces);
    }
    state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(s.size()));
    state.counters["pieces"] = double(pieces);
}
BENCHMARK(BM_pretokenize_pcre2_jit)->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
