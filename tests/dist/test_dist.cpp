// Tests for gptx/dist/ and the data-parallel trainer step, run under `mpirun -np 2`: the
// collectives, and N ranks with batch B against one process with batch N*B on the same data,
// with replicated (DDP) and sharded (ZeRO-1) AdamW state.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include <gptx/gptx.hpp>

#include "support/shapes.hpp"

using namespace gptx;

namespace {

// MPI for the whole test module.
struct mpi_fixture {
    mpi_fixture() { session = std::make_unique<dist::mpi_session>(); }
    ~mpi_fixture() { session.reset(); }
    static inline std::unique_ptr<dist::mpi_session> session;
};

constexpr shape small = test::shapes::tiny;
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
        std::vector<float> g(n, -1.0f), h(n, -1.0f), mine;
        for (std::size_t i = b; i < e; ++i) {
            g[i] = value(me, i);
            mine.push_back(value(me, i));
        }
        comm.allgather_shards(g.data(), n);
        comm.gather_shards(mine.data(), h.data(), n, 0);
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

BOOST_AUTO_TEST_CASE(advantages_are_whitened_over_the_global_batch) {
    communicator& comm = world();
    const int R = comm.size(), me = comm.rank();
    // Rank r holds 3 + r values (uneven, as PPO's token counts are); the result must be the
    // one-process whitening of all of them, concatenated in rank order.
    std::vector<double> all;
    std::vector<std::size_t> first;
    for (int r = 0; r < R; ++r) {
        first.push_back(all.size());
        for (int i = 0; i < 3 + r; ++i)
            all.push_back(double(r) * 2.5 + 0.7 * i * i - 1.0);
    }
    std::vector<double> mine(all.begin() + std::ptrdiff_t(first[std::size_t(me)]),
                             all.begin() + std::ptrdiff_t(first[std::size_t(me)]) + 3 + me);
    whiten(all.data(), all.size());
    whiten(mine.data(), mine.size(), comm);
    for (int i = 0; i < 3 + me; ++i)
        BOOST_TEST(mine[std::size_t(i)] == all[first[std::size_t(me)] + std::size_t(i)],
                   boost::test_tools::tolerance(1e-12));
    // A local whitening would differ: each rank's values alone have mean 0.
    double local_mean = 0;
    for (double v : mine)
        local_mean += v;
    BOOST_TEST(std::abs(local_mean / double(mine.size())) > 1e-3);
}

namespace {
constexpr shape toy = test::shapes::toy;
using toy_t = transformer<toy>;
// The toy reward: how many times token 3 occurs in the response (after the 2 prompt tokens).
std::vector<float> count_threes(const int* tokens, int B, int T, const int* ends, const int*) {
    std::vector<float> s(std::size_t(B), 0.0f);
    for (int b = 0; b < B; ++b)
        for (int t = 2; t < ends[b]; ++t)
            s[std::size_t(b)] += tokens[b * T + t] == 3 ? 1.0f : 0.0f;
    return s;
}
} // namespace

// keep > 0: each rank trains on its own rollouts with the largest advantages; the share they hold
// is the global batch's, the same on every rank.
void check_ppo_ranks(int keep) {
    communicator& comm = world();
    toy_t policy({6, 16}), ref({6, 16}), value({6, 16});
    policy.init(11);
    ref.init(11);
    value.init(12);
    linear_head<float> head(16, 1);
    head.init(13);
    std::vector<int> ptx;
    rng r(14);
    for (int i = 0; i < 400; ++i)
        ptx.push_back(1 + int(r.below(5)));
    ppo_config c;
    c.end_of_text = 0;
    c.rollouts = 16;
    c.max_new_tokens = 8;
    c.epochs = 2;
    c.minibatch = 8;
    c.lr = 3e-3f;
    c.kl_coef = 0.01;
    c.kl_target = 1.0; // adaptive: beta must follow the global KL on every rank
    c.ema_decay = 0.9;
    c.ptx_coef = 0.5;
    c.seed = 21;
    c.keep = keep;
    c.comm = &comm;
    ppo_trainer<toy_t> tr(policy, ref, value, head, count_threes, {{1, 2}, {2, 4}, {5, 1}, {4, 4}},
                          c, ptx);
    for (int i = 0; i < 3; ++i) {
        const ppo_metrics m = tr.iteration();
        double global[4] = {m.score, m.kl_seq, m.beta, m.kept_advantage};
        BOOST_TEST(dist::replicas_identical(global, 4, comm)); // global-batch statistics
        BOOST_TEST(m.updates + m.skipped == 4); // 2 epochs of 2 minibatches (16 or 10 rows)
        BOOST_TEST((keep == 0 ? m.kept_advantage == 1.0 : m.kept_advantage < 1.0));
    }
    BOOST_TEST(dist::replicas_identical(policy.params().data(), policy.params().size(), comm));
    BOOST_TEST(dist::replicas_identical(value.params().data(), value.params().size(), comm));
    BOOST_TEST(dist::replicas_identical(tr.policy_ema()->shadow().data(),
                                        tr.policy_ema()->shadow().size(), comm));
    const auto st = tr.state();
    BOOST_TEST(!dist::replicas_identical(st.sampler_rng.data(), st.sampler_rng.size(), comm));
    // The parameters moved.
    toy_t start({6, 16});
    start.init(11);
    BOOST_TEST(!std::equal(start.params().data(), start.params().data() + start.params().size(),
                           policy.params().data()));
}

BOOST_AUTO_TEST_CASE(ppo_ranks_sample_their_own_rollouts_and_stay_identical) { check_ppo_ranks(0); }

BOOST_AUTO_TEST_CASE(ppo_ranks_keep_their_largest_advantages_and_stay_identical) {
    check_ppo_ranks(10);
}

BOOST_AUTO_TEST_SUITE_END()
