// gptx/core/interrupt.hpp: a graceful stop on SIGINT/SIGTERM. The handler only sets an atomic
// flag; training loops read it between steps, save and throw `interrupted`. Tested by
// tests/core/test_progress.cpp, tests/train/test_run_loop.cpp, tests/cli/test_faults_cli.cpp.
#pragma once
#include <atomic>
#include <csignal>
#include <cstdint>
#include <stdexcept>
#include <string>

#if !defined(_WIN32)
#include <signal.h>
#endif

namespace gptx {

namespace detail {
static_assert(std::atomic<int>::is_always_lock_free, "the signal flag must be lock-free");
// Constant-initialised, so the handler never meets a guard variable.
inline std::atomic<int> interrupt_flag{0}; // 0, or the number of the signal received
inline int interrupt_guard_depth = 0;      // nested guards install the handler once

extern "C" inline void gptx_on_interrupt(int sig) {
    interrupt_flag.store(sig, std::memory_order_relaxed);
}
} // namespace detail

// The signal that asked the process to stop (SIGINT, SIGTERM), or 0.
inline int interrupt_requested() { return detail::interrupt_flag.load(std::memory_order_relaxed); }
// As if signal `sig` had arrived (tests; an embedding application's own stop button).
inline void request_interrupt(int sig) {
    detail::interrupt_flag.store(sig, std::memory_order_relaxed);
}
inline void clear_interrupt() { detail::interrupt_flag.store(0, std::memory_order_relaxed); }

inline std::string signal_name(int sig) {
    if (sig == SIGINT)
        return "SIGINT";
    if (sig == SIGTERM)
        return "SIGTERM";
    std::string s = "signal ";
    s += std::to_string(sig);
    return s;
}

// While alive, SIGINT and SIGTERM set the flag instead of killing the process. The handler is
// one-shot (SA_RESETHAND): a second Ctrl-C kills at once, which the atomic checkpoint write makes
// safe. The previous handlers come back on destruction.
class interrupt_guard {
  public:
    interrupt_guard() {
        if (detail::interrupt_guard_depth++ > 0)
            return;
        clear_interrupt();
#if defined(_WIN32)
        old_int_ = std::signal(SIGINT, detail::gptx_on_interrupt);
        old_term_ = std::signal(SIGTERM, detail::gptx_on_interrupt);
#else
        struct sigaction sa {};
        sa.sa_handler = detail::gptx_on_interrupt;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESETHAND | SA_RESTART; // restart: no EINTR in the checkpoint writer
        sigaction(SIGINT, &sa, &old_int_);
        sigaction(SIGTERM, &sa, &old_term_);
#endif
    }
    ~interrupt_guard() {
        if (--detail::interrupt_guard_depth > 0)
            return;
#if defined(_WIN32)
        std::signal(SIGINT, old_int_);
        std::signal(SIGTERM, old_term_);
#else
        sigaction(SIGINT, &old_int_, nullptr);
        sigaction(SIGTERM, &old_term_, nullptr);
#endif
    }
    interrupt_guard(const interrupt_guard&) = delete;
    interrupt_guard& operator=(const interrupt_guard&) = delete;

  private:
#if defined(_WIN32)
    void (*old_int_)(int) = nullptr;
    void (*old_term_)(int) = nullptr;
#else
    struct sigaction old_int_ {};
    struct sigaction old_term_ {};
#endif
};

// Thrown by a training loop that stopped on a signal after saving. Not a gptx::error: callers
// that turn errors into "failed" must let it through; the gptx command exits with 128 + signal.
class interrupted : public std::runtime_error {
  public:
    interrupted(int sig, std::int64_t step, const std::string& what)
        : std::runtime_error(what), signal_(sig), step_(step) {}
    int signal() const { return signal_; }
    std::int64_t step() const { return step_; }
    int exit_code() const { return 128 + signal_; } // the shell's convention (130, 143)

  private:
    int signal_;
    std::int64_t step_;
};

} // namespace gptx
