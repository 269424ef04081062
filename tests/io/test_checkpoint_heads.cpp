// Tests for the extra sections of gptx/io/checkpoint.hpp (heads beside the trunk, with their
// AdamW state): bit-exact round trips, the info listing, loading with and without them, bad
// requests and corrupt sections, and a reward model resumed exactly.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gptx/io/checkpoint.hpp>
#include <gptx/nn/reward_model.hpp>
#include <gptx/train/reward_objective.hpp>
#include <gptx/train/trainer.hpp>

#include "support/bytes.hpp"
#include "support/errors.hpp"
#include "support/scratch.hpp"

using namespace gptx;
namespace fs = std::filesystem;

namespace {

constexpr shape rm_shape{32, 4, 2};

using test::bytes_of;
using test::error_of;

struct scratch : gptx::test::scratch_dir {
    scratch() : scratch_dir("test_heads") {}
};

tokenizer heads_chars() { return char_tokenizer::from_corpus("abcdefg"); }

// A reward model, its trunk optimizer and a head optimizer, all after two updates.
struct trained_rm {
    reward_model<rm_shape> rm{{8, 16}};
    adamw<float> opt{rm.trunk().params()}, head_opt{rm.head().params()};
    explicit trained_rm(std::uint64_t seed) {
        rm.init(seed);
        rng r(seed + 1);
        for (int s = 0; s < 2; ++s) {
            for (std::size_t i = 0; i < rm.trunk().grads().size(); ++i)
                rm.trunk().grads().data()[i] = r.normal();
            for (std::size_t i = 0; i < rm.head().grads().size(); ++i)
                rm.head().grads().data()[i] = r.normal();
            opt.step(rm.trunk().params(), rm.trunk().grads(), 1e-3f);
            head_opt.step(rm.head().params(), rm.head().grads(), 1e-3f);
        }
        rm.set_bias(-0.0f); // a bit pattern a lossy round trip would change
    }
    std::vector<checkpoint_extra> extras() {
        return {{reward_model<rm_shape>::head_name, &rm.head().params(), &head_opt}};
    }
};

} // namespace

BOOST_AUTO_TEST_SUITE(io)
BOOST_AUTO_TEST_SUITE(checkpoint_heads)

BOOST_AUTO_TEST_CASE(heads_round_trip_bit_exactly_with_their_optimizer) {
    scratch dir;
    trained_rm a(3);
    // A second, optimizer-less section (e.g. a frozen head) rides along.
    linear_head<float> extra(32, 3);
    extra.init(9);
    std::vector<checkpoint_extra> ex = a.extras();
    ex.push_back({"frozen", &extra.params(), nullptr});
    train_state st;
    st.step = 2;
    save_checkpoint(dir / "rm.gptx", a.rm.trunk(), &a.opt, heads_chars(), st, ex);

    trained_rm b(77);
    linear_head<float> extra2(32, 3);
    std::vector<checkpoint_extra> ex2 = b.extras();
    ex2.push_back({"frozen", &extra2.params(), nullptr});
    b.head_opt.set_step_count(0);
    load_checkpoint(dir / "rm.gptx", b.rm.trunk(), &b.opt, nullptr, nullptr, ex2);
    BOOST_TEST((bytes_of(b.rm.trunk().params()) == bytes_of(a.rm.trunk().params())));
    BOOST_TEST((bytes_of(b.rm.head().params()) == bytes_of(a.rm.head().params())));
    BOOST_TEST((bytes_of(b.head_opt.m()) == bytes_of(a.head_opt.m())));
    BOOST_TEST((bytes_of(b.head_opt.v()) == bytes_of(a.head_opt.v())));
    BOOST_TEST(b.head_opt.step_count() == 2);
    BOOST_TEST((bytes_of(extra2.params()) == bytes_of(extra.params())));
    BOOST_TEST(std::signbit(b.rm.bias()));

    const checkpoint_info info = read_checkpoint_info(dir / "rm.gptx");
    BOOST_TEST_REQUIRE(info.extras.size() == 2u);
    BOOST_TEST(info.extras[0].name == "reward_head");
    BOOST_TEST(info.extras[0].size == 33u);
    BOOST_TEST(info.extras[0].has_optimizer);
    BOOST_TEST(info.extras[0].optimizer_steps == 2);
    BOOST_TEST(info.extras[1].name == "frozen");
    BOOST_TEST(info.extras[1].size == 99u);
    BOOST_TEST(!info.extras[1].has_optimizer);

    // Saving the loaded state again gives the same file.
    save_checkpoint(dir / "again.gptx", b.rm.trunk(), &b.opt, heads_chars(), st, ex2);
    BOOST_TEST((test::slurp(dir / "again.gptx") == test::slurp(dir / "rm.gptx")));
}

