// tests/interop/llama_quantize.cpp: llama.cpp's own GGUF writer, for the interop test. Built at
// test time against the libllama that node-llama-cpp ships (headers from its llama.cpp bundle):
//   llama_quantize IN.gguf OUT.gguf f32|q8_0
// f32 rewrites the file as llama.cpp lays it out (tensors copied); q8_0 quantises the matrices as
// `llama-quantize IN OUT Q8_0` does.
#include <cstdio>
#include <cstring>

#include "llama.h"

int main(int argc, char** argv) {
    if (argc != 4 || (std::strcmp(argv[3], "f32") != 0 && std::strcmp(argv[3], "q8_0") != 0)) {
        std::fprintf(stderr, "usage: %s IN.gguf OUT.gguf f32|q8_0\n", argv[0]);
        return 2;
    }
    llama_backend_init();
    llama_model_quantize_params p = llama_model_quantize_default_params();
    p.nthread = 1;
    p.ftype = std::strcmp(argv[3], "f32") == 0 ? LLAMA_FTYPE_ALL_F32 : LLAMA_FTYPE_MOSTLY_Q8_0;
    const unsigned rc = llama_model_quantize(argv[1], argv[2], &p);
    llama_backend_free();
    if (rc != 0)
        std::fprintf(stderr, "llama_model_quantize failed (%u)\n", rc);
    return rc == 0 ? 0 : 1;
}
