// gptx/ops/layernorm.hpp: LayerNorm over the channel dimension, forward and backward.
// Tested by tests/ops/test_ops.cpp. Legend: N rows (B*T), C channels.
#pragma once
#include <cmath>
#include <cstdint>

#include "../core/parallel.hpp"
#include "../simd/simd.hpp"

namespace gptx::ops {

inline constexpr double layernorm_eps = 1e-5;

// out = (x - mean) * rstd * weight + bias, rstd = 1/sqrt(var + eps); saves mean and rstd (N).
// bias may be null (bias-free LayerNorm).
template <class Arch = simd::default_arch, class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                       std::int64_t N, int C) {
    using B = simd::batch<T, Arch>;
    constexpr int W = static_cast<int>(B::size);
    parallel_for(N, [&](std::int64_t r) {
        const T* x = inp + r * C;
        T* o = out + r * C;
        // Two passes (mean, then centred variance) for accuracy, as PyTorch.
        T m = T(0);
        {
            B acc(T(0));
            int i = 0;
            for (; i + W <= C; i += W)
                acc += simd::load<Arch>(x + i);
            m = simd::reduce_add<Arch>(acc);
            for (; i < C; ++i)
                m += x[i];
            m /= T(C);
        }
        T v = T(0);
        {
            B acc(T(0)), vm(m);
            int i = 0;
            for (; i + W <= C; i += W) {
                B d = simd::load<Arch>(x + i) - vm;
                acc = xsimd::fma(d, d, acc);
            }
            v = simd::reduce_add<Arch>(acc);
            for (; i < C; ++i)
                v += (x[i] - m) * (x[i] - m);
            v /= T(C);
        }
        const T s = T(1) / std::sqrt(v + T(layernorm_eps));
        {
            B vm(m), vs(s);
            int i = 0;
            if (bias) {
                for (; i + W <= C; i += W) {
                    B n = (simd::load<Arch>(x + i) - vm) * vs;
                    simd::store<Arch>(o + i, xsimd::fma(n, simd::load<Arch>(weight + i),
                                                        simd::load<Arch>(bias + i)));
                }
                for (; i < C; ++i)
                    o[i] = (x[i] - m) * s * weight[i] + bias[i];
            } else {
                for (; i + W <= C; i += W)
                    simd::store<Arch>(o + i, (simd::load<Arch>(x + i) - vm) * vs *
                                                 simd::load<Arch>(weight + i));
                for (; i < C; ++i)
                    o[i] = (x[i] - m) * s * weight[i];
            }
        }
        mean[r] = m;
        rstd[r] = s;
    });
}

// With n = (x - mean) * rstd and g = dout * weight:
//   dx = rstd * (g - mean(g) - n * mean(g * n)),  dweight += sum_rows dout * n,  dbias += sum_rows
//   dout.
// Adds into dinp, dweight and dbias (dbias may be null). dinp is split by rows; dweight/dbias by
// channel blocks, so the summation order never depends on the thread count.
template <class Arch = simd::default_arch, class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const T* mean, const T* rstd, std::int64_t N, int C) {
    using B = simd::batch<T, Arch>;
    constexpr int W = static_cast<int>(B::size);
    parallel_for(N, [&](std::int64_t r) {
        const T* x = inp + r * C;
        const T* d = dout + r * C;
        T* dx = dinp + r * C;
        const T m = mean[r], s = rstd[r];
        B vm(m), vs(s), ag(T(0)), agn(T(0));
        int i = 0;
        for (; i + W <= C; i += W) {
            B n = (simd::load<Arch>(x + i) - vm) * vs;
            B g = simd::load<Arch>(d + i) * simd::load<Arch>(weight + i);
            ag += g;
            agn = xsimd::fma(g, n, agn);
        }
        T sg = simd::reduce_add<Arch>(ag), sgn = simd::reduce_add<Arch>(agn);
        for (; i < C; ++i) {
            T n = (x[i] - m) * s, g = d[i] * weight[i];
            sg += g;
            sgn += g * n;
        }
        const T mg = sg / T(C), mgn = sgn / T(C);
        B vmg(mg), vmgn(mgn);
        for (i = 0; i + W <= C; i += W) {
            B n = (simd::load<Arch>(x + i) - vm) * vs;
            B g = simd::load<Arch>(d + i) * simd::load<Arch>(weight + i);
            simd::store<Arch>(dx + i, xsimd::fma(vs, g - vmg - n * vmgn, simd::load<Arch>(dx + i)));
        }
        for (; i < C; ++i) {
            T n = (x[i] - m) * s, g = d[i] * weight[i];
            dx[i] += s * (g - mg - n * mgn);
        }
    });
    const int blocks = (C + W - 1) / W;
    parallel_for(blocks, [&](std::int64_t blk) {
        const int c0 = static_cast<int>(blk) * W, c1 = std::min(C, c0 + W);
        if (c1 - c0 == W) {
            B dw(T(0)), db(T(0));
            for (std::int64_t r = 0; r < N; ++r) {
                B n = (simd::load<Arch>(inp + r * C + c0) - B(mean[r])) * B(rstd[r]);
                B d = simd::load<Arch>(dout + r * C + c0);
                dw = xsimd::fma(d, n, dw);
                db += d;
            }
            simd::store<Arch>(dweight + c0, simd::load<Arch>(dweight + c0) + dw);
            if (dbias)
                simd::store<Arch>(dbias + c0, simd::load<Arch>(dbias + c0) + db);
        } else {
            for (int c = c0; c < c1; ++c) {
                T dw = T(0), db = T(0);
                for (std::int64_t r = 0; r < N; ++r) {
                    T n = (inp[r * C + c] - mean[r]) * rstd[r];
                    dw += dout[r * C + c] * n;
                    db += dout[r * C + c];
                }
                dweight[c] += dw;
                if (dbias)
                    dbias[c] += db;
            }
        }
    });
}

} // namespace gptx::ops
