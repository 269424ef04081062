// samples/cli/bench.cpp: `gptx bench`, whole-step benchmarks (training steps and generation) that
// print one JSON line per workload. Tested by tests/cli/test_bench_cli.cpp; results in
// bench/README.md. Legend: B batch, T time, C channels, L layers, V vocab, N parameters, P prompt
// length.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace gptx::cli {

struct bench_options {
    std::string workload = "all";
    int reps = 0;    // 0: the workload's default
    int warmup = -1; // -1: the workload's default
    bool fork = true;
    std::uint64_t seed = 1337;
};

// The workloads of issue 3. The long one goes last, so that even without --no-fork isolation the
// smaller ones report their own peak RSS.
struct bench_workload {
    std::string_view name;
    bool train;
    int B, T;         // training batch and context; for generation B sequences and T new tokens
    int reps, warmup; // defaults: ~2-10 s of timed work each on 2 cores
};
inline constexpr std::array<bench_workload, 5> bench_workloads{{
    {"train-gpt2", true, 4, 64, 10, 2},
    {"train-baby", true, 12, 64, 50, 5},
    {"generate-gpt2", false, 1, 128, 5, 1},
    {"generate-gpt2-batch8", false, 8, 128, 5, 1},
    {"train-gpt2-long", true, 4, 1024, 3, 1},
}};
inline constexpr int bench_prompt_len = 16;

inline std::string bench_workload_names() {
    std::string s;
    for (const auto& w : bench_workloads)
        s += (s.empty() ? "" : ", ") + std::string(w.name);
    return s;
}

inline void add_bench_command(CLI::App& app, bench_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand("bench",
                                 "Time training steps and generation; one JSON line per workload");
    c->add_option("--workload", o.workload, "all, or one of: " + bench_workload_names());
    c->add_option("--reps", o.reps, "Timed repetitions (default: per workload)")
        ->check(CLI::PositiveNumber);
    c->add_option("--warmup", o.warmup, "Untimed repetitions first (default: per workload)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--seed", o.seed, "Seed for the random init, tokens and sampling");
    c->add_flag("!--no-fork", o.fork,
                "Run every workload in this process (peak_rss_mb is then the process's high-water "
                "mark so far)");
    c->callback([&] { run(); });
}

