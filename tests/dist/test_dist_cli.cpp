// Behaviour tests of `mpirun -np 2 gptx train`: the same model as one process with twice the
// batch (with and without --zero 1), rank 0 alone prints and writes, checkpoints resume on a
// different rank count, and an error on the ranks ends the job with the error line.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <gptx/gptx.hpp>

#include "support/cli.hpp"
#include "support/scratch.hpp"

namespace fs = std::filesystem;
using gptx::test::run_result;
using gptx::test::shell;

namespace {

// ranks 0: a plain process (no launcher).
run_result gptx_run(int ranks, const std::string& args) {
    const std::string exe = gptx::test::gptx_path();
    if (ranks == 0)
        return shell(exe + " " + args);
    return shell(std::string(GPTX_MPIEXEC) + " " + GPTX_MPIEXEC_NUMPROC_FLAG + " " +
                 std::to_string(ranks) + " " + exe + " " + args);
}

int count(const std::string& s, const std::string& needle) {
    int k = 0;
    for (auto at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1))
        ++k;
    return k;
}

struct workspace : gptx::test::scratch_dir {
    fs::path text = path / "text.txt";
    workspace() : scratch_dir("dist") { gptx::test::write_training_text(text, 300); }
    // batch rows per rank; the schedule is fixed by --decay-iters so runs of any length agree.
    std::string train(const std::string& out, int batch, int iters,
                      const std::string& extra = "") const {
        return "train --text " + text.string() + " --preset tiny --context 32 --batch " +
               std::to_string(batch) + " --iters " + std::to_string(iters) +
               " --decay-iters 20 --warmup 2 --lr 3e-3 --eval-every 3 --eval-iters 2" +
               " --log-every 1 --threads 1 --out " + (path / out).string() + " " + extra;
    }
};

struct state {
    std::vector<float> params, m, v;
    std::int64_t step = 0;
};
state load(const fs::path& file) {
    gptx::transformer<gptx::presets::tiny> model(gptx::read_checkpoint_info(file).config);
    gptx::adamw<float> opt(model.params());
    gptx::train_state st;
    gptx::load_checkpoint<gptx::presets::tiny>(file, model, &opt, nullptr, &st);
    state s;
    s.params.assign(model.params().data(), model.params().data() + model.params().size());
    s.m.assign(opt.m().data(), opt.m().data() + opt.m().size());
    s.v.assign(opt.v().data(), opt.v().data() + opt.v().size());
    s.step = st.step;
    return s;
}
double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
    BOOST_TEST_REQUIRE(a.size() == b.size());
    double w = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        w = std::max(w, double(std::abs(a[i] - b[i])));
    return w;
}
void expect_close(const state& a, const state& b, const std::string& what) {
    BOOST_TEST(a.step == b.step, what);
    const double dp = max_diff(a.params, b.params), dm = max_diff(a.m, b.m);
    BOOST_TEST_MESSAGE(what << ": max |params diff| " << dp << ", max |m diff| " << dm);
    BOOST_TEST(dp < 5e-5, what);
    BOOST_TEST(dm < 5e-5, what);
    BOOST_TEST(max_diff(a.v, b.v) < 1e-6, what);
}

} // namespace

BOOST_AUTO_TEST_SUITE(dist_cli)

BOOST_AUTO_TEST_CASE(two_ranks_equal_one_process_with_twice_the_batch_and_resume_across) {
    workspace w;
    const run_result one = gptx_run(0, w.train("one", 4, 6));
    BOOST_TEST_REQUIRE(one.code == 0, one.out);
    const state ref = load(w.path / "one" / "model.gptx");

    for (const std::string zero : {"0", "1"}) {
        const std::string out = "dp" + zero;
        const run_result dp = gptx_run(2, w.train(out, 2, 6, "--zero " + zero));
        BOOST_TEST_REQUIRE(dp.code == 0, dp.out);
        BOOST_TEST(dp.out.find("x 2 ranks") != std::string::npos, dp.out);
        // Rank 0 alone prints; tokens/s counts both ranks' rows.
        BOOST_TEST(count(dp.out, "step 6/6") == 1, dp.out);
        BOOST_TEST(count(dp.out, "done: 6 steps") == 1, dp.out);
        expect_close(load(w.path / out / "model.gptx"), ref, "mpirun -np 2 --zero " + zero);
        std::ifstream metrics(w.path / out / "metrics.jsonl");
        int lines = 0;
        for (std::string l; std::getline(metrics, l);)
            ++lines;
        BOOST_TEST(lines == 6 + 3); // 6 steps and evaluations at 0, 3, 6: once, by rank 0
    }

    // Written by 2 ranks under ZeRO-1, resumed by one process (batch 4 = 2 x 2).
    BOOST_TEST_REQUIRE(gptx_run(2, w.train("a", 2, 3, "--zero 1")).code == 0);
    const run_result ra = gptx_run(0, w.train("a", 4, 6, "--resume"));
    BOOST_TEST_REQUIRE(ra.code == 0, ra.out);
    BOOST_TEST(ra.out.find("resumed from") != std::string::npos, ra.out);
    expect_close(load(w.path / "a" / "model.gptx"), ref, "2 ranks (ZeRO-1) then 1 process");

    // Written by one process, resumed by 2 ranks under ZeRO-1.
    BOOST_TEST_REQUIRE(gptx_run(0, w.train("b", 4, 3)).code == 0);
    const run_result rb = gptx_run(2, w.train("b", 2, 6, "--resume --zero 1"));
    BOOST_TEST_REQUIRE(rb.code == 0, rb.out);
    BOOST_TEST(count(rb.out, "resumed from") == 1, rb.out);
    expect_close(load(w.path / "b" / "model.gptx"), ref, "1 process then 2 ranks (ZeRO-1)");
}

