// gptx/train/run_loop.hpp: the loop every training command shares — steps, progress lines,
// periodic evaluation and checkpoints, metrics.jsonl — around any trainer.
// Tested by tests/train/test_run_loop.cpp.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "trainer.hpp"

namespace gptx {

// Named numbers, written as one flat JSON object per line of metrics.jsonl.
using metrics_map = std::vector<std::pair<std::string, double>>;

namespace detail {
inline std::string json_number(double v) {
    if (!std::isfinite(v))
        return "null"; // JSON has no NaN or infinity
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}
inline std::string json_line(const metrics_map& m) {
    std::string s = "{";
    for (std::size_t i = 0; i < m.size(); ++i)
        s += (i ? ",\"" : "\"") + m[i].first + "\":" + json_number(m[i].second);
    return s + "}";
}
} // namespace detail

struct run_options {
    std::int64_t iters = 0;           // the step to stop at (a resumed trainer starts mid-way)
    int eval_every = 0;               // steps between evaluations (0: only at the end)
    int log_every = 10;               // steps between progress lines
    std::int64_t tokens_per_step = 0; // for tokens/s; 0 omits it
    std::filesystem::path metrics;    // metrics.jsonl (appended); empty: none
    std::string checkpoint_name;      // named in the error when a step fails
    bool quiet = false;               // no progress lines
};

struct run_hooks {
    std::function<metrics_map(std::int64_t step)> evaluate; // may be empty
    std::function<void(std::int64_t step)> save;            // writes a checkpoint; may be empty
    std::function<void(const step_metrics&)> on_step;       // after each step; may be empty
};

// Runs tr from its current step to o.iters. At step 0 (a fresh run), at every eval_every and at
// the end it evaluates, prints `step N: name value, ...`, appends the metrics and saves. A failed
// step (a NaN loss) throws with the last good checkpoint named, before anything is overwritten.
template <class Trainer, class NextBatch>
void run_training(Trainer& tr, const run_options& o, NextBatch&& next_batch,
                  const run_hooks& hooks) {
    GPTX_CHECK(o.iters > 0, "run: iters must be positive, got ", o.iters);
    std::ofstream metrics;
    if (!o.metrics.empty()) {
        metrics.open(o.metrics, std::ios::app);
        GPTX_CHECK(metrics.good(), "cannot write '", o.metrics.string(), "'");
    }
    auto write = [&](const metrics_map& m) {
        if (metrics.is_open()) {
            metrics << detail::json_line(m) << '\n';
            metrics.flush();
        }
    };
    auto checkpoint = [&](std::int64_t step) {
        metrics_map m{{"step", double(step)}};
        if (hooks.evaluate) {
            const metrics_map e = hooks.evaluate(step);
            std::string line = "step " + std::to_string(step) + ":";
            for (std::size_t i = 0; i < e.size(); ++i) {
                std::string label = e[i].first; // "val_loss" prints as "val loss"
                for (char& c : label)
                    if (c == '_')
                        c = ' ';
                char buf[96];
                std::snprintf(buf, sizeof buf, "%s %s %.4f", i ? "," : "", label.c_str(),
                              e[i].second);
                line += buf;
                GPTX_CHECK(std::isfinite(e[i].second), "step ", step, ": evaluation ", e[i].first,
                           " is not finite; stopped (last good checkpoint kept at '",
                           o.checkpoint_name, "')");
            }
            if (!o.quiet)
                std::printf("%s\n", line.c_str());
            m.insert(m.end(), e.begin(), e.end());
        }
        write(m);
        if (hooks.save)
            hooks.save(step);
        std::fflush(stdout);
    };
    if (tr.step_count() == 0)
        checkpoint(0);
    while (tr.step_count() < o.iters) {
        step_metrics s;
        try {
            s = tr.step(next_batch);
        } catch (const gptx::error& e) {
            throw gptx::error(std::string(e.what()) + " (last good checkpoint kept at '" +
                              o.checkpoint_name + "')");
        }
        metrics_map m{{"step", double(s.step)},
                      {"loss", s.loss},
                      {"lr", s.lr},
                      {"grad_norm", s.grad_norm},
                      {"ms", s.ms}};
        const double tok_s =
            o.tokens_per_step > 0 ? double(o.tokens_per_step) / (s.ms / 1000.0) : 0.0;
        if (o.tokens_per_step > 0)
            m.emplace_back("tokens_per_s", tok_s);
        write(m);
        if (hooks.on_step)
            hooks.on_step(s);
        if (!o.quiet && (s.step % o.log_every == 0 || s.step == 1)) {
            std::printf("step %lld/%lld | loss %.4f | lr %.2e | norm %.3f | %.1f ms/step",
                        static_cast<long long>(s.step), static_cast<long long>(o.iters), s.loss,
                        s.lr, s.grad_norm, s.ms);
            if (o.tokens_per_step > 0)
                std::printf(" | %.0f tok/s", tok_s);
            std::printf("\n");
        }
        if ((o.eval_every > 0 && s.step % o.eval_every == 0) || s.step == o.iters)
            checkpoint(s.step);
    }
}

} // namespace gptx
