// gptx/nn/heads.hpp: a linear head that reads the trunk's hidden state at chosen rows (GPT-1's
// classifier at the extract token, the reward model's scalar at end-of-text, a value head at every
// token). Tested by tests/nn/test_heads.cpp. Legend: N rows read, C channels, K outputs.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/arena.hpp"
#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "../ops/matmul.hpp"

namespace gptx {

// out(N, K) = hidden[rows[i]] · Wᵀ + b, with W (K, C) and b (K) in the head's own arena.
template <class T = float> class linear_head {
  public:
    linear_head() = default;
    linear_head(int C, int K) : C_(C), K_(K) {
        GPTX_CHECK(C > 0 && K > 0, "linear_head: C and K must be positive, got ", C, " and ", K);
        const std::vector<typename basic_arena<T>::entry> e{{"head_w", std::size_t(K) * C, true},
                                                            {"head_b", std::size_t(K)}};
        params_.layout(e);
        grads_.layout(e);
    }

    // W ~ N(0, std) (GPT-1 initialises its heads like every weight: N(0, 0.02)); b = 0.
    void init(std::uint64_t seed, float std_dev = 0.02f) {
        rng r(seed);
        for (std::size_t i = 0; i < params_.view(0).size; ++i)
            weight()[i] = T(std_dev * r.normal());
        std::fill(bias(), bias() + K_, T(0));
    }

    int channels() const { return C_; }
    int outputs() const { return K_; }
    basic_arena<T>& params() { return params_; }
    const basic_arena<T>& params() const { return params_; }
    basic_arena<T>& grads() { return grads_; }
    T* weight() { return params_.view(0).data; }
    T* bias() { return params_.view(1).data; }
    const T* weight() const { return params_.view(0).data; }
    const T* bias() const { return params_.view(1).data; }

    // Gathers the N rows of hidden (rows index into a (B*T, C) block) and applies the head.
    // Keeps the gathered rows for backward.
    void forward(T* out, const T* hidden, const int* rows, int N) {
        rows_.assign(rows, rows + N);
        gathered_.resize(std::size_t(N) * C_);
        for (int i = 0; i < N; ++i)
            std::memcpy(gathered_.data() + std::size_t(i) * C_, hidden + std::int64_t(rows[i]) * C_,
                        sizeof(T) * C_);
        ops::matmul_forward(out, gathered_.data(), weight(), bias(), N, C_, K_);
    }

    // d hidden[rows[i]] += dout[i] · W,  dW += doutᵀ · h_rows,  db += sum_i dout[i].
    // Adds into dhidden, so several heads on one trunk sum their gradients.
    void backward(T* dhidden, const T* dout) {
        const int N = static_cast<int>(rows_.size());
        dgathered_.resize(std::size_t(N) * C_);
        ops::matmul_backward(dgathered_.data(), grads_.view(0).data, grads_.view(1).data, dout,
                             gathered_.data(), weight(), N, C_, K_);
        for (int i = 0; i < N; ++i) {
            T* d = dhidden + std::int64_t(rows_[i]) * C_;
            const T* g = dgathered_.data() + std::size_t(i) * C_;
            for (int c = 0; c < C_; ++c)
                d[c] += g[c];
        }
    }

    void zero_grad() { grads_.zero(); }

  private:
    int C_ = 0, K_ = 0;
    basic_arena<T> params_, grads_;
    std::vector<int> rows_;
    std::vector<T> gathered_, dgathered_;
};

} // namespace gptx
