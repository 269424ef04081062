// bench/bench_gemm.cpp: gptx::ops::gemm on the GPT-2 small training shapes (forward, dinp,
// dweight), against OpenBLAS cblas_sgemm when it is found, and gptx::ops::gemm_bf16 (fp32
// operands rounded to bf16 as they are packed, as training feeds it) on the path GPTX_ISA picks.
// Threads: GPTX_NUM_THREADS for gptx, OPENBLAS_NUM_THREADS for OpenBLAS. Run with
// --benchmark_repetitions=N: the table at the end compares medians; with GPTX_PEAK_FP32 and
// GPTX_PEAK_BF16 (GFLOP/s, from bench_peak) it also gives each as a fraction of its peak.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include <gptx/core/parallel.hpp>
#include <gptx/core/rng.hpp>
#include <gptx/ops/gemm.hpp>
#include <gptx/ops/gemm_bf16.hpp>

#if defined(GPTX_BENCH_OPENBLAS)
#include <cblas.h>
#endif

namespace {

// One linear layer y(M, OC) = x(M, IC) W(OC, IC)^T and its two backward products.
struct layer_shape {
    const char* name;
    int M, IC, OC;
};
enum class form { forward, dinp, dweight };
const char* form_name(form f) {
    return f == form::forward ? "fwd" : f == form::dinp ? "dinp" : "dweight";
}

// The gemm arguments of each form, as the training step calls them.
struct gemm_call {
    bool ta, tb;
    int M, N, K, lda, ldb, ldc;
    float beta;
};
gemm_call call_of(const layer_shape& s, form f) {
    switch (f) {
    case form::forward: // out(M,OC) = inp(M,IC) . W(OC,IC)^T
        return {false, true, s.M, s.OC, s.IC, s.IC, s.IC, s.OC, 0.0f};
    case form::dinp: // dinp(M,IC) = dout(M,OC) . W(OC,IC)
        return {false, false, s.M, s.IC, s.OC, s.OC, s.IC, s.IC, 0.0f};
    default: // dW(OC,IC) += dout(M,OC)^T . inp(M,IC)
        return {true, false, s.OC, s.IC, s.M, s.OC, s.IC, s.IC, 1.0f};
    }
}

// Grow-once random operands shared by every benchmark (the LM head needs ~200 MB).
float* operand(int slot, std::size_t n) {
    static std::vector<float> pool[3];
    static gptx::rng r(42);
    auto& v = pool[slot];
    if (v.size() < n) {
        std::size_t old = v.size();
        v.resize(n);
        for (std::size_t i = old; i < n; ++i)
            v[i] = r.uniform() - 0.5f;
    }
    return v.data();
}

enum class impl { gptx, openblas, bf16 };

template <impl I> void run(benchmark::State& state, layer_shape s, form f) {
    const gemm_call g = call_of(s, f);
    const std::size_t arows = g.ta ? g.K : g.M, brows = g.tb ? g.N : g.K;
    const float* A = operand(0, arows * std::size_t(g.lda));
    const float* B = operand(1, brows * std::size_t(g.ldb));
    float* C = operand(2, std::size_t(g.M) * g.ldc);
    for (auto _ : state) {
        if constexpr (I == impl::bf16) {
            gptx::ops::gemm_bf16(g.ta, g.tb, g.M, g.N, g.K, 1.0f, A, g.lda, B, g.ldb, g.beta, C,
                                 g.ldc);
        } else if constexpr (I == impl::openblas) {
#if defined(GPTX_BENCH_OPENBLAS)
            cblas_sgemm(CblasRowMajor, g.ta ? CblasTrans : CblasNoTrans,
                        g.tb ? CblasTrans : CblasNoTrans, g.M, g.N, g.K, 1.0f, A, g.lda, B, g.ldb,
                        g.beta, C, g.ldc);
#endif
        } else {
            gptx::ops::gemm(g.ta, g.tb, g.M, g.N, g.K, 1.0f, A, g.lda, B, g.ldb, g.beta, C, g.ldc);
        }
        benchmark::ClobberMemory();
    }
    // Both libraries keep their idle workers spinning for a while after a call (OpenBLAS for
    // ~2^28 cycles); let them fall asleep so they do not steal the next benchmark's core.
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * g.M * g.N * g.K * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

// Remembers the median GFLOP/s of every benchmark so main can print gptx / OpenBLAS.
class ratio_reporter : public benchmark::ConsoleReporter {
  public:
    std::map<std::string, double> median;
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const auto& r : runs) {
            auto it = r.counters.find("GFLOP/s");
            if (it == r.counters.end() || r.error_occurred)
                continue;
            const bool agg = r.run_type == Run::RT_Aggregate;
            if (agg && r.aggregate_name != "median")
                continue;
            // Without repetitions the single run stands in for the median.
            std::string key = r.run_name.function_name;
            if (agg || !median.count(key))
                median[key] = it->second.value;
        }
        ConsoleReporter::ReportRuns(runs);
    }
};

} // namespace

