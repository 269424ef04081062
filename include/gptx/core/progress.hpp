// gptx/core/progress.hpp: progress bars with rate and time left on a terminal, periodic plain
// lines elsewhere; always on stderr, so stdout stays parseable. Tested by
// tests/core/test_progress.cpp.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>

#if defined(_WIN32)
#include <io.h>
#else
#include <unistd.h>
#endif

namespace gptx {

namespace detail {
// -1: not decided yet (GPTX_PROGRESS=0 in the environment turns bars off), 0 off, 1 on.
inline int progress_setting = -1;
} // namespace detail

inline bool progress_enabled() {
    if (detail::progress_setting < 0) {
        const char* e = std::getenv("GPTX_PROGRESS");
        detail::progress_setting = (e && std::string_view(e) == "0") ? 0 : 1;
    }
    return detail::progress_setting == 1;
}
inline void set_progress_enabled(bool on) { detail::progress_setting = on ? 1 : 0; }

namespace detail {
// Appends pieces (GCC 12 warns falsely, -Wrestrict, on `"literal" + std::string`).
template <class... A> std::string cat(const A&... a) {
    std::string s;
    (s.append(std::string_view(a)), ...);
    return s;
}
} // namespace detail

// "0:07", "12:34", "1:02:03"; "--:--" when unknown (no rate yet, or absurdly long).
inline std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0 || seconds > 99.0 * 3600)
        return "--:--";
    const auto s = static_cast<long long>(std::llround(seconds));
    char buf[32];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else
        std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
    return buf;
}

// "12.3 it/s", "1.23k tok/s", "2.5 s/it" (below one per second the inverse reads better).
inline std::string format_rate(double per_second, std::string_view unit) {
    const std::string u(unit);
    if (!std::isfinite(per_second) || per_second <= 0)
        return detail::cat("? ", u, "/s");
    char buf[64];
    if (per_second < 1.0)
        std::snprintf(buf, sizeof buf, "%.1f s/%s", 1.0 / per_second, u.c_str());
    else if (per_second >= 1e6)
        std::snprintf(buf, sizeof buf, "%.2fM %s/s", per_second / 1e6, u.c_str());
    else if (per_second >= 1e4)
        std::snprintf(buf, sizeof buf, "%.1fk %s/s", per_second / 1e3, u.c_str());
    else if (per_second >= 100)
        std::snprintf(buf, sizeof buf, "%.0f %s/s", per_second, u.c_str());
    else
        std::snprintf(buf, sizeof buf, "%.1f %s/s", per_second, u.c_str());
    return buf;
}

// "[########------------]", `width` cells in all.
inline std::string format_bar(double fraction, int width) {
    fraction = std::clamp(std::isfinite(fraction) ? fraction : 0.0, 0.0, 1.0);
    const int full = static_cast<int>(fraction * width);
    return detail::cat("[", std::string(std::size_t(full), '#'),
                       std::string(std::size_t(width - full), '-'), "]");
}

struct progress_options {
    std::string unit = "it";
    bool eta = true;          // false: the total is known but the pieces differ too much
    int tty = -1;             // -1: isatty(stderr); 0: plain lines; 1: a bar redrawn in place
    double interval = 10;     // seconds between plain lines (non-TTY)
    double redraw = 0.1;      // seconds between redraws (TTY)
    int bar_width = 24;       // cells
    std::FILE* out = nullptr; // default stderr
    std::function<double()> clock = {}; // seconds; default steady_clock (tests fake it)
    bool enabled = true;                // and progress_enabled()
};

// One unit of long work, from `start` (a resumed run) to `total`. Main thread only. A progress
// made while another is alive becomes its child: it shows inside its parent's line ("ppo [...]
// 3/20 | rollouts 48/64") instead of on a line of its own.
class progress {
  public:
    progress(std::string label, std::int64_t total, progress_options o = {}, std::int64_t start = 0)
        : label_(std::move(label)), total_(total), start_(start), done_(start), o_(std::move(o)) {
        on_ = o_.enabled && progress_enabled();
        if (!on_)
            return;
        if (!o_.out)
            o_.out = stderr;
        if (!o_.clock) {
            const auto t0 = std::chrono::steady_clock::now();
            o_.clock = [t0] {
                return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            };
        }
        if (o_.tty < 0) {
#if defined(_WIN32)
            o_.tty = _isatty(_fileno(o_.out)) ? 1 : 0;
#else
            o_.tty = ::isatty(fileno(o_.out)) ? 1 : 0;
#endif
        }
        t0_ = last_ = o_.clock();
        parent_ = top();
        if (parent_)
            parent_->child_ = this;
        top() = this;
    }
    ~progress() {
        if (!on_)
            return;
        finish();
        if (parent_) {
            parent_->child_ = nullptr;
            parent_->draw(false);
        }
        top() = parent_;
    }
    progress(const progress&) = delete;
    progress& operator=(const progress&) = delete;

