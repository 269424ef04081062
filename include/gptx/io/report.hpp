// gptx/io/report.hpp: a run's metrics.jsonl files (one run, or a pipeline's *_metrics.jsonl) as
// one self-contained HTML page of SVG charts and summary tables (no script, no external resource).
// Tested by tests/cli/test_report_cli.cpp (gptx report).
#pragma once
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../core/file.hpp"

namespace gptx {

namespace report_detail {

namespace fs = std::filesystem;

// One metrics file: for every key, its values by step (a repeated step keeps the last value).
struct metrics_table {
    std::string name;          // the file name
    std::string xkey = "step"; // or "iteration" (the pipeline's PPO files)
    std::map<std::string, std::map<double, double>> series;
    std::vector<std::string> order; // keys in order of first appearance
    std::size_t records = 0;
    bool torn_tail = false; // the last line was cut off (a run killed mid-write)
};

inline metrics_table read_metrics(const fs::path& file) {
    const std::string all = detail::read_whole_file(file, "metrics file");
    metrics_table t;
    t.name = file.filename().string();
    std::size_t at = 0;
    for (int n = 1; at < all.size(); ++n) {
        std::size_t nl = all.find('\n', at);
        const bool last = nl == std::string::npos;
        if (last)
            nl = all.size();
        std::string line = all.substr(at, nl - at);
        at = nl + 1;
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos)
            continue;
        const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() && last) { // a torn final line: what was complete still counts
            t.torn_tail = true;
            break;
        }
        GPTX_CHECK(!j.is_discarded(), file.string(), ":", n, ": not valid JSON");
        GPTX_CHECK(j.is_object(), file.string(), ":", n, ": expected a JSON object, got ",
                   j.type_name());
        const char* xkey = j.contains("step") ? "step" : "iteration";
        t.xkey = xkey;
        GPTX_CHECK(j.contains(xkey) && j[xkey].is_number(), file.string(), ":", n,
                   ": expected a number \"step\" (or \"iteration\")");
        const double x = j[xkey].get<double>();
        GPTX_CHECK(std::isfinite(x), file.string(), ":", n, ": \"", xkey,
                   "\" is not a finite number");
        for (const auto& [k, v] : j.items()) {
            if (k == "step" || k == "iteration")
                continue;
            if (!v.is_number() && !v.is_null())
                continue; // text fields are not plotted
            if (!t.series.count(k))
                t.order.push_back(k);
            auto& s = t.series[k];
            // JSON has no NaN: the writer stores non-finite values as null.
            if (v.is_null() || !std::isfinite(v.get<double>()))
                s.erase(x);
            else
                s[x] = v.get<double>();
        }
        ++t.records;
    }
    GPTX_CHECK(t.records > 0, file.string(), ": no metrics (the file is empty)");
    return t;
}

// "Nice" tick positions covering [lo, hi]: steps of 1, 2 or 5 times a power of ten.
// Integer data (steps) get integer steps.
inline std::vector<double> nice_ticks(double lo, double hi, bool integer = false, int target = 5) {
    if (!(hi > lo)) { // one value: a band around it, within a double's range
        const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1, big = DBL_MAX;
        lo = std::max(lo - pad, -big);
        hi = std::min(hi + pad, big);
    }
    const double raw = (hi - lo) / target;
    // A range wider than a double holds (values near +-1.8e308) or narrower than its resolution
    // at that magnitude (1e16 to 1e16 + 2): the ends alone, so the loop below always ends.
    if (!std::isfinite(raw) || !(raw > 0) || lo + raw == lo || hi - raw == hi)
        return {lo, hi};
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {1.0, 2.0, 5.0, 10.0})
        if (m * mag >= raw) {
            step = m * mag;
            break;
        }
    if (integer)
        step = std::max(step, 1.0);
    // Indexed, not accumulated: at most target + 2 steps of at least raw fit in [lo, hi].
    const double first = std::floor(lo / step) * step;
    std::vector<double> ticks;
    for (int i = 0; i <= 2 * target + 2; ++i) {
        const double v = first + i * step;
        if (!std::isfinite(v) || v > hi + step * 0.5)
            break;
        ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
    }
    if (ticks.size() < 2)
        return {lo, hi};
    return ticks;
}

inline std::string tick_text(double v, double step) {
    char buf[32];
    const double a = std::abs(step);
    if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3))
        std::snprintf(buf, sizeof buf, "%.2g", v);
    else if (a >= 1)
        std::snprintf(buf, sizeof buf, "%.0f", v);
    else
        std::snprintf(buf, sizeof buf, "%.*f", std::min(6, int(std::ceil(-std::log10(a)))), v);
    return buf;
}

