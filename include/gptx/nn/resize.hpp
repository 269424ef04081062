// gptx/nn/resize.hpp: grow a model's vocabulary (wte rows) for newly registered special tokens.
// Tested by tests/io/test_import.cpp.
// Legend: V vocab, C channels.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "transformer.hpp"

namespace gptx {

// A copy of `m` whose vocabulary has n more tokens: wte rows V..V+n-1 are new, everything else
// (weights, dropout settings) is copied. New rows are drawn N(0, init_std) from rng(seed), GPT-1's
// initialisation of the embeddings it added for its task tokens (0.02, as every GPT-1/2 weight).
// The tied LM head grows with wte. Optimizer moments are per parameter: build a new optimizer.
template <shape S, class T>
transformer<S, T> grow_vocab(const transformer<S, T>& m, int n, std::uint64_t seed,
                             float init_std = 0.02f) {
    GPTX_CHECK(n >= 0, "grow_vocab: cannot add ", n, " tokens");
    GPTX_CHECK(init_std >= 0.0f, "grow_vocab: init_std must be >= 0, got ", init_std);
    model_config cfg = m.config();
    cfg.vocab += n;
    transformer<S, T> out(cfg);
    const std::size_t C = std::size_t(S.width), V = std::size_t(m.vocab());
    std::copy(m.param(p_wte), m.param(p_wte) + V * C, out.param(p_wte));
    rng r(seed);
    T* rows = out.param(p_wte) + V * C; // (n, C)
    for (std::size_t i = 0; i < std::size_t(n) * C; ++i)
        rows[i] = T(init_std * r.normal());
    for (int i = p_wte + 1; i < num_param_tensors; ++i) {
        const auto& src = m.params().view(i);
        std::copy(src.data, src.data + src.size, out.params().view(i).data);
    }
    out.set_dropout(m.dropout());
    out.set_dropout_seed(m.dropout_seed());
    out.set_dropout_counter(m.dropout_counter());
    return out;
}

} // namespace gptx
