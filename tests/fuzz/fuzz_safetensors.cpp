// Fuzz target: the safetensors reader and the Hugging Face GPT-2 importer (io/safetensors.hpp).
// Input: the file. A GPT-2 of width 8 and 1 layer (any vocabulary and context up to 4096) is
// loaded for real; what loads exports and imports back bit-exactly.
#include <cstdint>
#include <cstring>
#include <string>

#include <gptx/io/import.hpp>
#include <gptx/io/safetensors.hpp>

#include "fuzz_common.hpp"

namespace {

using namespace gptx;

constexpr shape fuzz_shape{8, 2, 1, norm::pre};

std::string bytes_of(const basic_arena<float>& a) {
    return {reinterpret_cast<const char*>(a.data()), a.size() * sizeof(float)};
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static gptx_fuzz::temp_file input("model.safetensors"), resaved("resaved.safetensors");
    const auto& path = input.write(data, size);
    gptx_fuzz::expect_clean([&] {
        // Every tensor the header lists lies inside the file and matches its dtype and shape.
        safetensors_file f(path);
        for (const auto& t : f.tensors()) {
            GPTX_FUZZ_EXPECT(t.begin <= t.end && t.end <= size);
            const std::uint64_t es = safetensors_file::element_size(t.dtype);
            GPTX_FUZZ_EXPECT(es > 0 && (t.end - t.begin) % es == 0);
        }
    });
    gptx_fuzz::expect_clean([&] {
        const weights_info info = read_weights_info(path);
        if (!detail::fits_file(fuzz_shape, info.dims) || info.config.vocab > 4096 ||
            info.config.context > 4096)
            return;
        transformer<fuzz_shape, float> model(info.config);
        load_weights<fuzz_shape>(path, model);
        save_safetensors<fuzz_shape>(resaved.path(), model);
        transformer<fuzz_shape, float> again(info.config);
        load_safetensors<fuzz_shape>(resaved.path(), again);
        GPTX_FUZZ_EXPECT(bytes_of(again.params()) == bytes_of(model.params()));
        gptx_fuzz::note("loaded, saved and reloaded");
    });
    return 0;
}
