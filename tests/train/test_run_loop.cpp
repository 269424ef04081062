// Tests for gptx/train/run_loop.hpp: evaluation and save points, metrics.jsonl lines, resuming
// mid-run (and trimming the metrics to the checkpoint), the stop on a signal, and the error that
// names the last good checkpoint.
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>

#include <gptx/gptx.hpp>

#include "support/scratch.hpp"
#include "support/shapes.hpp"

using namespace gptx;
namespace fs = std::filesystem;

namespace {
using test::shapes::toy;
using loop_model_t = transformer<toy>;

struct fixture {
    loop_model_t m{{8, 8}};
    lm_objective<loop_model_t> obj;
    adamw<float> opt{m.params()};
    std::vector<int> x{1, 2, 3, 4, 5, 6, 7, 0}, y{2, 3, 4, 5, 6, 7, 0, 1};
    gptx::test::scratch_dir scratch{"run_loop"};
    fs::path metrics = scratch / "metrics.jsonl";
    fixture() { m.init(1); }
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
    trainer tr(f.m, f.obj, f.opt,
               {.grad_accum = 1, .grad_clip = 1.0f, .lr = [](int) { return 1e-3f; }});
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
    trainer tr2(g.m, g.obj, g.opt,
                {.grad_accum = 1, .grad_clip = 1.0f, .lr = [](int) { return 1e-3f; }});
    tr2.set_step_count(5);
    run_training(
        tr2, o, [&](int i) { return g.batch(i); }, h);
    BOOST_TEST(evals == (std::vector<std::int64_t>{6, 7}), boost::test_tools::per_element());
    BOOST_TEST(tr2.step_count() == 7);
}

BOOST_AUTO_TEST_CASE(a_nan_step_names_the_last_good_checkpoint) {
    // Named when it exists; when the run has written none, the error says so instead.
    test::scratch_dir dir("nan_step");
    const fs::path ckpt = dir.path / "model.gptx";
    for (const bool exists : {false, true}) {
        if (exists)
            std::ofstream(ckpt) << "a checkpoint";
        fixture f;
        trainer tr(f.m, f.obj, f.opt,
                   {.grad_accum = 1, .grad_clip = 1.0f, .lr = [](int) { return 1e-3f; }});
        f.m.param(p_wte)[0] = std::numeric_limits<float>::infinity();
        run_options o;
        o.iters = 3;
        o.quiet = true;
        o.checkpoint_name = ckpt.string();
        const std::string kept = exists ? "last good checkpoint kept at '" + ckpt.string() + "'"
                                        : "(no checkpoint was written)";
        BOOST_CHECK_EXCEPTION(run_training(tr, o, [&](int i) { return f.batch(i); }, {}),
                              gptx::error, [&](const gptx::error& e) {
                                  const std::string w = e.what();
                                  return w.find("step 1: loss is") == 0 &&
                                         w.find(kept) != std::string::npos;
                              });
    }
}

BOOST_AUTO_TEST_CASE(a_signal_between_steps_saves_once_and_throws_interrupted) {
    for (const std::int64_t at : {3, 5}) { // 5 is an evaluation point: already saved there
        fixture f;
        trainer tr(f.m, f.obj, f.opt,
                   {.grad_accum = 1, .grad_clip = 1.0f, .lr = [](int) { return 1e-3f; }});
        std::vector<std::int64_t> saves;
        run_hooks h;
        h.evaluate = [&](std::int64_t) { return metrics_map{{"val_loss", 1.0}}; };
        h.save = [&](std::int64_t s) { saves.push_back(s); };
        h.on_step = [&](const step_metrics& s) {
            if (s.step == at)
                request_interrupt(SIGTERM); // as the handler does
        };
        run_options o;
        o.iters = 10;
        o.eval_every = 5;
        o.quiet = true;
        o.checkpoint_name = "run/model.gptx";
        BOOST_CHECK_EXCEPTION(
            run_training(
                tr, o, [&](int i) { return f.batch(i); }, h),
            gptx::interrupted, [&](const gptx::interrupted& e) {
                BOOST_TEST(e.what() == "interrupted by SIGTERM after step " + std::to_string(at) +
                                           ": checkpoint saved to 'run/model.gptx'");
                return e.step() == at && e.exit_code() == 143;
            });
        BOOST_TEST(saves == (std::vector<std::int64_t>{0, at}), boost::test_tools::per_element());
        BOOST_TEST(tr.step_count() == at);
        // Still set: the next run_training's guard clears it (the second pass shows it does).
        BOOST_TEST(interrupt_requested() == SIGTERM);
    }
}

BOOST_AUTO_TEST_CASE(a_resumed_run_drops_metrics_after_its_checkpoint) {
    fixture f;
    {
        std::ofstream m(f.metrics);
        for (int s = 0; s <= 8; ++s)
            m << "{\"step\":" << s << ",\"loss\":1}\n";
        m << "{\"step\":9,\"lo"; // torn by a kill
    }
    trainer tr(f.m, f.obj, f.opt,
               {.grad_accum = 1, .grad_clip = 1.0f, .lr = [](int) { return 1e-3f; }});
    tr.set_step_count(5); // the checkpoint's step
    run_options o;
    o.iters = 7;
    o.eval_every = 100;
    o.quiet = true;
    o.metrics = f.metrics;
    run_hooks h;
    h.evaluate = [](std::int64_t) { return metrics_map{{"val_loss", 2.0}}; };
    run_training(
        tr, o, [&](int i) { return f.batch(i); }, h);
    const auto l = lines(f.metrics);
    BOOST_TEST_REQUIRE(l.size() == 6u + 2u + 1u); // steps 0..5 kept, 6 and 7, the final evaluation
    BOOST_TEST(l[5] == "{\"step\":5,\"loss\":1}");
    BOOST_TEST(l[6].rfind("{\"step\":6,\"loss\":", 0) == 0u);
    BOOST_TEST(l[8] == "{\"step\":7,\"val_loss\":2}");
}

BOOST_AUTO_TEST_SUITE_END()
