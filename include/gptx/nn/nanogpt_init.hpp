// gptx/nn/nanogpt_init.hpp: the initial weights nanoGPT's GPT(config) draws after
// torch.manual_seed, so a gptx run can start where a nanoGPT run starts.
// Tested by tests/core/test_torch_rng.cpp (against PyTorch 1.13's values).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "../core/torch_rng.hpp"
#include "transformer.hpp"

namespace gptx {

// nanoGPT builds its modules before initialising them, and PyTorch's default initialisers draw
// from the same generator, so their draws move the stream although _init_weights overwrites their
// values. In nanoGPT's order:
//  1. construction: wte and wpe N(0, 1) (nn.Embedding); per layer c_attn, attn c_proj, c_fc,
//     mlp c_proj kaiming-uniform weights, then their biases if any (nn.Linear); lm_head's weight;
//  2. _init_weights over the modules, children first: wte, wpe, each layer's four linear
//     weights N(0, 0.02), then lm_head's N(0, 0.02), which is the tied wte's final value;
//  3. every c_proj weight (attention, then MLP, layer by layer) N(0, 0.02 / sqrt(2L)).
// Biases end at 0 and LayerNorms at gain 1, bias 0 (no draws). The generator is left where
// nanoGPT's is when its training loop draws the first batch.
template <shape S, class T> void init_like_nanogpt(transformer<S, T>& model, torch_generator& g) {
    constexpr std::size_t C = S.width, L = S.layers;
    const std::size_t V = model.vocab(), maxT = model.context();
    std::vector<float> scratch;
    auto normal = [&](std::size_t n, float std_dev) -> const std::vector<float>& {
        scratch.resize(n);
        g.normal_(scratch, 0.0f, std_dev);
        return scratch;
    };
    auto store = [&](param_id id, std::size_t offset, const std::vector<float>& v) {
        T* dst = model.param(id) + offset;
        for (std::size_t i = 0; i < v.size(); ++i)
            dst[i] = T(v[i]);
    };
    // nn.Linear's reset_parameters: kaiming-uniform weight, then a uniform bias; one word each.
    auto linear_defaults = [&](std::size_t out, std::size_t in) {
        scratch.resize(out * in + (S.bias ? out : 0));
        const float bound = 1.0f / std::sqrt(float(in));
        g.uniform_(scratch, -bound, bound);
    };

    normal(V * C, 1.0f); // nn.Embedding defaults
    normal(maxT * C, 1.0f);
    for (std::size_t l = 0; l < L; ++l) {
        linear_defaults(3 * C, C);
        linear_defaults(C, C);
        linear_defaults(4 * C, C);
        linear_defaults(C, 4 * C);
    }
    linear_defaults(V, C); // lm_head, bias-free

    normal(V * C, 0.02f); // wte, overwritten by lm_head's draw below
    store(p_wpe, 0, normal(maxT * C, 0.02f));
    for (std::size_t l = 0; l < L; ++l) {
        store(p_qkvw, l * 3 * C * C, normal(3 * C * C, 0.02f));
        normal(C * C, 0.02f); // attention c_proj, redrawn in step 3
        store(p_fcw, l * 4 * C * C, normal(4 * C * C, 0.02f));
        normal(4 * C * C, 0.02f); // MLP c_proj, redrawn in step 3
    }
    store(p_wte, 0, normal(V * C, 0.02f));

    const auto proj_std = static_cast<float>(0.02 / std::sqrt(2.0 * double(L))); // as Python
    for (std::size_t l = 0; l < L; ++l) {
        store(p_attprojw, l * C * C, normal(C * C, proj_std));
        store(p_fcprojw, l * C * 4 * C, normal(C * 4 * C, proj_std));
    }
    for (param_id id : {p_ln1w, p_ln2w, p_lnfw})
        if (T* w = model.param(id))
            std::fill(w, w + model.params().view(id).size, T(1));
    for (param_id id : {p_ln1b, p_qkvb, p_attprojb, p_ln2b, p_fcb, p_fcprojb, p_lnfb})
        if (T* b = model.param(id))
            std::fill(b, b + model.params().view(id).size, T(0));
}

} // namespace gptx