// gptx rm goes through the generic trainer: rank r takes every 2nd batch from offset r, so
// 2 ranks train as one process with --grad-accum 2.
BOOST_AUTO_TEST_CASE(rm_on_two_ranks_equals_one_process_accumulating_two_batches) {
    workspace w;
    BOOST_TEST_REQUIRE(gptx_run(0, w.train("lm", 4, 3)).code == 0);
    {
        std::ofstream d(w.path / "cmp.jsonl");
        const char* words[] = {"the", "quick", "brown", "lazy", "time", "nine"};
        for (int i = 0; i < 24; ++i)
            d << "{\"prompt\": \"" << words[i % 6] << " \", \"chosen\": \"fox " << words[i % 5]
              << "\", \"rejected\": \"dog\"}\n";
    }
    auto rm = [&](const std::string& out, const std::string& extra) {
        return "rm --init " + (w.path / "lm").string() + " --data " +
               (w.path / "cmp.jsonl").string() +
               " --val-fraction 0.25 --batch 2 --lr 1e-3 --warmup 1 --decay-iters 8 --iters 4 "
               "--eval-every 4 --log-every 1 --dropout 0 --end-of-text 0 --threads 1 --out " +
               (w.path / out).string() + " " + extra;
    };
    const run_result one = gptx_run(0, rm("rm1", "--grad-accum 2"));
    BOOST_TEST_REQUIRE(one.code == 0, one.out);
    const run_result two = gptx_run(2, rm("rm2", ""));
    BOOST_TEST_REQUIRE(two.code == 0, two.out);
    BOOST_TEST(count(two.out, "done: 4 steps") == 1, two.out);
    auto trunk = [&](const std::string& out) {
        const fs::path f = w.path / out / "model.gptx";
        gptx::transformer<gptx::presets::tiny> m(gptx::read_checkpoint_info(f).config);
        gptx::load_checkpoint<gptx::presets::tiny>(f, m, nullptr, nullptr, nullptr);
        return std::vector<float>(m.params().data(), m.params().data() + m.params().size());
    };
    const auto a = trunk("rm1"), b = trunk("rm2");
    gptx::transformer<gptx::presets::tiny> lm(
        gptx::read_checkpoint_info(w.path / "lm" / "model.gptx").config);
    gptx::load_checkpoint<gptx::presets::tiny>(w.path / "lm" / "model.gptx", lm, nullptr, nullptr,
                                               nullptr);
    const std::vector<float> start(lm.params().data(), lm.params().data() + lm.params().size());
    BOOST_TEST_MESSAGE("rm: max |trunk diff| 2 ranks vs --grad-accum 2: " << max_diff(a, b));
    BOOST_TEST(max_diff(a, b) < 5e-5);
    BOOST_TEST(max_diff(a, start) > 1e-4); // it trained
}

BOOST_AUTO_TEST_CASE(an_error_ends_every_rank_with_its_message) {
    workspace w;
    const run_result r = gptx_run(2, "train --text " + (w.path / "missing.txt").string() +
                                         " --out " + w.path.string());
    BOOST_TEST(r.code != 0, r.out);
    BOOST_TEST(r.out.find("gptx: error: ") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("missing.txt") != std::string::npos, r.out);
    // Commands without data parallelism refuse rather than write the same files from each rank.
    const run_result s = gptx_run(2, "sample --checkpoint " + (w.path / "none").string());
    BOOST_TEST(s.code != 0, s.out);
    BOOST_TEST(s.out.find("does not run under mpirun") != std::string::npos, s.out);
}

BOOST_AUTO_TEST_SUITE_END()
