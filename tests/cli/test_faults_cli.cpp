// Faults with real signals to real processes: SIGINT/SIGTERM make `gptx train` save and exit
// 130/143, and the resumed run's checkpoint equals an uninterrupted run's byte for byte; kill -9 at
// random moments, half of them aimed at a checkpoint write in flight, never leaves a checkpoint
// that resume rejects. No timing is asserted: the tests poll the run's files, with generous time
// limits.
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gptx/io/checkpoint.hpp>

#include "support/cli.hpp"
#include "support/scratch.hpp"

namespace fs = std::filesystem;
using gptx::test::slurp;

namespace {

// A gptx process with stdout and stderr in `log`. Once reaped, its pid is never signalled again:
// kill(-1, ...) as root would reach every process on the machine (a CI run died of it).
class child {
  public:
    child(const std::vector<std::string>& args, const fs::path& log) {
        std::vector<std::string> argv{gptx::test::gptx_path()};
        argv.insert(argv.end(), args.begin(), args.end());
        pid_ = ::fork();
        BOOST_REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            std::FILE* f = std::fopen(log.c_str(), "wb");
            if (!f)
                ::_exit(126);
            ::dup2(fileno(f), 1);
            ::dup2(fileno(f), 2);
            std::vector<char*> p;
            for (auto& a : argv)
                p.push_back(a.data());
            p.push_back(nullptr);
            ::execv(p[0], p.data());
            ::_exit(127);
        }
    }
    child(const child&) = delete;
    child& operator=(const child&) = delete;
    bool running() {
        if (reaped_)
            return false;
        int st;
        const pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = st;
            reaped_ = true;
            return false;
        }
        return r == 0;
    }
    // Sends `sig` unless the process has already been reaped (an unreaped one that exited is a
    // zombie, and signalling it does nothing).
    void signal(int sig) {
        if (!reaped_ && pid_ > 0)
            ::kill(pid_, sig);
    }
    int wait() { // the raw wait status
        if (!reaped_) {
            BOOST_REQUIRE(::waitpid(pid_, &status_, 0) == pid_);
            reaped_ = true;
        }
        return status_;
    }
    ~child() {
        if (!reaped_ && pid_ > 0) { // a failed test: do not leave the process behind
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

  private:
    pid_t pid_ = -1;
    bool reaped_ = false;
    int status_ = 0;
};

// The last step a metrics.jsonl line names ({"step":N,...}), or -1.
long long last_step(const fs::path& metrics) {
    const std::string s = slurp(metrics);
    long long step = -1;
    for (std::size_t at = 0; (at = s.find("{\"step\":", at)) != std::string::npos; ++at)
        step = std::max(step, std::atoll(s.c_str() + at + 8));
    return step;
}

// Waits (polling, up to 10 minutes: the machine may be loaded) until pred() or the child exits.
template <class Pred> bool wait_for(child& c, Pred pred, int poll_us = 5000) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::minutes(10);
    while (std::chrono::steady_clock::now() < end) {
        if (pred())
            return true;
        if (!c.running())
            return false;
        std::this_thread::sleep_for(std::chrono::microseconds(poll_us));
    }
    return false;
}

// The step of the checkpoint's header, -1 while there is none (a rename swaps whole files, so
// this never sees a partial one).
long long saved_step(const fs::path& ckpt) {
    try {
        return gptx::read_checkpoint_info(ckpt).step;
    } catch (const std::exception&) {
        return -1;
    }
}

// What resume checks, without loading the model: the header, the size and the trailing XXH64.
bool checkpoint_intact(const fs::path& file, std::string* why) {
    try {
        (void)gptx::read_checkpoint_info(file);
    } catch (const std::exception& e) {
        *why = e.what();
        return false;
    }
    const std::string s = slurp(file);
    gptx::detail::xxh64 h;
    h.update(s.data(), s.size() - 8);
    std::uint64_t stored = 0;
    for (int i = 0; i < 8; ++i)
        stored |= std::uint64_t(static_cast<unsigned char>(s[s.size() - 8 + i])) << (8 * i);
    if (stored != h.digest())
        *why = "checksum mismatch";
    return stored == h.digest();
}

struct fault_workspace : gptx::test::scratch_dir {
    fs::path text = path / "text.txt";
    fault_workspace() : scratch_dir("faults") { gptx::test::write_training_text(text, 400); }
    // Dropout on, so the resumed run must also restore the dropout counter.
    std::vector<std::string> train(const std::string& out, int iters, int eval_every) const {
        return {"train",
                "--text",
                text.string(),
                "--preset",
                "tiny",
                "--context",
                "32",
                "--batch",
                "4",
                "--iters",
                std::to_string(iters),
                "--warmup",
                "5",
                "--lr",
                "2e-3",
                "--eval-every",
                std::to_string(eval_every),
                "--eval-iters",
                "1",
                "--log-every",
                "1",
                "--dropout",
                "0.1",
                "--threads",
                "2",
                "--no-progress",
                "--out",
                (path / out).string()};
    }
};

