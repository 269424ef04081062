// bench/bench_ops.cpp: every op of a training step and of generation, forward and backward, at
// GPT-2 small shapes (B*T = 4*64 = 256, C = 768, 4C = 3072, NH = 12, V = 50257), plus attention
// at T = 1024 (train-gpt2-long). Compute-bound ops report GFLOP/s, memory-bound ones GB/s (bytes
// each call must read and write at least once). Threads: GPTX_NUM_THREADS.
// Legend: B batch, T time, C channels, NH heads, HS head size, V vocab, N rows (B*T).
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include <gptx/gptx.hpp>

namespace {

constexpr int B = 4, T = 64, N = B * T, C = 768, NH = 12, HS = C / NH, V = 50257;
constexpr std::int64_t n_params = 124475904; // GPT-2 small with its 1024-row wpe

// Grow-once buffers, one per slot, shared by every benchmark; each request refills its first n
// values with uniform(lo, hi), so no benchmark reads what another one wrote (overflowed
// accumulators make exp and friends slow).
float* buf(int slot, std::size_t n, float lo = -0.5f, float hi = 0.5f) {
    static std::vector<float> pool[8];
    static gptx::rng r(42);
    auto& v = pool[slot];
    if (v.size() < n)
        v.resize(n);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = lo + (hi - lo) * r.uniform();
    return v.data();
}
int* tokens(std::size_t n, int vocab) {
    static std::vector<int> t;
    static gptx::rng r(7);
    if (t.size() < n) {
        t.resize(n);
        for (auto& x : t)
            x = int(r.below(std::uint64_t(vocab)));
    }
    return t.data();
}

// Idle OpenMP workers spin for a while after a region; let them sleep before the next benchmark.
void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }
void gflops(benchmark::State& s, double flops) {
    s.counters["GFLOP/s"] =
        benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void gbytes(benchmark::State& s, double bytes) {
    s.counters["GB/s"] =
        benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- embedding ----------------------------------------------------------------------------------
void encoder_fwd(benchmark::State& s) {
    float *out = buf(0, N * C), *wte = buf(1, std::size_t(V) * C), *wpe = buf(2, 1024 * C);
    const int* tok = tokens(N, V);
    for (auto _ : s)
        gptx::ops::encoder_forward(out, tok, wte, wpe, B, T, C);
    gbytes(s, 3.0 * N * C * sizeof(float));
    settle();
}
void encoder_bwd(benchmark::State& s) {
    float *dout = buf(0, N * C), *dwte = buf(1, std::size_t(V) * C), *dwpe = buf(2, 1024 * C);
    const int* tok = tokens(N, V);
    for (auto _ : s)
        gptx::ops::encoder_backward(dwte, dwpe, dout, tok, B, T, C);
    gbytes(s, 5.0 * N * C * sizeof(float)); // read dout, read+write the dwte and dwpe rows
    settle();
}

// ---- layernorm, gelu, residual ----------------------------------------------------------------
void layernorm_fwd(benchmark::State& s) {
    float *out = buf(0, N * C), *inp = buf(1, N * C), *w = buf(2, C), *b = buf(3, C),
          *mean = buf(4, N), *rstd = buf(5, N);
    for (auto _ : s)
        gptx::ops::layernorm_forward(out, mean, rstd, inp, w, b, N, C);
    gbytes(s, 2.0 * N * C * sizeof(float));
    settle();
}
void layernorm_bwd(benchmark::State& s) {
    float *dinp = buf(0, N * C), *inp = buf(1, N * C), *w = buf(2, C), *dw = buf(3, 2 * C),
          *dout = buf(6, N * C);
    float *mean = buf(4, N), *rstd = buf(5, N, 0.5f, 2.0f);
    for (auto _ : s)
        gptx::ops::layernorm_backward(dinp, dw, dw + C, dout, inp, w, mean, rstd, N, C);
    gbytes(s, 4.0 * N * C * sizeof(float)); // read dout, inp, dinp; write dinp
    settle();
}
void gelu_fwd(benchmark::State& s) {
    std::int64_t n = std::int64_t(N) * 4 * C;
    benchmark::DoNotOptimize(n); // opaque: GCC 12 warns about the SIMD tail of a constant size
    float *out = buf(0, n), *inp = buf(1, n, -3.0f, 3.0f);
    for (auto _ : s)
        gptx::ops::gelu_forward(out, inp, n);
    gbytes(s, 2.0 * n * sizeof(float));
    settle();
}
void gelu_bwd(benchmark::State& s) {
    std::int64_t n = std::int64_t(N) * 4 * C;
    benchmark::DoNotOptimize(n); // opaque: GCC 12 warns about the SIMD tail of a constant size
    float *dinp = buf(0, n), *inp = buf(1, n, -3.0f, 3.0f), *dout = buf(2, n);
    for (auto _ : s)
        gptx::ops::gelu_backward(dinp, inp, dout, n);
    gbytes(s, 3.0 * n * sizeof(float));
    settle();
}
void residual_fwd(benchmark::State& s) {
    float *out = buf(0, N * C), *a = buf(1, N * C), *b = buf(2, N * C);
    std::int64_t n = std::int64_t(N) * C;
    benchmark::DoNotOptimize(n);
    for (auto _ : s)
        gptx::ops::residual_forward(out, a, b, n);
    gbytes(s, 3.0 * N * C * sizeof(float));
    settle();
}

// ---- linear layers (gemm + bias) --------------------------------------------------------------
struct linear_shape {
    int in, out;
};
void matmul_fwd(benchmark::State& s, linear_shape l) {
    float *out = buf(0, std::size_t(N) * l.out), *inp = buf(1, std::size_t(N) * l.in),
          *w = buf(2, std::size_t(l.out) * l.in), *b = buf(3, l.out);
    for (auto _ : s)
        gptx::ops::matmul_forward(out, inp, w, b, N, l.in, l.out);
    gflops(s, 2.0 * N * l.in * l.out);
    settle();
}
void matmul_bwd(benchmark::State& s, linear_shape l) {
    float *dinp = buf(0, std::size_t(N) * l.in), *inp = buf(1, std::size_t(N) * l.in),
          *w = buf(2, std::size_t(l.out) * l.in), *dw = buf(3, std::size_t(l.out) * (l.in + 1)),
          *dout = buf(4, std::size_t(N) * l.out);
    for (auto _ : s)
        gptx::ops::matmul_backward(dinp, dw, dw + std::size_t(l.out) * l.in, dout, inp, w, N, l.in,
                                   l.out);
    gflops(s, 4.0 * N * l.in * l.out);
    settle();
}

// ---- attention ----------------------------------------------------------------------------------
// Causal FLOPs: q·k and p·v over the t+1 keys of each query, 2 HS each: 2 T(T+1) HS per head
// forward; backward recomputes the scores and forms dp, dq, dk, dv: 5 T(T+1) HS.
double attention_flops(int b, int t, double per) { return per * double(b) * NH * t * (t + 1) * HS; }
void attention_fwd(benchmark::State& s) {
    const int b = int(s.range(0)), t = int(s.range(1));
    const std::size_t bt = std::size_t(b) * t;
    float *out = buf(0, bt * C), *lse = buf(1, std::size_t(b) * NH * t),
          *qkv = buf(2, bt * 3 * C, -1.0f, 1.0f);
    for (auto _ : s)
        gptx::ops::attention_forward(out, lse, qkv, b, t, C, NH);
    gflops(s, attention_flops(b, t, 2));
    settle();
}
void attention_bwd(benchmark::State& s) {
    const int b = int(s.range(0)), t = int(s.range(1));
    const std::size_t bt = std::size_t(b) * t;
    float *out = buf(0, bt * C), *lse = buf(1, std::size_t(b) * NH * t),
          *qkv = buf(2, bt * 3 * C, -1.0f, 1.0f);
    float *dqkv = buf(3, bt * 3 * C), *dout = buf(4, bt * C);
    gptx::ops::attention_forward(out, lse, qkv, b, t, C, NH); // consistent saved statistics
    for (auto _ : s)
        gptx::ops::attention_backward(dqkv, dout, qkv, out, lse, b, t, C, NH);
    gflops(s, attention_flops(b, t, 5));
    settle();
}

// ---- the LM head fused with softmax cross-entropy, in 64-row chunks -----------------------------
void lm_head(benchmark::State& s, bool grads) {
    float *hidden = buf(0, N * C), *wte = buf(1, std::size_t(V) * C, -0.05f, 0.05f),
          *dhidden = buf(2, N * C), *dwte = buf(3, std::size_t(V) * C), *losses = buf(4, N),
          *scratch = buf(5, std::size_t(64) * V);
    const int* tgt = tokens(N, V);
    for (auto _ : s)
        benchmark::DoNotOptimize(gptx::ops::lm_head_loss(grads ? dhidden : nullptr, dwte, losses,
                                                         hidden, wte, tgt, nullptr, N, C, V,
                                                         1.0f / N, scratch, 64));
    gflops(s, (grads ? 6.0 : 2.0) * N * C * V);
    settle();
}

// ---- optimizer and clipping over all GPT-2 small parameters -----------------------------------
void adamw_step(benchmark::State& s) {
    static gptx::arena params({{"all", std::size_t(n_params), true}}),
        grads({{"all", std::size_t(n_params), true}});
    gptx::adamw<float> opt(params, {6e-4f, 0.9f, 0.95f, 1e-8f, 0.1f});
    for (auto _ : s)
        opt.step(params, grads, 6e-4f);
    gbytes(s, 7.0 * n_params * sizeof(float)); // read p, g, m, v; write p, m, v
    settle();
}
void clip_norm(benchmark::State& s) {
    static gptx::arena grads({{"all", std::size_t(n_params), true}});
    for (auto _ : s)
        benchmark::DoNotOptimize(gptx::clip_grad_norm(grads, 1.0f));
    gbytes(s, 1.0 * n_params * sizeof(float)); // one read (no scaling: the norm is 0 < 1)
    settle();
}

// ---- generation kernels: one new position over a cache of 128 ---------------------------------
void decode_attention(benchmark::State& s) {
    const int b = int(s.range(0)), t0 = 128, maxT = 1024;
    float *out = buf(0, std::size_t(b) * C), *q = buf(1, std::size_t(b) * 3 * C);
    float *k = buf(2, std::size_t(b) * maxT * C), *v = buf(3, std::size_t(b) * maxT * C);
    for (auto _ : s)
        gptx::ops::attention_decode_forward(out, q, 3 * C, k, v, b, 1, t0, C, NH, maxT);
    gflops(s, 4.0 * b * C * (t0 + 1));
    settle();
}
void rows_linear(benchmark::State& s, linear_shape l) {
    const int rows = int(s.range(0));
    float *out = buf(0, std::size_t(rows) * l.out), *inp = buf(1, std::size_t(rows) * l.in),
          *w = buf(2, std::size_t(l.out) * l.in), *b = buf(3, l.out);
    for (auto _ : s)
        gptx::ops::matmul_rows_forward(out, inp, w, b, rows, l.in, l.out);
    gflops(s, 2.0 * rows * l.in * l.out);
    gbytes(s, double(l.out) * l.in * sizeof(float)); // the weights stream once
    settle();
}

} // namespace

int main(int argc, char** argv) {
    using benchmark::RegisterBenchmark;
    const auto ms = benchmark::kMillisecond, us = benchmark::kMicrosecond;
    RegisterBenchmark("encoder/fwd", encoder_fwd)->Unit(us)->UseRealTime();
    RegisterBenchmark("encoder/bwd", encoder_bwd)->Unit(us)->UseRealTime();
    RegisterBenchmark("layernorm/fwd", layernorm_fwd)->Unit(us)->UseRealTime();
    RegisterBenchmark("layernorm/bwd", layernorm_bwd)->Unit(us)->UseRealTime();
    const std::pair<const char*, linear_shape> linears[] = {
        {"qkv", {C, 3 * C}}, {"attproj", {C, C}}, {"fc", {C, 4 * C}}, {"fcproj", {4 * C, C}}};
    for (const auto& [name, l] : linears) {
        RegisterBenchmark((std::string("matmul_") + name + "/fwd").c_str(), matmul_fwd, l)
            ->Unit(us)
            ->UseRealTime();
        RegisterBenchmark((std::string("matmul_") + name + "/bwd").c_str(), matmul_bwd, l)
            ->Unit(us)
            ->UseRealTime();
    }
    RegisterBenchmark("attention/fwd", attention_fwd)
        ->Args({B, T})
        ->Args({B, 1024})
        ->Unit(us)
        ->UseRealTime();
    RegisterBenchmark("attention/bwd", attention_bwd)
        ->Args({B, T})
        ->Args({B, 1024})
        ->Unit(us)
        ->UseRealTime();
    RegisterBenchmark("gelu/fwd", gelu_fwd)->Unit(us)->UseRealTime();
    RegisterBenchmark("gelu/bwd", gelu_bwd)->Unit(us)->UseRealTime();
    RegisterBenchmark("residual/fwd", residual_fwd)->Unit(us)->UseRealTime();
    RegisterBenchmark("lm_head_xent/fwd", lm_head, false)->Unit(ms)->UseRealTime();
    RegisterBenchmark("lm_head_xent/fwd_bwd", lm_head, true)->Unit(ms)->UseRealTime();
    RegisterBenchmark("adamw/step", adamw_step)->Unit(ms)->UseRealTime();
    RegisterBenchmark("clip_grad_norm", clip_norm)->Unit(ms)->UseRealTime();
    RegisterBenchmark("decode_attention/t128", decode_attention)
        ->Arg(1)
        ->Arg(8)
        ->Unit(us)
        ->UseRealTime();
    const std::pair<const char*, linear_shape> decode_linears[] = {
        {"qkv", {C, 3 * C}}, {"fc", {C, 4 * C}}, {"fcproj", {4 * C, C}}, {"lmhead", {C, V}}};
    for (const auto& [name, l] : decode_linears)
        RegisterBenchmark((std::string("decode_matmul_") + name).c_str(), rows_linear, l)
            ->Arg(1)
            ->Arg(8)
            ->Unit(us)
            ->UseRealTime();
    (void)ms;
    benchmark::AddCustomContext("gptx_threads", std::to_string(gptx::num_threads()));
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