inline std::string escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

inline std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
}

struct chart_series {
    std::string key;
    const std::map<double, double>* points;
};

inline constexpr const char* palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                          "#9467bd", "#8c564b", "#e377c2", "#17becf"};

// One chart: title, axes with ticks and labels, one path per series, a legend for several.
inline std::string svg_chart(const std::string& title, const std::string& xlabel,
                             const std::string& ylabel, const std::vector<chart_series>& series,
                             bool integer_x = true) {
    constexpr double W = 600, H = 300, L = 70, R = 20, T = 52, B = 48;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (const auto& s : series)
        for (const auto& [x, y] : *s.points) {
            x0 = std::min(x0, x), x1 = std::max(x1, x);
            y0 = std::min(y0, y), y1 = std::max(y1, y);
        }
    const std::vector<double> xt = nice_ticks(x0, x1, integer_x), yt = nice_ticks(y0, y1);
    const double xa = std::min(xt.front(), x0), xb = std::max(xt.back(), x1);
    const double ya = std::min(yt.front(), y0), yb = std::max(yt.back(), y1);
    // Halves first: the span of values near +-1.8e308 overflows a double, its half does not.
    auto px = [&](double x) { return L + (x / 2 - xa / 2) / (xb / 2 - xa / 2) * (W - L - R); };
    auto py = [&](double y) { return H - B - (y / 2 - ya / 2) / (yb / 2 - ya / 2) * (H - T - B); };
    std::string s = "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W) +
                    "\" height=\"" + num(H) + "\" viewBox=\"0 0 " + num(W) + " " + num(H) +
                    "\" role=\"img\" aria-label=\"" + escape(title) + "\">\n";
    s += "<title>" + escape(title) + "</title>\n";
    s += "<rect x=\"0\" y=\"0\" width=\"" + num(W) + "\" height=\"" + num(H) +
         "\" fill=\"#fff\"/>\n";
    s += "<text class=\"title\" x=\"" + num(W / 2) +
         "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">" +
         escape(title) + "</text>\n";
    const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1,
                 ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
    for (double v : yt) { // horizontal grid and y ticks
        if (v < ya || v > yb)
            continue;
        s += "<line x1=\"" + num(L) + "\" x2=\"" + num(W - R) + "\" y1=\"" + num(py(v)) +
             "\" y2=\"" + num(py(v)) + "\" stroke=\"#e5e5e5\"/>\n";
        s += "<text class=\"tick\" x=\"" + num(L - 6) + "\" y=\"" + num(py(v) + 4) +
             "\" text-anchor=\"end\" font-size=\"11\">" + tick_text(v, ystep) + "</text>\n";
    }
    for (double v : xt) {
        if (v < xa || v > xb)
            continue;
        s += "<line x1=\"" + num(px(v)) + "\" x2=\"" + num(px(v)) + "\" y1=\"" + num(H - B) +
             "\" y2=\"" + num(H - B + 5) + "\" stroke=\"#333\"/>\n";
        s += "<text class=\"tick\" x=\"" + num(px(v)) + "\" y=\"" + num(H - B + 18) +
             "\" text-anchor=\"middle\" font-size=\"11\">" + tick_text(v, xstep) + "</text>\n";
    }
    s += "<path class=\"axis\" d=\"M" + num(L) + "," + num(T) + " V" + num(H - B) + " H" +
         num(W - R) + "\" fill=\"none\" stroke=\"#333\"/>\n";
    s += "<text class=\"label\" x=\"" + num((L + W - R) / 2) + "\" y=\"" + num(H - 8) +
         "\" text-anchor=\"middle\" font-size=\"12\">" + escape(xlabel) + "</text>\n";
    s += "<text class=\"label\" x=\"16\" y=\"" + num((T + H - B) / 2) +
         "\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 16 " +
         num((T + H - B) / 2) + ")\">" + escape(ylabel) + "</text>\n";
    for (std::size_t i = 0; i < series.size(); ++i) {
        const char* color = palette[i % std::size(palette)];
        const auto& pts = *series[i].points;
        std::string d;
        for (const auto& [x, y] : pts)
            d += (d.empty() ? "M" : " L") + num(px(x)) + "," + num(py(y));
        s += "<path class=\"series\" data-key=\"" + escape(series[i].key) + "\" d=\"" + d +
             "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.6\"/>\n";
        if (pts.size() <= 40) // sparse series (evaluations): mark the points
            for (const auto& [x, y] : pts)
                s += "<circle cx=\"" + num(px(x)) + "\" cy=\"" + num(py(y)) +
                     "\" r=\"2.5\" fill=\"" + color + "\"/>\n";
        if (series.size() > 1) { // a legend row under the title, outside the plot
            double lx = L;
            for (std::size_t k = 0; k < i; ++k)
                lx += 34 + 7 * double(series[k].key.size());
            const double ly = 38;
            s += "<line x1=\"" + num(lx) + "\" x2=\"" + num(lx + 18) + "\" y1=\"" + num(ly) +
                 "\" y2=\"" + num(ly) + "\" stroke=\"" + color + "\" stroke-width=\"2\"/>\n";
            s += "<text class=\"legend\" x=\"" + num(lx + 24) + "\" y=\"" + num(ly + 4) +
                 "\" font-size=\"11\">" + escape(series[i].key) + "</text>\n";
        }
    }
    return s + "</svg>\n";
}

