// gptx/nn/transformer.hpp: the trunk, tokens -> hidden states, with explicit forward and backward
// over flat arenas. Tested by tests/nn/test_transformer.cpp.
// Legend: B batch, T time, C channels, NH heads, L layers, V vocab, maxT context.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/arena.hpp"
#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "../core/shape.hpp"
#include "../ops/attention.hpp"
#include "../ops/encoder.hpp"
#include "../ops/gelu.hpp"
#include "../ops/layernorm.hpp"
#include "../ops/matmul.hpp"
#include "../ops/residual.hpp"

namespace gptx {

// Parameter tensors in llm.c's ParameterTensors order; per-layer tensors are stacked over L.
enum param_id : int {
    p_wte,      // (V, C)
    p_wpe,      // (maxT, C)
    p_ln1w,     // (L, C)
    p_ln1b,     // (L, C)
    p_qkvw,     // (L, 3C, C)
    p_qkvb,     // (L, 3C)
    p_attprojw, // (L, C, C)
    p_attprojb, // (L, C)
    p_ln2w,     // (L, C)
    p_ln2b,     // (L, C)
    p_fcw,      // (L, 4C, C)
    p_fcb,      // (L, 4C)
    p_fcprojw,  // (L, C, 4C)
    p_fcprojb,  // (L, C)
    p_lnfw,     // (C), empty for post-LN (GPT-1 has no final LayerNorm)
    p_lnfb,     // (C), likewise
    num_param_tensors
};

inline constexpr const char* param_names[num_param_tensors] = {
    "wte",  "wpe",  "ln1w", "ln1b", "qkvw",    "qkvb",    "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw",  "fcb",  "fcprojw", "fcprojb", "lnfw",     "lnfb"};

template <shape S, class T = float> class transformer {
    static_assert(
        S.valid(),
        "shape: width, heads and layers must be positive, width divisible by heads and by 4");

  public:
    using value_type = T;
    static constexpr shape dims = S;
    static constexpr int C = S.width, NH = S.heads, L = S.layers, HS = S.width / S.heads;
    static constexpr bool pre_ln = S.placement == norm::pre;

    explicit transformer(model_config cfg) : cfg_(cfg) {
        GPTX_CHECK(cfg.vocab > 0, "model: vocabulary size must be positive, got ", cfg.vocab);
        GPTX_CHECK(cfg.context > 0, "model: context length must be positive, got ", cfg.context);
        params_.layout(param_entries());
        grads_.layout(param_entries());
    }

    const model_config& config() const { return cfg_; }
    int vocab() const { return cfg_.vocab; }
    int context() const { return cfg_.context; }

    basic_arena<T>& params() { return params_; }
    const basic_arena<T>& params() const { return params_; }
    basic_arena<T>& grads() { return grads_; }
    const basic_arena<T>& grads() const { return grads_; }
    // A tensor's data, or nullptr when the shape has no such tensor (biases, post-LN's lnf).
    T* param(param_id i) { return or_null(params_.view(i)); }
    const T* param(param_id i) const { return or_null(params_.view(i)); }
    T* grad(param_id i) { return or_null(grads_.view(i)); }
    std::size_t num_parameters() const { return params_.size(); }

    std::vector<typename basic_arena<T>::entry> param_entries() const {
        const std::size_t V = cfg_.vocab, maxT = cfg_.context, c = C, l = L;
        const std::size_t f = pre_ln ? c : 0, b = S.bias ? 1 : 0; // absent tensors have size 0
        return {{"wte", V * c, true},
                {"wpe", maxT * c, true},
                {"ln1w", l * c},
                {"ln1b", b * l * c},
                {"qkvw", l * 3 * c * c, true},
                {"qkvb", b * l * 3 * c},
                {"attprojw", l * c * c, true},
                {"attprojb", b * l * c},
                {"ln2w", l * c},
                {"ln2b", b * l * c},
                {"fcw", l * 4 * c * c, true},
                {"fcb", b * l * 4 * c},
                {"fcprojw", l * c * 4 * c, true},
                {"fcprojb", b * l * c},
                {"lnfw", f},
                {"lnfb", b * f}};
    }

    // GPT-2 initialisation: N(0, 0.02) weights, residual projections N(0, 0.02 / sqrt(2L)),
    // LayerNorm gain 1 and bias 0, other biases 0. Tensors are drawn in arena order.
    void init(std::uint64_t seed) {
        rng r(seed);
        const float proj_std = 0.02f / std::sqrt(2.0f * L);
        for (int i = 0; i < num_param_tensors; ++i) {
            const auto& v = params_.view(i);
            float std_dev = 0.0f, fill = 0.0f;
            switch (i) {
            case p_wte:
            case p_wpe:
            case p_qkvw:
            case p_fcw:
                std_dev = 0.02f;
                break;
            case p_attprojw:
            case p_fcprojw:
                std_dev = proj_std;
                break;
            case p_ln1w:
            case p_ln2w:
            case p_lnfw:
                fill = 1.0f;
                break;
            default:
                break;
            }
            for (std::size_t k = 0; k < v.size; ++k)
                v.data[k] = std_dev > 0 ? T(std_dev * r.normal()) : T(fill);
        }
    }

    // Dropout on embeddings, attention probabilities and residual branches; 0 disables.
    void set_dropout(float rate) {
        GPTX_CHECK(rate >= 0.0f && rate < 1.0f, "model: dropout must be in [0, 1), got ", rate);
        dropout_ = rate;
    }
    float dropout() const { return dropout_; }
    // Training mode applies dropout; each training forward draws fresh masks from a counter that
    // a checkpoint saves, so a resumed run repeats the same masks.
    void set_training(bool on) { training_ = on; }
    bool training() const { return training_; }
    std::uint64_t dropout_counter() const { return dropout_counter_; }
    void set_dropout_counter(std::uint64_t c) { dropout_counter_ = c; }
    void set_dropout_seed(std::uint64_t s) { dropout_seed_ = s; }
    std::uint64_t dropout_seed() const { return dropout_seed_; }

    // Sizes the activation arenas for (B, T). Every buffer is a multiple of B·T rows, so they
    // grow only when B·T does: shapes that alternate (PPO-ptx: 64 rollouts of ~20 tokens, then
    // 4 pre-training rows of 64) reuse them instead of reallocating at every switch.
    void reserve(int B, int Tn) {
        GPTX_CHECK(B > 0, "model: batch size must be positive, got ", B);
        GPTX_CHECK(Tn > 0 && Tn <= cfg_.context, "model: sequence length ", Tn, " must be in [1, ",
                   cfg_.context, "] (the model's context)");
        B_ = B;
        T_ = Tn;
        if (std::int64_t(B) * Tn <= capacity_bt_)
            return;
        capacity_bt_ = std::int64_t(B) * Tn;
        const std::size_t bt = capacity_bt_, c = C, l = L, bnt = bt * NH;
        acts_.layout({{"encoded", bt * c},
                      {"ln1", l * bt * c},
                      {"ln1_mean", l * bt},
                      {"ln1_rstd", l * bt},
                      {"qkv", l * bt * 3 * c},
                      {"atty", l * bt * c},
                      {"att_lse", l * bnt},
                      {"residual2", l * bt * c},
                      {"ln2", l * bt * c},
                      {"ln2_mean", l * bt},
                      {"ln2_rstd", l * bt},
                      {"fch", l * bt * 4 * c},
                      {"fch_gelu", l * bt * 4 * c},
                      {"residual3", l * bt * c},
                      {"lnf", bt * c},
                      {"lnf_mean", bt},
                      {"lnf_rstd", bt},
                      {"branch", bt * c}});
        dacts_.layout({{"dhidden", bt * c},
                       {"dres", bt * c},
                       {"dsum", bt * c},
                       {"dtmp", bt * c},
                       {"dbranch", bt * c},
                       {"dqkv", bt * 3 * c},
                       {"dfch", bt * 4 * c},
                       {"dfch_gelu", bt * 4 * c}});
        tokens_.assign(capacity_bt_, 0);
    }
    int batch() const { return B_; }
    int seq_len() const { return T_; }

    // Runs the trunk; returns the hidden states (B, T, C) that heads consume.
    const T* forward(const int* tokens, int B, int Tn) {
        reserve(B, Tn);
        const std::int64_t BT = std::int64_t(B) * Tn;
        for (std::int64_t i = 0; i < BT; ++i)
            GPTX_CHECK(tokens[i] >= 0 && tokens[i] < cfg_.vocab, "model: token ", tokens[i],
                       " at position ", i, " is outside the vocabulary [0, ", cfg_.vocab, ")");
        std::copy(tokens, tokens + BT, tokens_.begin());
        const float rate = training_ ? dropout_ : 0.0f;
        if (rate > 0.0f)
            ++dropout_counter_;
        A a = acts();
        ops::encoder_forward(a.encoded, tokens, param(p_wte), param(p_wpe), B, Tn, C);
        ops::dropout_inplace(a.encoded, BT * C, rate, seed_for(0));
        for (int l = 0; l < L; ++l) {
            layer_ptrs p = layer(a, l);
            const T* x = layer_input(a, l);
            if constexpr (pre_ln) {
                ops::layernorm_forward(p.ln1, p.ln1_mean, p.ln1_rstd, x, p.w.ln1w, p.w.ln1b, BT, C);
                ops::matmul_forward(p.qkv, p.ln1, p.w.qkvw, p.w.qkvb, BT, C, 3 * C);
            } else {
                ops::matmul_forward(p.qkv, x, p.w.qkvw, p.w.qkvb, BT, C, 3 * C);
            }
            ops::attention_forward(p.atty, p.att_lse, p.qkv, B, Tn, C, NH, rate,
                                   seed_for(1 + 3 * l));
            ops::matmul_forward(a.branch, p.atty, p.w.attprojw, p.w.attprojb, BT, C, C);
            ops::dropout_inplace(a.branch, BT * C, rate, seed_for(2 + 3 * l));
            ops::residual_forward(p.residual2, x, a.branch, BT * C);
            T* fc_in;
            if constexpr (pre_ln) {
                ops::layernorm_forward(p.ln2, p.ln2_mean, p.ln2_rstd, p.residual2, p.w.ln2w,
                                       p.w.ln2b, BT, C);
                fc_in = p.ln2;
            } else {
                ops::layernorm_forward(p.ln1, p.ln1_mean, p.ln1_rstd, p.residual2, p.w.ln1w,
                                       p.w.ln1b, BT, C);
                fc_in = p.ln1;
            }
            ops::matmul_forward(p.fch, fc_in, p.w.fcw, p.w.fcb, BT, C, 4 * C);
            ops::gelu_of<S.gelu>::forward(p.fch_gelu, p.fch, BT * 4 * C);
            ops::matmul_forward(a.branch, p.fch_gelu, p.w.fcprojw, p.w.fcprojb, BT, 4 * C, C);
            ops::dropout_inplace(a.branch, BT * C, rate, seed_for(3 + 3 * l));
            // pre-LN: residual3 = residual2 + mlp; post-LN: residual3 = x1 + mlp, then LN2.
            ops::residual_forward(p.residual3, pre_ln ? p.residual2 : fc_in, a.branch, BT * C);
            if constexpr (!pre_ln)
                ops::layernorm_forward(p.ln2, p.ln2_mean, p.ln2_rstd, p.residual3, p.w.ln2w,
                                       p.w.ln2b, BT, C);
        }
        if constexpr (pre_ln) {
            layer_ptrs last = layer(a, L - 1);
            ops::layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, last.residual3, param(p_lnfw),
                                   param(p_lnfb), BT, C);
            hidden_ = a.lnf;
        } else {
            hidden_ = layer(a, L - 1).ln2;
        }
        return hidden_;
    }
    // The hidden states of the last forward (B, T, C).
    const T* hidden() const { return hidden_; }