int main(int argc, char** argv) {
    const layer_shape gpt2[] = {{"qkv", 256, 768, 2304},
                                {"attproj", 256, 768, 768},
                                {"fc", 256, 768, 3072},
                                {"fcproj", 256, 3072, 768},
                                {"lmhead", 256, 768, 50257}};
    // nanoGPT shakespeare_char on a CPU: B*T = 12*64, C = 128, V = 65.
    const layer_shape baby[] = {{"baby_qkv", 768, 128, 384},
                                {"baby_fc", 768, 128, 512},
                                {"baby_fcproj", 768, 512, 128},
                                {"baby_lmhead", 768, 128, 65}};
    std::vector<std::string> rows;
    auto add = [&](const layer_shape& s, form f, bool with_blas) {
        std::string tag = std::string(s.name) + "/" + form_name(f);
        rows.push_back(tag);
        benchmark::RegisterBenchmark(("gptx/" + tag).c_str(), run<impl::gptx>, s, f)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("bf16/" + tag).c_str(), run<impl::bf16>, s, f)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
#if defined(GPTX_BENCH_OPENBLAS)
        if (with_blas)
            benchmark::RegisterBenchmark(("openblas/" + tag).c_str(), run<impl::openblas>, s, f)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
#else
        (void)with_blas;
#endif
    };
    for (const auto& s : gpt2)
        for (form f : {form::forward, form::dinp, form::dweight})
            add(s, f, true);
    for (const auto& s : baby)
        for (form f : {form::forward, form::dinp, form::dweight})
            add(s, f, true);

    benchmark::AddCustomContext("gptx_threads", std::to_string(gptx::num_threads()));
    benchmark::AddCustomContext("gptx_bf16_isa",
                                std::string(gptx::isa_name(gptx::active_bf16_isa())));
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    ratio_reporter rep;
    benchmark::RunSpecifiedBenchmarks(&rep);
    benchmark::Shutdown();

    const char* pf = std::getenv("GPTX_PEAK_FP32");
    const char* pb = std::getenv("GPTX_PEAK_BF16");
    const double peak_fp32 = pf ? std::atof(pf) : 0, peak_bf16 = pb ? std::atof(pb) : 0;
    auto median = [&](const std::string& key) {
        auto it = rep.median.find(key);
        return it == rep.median.end() ? 0.0 : it->second;
    };
    std::printf("\nGFLOP/s (medians); bf16 path %s; %% of peak: fp32 %.0f, bf16 %.0f GFLOP/s\n",
                std::string(gptx::isa_name(gptx::active_bf16_isa())).c_str(), peak_fp32, peak_bf16);
    std::printf("%-22s %9s %9s %7s %9s %7s %9s %7s\n", "shape/form", "gptx", "openblas", "ratio",
                "bf16", "bf16/fp", "fp32%pk", "bf16%pk");
    for (const auto& tag : rows) {
        const double g = median("gptx/" + tag), o = median("openblas/" + tag),
                     b = median("bf16/" + tag);
        if (g == 0)
            continue;
        std::printf("%-22s %9.1f %9.1f %6.0f%% %9.1f %6.2fx %8.0f%% %6.0f%%\n", tag.c_str(), g, o,
                    o > 0 ? 100.0 * g / o : 0.0, b, b / g,
                    peak_fp32 > 0 ? 100.0 * g / peak_fp32 : 0.0,
                    peak_bf16 > 0 ? 100.0 * b / peak_bf16 : 0.0);
    }
    return 0;
}