// Charts in a fixed order for the metrics the issue names, then one per remaining key.
struct chart_group {
    const char* title;
    const char* ylabel;
    std::vector<const char*> keys;
};
inline const std::vector<chart_group>& chart_groups() {
    static const std::vector<chart_group> g = {
        {"Loss", "loss", {"loss", "train_loss", "val_loss"}},
        {"Learning rate", "lr", {"lr"}},
        {"Gradient norm (before clipping)", "grad norm", {"grad_norm"}},
        {"Reward-model accuracy (held out)", "accuracy", {"val_accuracy", "accuracy"}},
        {"Reward (PPO) / selection score (SFT)",
         "reward / score",
         {"score", "reward", "best_score"}},
        {"KL to the reference (PPO)", "KL (nats)", {"kl", "kl_exact", "kl_seq", "approx_kl"}},
        {"Entropy (PPO)", "entropy (nats)", {"entropy"}},
        {"Clip fraction (PPO)", "fraction", {"clip_frac", "value_clip_frac"}},
    };
    return g;
}

inline std::string table_html(const metrics_table& t) {
    std::string s =
        "<h2>" + escape(t.name) + "</h2>\n<p>" + std::to_string(t.records) + " records" +
        (t.torn_tail ? "; the last line was incomplete and is left out" : "") + ".</p>\n";
    std::vector<std::string> html;
    std::set<std::string> used;
    for (const auto& g : chart_groups()) {
        std::vector<chart_series> cs;
        for (const char* k : g.keys)
            if (auto it = t.series.find(k); it != t.series.end() && !it->second.empty()) {
                cs.push_back({k, &it->second});
                used.insert(k);
            }
        if (!cs.empty())
            s += svg_chart(g.title, t.xkey, g.ylabel, cs);
    }
    for (const auto& k : t.order)
        if (!used.count(k) && !t.series.at(k).empty())
            s += svg_chart(k, t.xkey, k, {{k, &t.series.at(k)}});
    s += "<table><tr><th>metric</th><th>points</th><th>first</th><th>last</th><th>min</th>"
         "<th>max</th></tr>\n";
    for (const auto& k : t.order) {
        const auto& p = t.series.at(k);
        if (p.empty())
            continue;
        double lo = INFINITY, hi = -INFINITY;
        for (const auto& [x, y] : p)
            lo = std::min(lo, y), hi = std::max(hi, y);
        char row[256];
        std::snprintf(row, sizeof row,
                      "<tr><td>%s</td><td>%zu</td><td>%.6g</td><td>%.6g</td><td>%.6g</td>"
                      "<td>%.6g</td></tr>\n",
                      escape(k).c_str(), p.size(), p.begin()->second, p.rbegin()->second, lo, hi);
        s += row;
    }
    return s + "</table>\n";
}