    // The gradient of the loss with respect to the hidden states (B, T, C): heads write it, then
    // call backward().
    T* dhidden() { return dacts_.view(0).data; }

    // Backpropagates dhidden() through the trunk of the last forward; parameter grads accumulate.
    void backward() {
        const int B = B_, Tn = T_;
        const std::int64_t BT = std::int64_t(B) * Tn;
        if (BT <= 0) // no forward yet; also bounds row_bytes for GCC's -Wstringop-overflow
            return;
        const float rate = training_ ? dropout_ : 0.0f;
        A a = acts();
        D d = dacts();
        const std::size_t row_bytes = std::size_t(BT) * C * sizeof(T);
        if constexpr (pre_ln) {
            // d residual3[L-1] = LN_f backward of dhidden
            std::memset(d.dres, 0, row_bytes);
            ops::layernorm_backward(d.dres, grad(p_lnfw), grad(p_lnfb), d.dhidden,
                                    layer(a, L - 1).residual3, param(p_lnfw), a.lnf_mean,
                                    a.lnf_rstd, BT, C);
        } else {
            std::memcpy(d.dres, d.dhidden, row_bytes);
        }
        for (int l = L - 1; l >= 0; --l) {
            layer_ptrs p = layer(a, l);
            layer_weights g = layer_grads(l);
            const T* x = layer_input(a, l);
            if constexpr (pre_ln) {
                // dres = d residual3; the MLP branch and the skip both receive it.
                const T* dbr = branch_grad(d.dres, d.dbranch, BT * C, rate, seed_for(3 + 3 * l));
                ops::matmul_backward(d.dfch_gelu, g.fcprojw, g.fcprojb, dbr, p.fch_gelu,
                                     p.w.fcprojw, BT, 4 * C, C);
                ops::gelu_of<S.gelu>::backward(d.dfch, p.fch, d.dfch_gelu, BT * 4 * C);
                ops::matmul_backward(d.dtmp, g.fcw, g.fcb, d.dfch, p.ln2, p.w.fcw, BT, C, 4 * C);
                ops::layernorm_backward(d.dres, g.ln2w, g.ln2b, d.dtmp, p.residual2, p.w.ln2w,
                                        p.ln2_mean, p.ln2_rstd, BT, C);
                // dres = d residual2
                dbr = branch_grad(d.dres, d.dbranch, BT * C, rate, seed_for(2 + 3 * l));
                ops::matmul_backward(d.dtmp, g.attprojw, g.attprojb, dbr, p.atty, p.w.attprojw, BT,
                                     C, C);
                ops::attention_backward(d.dqkv, d.dtmp, p.qkv, p.atty, p.att_lse, B, Tn, C, NH,
                                        rate, seed_for(1 + 3 * l));
                ops::matmul_backward(d.dtmp, g.qkvw, g.qkvb, d.dqkv, p.ln1, p.w.qkvw, BT, C, 3 * C);
                ops::layernorm_backward(d.dres, g.ln1w, g.ln1b, d.dtmp, x, p.w.ln1w, p.ln1_mean,
                                        p.ln1_rstd, BT, C);
            } else {
                // dres = d ln2 (the layer output); dsum = d (x1 + mlp branch).
                std::memset(d.dsum, 0, row_bytes);
                ops::layernorm_backward(d.dsum, g.ln2w, g.ln2b, d.dres, p.residual3, p.w.ln2w,
                                        p.ln2_mean, p.ln2_rstd, BT, C);
                const T* dbr = branch_grad(d.dsum, d.dbranch, BT * C, rate, seed_for(3 + 3 * l));
                ops::matmul_backward(d.dfch_gelu, g.fcprojw, g.fcprojb, dbr, p.fch_gelu,
                                     p.w.fcprojw, BT, 4 * C, C);
                ops::gelu_of<S.gelu>::backward(d.dfch, p.fch, d.dfch_gelu, BT * 4 * C);
                // dsum becomes d x1 = skip + the fc input's gradient.
                ops::matmul_backward(d.dsum, g.fcw, g.fcb, d.dfch, p.ln1, p.w.fcw, BT, C, 4 * C,
                                     true);
                std::memset(d.dres, 0, row_bytes);
                ops::layernorm_backward(d.dres, g.ln1w, g.ln1b, d.dsum, p.residual2, p.w.ln1w,
                                        p.ln1_mean, p.ln1_rstd, BT, C);
                // dres = d (x + attention branch)
                dbr = branch_grad(d.dres, d.dbranch, BT * C, rate, seed_for(2 + 3 * l));
                ops::matmul_backward(d.dtmp, g.attprojw, g.attprojb, dbr, p.atty, p.w.attprojw, BT,
                                     C, C);
                ops::attention_backward(d.dqkv, d.dtmp, p.qkv, p.atty, p.att_lse, B, Tn, C, NH,
                                        rate, seed_for(1 + 3 * l));
                ops::matmul_backward(d.dres, g.qkvw, g.qkvb, d.dqkv, x, p.w.qkvw, BT, C, 3 * C,
                                     true);
            }
        }
        const T* denc = branch_grad(d.dres, d.dbranch, BT * C, rate, seed_for(0));
        ops::encoder_backward(grad(p_wte), grad(p_wpe), denc, tokens_.data(), B, Tn, C);
    }

