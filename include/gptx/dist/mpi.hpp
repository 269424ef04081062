// gptx/dist/mpi.hpp: the communicator over MPI, and the MPI session of a program. Compiled only
// with GPTX_HAVE_MPI (CMake defines it with the gptx::mpi target). Tested by
// tests/dist/test_dist.cpp under mpirun.
#pragma once
#if defined(GPTX_HAVE_MPI)
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <mpi.h>

#include "../core/communicator.hpp"
#include "../core/error.hpp"

namespace gptx::dist {

namespace detail {
template <class T> MPI_Datatype mpi_type();
template <> inline MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <> inline MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }

inline void mpi_check(int rc, const char* what) {
    if (rc == MPI_SUCCESS)
        return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw gptx::error(std::string("MPI: ") + what + " failed: " + std::string(msg, len));
}
} // namespace detail

// Collectives on an MPI communicator (MPI_COMM_WORLD by default). Counts are int in MPI, so
// every shard and every all-reduce must hold fewer than 2^31 values (gpt2-xl has 1.6e9).
class mpi_communicator final : public communicator {
  public:
    explicit mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
        MPI_Comm_rank(comm_, &rank_);
        MPI_Comm_size(comm_, &size_);
    }
    int rank() const override { return rank_; }
    int size() const override { return size_; }

    void allreduce_sum(float* x, std::size_t n) override { allreduce(x, n); }
    void allreduce_sum(double* x, std::size_t n) override { allreduce(x, n); }
    void reduce_scatter_sum(float* x, std::size_t n) override { reduce_scatter(x, n); }
    void reduce_scatter_sum(double* x, std::size_t n) override { reduce_scatter(x, n); }
    void allgather_shards(float* x, std::size_t n) override { allgather(x, n); }
    void allgather_shards(double* x, std::size_t n) override { allgather(x, n); }
    void gather_shards(const float* mine, float* all, std::size_t n, int root) override {
        gather(mine, all, n, root);
    }
    void gather_shards(const double* mine, double* all, std::size_t n, int root) override {
        gather(mine, all, n, root);
    }
    void broadcast(void* p, std::size_t bytes, int root) override {
        auto* b = static_cast<char*>(p);
        for (std::size_t done = 0; done < bytes;) { // MPI counts are int
            const int k = static_cast<int>(std::min<std::size_t>(bytes - done, INT_MAX));
            detail::mpi_check(MPI_Bcast(b + done, k, MPI_BYTE, root, comm_), "MPI_Bcast");
            done += static_cast<std::size_t>(k);
        }
    }
    void barrier() override { detail::mpi_check(MPI_Barrier(comm_), "MPI_Barrier"); }

  private:
    template <class T> void allreduce(T* x, std::size_t n) {
        for (std::size_t done = 0; done < n;) {
            const int k = static_cast<int>(std::min<std::size_t>(n - done, INT_MAX));
            detail::mpi_check(
                MPI_Allreduce(MPI_IN_PLACE, x + done, k, detail::mpi_type<T>(), MPI_SUM, comm_),
                "MPI_Allreduce");
            done += static_cast<std::size_t>(k);
        }
    }
    // Each rank's shard_range(n) as MPI counts and displacements.
    void layout(std::size_t n) {
        counts_.resize(std::size_t(size_));
        displs_.resize(std::size_t(size_));
        for (int r = 0; r < size_; ++r) {
            const auto [b, e] = shard_range(n, r, size_);
            GPTX_CHECK(e - b <= std::size_t(INT_MAX) && b <= std::size_t(INT_MAX), "MPI: ", n,
                       " values are too many to shard over ", size_,
                       " ranks (MPI counts are int; use more ranks)");
            counts_[std::size_t(r)] = static_cast<int>(e - b);
            displs_[std::size_t(r)] = static_cast<int>(b);
        }
    }
    template <class T> void reduce_scatter(T* x, std::size_t n) {
        layout(n);
        const auto [b, e] = shard_range(n, rank_, size_);
        // MPI_IN_PLACE would leave this rank's sum at x[0]; receive aside, copy into the window.
        std::vector<T>& tmp = scratch<T>();
        tmp.resize(e - b);
        detail::mpi_check(MPI_Reduce_scatter(x, tmp.data(), counts_.data(), detail::mpi_type<T>(),
                                             MPI_SUM, comm_),
                          "MPI_Reduce_scatter");
        std::copy(tmp.begin(), tmp.end(), x + b);
    }
    template <class T> void allgather(T* x, std::size_t n) {
        layout(n);
        detail::mpi_check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, counts_.data(),
                                         displs_.data(), detail::mpi_type<T>(), comm_),
                          "MPI_Allgatherv");
    }
    template <class T> void gather(const T* mine, T* all, std::size_t n, int root) {
        layout(n);
        const bool at_root = rank_ == root;
        detail::mpi_check(MPI_Gatherv(mine, counts_[std::size_t(rank_)], detail::mpi_type<T>(),
                                      at_root ? all : nullptr, at_root ? counts_.data() : nullptr,
                                      at_root ? displs_.data() : nullptr, detail::mpi_type<T>(),
                                      root, comm_),
                          "MPI_Gatherv");
    }
    template <class T> std::vector<T>& scratch() {
        if constexpr (std::is_same_v<T, float>)
            return scratch_f_;
        else
            return scratch_d_;
    }

    MPI_Comm comm_;
    int rank_ = 0, size_ = 1;
    std::vector<int> counts_, displs_;
    std::vector<float> scratch_f_; // reduce-scatter receive buffers, grown once
    std::vector<double> scratch_d_;
};

// True when this process was started by an MPI launcher (Open MPI's mpirun, MPICH's hydra,
// Slurm's PMI), so a program can stay a plain process otherwise.
inline bool launched_by_mpirun() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"})
        if (std::getenv(v))
            return true;
    return false;
}

// MPI_Init_thread .. MPI_Finalize around a program, with MPI_COMM_WORLD installed as
// gptx::world(). OpenMP threads never call MPI, so FUNNELED is enough.
class mpi_session {
  public:
    explicit mpi_session(int* argc = nullptr, char*** argv = nullptr) {
        int provided = 0;
        detail::mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided),
                          "MPI_Init_thread");
        comm_.emplace();
        set_world(&*comm_);
        MPI_Comm local;
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
        MPI_Comm_size(local, &local_ranks_);
        MPI_Comm_free(&local);
    }
    mpi_session(const mpi_session&) = delete;
    mpi_session& operator=(const mpi_session&) = delete;
    ~mpi_session() {
        set_world(nullptr);
        comm_.reset();
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized)
            MPI_Finalize();
    }
    mpi_communicator& comm() { return *comm_; }
    // Ranks on this machine (to share its cores among them).
    int local_ranks() const { return local_ranks_; }
    // Ends every rank at once: after an error on one rank the others would wait in a collective.
    [[noreturn]] void abort(int code) {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::abort();
    }

  private:
    std::optional<mpi_communicator> comm_;
    int local_ranks_ = 1;
};

} // namespace gptx::dist
#endif // GPTX_HAVE_MPI
