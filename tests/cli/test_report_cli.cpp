// Behaviour tests of `gptx report`: a real training run's metrics and PPO/RM metrics become one
// self-contained HTML page of SVG charts; headless Chromium renders it (skipped, with a message,
// when Debian's chromium is not installed); bad input gives one-line errors.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/cli.hpp"
#include "support/scratch.hpp"

namespace fs = std::filesystem;
namespace utf = boost::unit_test;
using gptx::test::run_gptx;
using gptx::test::run_result;
using gptx::test::shell;
using gptx::test::slurp;

namespace {

int count(const std::string& s, const std::string& what) {
    int n = 0;
    for (std::size_t at = 0; (at = s.find(what, at)) != std::string::npos; at += what.size())
        ++n;
    return n;
}

// Points in the plotted path of the series `key` ("M x,y L x,y ..."), 0 if absent.
int path_points(const std::string& html, const std::string& key) {
    const auto at = html.find("class=\"series\" data-key=\"" + key + "\" d=\"");
    if (at == std::string::npos)
        return 0;
    const auto d = html.find("d=\"", at) + 3;
    const std::string path = html.substr(d, html.find('"', d) - d);
    return path.empty() ? 0 : 1 + count(path, " L");
}

struct report_workspace : gptx::test::scratch_dir {
    report_workspace() : scratch_dir("report") {}

    // A real training run (metrics.jsonl) plus PPO and RM metrics as gptx ppo and rm write them.
    fs::path make_run() {
        const fs::path text = path / "text.txt";
        {
            std::ofstream f(text);
            for (int i = 0; i < 300; ++i)
                f << "to be or not to be, that is the question.\n";
        }
        const fs::path run = path / "run";
        const auto t = run_gptx("train --text " + text.string() +
                                " --preset tiny --context 32 --batch 4 --iters 30 --warmup 3 "
                                "--eval-every 10 --eval-iters 1 --threads 2 --out " +
                                run.string());
        BOOST_TEST_REQUIRE(t.code == 0, t.out);
        std::ofstream ppo(run / "ppo_metrics.jsonl");
        for (int i = 1; i <= 12; ++i)
            ppo << "{\"step\":" << i << ",\"score\":" << 0.1 * i << ",\"kl\":" << 0.01 * i
                << ",\"entropy\":" << 2.0 - 0.05 * i << ",\"reward\":" << 0.1 * i - 0.002 * i
                << ",\"clip_frac\":" << 0.2 / i << "}\n";
        std::ofstream rm(run / "rm_metrics.jsonl");
        for (int i = 0; i <= 40; i += 10)
            rm << "{\"step\":" << i << ",\"val_loss\":" << 0.69 - 0.01 * i
               << ",\"val_accuracy\":" << 0.5 + 0.005 * i << "}\n";
        return run;
    }
};

bool have_chromium() { return std::system("command -v chromium > /dev/null 2>&1") == 0; }

struct chromium_present {
    boost::test_tools::assertion_result operator()(utf::test_unit_id) const {
        boost::test_tools::assertion_result r(have_chromium());
        r.message() << "needs chromium (tools/setup.sh installs Debian's chromium package)";
        return r;
    }
};

std::string chromium(const fs::path& profile, const std::string& what) {
    return "timeout 600 chromium --headless --no-sandbox --disable-gpu --disable-quic "
           "--no-first-run --disable-background-networking --disable-component-update "
           "--disable-sync --user-data-dir=" +
           profile.string() + " " + what;
}

} // namespace

BOOST_AUTO_TEST_SUITE(report)