    void zero_grad() { grads_.zero(); }

  private:
    struct layer_weights {
        T *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw,
            *fcprojb;
    };
    struct A {
        T *encoded, *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att_lse, *residual2, *ln2, *ln2_mean,
            *ln2_rstd, *fch, *fch_gelu, *residual3, *lnf, *lnf_mean, *lnf_rstd, *branch;
    };
    struct D {
        T *dhidden, *dres, *dsum, *dtmp, *dbranch, *dqkv, *dfch, *dfch_gelu;
    };
    struct layer_ptrs {
        layer_weights w;
        T *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att_lse, *residual2, *ln2, *ln2_mean, *ln2_rstd,
            *fch, *fch_gelu, *residual3;
    };

    A acts() {
        auto v = [&](int i) { return acts_.view(i).data; };
        return {v(0), v(1),  v(2),  v(3),  v(4),  v(5),  v(6),  v(7),  v(8),
                v(9), v(10), v(11), v(12), v(13), v(14), v(15), v(16), v(17)};
    }
    D dacts() {
        auto v = [&](int i) { return dacts_.view(i).data; };
        return {v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7)};
    }
    static T* or_null(const tensor_view<T>& v) { return v.size ? v.data : nullptr; }
    layer_weights weights_of(basic_arena<T>& ar, int l) {
        auto v = [&](param_id i, std::size_t per_layer) {
            T* p = or_null(ar.view(i));
            return p ? p + std::size_t(l) * per_layer : nullptr;
        };
        const std::size_t c = C;
        return {v(p_ln1w, c),
                v(p_ln1b, c),
                v(p_qkvw, 3 * c * c),
                v(p_qkvb, 3 * c),
                v(p_attprojw, c * c),
                v(p_attprojb, c),
                v(p_ln2w, c),
                v(p_ln2b, c),
                v(p_fcw, 4 * c * c),
                v(p_fcb, 4 * c),
                v(p_fcprojw, 4 * c * c),
                v(p_fcprojb, c)};
    }
    layer_weights layer_grads(int l) { return weights_of(grads_, l); }
    // Activation slices of layer l, laid out for the current (B, T).
    layer_ptrs layer(const A& a, int l) {
        const std::size_t bt = std::size_t(B_) * T_, c = C, bnt = std::size_t(B_) * NH * T_;
        const std::size_t i = l;
        return {weights_of(params_, l),      a.ln1 + i * bt * c,       a.ln1_mean + i * bt,
                a.ln1_rstd + i * bt,         a.qkv + i * bt * 3 * c,   a.atty + i * bt * c,
                a.att_lse + i * bnt,         a.residual2 + i * bt * c, a.ln2 + i * bt * c,
                a.ln2_mean + i * bt,         a.ln2_rstd + i * bt,      a.fch + i * bt * 4 * c,
                a.fch_gelu + i * bt * 4 * c, a.residual3 + i * bt * c};
    }
    // The input of layer l: the embeddings, or the previous layer's output.
    const T* layer_input(const A& a, int l) {
        if (l == 0)
            return a.encoded;
        layer_ptrs prev = layer(a, l - 1);
        return pre_ln ? prev.residual3 : prev.ln2;
    }
    // The gradient that reaches a dropped-out tensor: g itself without dropout, else a masked copy.
    const T* branch_grad(const T* g, T* buf, std::int64_t n, float rate, std::uint64_t seed) {
        if (rate <= 0.0f)
            return g;
        ops::dropout_copy(buf, g, n, rate, seed);
        return buf;
    }
    std::uint64_t seed_for(int site) const {
        return mix64(dropout_seed_ ^
                     mix64(dropout_counter_ * 1000003ull + static_cast<std::uint64_t>(site)));
    }

    model_config cfg_;
    basic_arena<T> params_, grads_, acts_, dacts_;
    std::vector<int> tokens_;
    const T* hidden_ = nullptr;
    std::int64_t capacity_bt_ = 0; // rows the activation arenas hold
    int B_ = 0, T_ = 0;
    float dropout_ = 0.0f;
    bool training_ = true;
    std::uint64_t dropout_seed_ = 0x5eed, dropout_counter_ = 0;
};

} // namespace gptx
