// Fuzz target: the llm.c checkpoint importer (io/llmc.hpp). Input: the file. A GPT-2 of width 8
// and 1 layer (vocabulary and context up to 4096) is loaded for real; what loads exports and
// imports back bit-exactly (fp32 and bf16 files alike).
#include <cstdint>
#include <cstring>
#include <string>

#include <gptx/io/import.hpp>
#include <gptx/io/llmc.hpp>

#include "fuzz_common.hpp"

namespace {

using namespace gptx;

constexpr shape fuzz_shape{8, 2, 1, norm::pre};

std::string bytes_of(const basic_arena<float>& a) {
    return {reinterpret_cast<const char*>(a.data()), a.size() * sizeof(float)};
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static gptx_fuzz::temp_file input("model.bin"), resaved("resaved.bin");
    const auto& path = input.write(data, size);
    gptx_fuzz::expect_clean([&] {
        const weights_info info = read_llmc_info(path);
        GPTX_FUZZ_EXPECT(info.format == "llm.c" && info.file_size == size);
        GPTX_FUZZ_EXPECT(info.padded_vocab >= info.config.vocab && info.dims.width > 0 &&
                         info.dims.heads > 0 && info.dims.layers > 0);
        if (!detail::fits_file(fuzz_shape, info.dims) || info.config.vocab > 4096 ||
            info.config.context > 4096)
            return;
        transformer<fuzz_shape, float> model(info.config);
        load_llmc<fuzz_shape>(path, model);
        save_llmc<fuzz_shape>(resaved.path(), model, info.padded_vocab);
        transformer<fuzz_shape, float> again(info.config);
        load_weights<fuzz_shape>(resaved.path(), again); // import.hpp's dispatch by magic
        GPTX_FUZZ_EXPECT(bytes_of(again.params()) == bytes_of(model.params()));
        gptx_fuzz::note("loaded, saved and reloaded");
    });
    return 0;
}
