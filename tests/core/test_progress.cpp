// Tests for gptx/core/progress.hpp (the strings, the TTY bar and the plain-line fallback, with a
// fake clock) and gptx/core/interrupt.hpp (the flag a real signal sets).
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <cstdio>
#include <string>

#include <gptx/core/interrupt.hpp>
#include <gptx/core/progress.hpp>

using namespace gptx;

namespace {

// A FILE* whose contents the test reads back.
struct capture {
    std::FILE* f = std::tmpfile();
    ~capture() { std::fclose(f); }
    std::string text() {
        std::fflush(f);
        std::rewind(f);
        std::string s;
        for (int c; (c = std::fgetc(f)) != EOF;)
            s += char(c);
        return s;
    }
};

int count(const std::string& s, const std::string& what) {
    int n = 0;
    for (std::size_t at = 0; (at = s.find(what, at)) != std::string::npos; at += what.size())
        ++n;
    return n;
}

} // namespace

BOOST_AUTO_TEST_SUITE(progress_bars)

BOOST_AUTO_TEST_CASE(durations_rates_and_bars_format_as_documented) {
    BOOST_TEST(format_duration(0) == "0:00");
    BOOST_TEST(format_duration(7.4) == "0:07");
    BOOST_TEST(format_duration(59.6) == "1:00");
    BOOST_TEST(format_duration(754) == "12:34");
    BOOST_TEST(format_duration(3723) == "1:02:03");
    BOOST_TEST(format_duration(NAN) == "--:--");
    BOOST_TEST(format_duration(-1) == "--:--");
    BOOST_TEST(format_duration(1e9) == "--:--");

    BOOST_TEST(format_rate(12.34, "it") == "12.3 it/s");
    BOOST_TEST(format_rate(250, "step") == "250 step/s");
    BOOST_TEST(format_rate(12345, "tok") == "12.3k tok/s");
    BOOST_TEST(format_rate(2.5e6, "B") == "2.50M B/s");
    BOOST_TEST(format_rate(0.4, "it") == "2.5 s/it"); // slow work reads better inverted
    BOOST_TEST(format_rate(0, "it") == "? it/s");

    BOOST_TEST(format_bar(0.5, 10) == "[#####-----]");
    BOOST_TEST(format_bar(0, 4) == "[----]");
    BOOST_TEST(format_bar(1.7, 4) == "[####]");
}

BOOST_AUTO_TEST_CASE(a_terminal_gets_one_line_redrawn_in_place_with_rate_and_time_left) {
    capture c;
    double now = 0;
    {
        progress p("train", 100,
                   {.unit = "step", .tty = 1, .out = c.f, .clock = [&] { return now; }});
        for (int i = 1; i <= 100; ++i) {
            now += 0.5; // 2 steps/s
            p.update(i);
            if (i == 40) {
                const std::string l = p.line(true);
                BOOST_TEST(l.find("train [#########---------------] 40/100 (40%)") == 0, l);
                BOOST_TEST(l.find("2.0 step/s") != std::string::npos, l);
                BOOST_TEST(l.find("0:20 < 0:30 left") != std::string::npos, l); // 60 steps at 2/s
            }
        }
    }
    const std::string s = c.text();
    BOOST_TEST(count(s, "\r\033[K") == 101); // every update redraws (0.5 s > 0.1 s), then the end
    BOOST_TEST(count(s, "\n") == 1);         // one line left behind, ended
    BOOST_TEST(s.find("100/100 (100%)") != std::string::npos);
    BOOST_TEST(s.find("left\n") == std::string::npos); // nothing left at the end
}

BOOST_AUTO_TEST_CASE(elsewhere_it_prints_a_plain_line_per_interval) {
    capture c;
    double now = 0;
    {
        progress p(
            "tokenize", 1000,
            {.unit = "MB", .tty = 0, .interval = 10, .out = c.f, .clock = [&] { return now; }});
        for (int i = 1; i <= 1000; ++i) {
            now += 0.035; // 35 s in all
            p.update(i);
        }
    }
    const std::string s = c.text();
    BOOST_TEST(s.find('\r') == std::string::npos);
    BOOST_TEST(count(s, "\n") == 4, s); // at 10, 20 and 30 s, and the final line
    BOOST_TEST(s.find("tokenize: 286/1000 (29%) | 28.6 MB/s | 0:10 < 0:25 left\n") == 0, s);
    BOOST_TEST(s.find("tokenize: 1000/1000 (100%)") != std::string::npos, s);
}

BOOST_AUTO_TEST_CASE(short_work_in_plain_mode_prints_nothing) {
    capture c;
    double now = 0;
    {
        progress p("eval", 10, {.tty = 0, .out = c.f, .clock = [&] { return now; }});
        for (int i = 1; i <= 10; ++i) {
            now += 0.1;
            p.update(i);
        }
    }
    BOOST_TEST(c.text().empty()); // logs of quick commands stay as they were
}

BOOST_AUTO_TEST_CASE(a_nested_progress_shows_inside_its_parent) {
    capture c;
    double now = 0;
    progress_options o{.tty = 1, .out = c.f, .clock = [&] { return now; }};
    progress outer("ppo", 20, o, 2);
    {
        progress inner("rollouts", 64, o);
        now += 1;
        inner.update(48);
        const std::string l = outer.line(true);
        BOOST_TEST(l.find("ppo [##") == 0, l);
        BOOST_TEST(l.find(" 2/20 (10%)") != std::string::npos, l);
        BOOST_TEST(l.find(" | rollouts 48/64 < 0:00") != std::string::npos, l); // 16 at 48/s
        progress grandchild("updates", 4, o);
        now += 1;
        grandchild.update(1);
        BOOST_TEST(outer.line(true).find("rollouts 48/64 < 0:01 | updates 1/4 < 0:03") !=
                   std::string::npos);
    }
    // Every draw was the outermost line, children included in it.
    BOOST_TEST(count(c.text(), "\r\033[K") == count(c.text(), "\r\033[Kppo ["));
    BOOST_TEST(outer.line(true).find("rollouts") == std::string::npos);
    BOOST_TEST(count(c.text(), "\n") == 0); // the child drew into the parent's line only
}

BOOST_AUTO_TEST_CASE(disabled_progress_writes_nothing) {
    capture c;
    set_progress_enabled(false);
    {
        progress p("x", 3, {.tty = 1, .out = c.f});
        p.update(3);
    }
    set_progress_enabled(true);
    BOOST_TEST(c.text().empty());
}

BOOST_AUTO_TEST_CASE(a_real_signal_sets_the_flag_only_while_a_guard_lives) {
    {
        interrupt_guard g;
        BOOST_TEST(interrupt_requested() == 0);
        std::raise(SIGTERM); // handled: the process goes on
        BOOST_TEST(interrupt_requested() == SIGTERM);
        clear_interrupt();
        std::raise(SIGINT);
        BOOST_TEST(interrupt_requested() == SIGINT);
    }
    // The guard restored the previous (here: ignoring) disposition.
    clear_interrupt();
    auto old = std::signal(SIGINT, SIG_IGN);
    { interrupt_guard g; }
    std::raise(SIGINT);
    BOOST_TEST(interrupt_requested() == 0);
    std::signal(SIGINT, old);
    const interrupted e(SIGTERM, 7, "stopped");
    BOOST_TEST(e.exit_code() == 143);
    BOOST_TEST(e.step() == 7);
    BOOST_TEST(signal_name(SIGINT) == "SIGINT");
}

BOOST_AUTO_TEST_SUITE_END()