std::vector<std::string> with(std::vector<std::string> v, const std::string& extra) {
    v.push_back(extra);
    return v;
}

} // namespace

BOOST_AUTO_TEST_SUITE(faults)

BOOST_AUTO_TEST_CASE(sigint_and_sigterm_checkpoint_then_resume_bit_exactly) {
    fault_workspace w;
    // 60 steps: the signal comes a few steps in, so 50 or more steps remain as a margin.
    constexpr int iters = 60, eval_every = 20;
    {
        child ref(w.train("ref", iters, eval_every), w.path / "ref.log");
        const int st = ref.wait();
        BOOST_TEST_REQUIRE((WIFEXITED(st) && WEXITSTATUS(st) == 0), slurp(w.path / "ref.log"));
    }
    const std::string reference = slurp(w.path / "ref" / "model.gptx");
    for (const int sig : {SIGINT, SIGTERM}) {
        const std::string name = sig == SIGINT ? "int" : "term";
        const fs::path run = w.path / name, log = w.path / (name + ".log");
        child c(w.train(name, iters, eval_every), log);
        // A few steps in, away from an evaluation point: the save is the interrupt's own.
        BOOST_TEST_REQUIRE(wait_for(c, [&] { return last_step(run / "metrics.jsonl") >= 3; }),
                           "the run ended before it was signalled: " << slurp(log));
        c.signal(sig);
        const int st = c.wait();
        const std::string out = slurp(log);
        BOOST_TEST_REQUIRE(WIFEXITED(st), "killed by the signal instead of stopping: " << out);
        BOOST_TEST(WEXITSTATUS(st) == 128 + sig, out);
        const std::string said =
            "interrupted by " + std::string(sig == SIGINT ? "SIGINT" : "SIGTERM");
        const auto at = out.find(said + " after step ");
        BOOST_TEST_REQUIRE(at != std::string::npos, out);
        const long long step = std::atoll(out.c_str() + at + said.size() + 12);
        BOOST_TEST_MESSAGE(name << ": stopped after step " << step);
        BOOST_TEST(step >= 3);
        BOOST_TEST(step < iters, "the signal came after the last step: " << out);
        BOOST_TEST(out.find("checkpoint saved to '" + (run / "model.gptx").string() + "'") !=
                   std::string::npos);
        std::string why;
        BOOST_TEST(checkpoint_intact(run / "model.gptx", &why), why);
        BOOST_TEST(gptx::read_checkpoint_info(run / "model.gptx").step == step);
        BOOST_TEST(!fs::exists(run / "model.gptx.tmp"));

        child r(with(w.train(name, iters, eval_every), "--resume"), w.path / (name + "2.log"));
        const int rs = r.wait();
        BOOST_TEST_REQUIRE((WIFEXITED(rs) && WEXITSTATUS(rs) == 0),
                           slurp(w.path / (name + "2.log")));
        BOOST_TEST((slurp(run / "model.gptx") == reference),
                   name << ": the resumed run's checkpoint differs from the uninterrupted run's");
        // Every step once, plus the evaluations at 0, 20, 40, 60.
        const std::string m = slurp(run / "metrics.jsonl");
        BOOST_TEST(std::count(m.begin(), m.end(), '\n') == iters + iters / eval_every + 1);
    }
}

