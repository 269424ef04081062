// gptx/data/lm_batch.hpp: the language-model micro-batch view that batchers and SFT packing fill
// and the LM objective reads. Tested by tests/train/test_trainer.cpp. Legend: B batch, T time.
#pragma once
#include <cstdint>

namespace gptx {

// A language-model micro-batch: inputs and next-token targets (B, T), and an optional mask (B, T)
// of the targets that count (SFT and ptx are masks and data, not new code).
struct lm_batch {
    const int* inputs = nullptr;
    const int* targets = nullptr;
    const std::uint8_t* mask = nullptr;
    int B = 0, T = 0;
};

} // namespace gptx