namespace detail {

// Timings of one workload: ms per repetition, and the tokens and FLOPs one repetition does.
struct bench_samples {
    std::vector<double> ms;
    double tokens = 0, flops = 0;
    ops::gemm_tally gemm; // the timed repetitions' matrix products (training workloads)
};

// The weights of the matrix products: the tied LM head (V·C) and 12·C² per layer (qkv, proj, fc,
// fcproj). Biases, LayerNorms and the position table do no multiply-adds worth counting.
template <shape S> double matmul_params(const model_config& cfg) {
    return double(cfg.vocab) * S.width + 12.0 * S.layers * double(S.width) * S.width;
}

// Training FLOPs per step (PaLM appendix B, as nanoGPT's estimate_mfu): per token 6·N for the
// weights and 12·L·C·T for attention scores and mixing (counted over the full T×T square).
template <shape S> double train_flops(const model_config& cfg, int B, int T) {
    const double tokens = double(B) * T;
    return tokens * (6 * matmul_params<S>(cfg) + 12.0 * S.layers * S.width * T);
}

// Generation FLOPs: every position fed through the cache costs 2·N, plus 4·L·C per attended key
// (q·k and p·v over the causal prefix). P prompt positions and new-1 decode positions are fed.
template <shape S> double generate_flops(const model_config& cfg, int B, int P, int fresh) {
    const double n = matmul_params<S>(cfg), fed = P + fresh - 1;
    const double keys = fed * (fed + 1) / 2; // sum over positions t of the t+1 keys attended
    return B * (2 * n * fed + 4.0 * S.layers * S.width * keys);
}

template <class F> double time_ms(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// One step = forward + backward + clip + AdamW through gptx::trainer, on one fixed batch of
// random tokens (data loading is not timed).
template <shape S>
bench_samples bench_train(const model_config& cfg, int B, int T, int reps, int warmup,
                          std::uint64_t seed) {
    using model_t = transformer<S>;
    model_t model(cfg);
    model.init(seed);
    adamw<float> opt(model.params(), {6e-4f, 0.9f, 0.95f, 1e-8f, 0.1f});
    lm_objective<model_t> obj;
    trainer tr(model, obj, opt, {1, 1.0f, [](int) { return 6e-4f; }});
    rng r(seed + 1);
    std::vector<int> x(std::size_t(B) * T), y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        x[i] = int(r.below(cfg.vocab));
        y[i] = int(r.below(cfg.vocab));
    }
    auto step = [&] { tr.step([&](int) { return lm_batch{x.data(), y.data(), nullptr, B, T}; }); };
    for (int i = 0; i < warmup; ++i)
        step();
    bench_samples s;
    ops::gemm_tally& tally = ops::gemm_tally_now();
    tally = {};
    tally.on = true;
    for (int i = 0; i < reps; ++i)
        s.ms.push_back(time_ms(step));
    s.gemm = std::exchange(tally, {});
    s.tokens = double(B) * T;
    s.flops = train_flops<S>(cfg, B, T);
    return s;
}

// One repetition = generate_batch: prefill of B random P-token prompts, then `fresh` new tokens per
// sequence (temperature 0.8, top-k 200: nanoGPT's sample.py), no end-of-text.
template <shape S>
bench_samples bench_generate(const model_config& cfg, int B, int fresh, int reps, int warmup,
                             std::uint64_t seed) {
    using model_t = transformer<S>;
    model_t model(cfg);
    model.init(seed);
    kv_cache<model_t> cache(model);
    cache.set_weights_precision(ops::matmul_precision()); // --precision bf16: bf16 weights
    rng r(seed + 1);
    std::vector<std::vector<int>> prompts(B, std::vector<int>(bench_prompt_len));
    for (auto& p : prompts)
        for (int& t : p)
            t = int(r.below(cfg.vocab));
    int produced = 0;
    auto once = [&] {
        const auto out =
            generate_batch(cache, prompts, fresh, sampling_config{0.8f, 200, 1.0f, seed});
        produced = 0;
        for (const auto& g : out)
            produced += int(g.tokens.size());
    };
    for (int i = 0; i < warmup; ++i)
        once();
    bench_samples s;
    for (int i = 0; i < reps; ++i)
        s.ms.push_back(time_ms(once));
    GPTX_CHECK(produced == B * fresh, "bench: generation stopped early (", produced, " of ",
               B * fresh, " tokens)");
    s.tokens = double(B) * fresh;
    s.flops = generate_flops<S>(cfg, B, bench_prompt_len, fresh);
    return s;
}

inline bench_samples bench_run(const bench_workload& w, int reps, int warmup, std::uint64_t seed) {
    const model_config gpt2{50257, 1024}; // GPT-2 small: the full position table
    if (w.name == "train-baby")
        return bench_train<presets::baby>({65, w.T}, w.B, w.T, reps, warmup, seed);
    if (w.train)
        return bench_train<presets::gpt2>(gpt2, w.B, w.T, reps, warmup, seed);
    return bench_generate<presets::gpt2>(gpt2, w.B, w.T, reps, warmup, seed);
}

inline double peak_rss_mb_self() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0; // Linux reports KiB
}

// Adds the share of the timed steps spent in matrix products and their rate (whole-run totals,
// not medians), for comparing with bench_peak's fp32 FMA and bf16 peaks.
inline void add_gemm_fields(nlohmann::ordered_json& j, const bench_samples& s) {
    if (s.gemm.calls == 0)
        return;
    double total_ms = 0;
    for (double v : s.ms)
        total_ms += v;
    j["gemm_ms_per_rep"] = 1000.0 * s.gemm.seconds / double(s.ms.size());
    j["gemm_share"] = 1000.0 * s.gemm.seconds / total_ms;
    j["gemm_gflops"] = s.gemm.flops / s.gemm.seconds / 1e9;
    // Per product shape: op(A) and op(B) as n (as stored) or t (transposed), then M, N, K.
    auto shapes = nlohmann::ordered_json::array();
    for (const auto& [k, t] : s.gemm.by_shape)
        shapes.push_back({{"op", std::string{k[0] ? 't' : 'n', k[1] ? 't' : 'n'}},
                          {"M", k[2]},
                          {"N", k[3]},
                          {"K", k[4]},
                          {"calls_per_rep", double(t.calls) / double(s.ms.size())},
                          {"ms_per_rep", 1000.0 * t.seconds / double(s.ms.size())},
                          {"gflops", t.flops / t.seconds / 1e9}});
    j["gemm_by_shape"] = shapes;
}

