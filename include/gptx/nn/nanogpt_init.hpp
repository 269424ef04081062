// gptx/nn/nanogpt_init.hpp: the initial weights nanoGPT's GPT(config) draws after
// torch.manual_seed, so a gptx run can start where a nanoGPT run starts.
// Tested by tests/nn/test_nanogpt_init.cpp (against PyTorch 1.13's values).
// Legend: C channels, L layers, V vocab, maxT context (nanoGPT's block_size).
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
//  1. construction: wte and wpe N(0, 1) (nn.Embedding); per layer the nn.Linear c_attn, attn
//     c_proj, c_fc and mlp c_proj, each one's kaiming-uniform weight then its uniform bias if the
//     shape has biases; lm_head's weight;
//  2. _init_weights over the modules, children first: wte, wpe, each layer's four linear
//     weights N(0, 0.02), then lm_head's N(0, 0.02), which is the tied wte's final value;
//  3. every c_proj weight (attention, then MLP, layer by layer) N(0, 0.02 / sqrt(2L)).
// Biases end at 0 and LayerNorms at gain 1, bias 0 (no draws). The generator is left where
// nanoGPT's is when its training loop draws the first batch. nanoGPT is pre-LN; a post-LN shape
// gets the draws of the pre-LN model of its size.
template <shape S, class T> void init_like_nanogpt(transformer<S, T>& model, torch_generator& g) {
    constexpr std::size_t C = S.width, L = S.layers;
    const std::size_t V = model.vocab(), maxT = model.context();
    // Values overwritten later only move the stream: skip their words.
    auto skip_normal = [&](std::size_t n) {
        if (n >= 16) {
            g.discard(torch_generator::normal_words(n));
        } else {
            std::vector<float> tmp(n);
            g.normal_(tmp, 0.0f, 1.0f);
        }
    };
    std::vector<float> scratch; // one tensor's kept draws, then converted to T
    auto draw = [&](param_id id, std::size_t offset, std::size_t n, float std_dev) {
        scratch.resize(n);
        g.normal_(scratch, 0.0f, std_dev);
        std::transform(scratch.begin(), scratch.end(), model.param(id) + offset,
                       [](float v) { return T(v); });
    };
    // nn.Linear's reset_parameters: one word per weight and per bias element.
    auto linear_defaults = [&](std::size_t out, std::size_t in, bool bias = S.bias) {
        g.discard(out * in + (bias ? out : 0));
    };

    skip_normal(V * C); // nn.Embedding defaults
    skip_normal(maxT * C);
    for (std::size_t l = 0; l < L; ++l) {
        linear_defaults(3 * C, C);
        linear_defaults(C, C);
        linear_defaults(4 * C, C);
        linear_defaults(C, 4 * C);
    }
    linear_defaults(V, C, false); // lm_head: never a bias

    skip_normal(V * C); // wte, overwritten by lm_head's draw below
    draw(p_wpe, 0, maxT * C, 0.02f);
    for (std::size_t l = 0; l < L; ++l) {
        draw(p_qkvw, l * 3 * C * C, 3 * C * C, 0.02f);
        skip_normal(C * C); // attention c_proj, redrawn in step 3
        draw(p_fcw, l * 4 * C * C, 4 * C * C, 0.02f);
        skip_normal(4 * C * C); // MLP c_proj, redrawn in step 3
    }
    draw(p_wte, 0, V * C, 0.02f);

    const auto proj_std = static_cast<float>(0.02 / std::sqrt(2.0 * double(L))); // as Python
    for (std::size_t l = 0; l < L; ++l) {
        draw(p_attprojw, l * C * C, C * C, proj_std);
        draw(p_fcprojw, l * C * 4 * C, C * 4 * C, proj_std);
    }
    for (param_id id : {p_ln1w, p_ln2w, p_lnfw})
        if (T* w = model.param(id))
            std::fill(w, w + model.params().view(id).size, T(1));
    for (param_id id : {p_ln1b, p_qkvb, p_attprojb, p_ln2b, p_fcb, p_fcprojb, p_lnfb})
        if (T* b = model.param(id))
            std::fill(b, b + model.params().view(id).size, T(0));
}

} // namespace gptx
