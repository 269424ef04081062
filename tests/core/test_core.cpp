// Tests for gptx/core: shapes and presets, arenas, the generator, parallel loops.
#include <boost/test/unit_test.hpp>

#include <set>

#include <gptx/gptx.hpp>

#include "support/scratch.hpp"

using namespace gptx;

BOOST_AUTO_TEST_SUITE(core)

BOOST_AUTO_TEST_CASE(presets_are_valid_and_named) {
    for (const auto& p : preset_table)
        BOOST_TEST(p.dims.valid(), p.name);
    BOOST_TEST(find_preset("baby")->dims == presets::baby);
    BOOST_TEST(presets::baby.width == 128);
    BOOST_TEST(presets::baby.heads == 4);
    BOOST_TEST(presets::baby.layers == 4);
    BOOST_TEST((presets::gpt1.placement == norm::post));
    BOOST_TEST(find_preset("gpt2-xl")->dims.width == 1600);
    BOOST_TEST(find_preset("nope") == nullptr);
    BOOST_TEST(!(shape{130, 4, 2}.valid()));
}

BOOST_AUTO_TEST_CASE(with_preset_dispatches_at_compile_time) {
    int width = 0;
    bool ok = with_preset("gpt2-medium", [&]<shape S>() {
        static_assert(S.valid());
        width = S.width;
    });
    BOOST_TEST(ok);
    BOOST_TEST(width == 1024);
    BOOST_TEST(!with_preset("unknown", [&]<shape>() {}));
}

BOOST_AUTO_TEST_CASE(arena_views_are_contiguous_and_aligned) {
    arena a({{"a", 5}, {"b", 7, true}, {"c", 3}});
    BOOST_TEST(a.size() == 15u);
    BOOST_TEST(reinterpret_cast<std::uintptr_t>(a.data()) % 64 == 0u);
    BOOST_TEST(a.view(1).data == a.data() + 5);
    BOOST_TEST(a.view(1).decay);
    BOOST_TEST(a.view(2).data == a.data() + 12);
    for (std::size_t i = 0; i < a.size(); ++i)
        BOOST_TEST(a.data()[i] == 0.0f);
}

BOOST_AUTO_TEST_CASE(rng_is_reproducible_and_roughly_normal) {
    rng r1(42), r2(42), r3(43);
    for (int i = 0; i < 10; ++i)
        BOOST_TEST(r1.next_u64() == r2.next_u64());
    BOOST_TEST(r1.next_u64() != r3.next_u64());
    rng r(7);
    double s = 0, s2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; ++i) {
        double x = r.normal();
        s += x;
        s2 += x * x;
    }
    BOOST_TEST(std::abs(s / n) < 0.01);
    BOOST_TEST(std::abs(s2 / n - 1.0) < 0.02);
    auto st = r.state();
    auto a = r.next_u64();
    r.set_state(st);
    BOOST_TEST(r.next_u64() == a);
}

BOOST_AUTO_TEST_CASE(dropout_mask_rate) {
    int kept = 0;
    for (int i = 0; i < 100000; ++i)
        kept += dropout_keep(99, i, 0.1f);
    BOOST_TEST(std::abs(kept / 100000.0 - 0.9) < 0.01);
    for (int i = 0; i < 1000; ++i)
        BOOST_TEST(dropout_keep(99, i, 0.0f));
}

BOOST_AUTO_TEST_CASE(parallel_for_covers_every_index_once) {
    for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        std::vector<int> hits(1001, 0);
        parallel_for(1001, [&](std::int64_t i) { hits[i]++; });
        for (int h : hits)
            BOOST_TEST(h == 1);
    }
    set_num_threads(2);
}

// The atomic whole-file write: the whole new content or the old, never a folder or device
// replaced, and never a write through a symbolic link (the name or a stale temporary).
BOOST_AUTO_TEST_CASE(write_whole_file_replaces_whole_files_and_never_writes_through_links) {
    namespace fs = std::filesystem;
    const gptx::test::scratch_dir dir("core_file");
    const fs::path f = dir / "a.txt";
    detail::write_whole_file(f, "first");
    detail::write_whole_file(f, "second");
    BOOST_TEST(detail::read_whole_file(f, "test file") == "second");
    BOOST_TEST(!fs::exists(dir / "a.txt.tmp"));

    // A name that links to a shared file: the link is replaced, the shared file left alone.
    const fs::path shared = dir / "shared.txt", link = dir / "link.txt";
    detail::write_whole_file(shared, "shared");
    fs::create_symlink(shared, link);
    detail::write_whole_file(link, "mine");
    BOOST_TEST(!fs::is_symlink(link));
    BOOST_TEST(detail::read_whole_file(link, "test file") == "mine");
    BOOST_TEST(detail::read_whole_file(shared, "test file") == "shared");
    // A stale temporary that is a link is not written through either.
    fs::create_symlink(shared, dir / "b.txt.tmp");
    detail::write_whole_file(dir / "b.txt", "b");
    BOOST_TEST(detail::read_whole_file(shared, "test file") == "shared");
    BOOST_TEST(!fs::is_symlink(dir / "b.txt"));
    BOOST_TEST(!fs::exists(dir / "b.txt.tmp"));

    const auto refused = [](const fs::path& p) {
        try {
            detail::write_whole_file(p, "x");
        } catch (const error& e) {
            return std::string(e.what());
        }
        return std::string("<no error>");
    };
    fs::create_directory(dir / "sub");
    BOOST_TEST(refused(dir / "sub") == "cannot write '" + (dir / "sub").string() +
                                           "': it exists and is not a regular file (a folder)");
    BOOST_TEST(refused("/dev/null").find("(a device, socket or pipe)") != std::string::npos);
    BOOST_TEST(fs::is_character_file("/dev/null"));
}

BOOST_AUTO_TEST_SUITE_END()
