// gptx/dist/data_parallel.hpp: ZeRO-1 optimizer state (build, gather for a checkpoint, load from
// one) and a replica check, over any communicator. Tested by tests/dist/test_dist.cpp.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../core/arena.hpp"
#include "../core/communicator.hpp"
#include "../core/error.hpp"
#include "../train/optimizer.hpp"

namespace gptx::dist {

// AdamW holding m and v for this rank's window of the parameters only (ZeRO-1): the state per
// rank falls by the rank count. Give it to a trainer whose config has the same communicator.
template <class T>
adamw<T> make_zero1_adamw(const basic_arena<T>& params, adamw_config cfg,
                          const communicator& comm) {
    const auto [lo, hi] = comm.shard(params.size());
    return adamw<T>(params, cfg, lo, hi);
}

// The whole AdamW state of a ZeRO-1 run on rank root (a default adamw elsewhere), for a
// checkpoint that does not depend on the rank count. Collective: every rank calls it.
template <class T>
adamw<T> gather_adamw(const basic_arena<T>& params, const adamw<T>& shard, communicator& comm,
                      int root = 0) {
    const std::size_t n = params.size();
    GPTX_CHECK(shard.shard_begin() == comm.shard(n).first &&
                   shard.shard_end() == comm.shard(n).second,
               "gather_adamw: the optimizer's window [", shard.shard_begin(), ", ",
               shard.shard_end(), ") is not rank ", comm.rank(), "'s shard of ", n, " parameters");
    // Only root holds the whole state; the other ranks send their windows from where they are.
    adamw<T> full = comm.rank() == root ? adamw<T>(params, shard.config()) : adamw<T>{};
    full.set_step_count(shard.step_count());
    comm.gather_shards(shard.m().data(), full.m().data(), n, root);
    comm.gather_shards(shard.v().data(), full.v().data(), n, root);
    return full;
}

// Copies this rank's window of a whole AdamW state (as loaded from a checkpoint) into shard.
template <class T> void load_adamw_window(adamw<T>& shard, const adamw<T>& full) {
    const std::size_t lo = shard.shard_begin(), len = shard.shard_end() - lo;
    GPTX_CHECK(full.m().size() >= lo + len, "load_adamw_window: the state holds ", full.m().size(),
               " values; the window ends at ", lo + len);
    std::copy_n(full.m().data() + lo, len, shard.m().data());
    std::copy_n(full.v().data() + lo, len, shard.v().data());
    shard.set_step_count(full.step_count());
}

// True on every rank when all ranks hold bit-identical values (data parallel's invariant).
// Collective.
template <class T> bool replicas_identical(const T* x, std::size_t n, communicator& comm) {
    std::uint64_t h = 1469598103934665603ull; // FNV-1a over the bytes
    const auto* b = reinterpret_cast<const unsigned char*>(x);
    for (std::size_t i = 0; i < n * sizeof(T); ++i)
        h = (h ^ b[i]) * 1099511628211ull;
    std::uint64_t root = h;
    comm.broadcast(&root, sizeof root, 0);
    return comm.sum(root == h ? 0.0 : 1.0) == 0.0;
}

} // namespace gptx::dist