// Gao et al. (2022)'s over-optimisation curves for the RL files that log both the labeler's
// score of the rollouts (the gold reward) and the RM's: each against the square root of the
// policy's KL to the reference per response (kl_seq), one series per file. Empty without any.
inline std::string overoptimisation_html(const std::vector<metrics_table>& tables) {
    std::vector<std::pair<std::string, std::map<double, double>>> gold, proxy;
    for (const auto& t : tables) {
        const auto kl = t.series.find("kl_seq"), lab = t.series.find("labeler"),
                   rm = t.series.find("score");
        if (kl == t.series.end() || lab == t.series.end() || rm == t.series.end())
            continue;
        const std::string name = t.name.substr(0, t.name.find("_metrics.jsonl"));
        // Iterations at the same KL (a critic's warm-up leaves the policy at 0) share a point:
        // their mean.
        std::map<double, std::pair<double, int>> g, p;
        for (const auto& [it, k] : kl->second) {
            const double x = std::sqrt(std::max(0.0, k));
            if (auto a = lab->second.find(it); a != lab->second.end())
                g[x].first += a->second, ++g[x].second;
            if (auto b = rm->second.find(it); b != rm->second.end())
                p[x].first += b->second, ++p[x].second;
        }
        auto means = [](const std::map<double, std::pair<double, int>>& m) {
            std::map<double, double> out;
            for (const auto& [x, sn] : m)
                out[x] = sn.first / sn.second;
            return out;
        };
        gold.emplace_back(name, means(g));
        proxy.emplace_back(name, means(p));
    }
    if (gold.empty())
        return "";
    auto chart = [](const char* title, const char* ylabel, const auto& sets) {
        std::vector<chart_series> cs;
        for (const auto& [k, pts] : sets)
            if (!pts.empty())
                cs.push_back({k, &pts});
        return cs.empty() ? std::string()
                          : svg_chart(title, "sqrt(KL to SFT per response)", ylabel, cs, false);
    };
    return "<h2>Over-optimisation (Gao et al. 2022)</h2>\n<p>Each point is one iteration's "
           "rollouts: the labeler's mean score (the gold reward) and the reward model's mean "
           "score (the proxy the policy optimises), against the square root of the policy's KL "
           "to the SFT model per response.</p>\n" +
           chart("Labeler score (gold) vs sqrt KL", "labeler score", gold) +
           chart("Reward-model score (proxy) vs sqrt KL", "RM score", proxy);
}

} // namespace report_detail

using report_detail::metrics_table;
using report_detail::read_metrics;

// The metrics files of a run folder: metrics.jsonl, then a pipeline's *_metrics.jsonl in the
// order of its stages, then any others by name.
inline std::vector<std::filesystem::path> report_files(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    GPTX_CHECK(fs::is_directory(dir, ec), "'", dir.string(),
               "' is not a folder (expected a run "
               "folder with metrics.jsonl)");
    std::vector<fs::path> files;
    if (fs::exists(dir / "metrics.jsonl"))
        files.push_back(dir / "metrics.jsonl");
    std::vector<fs::path> stages; // a pipeline folder: pretrain_metrics.jsonl, sft_metrics.jsonl...
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string n = e.path().filename().string();
        if (n.size() > 14 && n.ends_with("_metrics.jsonl"))
            stages.push_back(e.path());
    }
    auto rank = [](const fs::path& p) {
        const std::string n = p.filename().string();
        const char* order[] = {"pretrain_", "sft_", "rm_", "ppo_metrics", "ppo_ptx_"};
        for (int i = 0; i < 5; ++i)
            if (n.starts_with(order[i]))
                return i;
        return 5;
    };
    std::sort(stages.begin(), stages.end(), [&](const fs::path& a, const fs::path& b) {
        return std::pair(rank(a), a.filename()) < std::pair(rank(b), b.filename());
    });
    files.insert(files.end(), stages.begin(), stages.end());
    GPTX_CHECK(!files.empty(), (dir / "metrics.jsonl").string(),
               ": no such file (gptx train, sft, rm and ppo write it into their --out folder)");
    return files;
}

// The page for the metrics files of run folder `dir`; an empty title names the folder.
struct report {
    std::string html;
    std::size_t charts = 0;
    std::vector<std::filesystem::path> files;
};
inline report build_report(const std::filesystem::path& dir, const std::string& title = "") {
    namespace fs = std::filesystem;
    using namespace report_detail;
    report r;
    r.files = report_files(dir);
    std::vector<metrics_table> tables;
    for (const auto& f : r.files)
        tables.push_back(read_metrics(f));
    const std::string name =
        title.empty() ? "gptx run: " + fs::absolute(dir).lexically_normal().filename().string()
                      : title;
    std::string& html = r.html;
    html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           "<title>" +
           escape(name) +
           "</title>\n<style>\n"
           "body{font-family:sans-serif;margin:24px;color:#222;max-width:1340px}\n"
           "svg.chart{margin:6px;border:1px solid #ddd;vertical-align:top}\n"
           "table{border-collapse:collapse;margin:12px 6px}\n"
           "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\n"
           "td:first-child,th:first-child{text-align:left}\n"
           "</style>\n</head>\n<body>\n<h1>" +
           escape(name) + "</h1>\n<p>From " +
           escape(fs::absolute(dir).lexically_normal().string()) + ".</p>\n";
    html += overoptimisation_html(tables);
    for (const auto& t : tables)
        html += table_html(t);
    html += "</body>\n</html>\n";
    for (std::size_t at = 0; (at = html.find("<svg", at)) != std::string::npos; ++at)
        ++r.charts;
    return r;
}

} // namespace gptx