BOOST_AUTO_TEST_CASE(metrics_become_one_self_contained_page_of_svg_charts) {
    report_workspace w;
    const fs::path run = w.make_run();
    const auto r = run_gptx("report " + run.string());
    BOOST_TEST_REQUIRE(r.code == 0, r.out);
    BOOST_TEST(r.out.find("-> " + (run / "report.html").string()) != std::string::npos, r.out);
    const std::string html = slurp(run / "report.html");
    for (const char* title :
         {"<title>Loss</title>", "<title>Learning rate</title>",
          "<title>Gradient norm (before clipping)</title>",
          "<title>Reward (PPO) / selection score (SFT)</title>",
          "<title>KL to the reference (PPO)</title>", "<title>Entropy (PPO)</title>",
          "<title>Clip fraction (PPO)</title>", "<title>Reward-model accuracy (held out)</title>"})
        BOOST_TEST(html.find(title) != std::string::npos, title);
    // Each chart has axes, ticks and labels; the training series has a point per step.
    const int charts = count(html, "<svg class=\"chart\"");
    BOOST_TEST(charts >= 8);
    BOOST_TEST(count(html, "<path class=\"axis\"") == charts);
    BOOST_TEST(count(html, ">step</text>") == charts);
    BOOST_TEST(count(html, "class=\"tick\"") >= 4 * charts);
    BOOST_TEST(path_points(html, "loss") == 30);
    BOOST_TEST(path_points(html, "lr") == 30);
    BOOST_TEST(path_points(html, "grad_norm") == 30);
    BOOST_TEST(path_points(html, "val_loss") == 4); // evaluations at 0, 10, 20, 30
    BOOST_TEST(path_points(html, "kl") == 12);
    BOOST_TEST(path_points(html, "clip_frac") == 12);
    BOOST_TEST(path_points(html, "val_accuracy") == 5);
    // Self-contained: nothing to fetch, nothing to run.
    BOOST_TEST(html.find("<script") == std::string::npos);
    BOOST_TEST(html.find("<link") == std::string::npos);
    BOOST_TEST(html.find("src=") == std::string::npos);
    BOOST_TEST(html.find("url(") == std::string::npos);

    // --out elsewhere, a torn last line (a killed run) is left out and said so.
    {
        std::ofstream f(run / "metrics.jsonl", std::ios::app);
        f << "{\"step\":31,\"lo";
    }
    const auto r2 = run_gptx("report " + run.string() + " --out " + (w.path / "r.html").string());
    BOOST_TEST_REQUIRE(r2.code == 0, r2.out);
    BOOST_TEST(slurp(w.path / "r.html").find("last line was incomplete") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_pipeline_folder_gets_overoptimisation_curves_against_sqrt_kl) {
    report_workspace w;
    const fs::path dir = w.path / "pipeline";
    fs::create_directories(dir);
    // PPO and PPO-ptx as gptx pipeline logs them: per iteration the RM's score, the labeler's
    // and the KL per response; the labeler rises then falls as the KL grows (over-optimisation).
    for (const char* name : {"ppo_metrics.jsonl", "ppo_ptx_metrics.jsonl"}) {
        std::ofstream f(dir / name);
        for (int i = 1; i <= 9; ++i)
            f << "{\"iteration\":" << i << ",\"score\":" << 0.5 * i << ",\"kl_seq\":" << i * i
              << ",\"labeler\":" << 0.5 + 0.05 * i - 0.006 * i * i << "}\n";
    }
    std::ofstream(dir / "sft_metrics.jsonl") << "{\"step\":1,\"loss\":2.0}\n";
    BOOST_TEST_REQUIRE(run_gptx("report " + dir.string()).code == 0);
    const std::string html = slurp(dir / "report.html");
    BOOST_TEST(html.find("<title>Labeler score (gold) vs sqrt KL</title>") != std::string::npos);
    BOOST_TEST(html.find("<title>Reward-model score (proxy) vs sqrt KL</title>") !=
               std::string::npos);
    BOOST_TEST(count(html, ">sqrt(KL to SFT per response)</text>") == 2);
    // One series per RL file in each chart, a point per iteration; the x axis is sqrt(KL): the
    // ticks run 1 .. 9 for KL 1 .. 81, not 0 .. 80.
    BOOST_TEST(path_points(html, "ppo") == 9);
    BOOST_TEST(path_points(html, "ppo_ptx") == 9);
    const auto chart = html.find("<title>Labeler score (gold) vs sqrt KL</title>");
    const std::string first = html.substr(chart, html.find("</svg>", chart) - chart);
    BOOST_TEST(first.find(">8</text>") != std::string::npos);
    BOOST_TEST(first.find(">80</text>") == std::string::npos);
    // Without such files (the run of make_run): no such section.
    const fs::path run = w.make_run();
    BOOST_TEST_REQUIRE(run_gptx("report " + run.string()).code == 0);
    BOOST_TEST(slurp(run / "report.html").find("Over-optimisation") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_metrics_give_one_line_errors) {
    report_workspace w;
    auto expect_error = [](const run_result& r, const std::string& needle) {
        BOOST_TEST(r.code == 1, r.out);
        BOOST_TEST(r.out.find("gptx: error: " + needle) != std::string::npos, r.out);
        BOOST_TEST(count(r.out, "\n") == 1, r.out);
    };
    expect_error(run_gptx("report " + (w.path / "nope").string()),
                 "'" + (w.path / "nope").string());
    expect_error(run_gptx("report " + w.path.string()),
                 (w.path / "metrics.jsonl").string() + ": no such file");
    std::ofstream(w.path / "metrics.jsonl").close();
    expect_error(run_gptx("report " + w.path.string()),
                 (w.path / "metrics.jsonl").string() + ": no metrics");
    std::ofstream(w.path / "metrics.jsonl") << "{\"step\":1,\"loss\":2}\nnot json\n{\"step\":2}\n";
    expect_error(run_gptx("report " + w.path.string()),
                 (w.path / "metrics.jsonl").string() + ":2: not valid JSON");
    std::ofstream(w.path / "metrics.jsonl") << "{\"loss\":2}\n";
    expect_error(run_gptx("report " + w.path.string()),
                 (w.path / "metrics.jsonl").string() + ":1: expected a number \"step\"");
    BOOST_TEST(!fs::exists(w.path / "report.html")); // never a half-written page
    fs::remove(w.path / "metrics.jsonl");
    fs::create_directory(w.path / "metrics.jsonl");
    expect_error(run_gptx("report " + w.path.string()), "cannot read metrics file '" +
                                                            (w.path / "metrics.jsonl").string() +
                                                            "': it is a directory");
}

// Values at the ends of a double's range (a diverged run) still make a page: the axes' ticks
// neither overflow (a crash) nor stall where a step no longer moves the value (a hang).
BOOST_AUTO_TEST_CASE(extreme_values_still_make_a_page) {
    for (const std::string lines :
         {"{\"step\":1,\"loss\":1e308}\n{\"step\":2,\"loss\":-1e308}\n",
          "{\"step\":1,\"loss\":1.7e308}\n{\"step\":2,\"loss\":1}\n",
          "{\"step\":-9e307,\"loss\":1}\n{\"step\":9e307,\"loss\":2}\n",
          "{\"step\":1,\"loss\":1e16}\n{\"step\":2,\"loss\":1.0000000000000002e16}\n",
          "{\"step\":1,\"loss\":1.7e308}\n{\"step\":2,\"loss\":1.7e308}\n"}) {
        report_workspace w;
        std::ofstream(w.path / "metrics.jsonl") << lines;
        const run_result r = run_gptx("report " + w.path.string());
        BOOST_TEST(r.code == 0, lines << r.out);
        const std::string html = slurp(w.path / "report.html");
        BOOST_TEST(html.find("<svg") != std::string::npos, lines);
        // Every coordinate and tick finite: no "nan" or "inf" printed into the charts.
        for (const char* bad : {"nan", "inf"})
            BOOST_TEST(html.find(bad) == std::string::npos, lines << " prints " << bad);
    }
}

// --out never replaces what is not a report: a checkpoint, a folder, a device or pipe.
BOOST_AUTO_TEST_CASE(the_page_overwrites_only_an_earlier_page) {
    report_workspace w;
    const fs::path run = w.make_run();
    const fs::path ckpt = run / "model.gptx", fifo = w.path / "pipe";
    const std::string before = slurp(ckpt);
    auto refused = [&](const fs::path& out, const std::string& needle) {
        const run_result r = run_gptx("report " + run.string() + " --out " + out.string());
        BOOST_TEST(r.code == 1, r.out);
        BOOST_TEST(r.out.find("gptx: error: ") != std::string::npos, r.out);
        BOOST_TEST(r.out.find(needle) != std::string::npos, r.out);
    };
    refused(ckpt, "exists and is not an HTML report");
    BOOST_TEST((slurp(ckpt) == before));
    refused(w.path, "not a regular file (a folder)");
    BOOST_TEST_REQUIRE(shell("mkfifo " + fifo.string()).code == 0);
    refused(fifo, "not a regular file (a device, socket or pipe)");
    BOOST_TEST(fs::is_fifo(fifo));
    BOOST_TEST(run_gptx("report " + run.string()).code == 0);
    BOOST_TEST(run_gptx("report " + run.string()).code == 0); // its own page, again
}

// Label "browser": its own CTest test (cli_browser), Skipped when Chromium is absent.
BOOST_AUTO_TEST_CASE(headless_chromium_renders_the_charts,
                     *utf::label("browser") * utf::precondition(chromium_present())) {
    report_workspace w;
    const fs::path run = w.make_run();
    BOOST_TEST_REQUIRE(run_gptx("report " + run.string()).code == 0);
    const fs::path page = run / "report.html";
    const auto dom = shell(chromium(w.path / "profile1", "--dump-dom file://" + page.string()));
    BOOST_TEST_REQUIRE(dom.code == 0, dom.out);
    // The DOM the browser built: the charts as SVG elements with their plotted paths.
    BOOST_TEST(count(dom.out, "<svg class=\"chart\"") >= 8, dom.out.substr(0, 2000));
    BOOST_TEST(path_points(dom.out, "loss") == 30);
    BOOST_TEST(path_points(dom.out, "kl") == 12);
    BOOST_TEST(path_points(dom.out, "val_accuracy") == 5);
    // And pixels: a screenshot of the page is a PNG with far more in it than a blank page.
    const fs::path png = w.path / "report.png";
    const auto shot =
        shell(chromium(w.path / "profile2", "--hide-scrollbars --window-size=1360,2400 "
                                            "--screenshot=" +
                                                png.string() + " file://" + page.string()));
    BOOST_TEST_REQUIRE(fs::exists(png), shot.out);
    const std::string bytes = slurp(png);
    BOOST_TEST(bytes.substr(1, 3) == "PNG");
    BOOST_TEST(bytes.size() > 30000u, "a " << bytes.size() << "-byte screenshot looks blank");
}

BOOST_AUTO_TEST_SUITE_END()
