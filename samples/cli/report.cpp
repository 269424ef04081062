// samples/cli/report.cpp: `gptx report DIR`, a run's metrics.jsonl as one self-contained HTML page
// of SVG charts, built by include/gptx/io/report.hpp. Tested by tests/cli/test_report_cli.cpp.
#include <cstdio>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>

#include <gptx/io/report.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace gptx::cli {

struct report_options {
    std::string dir, out;
    std::string title;
};

inline void add_report_command(CLI::App& app, report_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand(
        "report", "Turn a run folder's metrics.jsonl into one HTML page of SVG charts");
    c->add_option("dir", o.dir,
                  "Run folder with metrics.jsonl (or a pipeline folder with *_metrics.jsonl)")
        ->required();
    c->add_option("--out", o.out, "The HTML file (default: DIR/report.html)");
    c->add_option("--title", o.title, "Page title (default: the folder's name)");
    c->callback([&] { run(); });
}

inline void run_report(const report_options& o) {
    const fs::path dir = o.dir;
    const report r = build_report(dir, o.title);
    const fs::path out = o.out.empty() ? dir / "report.html" : fs::path(o.out);
    // Overwrites an earlier report, never another kind of file (a checkpoint, a metrics file).
    std::error_code ec;
    if (fs::is_regular_file(out, ec) && fs::file_size(out, ec) > 0) {
        std::ifstream in(out, std::ios::binary);
        std::string head(15, '\0');
        in.read(head.data(), std::streamsize(head.size()));
        GPTX_CHECK(head == "<!DOCTYPE html>", o.out.empty() ? "'" : "--out '", out.string(),
                   o.out.empty() ? "' (the default --out)" : "'",
                   " exists and is not an HTML report; give another path");
    }
    gptx::detail::write_whole_file(out, r.html);
    std::printf("gptx report: %zu charts from %zu file%s -> %s\n", r.charts, r.files.size(),
                r.files.size() == 1 ? "" : "s", out.string().c_str());
}

void add_report_command(commands& cmds) { cmds.add(add_report_command, run_report); }

} // namespace gptx::cli
