// gptx/nn/kv_cache.hpp: the inference path of a transformer with cached keys and values, so
// generation costs one position per step. Tested by tests/generate/test_generate.cpp.
// Legend: B batch, n new positions, C channels, NH heads, HS head size, L layers, V vocab,
// maxT cached positions per sequence.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../core/arena.hpp"
#include "../core/bf16.hpp"
#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../ops/attention_decode.hpp"
#include "../ops/crossentropy.hpp"
#include "../ops/encoder.hpp"
#include "../ops/gelu.hpp"
#include "../ops/gemm_bf16.hpp"
#include "../ops/layernorm.hpp"
#include "../ops/matmul.hpp"
#include "../ops/residual.hpp"
#include "../simd/simd.hpp"
#include "transformer.hpp"

namespace gptx {

// Keys and values of B sequences that grow together (equal lengths), over the parameters of a
// `transformer<S, T>`. It computes what Model::forward computes, without dropout, but only for
// the new positions. The model must outlive the cache; its parameters are read at every call,
// so a cache keeps working across optimizer steps (PPO rollouts) but must be cleared after one,
// since the cached keys came from the old weights.
template <class Model> class kv_cache {
  public:
    using model_type = Model;
    using value_type = typename Model::value_type;
    using T = value_type;
    static constexpr int C = Model::C, NH = Model::NH, L = Model::L, HS = Model::HS;
    static constexpr bool pre_ln = Model::pre_ln;

    explicit kv_cache(const Model& model) : model_(&model) {}
    kv_cache(const Model& model, int B, int max_len = 0, int max_chunk = 0) : model_(&model) {
        reset(B, max_len, max_chunk);
    }

    // Sizes the cache for B sequences of at most max_len positions (0: the model's context),
    // fed at most max_chunk positions per forward() (0: max_len), and empties it. Allocates only
    // when a buffer grows; forward() never allocates.
    void reset(int B, int max_len = 0, int max_chunk = 0) {
        const int ctx = model_->context();
        if (max_len == 0)
            max_len = ctx;
        if (max_chunk == 0)
            max_chunk = max_len;
        GPTX_CHECK(B > 0, "kv_cache: batch size must be positive, got ", B);
        GPTX_CHECK(max_len > 0 && max_len <= ctx, "kv_cache: length ", max_len, " must be in [1, ",
                   ctx, "] (the model's context)");
        GPTX_CHECK(max_chunk > 0 && max_chunk <= max_len, "kv_cache: chunk ", max_chunk,
                   " must be in [1, ", max_len, "] (the cache length)");
        B_ = B;
        max_len_ = max_len;
        max_chunk_ = max_chunk;
        len_ = 0;
        const std::size_t kv = std::size_t(L) * B * max_len * C;
        if (kv_.views().empty() || kv > kv_.view(0).size)
            kv_.layout({{"k", kv}, {"v", kv}});
        const std::size_t rows = std::size_t(B) * max_chunk, c = C, V = model_->vocab();
        const std::vector<typename basic_arena<T>::entry> need = {{"x", rows * c},
                                                                  {"ln", rows * c},
                                                                  {"mean", rows},
                                                                  {"rstd", rows},
                                                                  {"qkv", rows * 3 * c},
                                                                  {"atty", rows * c},
                                                                  {"branch", rows * c},
                                                                  {"res", rows * c},
                                                                  {"fch", rows * 4 * c},
                                                                  {"fch_gelu", rows * 4 * c},
                                                                  {"last", std::size_t(B) * c},
                                                                  {"logits", std::size_t(B) * V}};
        bool grow = acts_.views().size() != need.size();
        for (std::size_t i = 0; !grow && i < need.size(); ++i)
            grow = need[i].size > acts_.view(i).size;
        if (grow)
            acts_.layout(need);
        if (tokens_.size() < rows)
            tokens_.resize(rows);
    }
    // Forgets the cached positions; keeps the sizes and buffers.
    void clear() { len_ = 0; }

    // bf16: from now on the linear layers, the token embedding and the LM head read a bf16 copy
    // of their weight matrices, made here (inference from bf16 weights: decoding streams half the
    // bytes per token; activations, LayerNorm, attention and the accumulation stay fp32). A
    // snapshot: after an optimizer step call it again. fp32 drops the copy. float models only.
    void set_weights_precision(ops::precision p) {
        len_ = 0; // cached keys came from the other weights
        bf16_.clear();
        bf16_.shrink_to_fit();
        bf16_at_.fill(nullptr);
        if (p == ops::precision::fp32)
            return;
        GPTX_CHECK((std::is_same_v<T, float>), "kv_cache: bf16 weights need a float model");
        if constexpr (std::is_same_v<T, float>) {
            std::size_t total = 0;
            for (param_id id : bf16_params)
                total += model_->params().view(id).size;
            bf16_.resize(total);
            std::size_t at = 0;
            for (param_id id : bf16_params) {
                const auto v = model_->params().view(id);
                to_bf16(bf16_.data() + at, v.data, v.size);
                bf16_at_[id] = bf16_.data() + at;
                at += v.size;
            }
        }
    }
    ops::precision weights_precision() const {
        return bf16_.empty() ? ops::precision::fp32 : ops::precision::bf16;
    }

    const Model& model() const { return *model_; }
    int batch() const { return B_; }
    int length() const { return len_; }         // positions cached per sequence
    int max_length() const { return max_len_; } // set by reset(), at most the context
    int max_chunk() const { return max_chunk_; }

    // Appends n_new positions to each sequence; tokens (B, n_new) row-major. Returns the hidden
    // states of the new positions (B, n_new, C), valid until the next call. Prefill passes the
    // prompt (n_new <= max_chunk()), decoding passes n_new = 1.
    const T* forward(const int* tokens, int B, int n_new) {
        check_append(B, n_new);
        GPTX_CHECK(n_new <= max_chunk_, "kv_cache: ", n_new, " new positions exceed the chunk of ",
                   max_chunk_, " set by reset() (forward_logits() splits longer inputs)");
        check_tokens(tokens, std::int64_t(B) * n_new);
        return run(tokens, n_new);
    }

    // Appends n_new positions (any count: longer inputs go in chunks, which is exact since
    // attention is causal) and returns the logits of each sequence's last position (B, V).
    const T* forward_logits(const int* tokens, int B, int n_new) {
        check_append(B, n_new);
        check_tokens(tokens, std::int64_t(B) * n_new); // before any chunk is appended
        const T* hidden = nullptr;
        int n = 0;
        for (int i0 = 0; i0 < n_new; i0 += n) {
            n = std::min(max_chunk_, n_new - i0);
            const int* tok = tokens + i0;
            if (n != n_new) { // gather the chunk's columns into a (B, n) block
                for (int b = 0; b < B; ++b)
                    std::copy(tokens + std::int64_t(b) * n_new + i0,
                              tokens + std::int64_t(b) * n_new + i0 + n,
                              tokens_.data() + std::int64_t(b) * n);
                tok = tokens_.data();
            }
            hidden = forward(tok, B, n);
        }
        T* last = buf(a_last);
        for (int b = 0; b < B; ++b)
            std::memcpy(last + std::int64_t(b) * C, hidden + (std::int64_t(b) * n + n - 1) * C,
                        sizeof(T) * C);
        T* logits = buf(a_logits);
        linear(logits, last, p_wte, 0, nullptr, B, C, model_->vocab()); // the tied head
        return logits;
    }
    // The logits (B, V) of the last forward_logits().
    const T* logits() const { return acts_.view(a_logits).data; }

  private:
    enum : int {
        a_x,
        a_ln,
        a_mean,
        a_rstd,
        a_qkv,
        a_atty,
        a_branch,
        a_res,
        a_fch,
        a_fch_gelu,
        a_last,
        a_logits
    };
    // Up to this many rows, a linear layer streams its weights (decode) instead of gemm (prefill).
    static constexpr std::int64_t few_rows = 8;

    T* buf(int i) { return acts_.view(i).data; }

    void check_append(int B, int n_new) {
        GPTX_CHECK(B_ > 0, "kv_cache: call reset(B) before forward");
        GPTX_CHECK(B == B_, "kv_cache: batch ", B, " differs from the ", B_, " set by reset()");
        GPTX_CHECK(n_new > 0, "kv_cache: need at least one new position, got ", n_new);
        GPTX_CHECK(len_ + n_new <= max_len_, "kv_cache: appending ", n_new, " positions to ", len_,
                   " cached ones exceeds the cache length of ", max_len_,
                   max_len_ == model_->context() ? " (the model's context)" : " (set by reset())");
    }

    void check_tokens(const int* tokens, std::int64_t count) const {
        const int V = model_->vocab();
        for (std::int64_t i = 0; i < count; ++i)
            GPTX_CHECK(tokens[i] >= 0 && tokens[i] < V, "kv_cache: token ", tokens[i],
                       " at position ", i, " is outside the vocabulary [0, ", V, ")");
    }

    // out(N, out_c) = inp(N, in) · Wᵀ + bias, W the block of weight tensor id at element offset,
    // read from the bf16 copy when there is one.
    void linear(T* out, const T* inp, param_id id, std::size_t offset, const T* bias,
                std::int64_t N, int in, int out_c) const {
        if constexpr (std::is_same_v<T, float>) {
            if (const bf16* wb = bf16_at_[id]) {
                wb += offset;
                if (N <= few_rows)
                    return ops::matmul_rows_forward(out, inp, wb, bias, N, in, out_c);
                ops::gemm_bf16(false, true, int(N), out_c, in, 1.0f, inp, in, wb, in, 0.0f, out,
                               out_c);
                if (bias)
                    parallel_for(N,
                                 [&](std::int64_t r) { simd::add(out + r * out_c, bias, out_c); });
                return;
            }
        }
        const T* w = model_->param(id) + offset;
        if (N <= few_rows)
            ops::matmul_rows_forward(out, inp, w, bias, N, in, out_c);
        else
            ops::matmul_forward(out, inp, w, bias, N, in, out_c);
    }
    // The tensors the bf16 copy holds: every weight matrix (biases, LayerNorms and wpe stay fp32).
    static constexpr param_id bf16_params[] = {p_wte, p_qkvw, p_attprojw, p_fcw, p_fcprojw};

    // The layer loop of transformer::forward for the new rows only.
    const T* run(const int* tokens, int n) {
        const Model& m = *model_;
        const int B = B_, t0 = len_;
        const std::int64_t N = std::int64_t(B) * n, NC = N * C;
        T *x = buf(a_x), *ln = buf(a_ln), *mean = buf(a_mean), *rstd = buf(a_rstd);
        T *qkv = buf(a_qkv), *atty = buf(a_atty), *branch = buf(a_branch), *res = buf(a_res);
        T *fch = buf(a_fch), *fch_gelu = buf(a_fch_gelu);
        // Rows of wpe from t0: the chunk's position t is absolute position t0 + t.
        const T* wpe = m.param(p_wpe) + std::int64_t(t0) * C;
        if (bf16_at_[p_wte] != nullptr) { // the token embedding is the tied wte: its bf16 rows
            if constexpr (std::is_same_v<T, float>)
                for (std::int64_t r = 0; r < N; ++r) {
                    T* xr = x + r * C;
                    const T* pr = wpe + (r % n) * C;
                    to_float(xr, bf16_at_[p_wte] + std::int64_t(tokens[r]) * C, C);
                    for (int i = 0; i < C; ++i)
                        xr[i] += pr[i];
                }
        } else {
            ops::encoder_forward(x, tokens, m.param(p_wte), wpe, B, n, C);
        }
        const std::size_t c = C;
        for (int l = 0; l < L; ++l) {
            auto w = [&](param_id id, std::size_t per_layer) {
                const T* p = m.param(id); // null for tensors the shape lacks (biases)
                return p ? p + l * per_layer : nullptr;
            };
            auto lin = [&](T* out, const T* inp, param_id id, std::size_t per_layer, const T* bias,
                           int in,
                           int out_c) { linear(out, inp, id, l * per_layer, bias, N, in, out_c); };
            // x: the layer input (pre-LN residual stream, or the previous post-LN output).
            if constexpr (pre_ln) {
                ops::layernorm_forward(ln, mean, rstd, x, w(p_ln1w, c), w(p_ln1b, c), N, C);
                lin(qkv, ln, p_qkvw, 3 * c * c, w(p_qkvb, 3 * c), C, 3 * C);
            } else {
                lin(qkv, x, p_qkvw, 3 * c * c, w(p_qkvb, 3 * c), C, 3 * C);
            }
            T* kl = kv_.view(0).data + std::size_t(l) * B * max_len_ * C;
            T* vl = kv_.view(1).data + std::size_t(l) * B * max_len_ * C;
            store(kl, vl, qkv, n, t0);
            ops::attention_decode_forward(atty, qkv, 3 * C, kl, vl, B, n, t0, C, NH, max_len_);
            lin(branch, atty, p_attprojw, c * c, w(p_attprojb, c), C, C);
            ops::residual_forward(res, x, branch, NC); // residual2
            // pre-LN: ln = LN2(residual2); post-LN: ln = x1 = LN1(residual2). The MLP reads ln.
            if constexpr (pre_ln)
                ops::layernorm_forward(ln, mean, rstd, res, w(p_ln2w, c), w(p_ln2b, c), N, C);
            else
                ops::layernorm_forward(ln, mean, rstd, res, w(p_ln1w, c), w(p_ln1b, c), N, C);
            lin(fch, ln, p_fcw, 4 * c * c, w(p_fcb, 4 * c), C, 4 * C);
            ops::gelu_of<Model::dims.gelu>::forward(fch_gelu, fch, N * 4 * C);
            lin(branch, fch_gelu, p_fcprojw, 4 * c * c, w(p_fcprojb, c), 4 * C, C);
            if constexpr (pre_ln) {
                ops::residual_forward(x, res, branch, NC); // residual3, the next layer's input
            } else {
                ops::residual_forward(res, ln, branch, NC); // x1 + mlp
                ops::layernorm_forward(x, mean, rstd, res, w(p_ln2w, c), w(p_ln2b, c), N, C);
            }
        }
        len_ += n;
        if constexpr (pre_ln) {
            ops::layernorm_forward(ln, mean, rstd, x, m.param(p_lnfw), m.param(p_lnfb), N, C);
            return ln;
        } else {
            return x; // GPT-1 has no final LayerNorm
        }
    }

    // Copies the new rows' keys and values from qkv (B, n, 3C) into the head-major caches.
    void store(T* kl, T* vl, const T* qkv, int n, int t0) {
        parallel_for(
            std::int64_t(B_) * n,
            [&](std::int64_t r) {
                const std::int64_t b = r / n, t = t0 + r % n;
                const T* src = qkv + r * 3 * C;
                for (int h = 0; h < NH; ++h) {
                    const std::int64_t dst = ((b * NH + h) * max_len_ + t) * HS;
                    std::memcpy(kl + dst, src + C + h * HS, sizeof(T) * HS);
                    std::memcpy(vl + dst, src + 2 * C + h * HS, sizeof(T) * HS);
                }
            },
            64);
    }

    const Model* model_;
    std::vector<bf16> bf16_;                                  // the bf16 weights, when set
    std::array<const bf16*, num_param_tensors> bf16_at_ = {}; // each tensor's start in bf16_
    basic_arena<T> kv_, acts_;
    std::vector<int> tokens_;
    int B_ = 0, max_len_ = 0, max_chunk_ = 0, len_ = 0;
};

} // namespace gptx
