// gptx/train/run_loop.hpp: the loop every training command shares — steps, progress lines,
// periodic evaluation and checkpoints, metrics.jsonl, a graceful stop on SIGINT/SIGTERM — around
// any trainer. Tested by tests/train/test_run_loop.cpp and tests/cli/test_faults_cli.cpp.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/file.hpp"
#include "../core/interrupt.hpp"
#include "../core/progress.hpp"
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

// A resumed run keeps the metrics of the steps its checkpoint holds: lines of later steps (a run
// killed after them but before its next save) and a torn last line are dropped, so every step
// appears once. Rewritten atomically; lines without a leading "step" are kept.
inline void trim_metrics(const std::filesystem::path& file, std::int64_t keep_through) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
        return;
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    std::string kept;
    bool changed = false;
    constexpr std::string_view key = "{\"step\":";
    for (std::size_t at = 0; at < all.size();) {
        const std::size_t nl = all.find('\n', at);
        if (nl == std::string::npos) { // torn by a kill mid-write
            changed = true;
            break;
        }
        const std::string_view line(all.data() + at, nl - at);
        at = nl + 1;
        if (line.substr(0, key.size()) == key &&
            std::strtod(std::string(line.substr(key.size(), 24)).c_str(), nullptr) >
                double(keep_through)) {
            changed = true;
            continue;
        }
        kept.append(line);
        kept += '\n';
    }
    if (!changed)
        return;
    write_whole_file(file, kept);
}
} // namespace detail

// Optimizer steps that --epochs asks for, refused past what the schedules count (an int): --epochs
// 1e12 would otherwise start a run that never ends.
// (epochs: as the flag holds it, an int or a double, so the message repeats what was given)
template <class Epochs> std::int64_t epoch_steps(std::int64_t steps, Epochs epochs) {
    GPTX_CHECK(steps <= std::numeric_limits<int>::max(), "--epochs ", epochs, " means more than ",
               std::numeric_limits<int>::max(), " optimizer steps, which a run cannot count");
    return steps;
}

struct run_options {
    std::int64_t iters = 0;           // the step to stop at (a resumed trainer starts mid-way)
    int eval_every = 0;               // steps between evaluations (0: only at the end)
    int log_every = 10;               // steps between progress lines
    std::int64_t tokens_per_step = 0; // for tokens/s; 0 omits it
    // metrics.jsonl, appended after dropping lines of steps past the trainer's start (a fresh
    // trainer drops them all: step 0 is evaluated again); empty: none.
    std::filesystem::path metrics;
    std::string checkpoint_name;          // named in the error when a step fails
    bool quiet = false;                   // no progress lines
    std::string progress_label = "train"; // the progress bar's name (stderr)
};

struct run_hooks {
    std::function<metrics_map(std::int64_t step)> evaluate; // may be empty
    std::function<void(std::int64_t step)> save;            // writes a checkpoint; may be empty
    std::function<void(const step_metrics&)> on_step;       // after each step; may be empty
};

// Runs tr from its current step to o.iters. At step 0 (a fresh run), at every eval_every and at
// the end it evaluates, prints `step N: name value, ...`, appends the metrics and saves. A failed
// step (a NaN loss) throws with the last good checkpoint named, before anything is overwritten.
// SIGINT or SIGTERM stops it between steps: it saves (unless this step is saved already) and
// throws gptx::interrupted. A resumed run first trims metrics.jsonl to the checkpoint's step.
template <class Trainer, class NextBatch>
void run_training(Trainer& tr, const run_options& o, NextBatch&& next_batch,
                  const run_hooks& hooks) {
    GPTX_CHECK(o.iters > 0, "run: iters must be positive, got ", o.iters);
    GPTX_CHECK(tr.step_count() <= o.iters, "run: the checkpoint is at step ", tr.step_count(),
               ", past the run's last step ", o.iters,
               " (--iters); a resumed run continues up to it, it does not go back");
    const interrupt_guard signals;
    std::int64_t saved = -1; // the step of the last save in this call
    if (!o.metrics.empty() && tr.step_count() > 0)
        detail::trim_metrics(o.metrics, tr.step_count());
    else if (!o.metrics.empty())
        detail::trim_metrics(o.metrics, -1); // step 0 is evaluated again
    progress bar(o.progress_label, o.iters, {.unit = "step", .enabled = !o.quiet}, tr.step_count());
    std::ofstream metrics;
    if (!o.metrics.empty()) {
        metrics.open(o.metrics, std::ios::app);
        GPTX_CHECK(metrics.good(), "cannot write '", o.metrics.string(), "'");
    }
    // What a failed step's error says of the checkpoint: where the last good one is, or that
    // none exists yet (a run whose saves come later, or a save hook that writes elsewhere).
    auto kept = [&] {
        std::error_code ec;
        if (!o.checkpoint_name.empty() && std::filesystem::exists(o.checkpoint_name, ec))
            return " (last good checkpoint kept at '" + o.checkpoint_name + "')";
        return std::string(" (no checkpoint was written)");
    };
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
                           " is not finite; stopped", kept());
            }
            if (!o.quiet) {
                progress::clear_line();
                std::printf("%s\n", line.c_str());
            }
            m.insert(m.end(), e.begin(), e.end());
        }
        write(m);
        if (hooks.save)
            hooks.save(step);
        saved = step;
        std::fflush(stdout);
    };
    if (tr.step_count() == 0)
        checkpoint(0);
    while (tr.step_count() < o.iters) {
        if (const int sig = interrupt_requested()) {
            const std::int64_t step = tr.step_count();
            if (hooks.save && saved != step)
                hooks.save(step);
            bar.finish();
            std::fflush(stdout);
            std::string what = "interrupted by ";
            what += signal_name(sig);
            what += " after step ";
            what += std::to_string(step);
            if (hooks.save) {
                what += ": checkpoint saved to '";
                what += o.checkpoint_name;
                what += "'";
            } else {
                what += ": this run saves no checkpoint";
            }
            throw interrupted(sig, step, what);
        }
        step_metrics s;
        try {
            s = tr.step(next_batch);
        } catch (const gptx::error& e) {
            throw gptx::error(std::string(e.what()) + kept());
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
        bar.update(s.step);
        if (!o.quiet && (s.step % o.log_every == 0 || s.step == 1)) {
            progress::clear_line();
            std::printf("step %lld/%lld | loss %.4f | lr %.2e | norm %.3f | %.1f ms/step",
                        static_cast<long long>(s.step), static_cast<long long>(o.iters), s.loss,
                        s.lr, s.grad_norm, s.ms);
            if (o.tokens_per_step > 0)
                std::printf(" | %.0f tok/s", tok_s);
            std::printf("\n");
            std::fflush(stdout);
        }
        if ((o.eval_every > 0 && s.step % o.eval_every == 0) || s.step == o.iters)
            checkpoint(s.step);
    }
}

} // namespace gptx