BOOST_AUTO_TEST_CASE(sections_are_optional_both_ways) {
    scratch dir;
    trained_rm a(4);
    save_checkpoint(dir / "rm.gptx", a.rm.trunk(), &a.opt, heads_chars(), train_state{},
                    a.extras());
    // A reward model's checkpoint loads as a plain trunk (PPO's value model, a new RM's init).
    transformer<rm_shape> trunk({8, 16});
    load_checkpoint(dir / "rm.gptx", trunk, nullptr, nullptr, nullptr);
    BOOST_TEST((bytes_of(trunk.params()) == bytes_of(a.rm.trunk().params())));
    // Without extras the file is what it always was: flags bit 1 clear, X = 0, no listing.
    save_checkpoint(dir / "lm.gptx", a.rm.trunk(), &a.opt, heads_chars(), train_state{});
    const std::string f = test::slurp(dir / "lm.gptx");
    BOOST_TEST(f[12] == 1);
    BOOST_TEST((f.substr(116, 4) == std::string(4, '\0')));
    BOOST_TEST(read_checkpoint_info(dir / "lm.gptx").extras.empty());
    // Asking an LM checkpoint for a head names what is missing and changes nothing.
    trained_rm b(5);
    const std::string before = bytes_of(b.rm.trunk().params());
    const std::string msg = error_of([&] {
        load_checkpoint(dir / "lm.gptx", b.rm.trunk(), nullptr, nullptr, nullptr, b.extras());
    });
    BOOST_TEST(msg.find("no 'reward_head' section in this checkpoint (it has none)") !=
                   std::string::npos,
               msg);
    BOOST_TEST((bytes_of(b.rm.trunk().params()) == before));
}

BOOST_AUTO_TEST_CASE(bad_requests_and_corrupt_sections_are_named) {
    scratch dir;
    trained_rm a(6);
    const fs::path p = dir / "rm.gptx";
    // The head without optimizer state.
    const checkpoint_extra no_opt[] = {{"reward_head", &a.rm.head().params(), nullptr}};
    save_checkpoint(p, a.rm.trunk(), nullptr, heads_chars(), train_state{}, no_opt);
    trained_rm b(7);
    std::string msg =
        error_of([&] { load_checkpoint(p, b.rm.trunk(), nullptr, nullptr, nullptr, b.extras()); });
    BOOST_TEST(msg.find("no optimizer state for 'reward_head'") != std::string::npos, msg);
    linear_head<float> wide(32, 2);
    const checkpoint_extra wrong_size[] = {{"reward_head", &wide.params(), nullptr}};
    msg =
        error_of([&] { load_checkpoint(p, b.rm.trunk(), nullptr, nullptr, nullptr, wrong_size); });
    BOOST_TEST(msg.find("section 'reward_head' has 33 values, this model's has 66") !=
                   std::string::npos,
               msg);
    const checkpoint_extra other[] = {{"value_head", &wide.params(), nullptr}};
    msg = error_of([&] { load_checkpoint(p, b.rm.trunk(), nullptr, nullptr, nullptr, other); });
    BOOST_TEST(msg.find("no 'value_head' section in this checkpoint (it has 'reward_head')") !=
                   std::string::npos,
               msg);
    // Saving: duplicate or empty names.
    const checkpoint_extra twice[] = {no_opt[0], no_opt[0]};
    msg = error_of([&] {
        save_checkpoint(dir / "x.gptx", a.rm.trunk(), nullptr, heads_chars(), train_state{}, twice);
    });
    BOOST_TEST(msg.find("extra section 'reward_head' is given twice") != std::string::npos, msg);
    const checkpoint_extra unnamed[] = {{"", &wide.params(), nullptr}};
    msg = error_of([&] {
        save_checkpoint(dir / "x.gptx", a.rm.trunk(), nullptr, heads_chars(), train_state{},
                        unnamed);
    });
    BOOST_TEST(msg.find("must have 1 to 255 bytes") != std::string::npos, msg);
    BOOST_TEST(!fs::exists(dir / "x.gptx"));

    // A flipped value in the head fails the checksum; the model is untouched.
    std::string f = test::slurp(p);
    f[f.size() - 12] ^= 0x10;
    test::write_file(dir / "bad.gptx", f);
    const std::string before = bytes_of(b.rm.head().params());
    const checkpoint_extra load_no_opt[] = {{"reward_head", &b.rm.head().params(), nullptr}};
    msg = error_of([&] {
        load_checkpoint(dir / "bad.gptx", b.rm.trunk(), nullptr, nullptr, nullptr, load_no_opt);
    });
    BOOST_TEST(msg.find("checksum mismatch") != std::string::npos, msg);
    BOOST_TEST((bytes_of(b.rm.head().params()) == before));
    // A header claiming a different extras size is caught (after fixing the header's hash).
    f = test::slurp(p);
    f[116] = char(f[116] + 4);
    const std::uint64_t h = detail::xxh64_of(std::string_view(f).substr(0, 120));
    for (int i = 0; i < 8; ++i)
        f[120 + i] = char((h >> (8 * i)) & 0xff);
    test::write_file(dir / "bad2.gptx", f);
    msg = error_of([&] { read_checkpoint_info(dir / "bad2.gptx"); });
    BOOST_TEST(msg.find("bad2.gptx: truncated") != std::string::npos, msg);
}