inline nlohmann::ordered_json bench_json(std::string_view name, bench_samples s,
                                         double peak_rss_mb) {
    std::vector<double> v = s.ms;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    const double median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    nlohmann::ordered_json j{{"workload", name},
                             {"median_ms", median},
                             {"min_ms", v.front()},
                             {"max_ms", v.back()},
                             {"tokens_per_s", s.tokens / (median / 1000.0)},
                             {"gflops", s.flops / (median / 1000.0) / 1e9},
                             {"peak_rss_mb", peak_rss_mb},
                             {"reps", n},
                             {"threads", num_threads()},
                             {"precision", ops::precision_name(ops::matmul_precision())},
                             {"bf16_isa", isa_name(active_bf16_isa())}};
    add_gemm_fields(j, s);
    return j;
}

// Runs one workload in a child process, so its peak RSS is its own (wait4 reports the child's
// high-water mark). The parent runs no OpenMP region before forking, so the child starts clean.
inline nlohmann::ordered_json bench_forked(const bench_workload& w, int reps, int warmup,
                                           std::uint64_t seed) {
    int fd[2];
    GPTX_CHECK(::pipe(fd) == 0, "bench: pipe failed");
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = ::fork();
    GPTX_CHECK(pid >= 0, "bench: fork failed");
    if (pid == 0) {
        ::close(fd[0]);
        std::string msg;
        int code = 0;
        try {
            msg = "ok " + bench_json(w.name, bench_run(w, reps, warmup, seed), 0).dump();
        } catch (const std::exception& e) {
            msg = std::string("error ") + e.what();
            code = 1;
        }
        std::size_t off = 0;
        while (off < msg.size()) {
            const ssize_t k = ::write(fd[1], msg.data() + off, msg.size() - off);
            if (k <= 0)
                break;
            off += std::size_t(k);
        }
        ::close(fd[1]);
        ::_exit(code);
    }
    ::close(fd[1]);
    std::string msg;
    char buf[4096];
    for (ssize_t k; (k = ::read(fd[0], buf, sizeof buf)) > 0;)
        msg.append(buf, std::size_t(k));
    ::close(fd[0]);
    int status = 0;
    rusage ru{};
    ::wait4(pid, &status, 0, &ru);
    if (msg.rfind("error ", 0) == 0)
        throw gptx::error(msg.substr(6));
    GPTX_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && msg.rfind("ok ", 0) == 0,
               "bench: workload ", w.name, " died (",
               WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status)) : "no result",
               ")");
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(msg.substr(3));
    j["peak_rss_mb"] = double(ru.ru_maxrss) / 1024.0;
    return j;
}

} // namespace detail

inline void run_bench(const bench_options& o) {
    std::vector<const bench_workload*> chosen;
    for (const auto& w : bench_workloads)
        if (o.workload == "all" || o.workload == w.name)
            chosen.push_back(&w);
    GPTX_CHECK(!chosen.empty(), "unknown workload '", o.workload,
               "' (choose all or one of: ", bench_workload_names(), ")");
    GPTX_CHECK(o.reps >= 0, "--reps must be >= 0, got ", o.reps);
    GPTX_CHECK(o.warmup >= -1, "--warmup must be >= 0, got ", o.warmup);
    for (const bench_workload* w : chosen) {
        const int reps = o.reps > 0 ? o.reps : w->reps,
                  warmup = o.warmup >= 0 ? o.warmup : w->warmup;
        nlohmann::ordered_json j;
        if (o.fork) {
            j = detail::bench_forked(*w, reps, warmup, o.seed);
        } else {
            const detail::bench_samples s = detail::bench_run(*w, reps, warmup, o.seed);
            j = detail::bench_json(w->name, s, detail::peak_rss_mb_self());
        }
        std::printf("%s\n", j.dump().c_str());
        std::fflush(stdout);
    }
}

void add_bench_command(commands& cmds) { cmds.add(add_bench_command, run_bench); }

} // namespace gptx::cli