BOOST_AUTO_TEST_CASE(kill_9_at_random_moments_never_leaves_a_bad_checkpoint) {
    fault_workspace w;
    constexpr int iters = 40;
    // A checkpoint every step: about half of the time goes to writing them.
    // The kills are timed in steps of this machine, so a fast machine is hit as often as a slow
    // one; the reference run's wall time per step (start-up included) bounds a step from above.
    long long step_us = 0;
    {
        const auto t0 = std::chrono::steady_clock::now();
        child ref(w.train("ref", iters, 1), w.path / "ref.log");
        const int st = ref.wait();
        BOOST_TEST_REQUIRE((WIFEXITED(st) && WEXITSTATUS(st) == 0), slurp(w.path / "ref.log"));
        step_us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - t0)
                      .count() /
                  iters;
    }
    const fs::path run = w.path / "run", ckpt = run / "model.gptx", tmp = run / "model.gptx.tmp";
    std::mt19937 gen(20261126);
    std::uniform_int_distribution<int> more_steps(0, 2);
    std::uniform_int_distribution<long long> delay_us(0, std::max(step_us, 1LL));
    int kills = 0, mid_write = 0, no_checkpoint_yet = 0;
    for (int round = 0; round < 40 && kills < 16; ++round) {
        const bool resume = fs::exists(ckpt);
        const long long before = resume ? gptx::read_checkpoint_info(ckpt).step : -1;
        if (before == iters)
            break;
        child c(resume ? with(w.train("run", iters, 1), "--resume") : w.train("run", iters, 1),
                w.path / "run.log");
        // Wait until this process has saved a step of its own, a random number of steps more,
        // then a random moment within a step.
        const long long target = before + 1 + more_steps(gen);
        const bool alive = wait_for(
            c, [&] { return saved_step(ckpt) >= target; }, 200);
        if (!alive) { // it finished (or failed) first
            const int st = c.wait();
            BOOST_TEST_REQUIRE((WIFEXITED(st) && WEXITSTATUS(st) == 0), slurp(w.path / "run.log"));
            break;
        }
        // Every other round aims at a write: the kill comes as soon as the next save has opened
        // its temporary file (the last save renamed the previous one away).
        if (round % 2 == 1)
            (void)wait_for(
                c, [&] { return fs::exists(tmp); }, 100);
        else
            std::this_thread::sleep_for(std::chrono::microseconds(delay_us(gen)));
        c.signal(SIGKILL);
        const int st = c.wait();
        if (!WIFSIGNALED(st)) { // it finished before the kill
            BOOST_TEST_REQUIRE((WIFEXITED(st) && WEXITSTATUS(st) == 0), slurp(w.path / "run.log"));
            break;
        }
        ++kills;
        mid_write += fs::exists(tmp);
        if (!fs::exists(ckpt)) {
            ++no_checkpoint_yet;
            continue;
        }
        std::string why;
        BOOST_TEST_REQUIRE(checkpoint_intact(ckpt, &why),
                           "after kill " << kills << ": " << ckpt << " is bad: " << why);
    }
    BOOST_TEST_MESSAGE("kill -9: " << kills << " kills, " << mid_write
                                   << " with a checkpoint write in flight, " << no_checkpoint_yet
                                   << " before the first checkpoint");
    BOOST_TEST(kills >= 3);
    // Finish the run: the result is the uninterrupted run's, bit for bit.
    if (!fs::exists(ckpt) || gptx::read_checkpoint_info(ckpt).step < iters) {
        child c(fs::exists(ckpt) ? with(w.train("run", iters, 1), "--resume")
                                 : w.train("run", iters, 1),
                w.path / "run.log");
        const int st = c.wait();
        BOOST_TEST_REQUIRE((WIFEXITED(st) && WEXITSTATUS(st) == 0), slurp(w.path / "run.log"));
    }
    BOOST_TEST((slurp(ckpt) == slurp(w.path / "ref" / "model.gptx")),
               "after " << kills
                        << " kills the final checkpoint differs from an uninterrupted run's");
    const std::string m = slurp(run / "metrics.jsonl");
    BOOST_TEST(std::count(m.begin(), m.end(), '\n') ==
               2 * iters + 1); // each step and evaluation once
}

BOOST_AUTO_TEST_CASE(a_corrupt_checkpoint_is_refused_by_resume_with_a_clear_error) {
    fault_workspace w;
    {
        child c(w.train("run", 4, 2), w.path / "a.log");
        const int st = c.wait();
        BOOST_TEST_REQUIRE((WIFEXITED(st) && WEXITSTATUS(st) == 0), slurp(w.path / "a.log"));
    }
    const fs::path ckpt = w.path / "run" / "model.gptx";
    std::string bytes = slurp(ckpt);
    bytes[bytes.size() / 2] ^= 0x40; // one flipped bit in the weights
    std::ofstream(ckpt, std::ios::binary | std::ios::trunc) << bytes;
    child c(with(w.train("run", 8, 2), "--resume"), w.path / "b.log");
    const int st = c.wait();
    const std::string out = slurp(w.path / "b.log");
    BOOST_TEST((WIFEXITED(st) && WEXITSTATUS(st) == 1), out);
    BOOST_TEST(out.find("gptx: error: " + ckpt.string() + ": checksum mismatch") !=
                   std::string::npos,
               out);
    BOOST_TEST((slurp(ckpt) == bytes)); // refused, not overwritten
}

BOOST_AUTO_TEST_SUITE_END()