BOOST_AUTO_TEST_CASE(a_resumed_reward_model_matches_an_uninterrupted_one) {
    scratch dir;
    using trunk_t = transformer<rm_shape>;
    // Preference data: responses with more 1s rank higher.
    tokenized_comparisons data;
    rng r(1);
    for (int p = 0; p < 24; ++p) {
        ranked_sequences g;
        for (int i = 0; i < 3; ++i) {
            std::vector<int> resp(4);
            for (int& t : resp)
                t = 2 + int(r.below(5));
            for (int k = 0; k < 2 - i; ++k)
                resp[std::size_t(k)] = 1;
            g.responses.push_back(reward_sequence({3, 4}, resp, 0, 16));
        }
        data.groups.push_back(std::move(g));
    }
    auto run = [&](int from, int to, const fs::path& in, const fs::path& out) {
        reward_model<rm_shape> rm({8, 16});
        rm.init(11);
        rm.trunk().set_dropout(0.1f);
        reward_objective obj(rm);
        adamw<float> opt(
            rm.trunk().params(),
            {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f});
        trainer tr(rm.trunk(), obj, opt, {2, 1.0f, [](int it) { return 1e-3f * (1 + it % 3); }});
        const checkpoint_extra ex[] = {{"reward_head", &rm.head().params(), &tr.head_optimizer()}};
        if (from > 0) {
            train_state st;
            load_checkpoint(in, rm.trunk(), &opt, nullptr, &st, ex);
            tr.set_step_count(st.step);
        }
        reward_batcher batches(data, 5, 0, 3);
        for (int s = from; s < to; ++s)
            tr.step([&](int micro) { return batches.batch(2 * tr.step_count() + micro); });
        train_state st;
        st.step = tr.step_count();
        st.dropout_seed = rm.trunk().dropout_seed();
        st.dropout_counter = rm.trunk().dropout_counter();
        save_checkpoint(out, rm.trunk(), &opt, heads_chars(), st, ex);
    };
    run(0, 6, {}, dir / "full.gptx");
    run(0, 3, {}, dir / "half.gptx");
    run(3, 6, dir / "half.gptx", dir / "resumed.gptx");
    BOOST_TEST((test::slurp(dir / "resumed.gptx") == test::slurp(dir / "full.gptx")));
    static_assert(objective<reward_objective<trunk_t>, trunk_t>);
}

BOOST_AUTO_TEST_SUITE_END()
BOOST_AUTO_TEST_SUITE_END()
