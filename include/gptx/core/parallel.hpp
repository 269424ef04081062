// gptx/core/parallel.hpp: thread count control and static parallel loops (OpenMP when present,
// serial otherwise). Tested by tests/core/test_core.cpp.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace gptx {

namespace detail {
inline int& thread_setting() {
    static int n = [] {
        if (const char* e = std::getenv("GPTX_NUM_THREADS"); e && *e) { // empty: unset
            char* end = nullptr;
            const long v = std::strtol(e, &end, 10);
            if (end != e && *end == '\0' && v > 0 && v <= 4096)
                return int(v);
            // A library should not throw from here; it says once what it ignores.
            std::fprintf(stderr,
                         "gptx: GPTX_NUM_THREADS='%s' is not a thread count (1 to 4096); "
                         "ignored\n",
                         e);
        }
#if defined(_OPENMP)
        return omp_get_num_procs();
#else
        return 1;
#endif
    }();
    return n;
}
} // namespace detail

// Threads used by gptx kernels: GPTX_NUM_THREADS, else the cores available.
inline int num_threads() { return detail::thread_setting(); }
inline void set_num_threads(int n) { detail::thread_setting() = std::max(1, n); }

// Calls f(begin, end) on contiguous slices of [0, n). Slices are fixed by n and the thread count,
// and every kernel partitions only independent outputs, so results are thread-count independent.
template <class F> void parallel_ranges(std::int64_t n, F&& f, std::int64_t min_per_thread = 1) {
    if (n <= 0)
        return;
    const int nt = static_cast<int>(std::max<std::int64_t>(
        1, std::min<std::int64_t>(num_threads(), n / std::max<std::int64_t>(1, min_per_thread))));
#if defined(_OPENMP)
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num();
            const std::int64_t b = n * t / nt, e = n * (t + 1) / nt;
            if (b < e)
                f(b, e);
        }
        return;
    }
#endif
    f(std::int64_t{0}, n);
}

// Calls f(i) for i in [0, n), statically partitioned.
template <class F> void parallel_for(std::int64_t n, F&& f, std::int64_t min_per_thread = 1) {
    parallel_ranges(
        n,
        [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t i = b; i < e; ++i)
                f(i);
        },
        min_per_thread);
}

} // namespace gptx
