// Fuzz target: the GGUF reader, the gpt2 importer and the tokenizer reader (io/gguf.hpp). Input:
// the file. Every tensor the reader accepts lies inside the file at an aligned offset; tensors of
// up to 64 Ki values are read (dequantised); a GPT-2 of width 8 and 1 layer (vocabulary and
// context up to 4096) is loaded for real, and what loads exports (with its tokenizer) and
// imports back bit-exactly.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gptx/io/gguf.hpp>
#include <gptx/io/import.hpp>

#include "fuzz_common.hpp"

namespace {

using namespace gptx;

constexpr shape fuzz_shape{8, 2, 1, norm::pre};

std::string bytes_of(const basic_arena<float>& a) {
    return {reinterpret_cast<const char*>(a.data()), a.size() * sizeof(float)};
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static gptx_fuzz::temp_file input("model.gguf"), resaved("resaved.gguf");
    const auto& path = input.write(data, size);
    gptx_fuzz::expect_clean([&] {
        gguf_file f(path);
        GPTX_FUZZ_EXPECT(f.data_start() <= size && f.alignment() > 0 &&
                         (f.alignment() & (f.alignment() - 1)) == 0);
        std::vector<float> buf;
        for (const auto& t : f.tensors()) {
            GPTX_FUZZ_EXPECT(t.offset % f.alignment() == 0);
            GPTX_FUZZ_EXPECT(f.data_start() + t.offset + t.bytes <= size);
            if (t.numel <= 65536) {
                buf.resize(std::size_t(t.numel));
                gptx_fuzz::expect_clean([&] { f.read(t, buf.data()); });
            }
        }
    });
    std::optional<tokenizer> tok;
    gptx_fuzz::expect_clean([&] {
        tok = read_gguf_tokenizer(path);
        if (tok)
            tok->decode(tok->encode("hello, world!"));
    });
    gptx_fuzz::expect_clean([&] {
        const weights_info info = read_weights_info(path);
        GPTX_FUZZ_EXPECT(info.format == "gguf" && info.file_size == size);
        if (!detail::fits_file(fuzz_shape, info.dims) || info.config.vocab > 4096 ||
            info.config.context > 4096)
            return;
        transformer<fuzz_shape, float> model(info.config);
        load_gguf<fuzz_shape>(path, model);
        gptx_fuzz::note("loaded");
        if (!tok || tok->vocab_size() > model.vocab())
            return;
        save_gguf<fuzz_shape>(resaved.path(), model, *tok);
        transformer<fuzz_shape, float> again(info.config);
        load_weights<fuzz_shape>(resaved.path(), again); // import.hpp's dispatch by magic
        GPTX_FUZZ_EXPECT(bytes_of(again.params()) == bytes_of(model.params()));
        const tokenizer back = read_gguf_tokenizer(resaved.path()).value();
        const std::string text = "the cat sat; caf\xc3\xa9 <|endoftext|>";
        GPTX_FUZZ_EXPECT(back.encode(text) == tok->encode(text));
        gptx_fuzz::note("loaded, saved and reloaded with its tokenizer");
    });
    return 0;
}
