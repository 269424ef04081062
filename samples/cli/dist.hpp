// samples/cli/dist.hpp: the gptx command under mpirun: MPI starts only when a launcher started
// the process, rank 0 alone prints, and the machine's cores are shared among its ranks.
// Tested by tests/dist/test_dist_cli.cpp.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <optional>

#include <CLI/CLI.hpp>
#include <gptx/gptx.hpp>

namespace gptx::cli {

// Under mpirun only these commands split the work; any other would run once per rank and every
// rank would write the same files, so it refuses.
inline void check_runs_under_mpirun(const CLI::App& app) {
    if (world().size() == 1)
        return;
    for (const char* c : {"train", "sft", "rm", "ppo"})
        if (app.got_subcommand(c))
            return;
    throw gptx::error("this command does not run under mpirun (train, sft, rm and ppo do); run it "
                      "as one process");
}

class dist_scope {
  public:
    dist_scope([[maybe_unused]] int& argc, [[maybe_unused]] char**& argv) {
#if defined(GPTX_HAVE_MPI)
        if (!dist::launched_by_mpirun())
            return;
        session_.emplace(&argc, &argv);
        if (world().rank() != 0 && !std::freopen("/dev/null", "w", stdout))
            std::fprintf(stderr, "gptx: rank %d: cannot silence stdout\n", world().rank());
        // Ranks on one machine share its cores unless the user chose (--threads still wins).
        if (!std::getenv("GPTX_NUM_THREADS") && session_->local_ranks() > 1)
            set_num_threads(num_threads() / session_->local_ranks());
#endif
    }
    // After an error: a lone process just returns; a rank of a job ends the whole job, since the
    // other ranks may be waiting for it in a collective.
    void fail() {
#if defined(GPTX_HAVE_MPI)
        if (session_ && world().size() > 1) {
            std::fflush(stdout);
            std::fflush(stderr);
            session_->abort(1);
        }
#endif
    }

  private:
#if defined(GPTX_HAVE_MPI)
    std::optional<dist::mpi_session> session_;
#endif
};

} // namespace gptx::cli
