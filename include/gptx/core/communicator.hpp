// gptx/core/communicator.hpp: the collective operations data-parallel training needs, as an
// interface with a one-process implementation (MPI's lives in dist/mpi.hpp). Tested by
// tests/dist/test_dist.cpp.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace gptx {

// The window [begin, end) of a flat array of n values that rank `rank` of `ranks` owns under
// ZeRO-1. Windows are contiguous, in rank order, and start at multiples of 16 values (64 bytes of
// float), so each rank's SIMD loops start aligned; the last ones may be short or empty.
inline std::pair<std::size_t, std::size_t> shard_range(std::size_t n, int rank, int ranks) {
    const std::size_t r = static_cast<std::size_t>(std::max(ranks, 1));
    std::size_t chunk = (n + r - 1) / r;
    chunk = (chunk + 15) / 16 * 16;
    const std::size_t b = std::min(n, chunk * static_cast<std::size_t>(rank));
    return {b, std::min(n, b + chunk)};
}

// Collectives over the processes of one job. Every rank must make the same calls in the same
// order (MPI's rule). The base class is the one-process job, where every collective is a no-op.
class communicator {
  public:
    virtual ~communicator() = default;
    virtual int rank() const { return 0; }
    virtual int size() const { return 1; }

    // x[i] = sum over ranks of x[i], on every rank.
    virtual void allreduce_sum(float*, std::size_t) {}
    virtual void allreduce_sum(double*, std::size_t) {}
    // Sums x over ranks into this rank's shard_range(n) of x only; the rest of x is left as the
    // local values.
    virtual void reduce_scatter_sum(float*, std::size_t) {}
    virtual void reduce_scatter_sum(double*, std::size_t) {}
    // Every rank's shard_range(n) of x, copied into x on every rank.
    virtual void allgather_shards(float*, std::size_t) {}
    virtual void allgather_shards(double*, std::size_t) {}
    // Every rank's shard_range(n) values `mine` (this rank's window only), assembled into the n
    // values of `all` on rank root (all is not touched elsewhere and may be null there).
    virtual void gather_shards(const float* mine, float* all, std::size_t n, int /*root*/) {
        std::copy_n(mine, n, all);
    }
    virtual void gather_shards(const double* mine, double* all, std::size_t n, int /*root*/) {
        std::copy_n(mine, n, all);
    }
    // Root's bytes, copied to every rank.
    virtual void broadcast(void*, std::size_t, int /*root*/) {}
    virtual void barrier() {}

    double sum(double v) {
        allreduce_sum(&v, 1);
        return v;
    }
    std::pair<std::size_t, std::size_t> shard(std::size_t n) const {
        return shard_range(n, rank(), size());
    }
};

// The process-wide communicator: the one-process job unless a program installed another
// (the gptx command installs MPI's when started by mpirun).
namespace detail {
inline communicator*& world_slot() {
    static communicator* w = nullptr;
    return w;
}
} // namespace detail
inline communicator& world() {
    static communicator single;
    communicator* w = detail::world_slot();
    return w ? *w : single;
}
inline void set_world(communicator* c) { detail::world_slot() = c; }

} // namespace gptx
