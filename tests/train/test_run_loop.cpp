// Tests for gptx/train/run_loop.hpp: evaluation and save points, metrics.jsonl lines, resuming
// mid-run, and the error that names the last good checkpoint.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>

#include <gptx/gptx.hpp>

using namespace gptx;
namespace fs = std::filesystem;

namespace {
constexpr shape small{16, 2, 1, norm::pre};
using model_t = transformer<small>;

struct fixture {
    model_t m{{8, 8}};
    lm_objective<model_t> obj;
    adamw<float> opt{m.params()};
    std::vector<int> x{1, 2, 3, 4, 5, 6, 7, 0}, y{2, 3, 4, 5, 6, 7, 0, 1};
    fs::path metrics =
        fs::temp_directory_path() / ("gptx_run_loop_" + std::to_string(::getpid()) + ".jsonl");
    fixture() {
        m.init(1);
        fs::remove(metrics);
    }
    ~fixture() { fs::remove(metrics); }
    lm_batch batch(int) { return {x.data(), y.data(), nullptr, 1, 8}; }
};

std::vector<std::string> lines(const fs::path& p) {
    std::ifstream f(p);
    std::vector<std::string> out;
    for (std::string l; std::getline(f, l);)
        out.push_back(l);
    return out;
}
} // namespace

BOOST_AUTO_TEST_SUITE(run_loop)

BOOST_AUTO_TEST_CASE(evaluates_saves_and_logs_at_the_right_steps) {
    fixture f;
    trainer tr(f.m, f.obj, f.opt, {1, 1.0f, [](int) { return 1e-3f; }});
    std::vector<std::int64_t> evals, saves;
    run_hooks h;
    h.evaluate = [&](std::int64_t s) {
        evals.push_back(s);
        return metrics_map{{"val_loss", 1.5}};
    };
    h.save = [&](std::int64_t s) { saves.push_back(s); };
    run_options o;
    o.iters = 7;
    o.eval_every = 3;
    o.quiet = true;
    o.metrics = f.metrics;
    run_training(
        tr, o, [&](int i) { return f.batch(i); }, h);
    BOOST_TEST(evals == (std::vector<std::int64_t>{0, 3, 6, 7}), boost::test_tools::per_element());
    BOOST_TEST(saves == evals, boost::test_tools::per_element());
    const auto l = lines(f.metrics);
    BOOST_TEST(l.size() == 7u + 4u);
    BOOST_TEST(l[0] == "{\"step\":0,\"val_loss\":1.5}");
    BOOST_TEST(l[1].rfind("{\"step\":1,\"loss\":", 0) == 0u);

    // A trainer resumed at step 5 runs only steps 6 and 7 (no step-0 evaluation).
    evals.clear();
    fixture g;
    trainer tr2(g.m, g.obj, g.opt, {1, 1.0f, [](int) { return 1e-3f; }});
    tr2.set_step_count(5);
    run_training(
        tr2, o, [&](int i) { return g.batch(i); }, h);
    BOOST_TEST(evals == (std::vector<std::int64_t>{6, 7}), boost::test_tools::per_element());
    BOOST_TEST(tr2.step_count() == 7);
}

BOOST_AUTO_TEST_CASE(a_nan_step_names_the_last_good_checkpoint) {
    fixture f;
    trainer tr(f.m, f.obj, f.opt, {1, 1.0f, [](int) { return 1e-3f; }});
    f.m.param(p_wte)[0] = std::numeric_limits<float>::infinity();
    run_options o;
    o.iters = 3;
    o.quiet = true;
    o.checkpoint_name = "run/model.gptx";
    BOOST_CHECK_EXCEPTION(run_training(tr, o, [&](int i) { return f.batch(i); }, {}), gptx::error,
                          [](const gptx::error& e) {
                              const std::string w = e.what();
                              return w.find("step 1: loss is") == 0 &&
                                     w.find("last good checkpoint kept at 'run/model.gptx'") !=
                                         std::string::npos;
                          });
}

BOOST_AUTO_TEST_SUITE_END()