    void update(std::int64_t done) {
        done_ = done;
        if (!on_ || finished_)
            return;
        draw(false);
    }
    void advance(std::int64_t n = 1) { update(done_ + n); }

    // Prints the final line (plain mode, when lines were printed) or leaves the bar (TTY) and a
    // newline; idempotent.
    void finish() {
        if (!on_ || finished_)
            return;
        finished_ = true;
        if (parent_)
            return;
        if (o_.tty) {
            if (drawn_) {
                std::fprintf(o_.out, "\r\033[K%s\n", line(true).c_str());
                std::fflush(o_.out);
            }
        } else if (lines_ > 0 && printed_done_ != done_) {
            std::fprintf(o_.out, "%s\n", line(false).c_str());
            std::fflush(o_.out);
        }
        drawn_ = false;
    }

    // Erases the bar of the innermost top-level progress from the terminal, before a line goes
    // to stdout; the next update draws it again.
    static void clear_line() {
        progress* p = top();
        while (p && p->parent_)
            p = p->parent_;
        if (p && p->o_.tty && p->drawn_) {
            std::fputs("\r\033[K", p->o_.out);
            std::fflush(p->o_.out);
            p->drawn_ = false;
        }
    }

    // This progress as one line: the bar (TTY) or "label: done/total (pct)" (plain), rate, time
    // spent and left; a child adds its own short form.
    std::string line(bool tty) const {
        const double now = on_ ? o_.clock() : 0, elapsed = now - t0_;
        std::string s = label_;
        const bool known = total_ > 0;
        const double frac = known ? double(done_) / double(total_) : 0.0;
        char buf[96];
        if (tty && known)
            s += detail::cat(" ", format_bar(frac, o_.bar_width));
        else
            s += ":";
        if (known)
            std::snprintf(buf, sizeof buf, " %lld/%lld (%.0f%%)", static_cast<long long>(done_),
                          static_cast<long long>(total_), 100 * frac);
        else
            std::snprintf(buf, sizeof buf, " %lld", static_cast<long long>(done_));
        s += buf;
        const double rate = elapsed > 0 ? double(done_ - start_) / elapsed : 0.0;
        s += detail::cat(" | ", format_rate(rate, o_.unit), " | ", format_duration(elapsed));
        if (known && o_.eta && done_ < total_)
            s += detail::cat(" < ", format_duration(rate > 0 ? double(total_ - done_) / rate : NAN),
                             " left");
        if (child_)
            s += detail::cat(" | ", child_->short_line());
        return s;
    }
    // "rollouts 48/64 < 0:04"
    std::string short_line() const {
        std::string s = detail::cat(label_, " ", std::to_string(done_));
        if (total_ > 0)
            s += detail::cat("/", std::to_string(total_));
        const double elapsed = on_ ? o_.clock() - t0_ : 0;
        const double rate = elapsed > 0 ? double(done_ - start_) / elapsed : 0.0;
        if (total_ > 0 && o_.eta && done_ < total_ && rate > 0)
            s += detail::cat(" < ", format_duration(double(total_ - done_) / rate));
        if (child_)
            s += detail::cat(" | ", child_->short_line());
        return s;
    }

    std::int64_t done() const { return done_; }
    int lines_printed() const { return lines_; }

  private:
    static progress*& top() {
        static progress* p = nullptr;
        return p;
    }
    void draw(bool force) {
        if (parent_) { // one line per tree: the outermost progress draws it
            parent_->draw(force);
            return;
        }
        if (!on_ || finished_)
            return;
        const double now = o_.clock();
        if (o_.tty) {
            if (!force && drawn_ && now - last_ < o_.redraw && done_ < total_)
                return;
            std::fprintf(o_.out, "\r\033[K%s", line(true).c_str());
            drawn_ = true;
        } else {
            if (!force && now - last_ < o_.interval)
                return;
            std::fprintf(o_.out, "%s\n", line(false).c_str());
            ++lines_;
            printed_done_ = done_;
        }
        std::fflush(o_.out);
        last_ = now;
    }

    std::string label_;
    std::int64_t total_, start_, done_;
    progress_options o_;
    bool on_ = false, finished_ = false, drawn_ = false;
    int lines_ = 0;
    std::int64_t printed_done_ = -1; // done_ at the last plain line
    double t0_ = 0, last_ = 0;
    progress* parent_ = nullptr;
    progress* child_ = nullptr;
};

} // namespace gptx
