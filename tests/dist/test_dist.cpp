// Tests for gptx/dist/ and the data-parallel trainer step, run under `mpirun -np 2`: the
// collectives, and N ranks with batch B against one process with batch N*B on the same data,
// with replicated (DDP) and sharded (ZeRO-1) AdamW state.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include <gptx/gptx.hpp>

using namespace gptx;

namespace {

// MPI for the whole test module.
struct mpi_fixture {
    mpi_fixture() { session = std::make_unique<dist::mpi_session>(); }
    ~mpi_fixture() { session.reset(); }
    static inline std::unique_ptr<dist::mpi_session> session;
};

constexpr shape small{64, 4, 2, norm::pre};
using model_t = transformer<small>;
constexpr int V = 48, T = 16;

// Random token rows; row i is the same on every rank.
struct rows {
    std::vector<int> x, y;
    explicit rows(int n, std::uint64_t seed) {
        rng r(seed);
        for (int i = 0; i < n; ++i) {
            std::vector<int> seq(T + 1);
            for (auto& s : seq)
                s = static_cast<int>(r.below(V));
            x.insert(x.end(), seq.begin(), seq.end() - 1);
            y.insert(y.end(), seq.begin() + 1, seq.end());
        }
    }
    lm_batch at(int first, int count) const {
        return {x.data() + first * T, y.data() + first * T, nullptr, count, T};
    }
};

struct run_result {
    std::vector<float> params, m, v; // m, v: the whole state (gathered under ZeRO-1)
    std::vector<double> losses;
    std::size_t state_per_rank = 0;
};

// K steps with a global batch of `global` rows per micro-batch, split over the ranks of comm
// (null: this process alone takes every row). Step k, micro j uses rows starting at
// (k * accum + j) * global.
run_result train(communicator* comm, int zero, int global, int accum, float clip, int K,
                 const rows& data) {
    const int ranks = comm ? comm->size() : 1, rank = comm ? comm->rank() : 0;
    const int B = global / ranks;
    model_t model({V, T});
    model.init(7);
    lm_objective<model_t> obj;
    const adamw_config ocfg{3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
    adamw<float> opt = zero && comm ? dist::make_zero1_adamw(model.params(), ocfg, *comm)
                                    : adamw<float>(model.params(), ocfg);
    trainer tr(model, obj, opt, {accum, clip, [](int it) { return 3e-3f * (1 + it % 3); }, comm});
    run_result r;
    for (int k = 0; k < K; ++k) {
        const auto s =
            tr.step([&](int micro) { return data.at((k * accum + micro) * global + rank * B, B); });
        r.losses.push_back(s.loss);
    }
    r.params.assign(model.params().data(), model.params().data() + model.params().size());
    r.state_per_rank = opt.state_size();
    if (opt.sharded()) {
        const adamw<float> full = dist::gather_adamw(model.params(), opt, *comm);
        if (rank == 0) {
            r.m.assign(full.m().data(), full.m().data() + full.m().size());
            r.v.assign(full.v().data(), full.v().data() + full.v().size());
        }
    } else {
        r.m.assign(opt.m().data(), opt.m().data() + opt.m().size());
        r.v.assign(opt.v().data(), opt.v().data() + opt.v().size());
    }
    BOOST_TEST_REQUIRE(
        (!comm || dist::replicas_identical(model.params().data(), model.params().size(), *comm)));
    return r;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
    BOOST_TEST_REQUIRE(a.size() == b.size());
    double w = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        w = std::max(w, double(std::abs(a[i] - b[i])));
    return w;
}
double max_abs(const std::vector<float>& a) {
    double w = 0;
    for (float x : a)
        w = std::max(w, double(std::abs(x)));
    return w;
}

// clip 0.5 is active on every step (the global norm must be the global batch's); clip 0 leaves
// the gradient's scale to show in m (Adam's update itself hardly depends on it).
void check_equivalence(int zero, int accum, float clip) {
    communicator& comm = world();
    BOOST_TEST_REQUIRE(comm.size() >= 2); // run under mpirun -np 2 (or more)
    const int B = 2, global = B * comm.size(), K = 6;
    const rows data(global * accum * K, 11);
    const run_result dp = train(&comm, zero, global, accum, clip, K, data);
    const run_result one = train(nullptr, 0, global, accum, clip, K, data);
    for (int k = 0; k < K; ++k)
        BOOST_TEST(dp.losses[k] == one.losses[k], boost::test_tools::tolerance(1e-5));
    // Same sums in other orders: float rounding, which Adam turns into up to ~1% of one
    // update (lr <= 9e-3) where a gradient is near zero.
    const double dp_params = max_diff(dp.params, one.params);
    BOOST_TEST_MESSAGE("zero " << zero << ", accum " << accum << ", clip " << clip
                               << ": max |params diff| " << dp_params << " after " << K
                               << " steps");
    BOOST_TEST(dp_params < 1e-4);
    if (comm.rank() == 0) { // m and v are the gradient's moments: relative float rounding
        BOOST_TEST(max_diff(dp.m, one.m) < 1e-4 * max_abs(one.m));
        BOOST_TEST(max_diff(dp.v, one.v) < 1e-4 * max_abs(one.v));
    }
    // The parameters moved: a no-op step would fail the comparison with the start.
    model_t init({V, T});
    init.init(7);
    BOOST_TEST(max_diff(dp.params,
                        std::vector<float>(init.params().data(),
                                           init.params().data() + init.params().size())) > 1e-3);
    const std::size_t n = one.params.size();
    if (zero)
        BOOST_TEST(dp.state_per_rank <= 2 * (n / comm.size() + 16)); // falls by the rank count
    else
        BOOST_TEST(dp.state_per_rank == 2 * n);
}

} // namespace

BOOST_TEST_GLOBAL_FIXTURE(mpi_fixture);

BOOST_AUTO_TEST_SUITE(dist_suite)

BOOST_AUTO_TEST_CASE(shard_ranges_tile_the_array) {
    for (std::size_t n : {0u, 1u, 15u, 16u, 17u, 1000u, 4099u})
        for (int ranks = 1; ranks <= 5; ++ranks) {
            std::size_t next = 0;
            for (int r = 0; r < ranks; ++r) {
                const auto [b, e] = shard_range(n, r, ranks);
                BOOST_TEST(b == next);
                BOOST_TEST(e >= b);
                BOOST_TEST((b % 16 == 0 || b == n));
                next = e;
            }
            BOOST_TEST(next == n);
        }
}

BOOST_AUTO_TEST_CASE(collectives) {
    communicator& comm = world();
    const int R = comm.size(), me = comm.rank();
    BOOST_TEST_REQUIRE(R >= 2);
    for (std::size_t n : {1u, 37u, 1000u}) {
        auto value = [](int r, std::size_t i) { return float(r * 1000 + int(i % 97)); };
        std::vector<float> x(n);
        for (std::size_t i = 0; i < n; ++i)
            x[i] = value(me, i);
        auto sum = [&](std::size_t i) {
            float s = 0;
            for (int r = 0; r < R; ++r)
                s += value(r, i);
            return s;
        };
        std::vector<float> a = x;
        comm.allreduce_sum(a.data(), n);
        for (std::size_t i = 0; i < n; ++i)
            BOOST_TEST(a[i] == sum(i));
        std::vector<float> s = x;
        comm.reduce_scatter_sum(s.data(), n);
        const auto [b, e] = comm.shard(n);
        for (std::size_t i = 0; i < n; ++i)
            BOOST_TEST(s[i] == (i >= b && i < e ? sum(i) : x[i]));
        // Each rank fills only its shard; the gathers assemble them.
        std::vector<float> g(n, -1.0f), h(n, -1.0f);
        for (std::size_t i = b; i < e; ++i)
            g[i] = h[i] = value(me, i);
        comm.allgather_shards(g.data(), n);
        comm.gather_shards(h.data(), n, 0);
        for (int r = 0; r < R; ++r) {
            const auto [rb, re] = shard_range(n, r, R);
            for (std::size_t i = rb; i < re; ++i) {
                BOOST_TEST(g[i] == value(r, i));
                if (me == 0)
                    BOOST_TEST(h[i] == value(r, i));
            }
        }
    }
    double d = me + 1;
    BOOST_TEST(comm.sum(d) == R * (R + 1) / 2.0);
    std::uint64_t tag = me == 0 ? 42u : 7u;
    comm.broadcast(&tag, sizeof tag, 0);
    BOOST_TEST(tag == 42u);
    float mine = float(me);
    BOOST_TEST(dist::replicas_identical(&tag, 1, comm));
    BOOST_TEST(!dist::replicas_identical(&mine, 1, comm));
}

BOOST_AUTO_TEST_CASE(ranks_with_batch_b_equal_one_process_with_the_global_batch) {
    check_equivalence(0, 1, 0.5f);
    check_equivalence(0, 1, 0.0f);
}

BOOST_AUTO_TEST_CASE(zero1_equals_one_process_with_the_global_batch) {
    check_equivalence(1, 1, 0.5f);
    check_equivalence(1, 1, 0.0f);
}

BOOST_AUTO_TEST_CASE(gradient_accumulation_with_and_without_zero1) {
    check_equivalence(0, 2, 0.5f);
    check_equivalence(1, 2, 0.0f);
}

BOOST_AUTO_TEST_CASE(zero1_state_round_trips_through_a_whole_state) {
    communicator& comm = world();
    model_t model({V, T});
    model.init(3);
    adamw<float> shard = dist::make_zero1_adamw(model.params(), {}, comm);
    BOOST_TEST(shard.sharded());
    adamw<float> full(model.params(), {});
    for (std::size_t i = 0; i < full.m().size(); ++i) {
        full.m().data()[i] = float(i);
        full.v().data()[i] = float(2 * i);
    }
    full.set_step_count(9);
    dist::load_adamw_window(shard, full);
    BOOST_TEST(shard.step_count() == 9);
    BOOST_TEST(shard.m().data()[0] == float(shard.shard_begin()));
    const adamw<float> back = dist::gather_adamw(model.params(), shard, comm);
    if (comm.rank() == 0) {
        BOOST_TEST(back.step_count() == 9);
        BOOST_TEST(max_diff(std::vector<float>(back.m().data(), back.m().data() + back.m().size()),
                            std::vector<float>(full.m().data(),
                                               full.m().data() + full.m().size())) == 0.0);
        BOOST_TEST(max_diff(std::vector<float>(back.v().data(), back.v().data() + back.v().size()),
                            std::vector<float>(full.v().data(),
                                               full.v().data() + full.v().size())) == 0.0);
    }
}

BOOST_AUTO_TEST_SUITE_END()
