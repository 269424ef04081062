// gptx/train/optimizer.hpp: AdamW over a whole parameter arena, with moment arenas that mirror it.
// Tested by tests/train/test_optimizer.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/arena.hpp"
#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../ops/adamw.hpp"
#include "../simd/simd.hpp"

namespace gptx {

// nanoGPT's defaults for GPT-2 pre-training.
struct adamw_config {
    float lr = 6e-4f;
    float beta1 = 0.9f;
    float beta2 = 0.95f;
    float eps = 1e-8f;
    float weight_decay = 0.1f;
};

// Settings no run can use, refused before the first step (NaN fails every comparison). The
// learning rate is the schedule's to set per step, so it is not checked here.
inline void validate_adamw_config(const adamw_config& c) {
    GPTX_CHECK(c.beta1 >= 0 && c.beta1 < 1, "AdamW: beta1 (--beta1) must be in [0, 1), got ",
               c.beta1);
    GPTX_CHECK(c.beta2 >= 0 && c.beta2 < 1, "AdamW: beta2 (--beta2) must be in [0, 1), got ",
               c.beta2);
    GPTX_CHECK(c.eps > 0 && std::isfinite(c.eps), "AdamW: eps must be positive, got ", c.eps);
    GPTX_CHECK(c.weight_decay >= 0 && std::isfinite(c.weight_decay),
               "AdamW: weight decay (--weight-decay) must be a finite number >= 0, got ",
               c.weight_decay);
}

// AdamW whose m and v live in two arenas laid out exactly like the parameters, so a checkpoint
// writes each as one block. Weight decay applies only to views flagged decay (2-D weights, as
// nanoGPT); biases, layernorm gains and other 1-D tensors are not decayed.
template <class T = float> class adamw {
  public:
    adamw() = default;
    explicit adamw(const std::vector<tensor_view<T>>& views, adamw_config cfg = {}) : cfg_(cfg) {
        validate_adamw_config(cfg);
        std::vector<typename basic_arena<T>::entry> entries;
        entries.reserve(views.size());
        for (const auto& v : views)
            entries.push_back({v.name, v.size, v.decay});
        m_.layout(entries);
        v_.layout(entries);
    }
    explicit adamw(const basic_arena<T>& params, adamw_config cfg = {})
        : adamw(params.views(), cfg) {}
    // ZeRO-1: state for the window [lo, hi) of the flat parameters only (each tensor clipped to
    // the window, so decay flags still apply); step() then updates only that window.
    adamw(const basic_arena<T>& params, adamw_config cfg, std::size_t lo, std::size_t hi)
        : cfg_(cfg), lo_(lo), total_(params.size()) {
        validate_adamw_config(cfg);
        GPTX_CHECK(lo <= hi && hi <= params.size(), "adamw: window [", lo, ", ", hi,
                   ") is outside the ", params.size(), " parameters");
        std::vector<typename basic_arena<T>::entry> entries;
        std::size_t off = 0;
        for (const auto& v : params.views()) {
            const std::size_t b = std::clamp(off, lo, hi), e = std::clamp(off + v.size, lo, hi);
            entries.push_back({v.name, e - b, v.decay});
            off += v.size;
        }
        m_.layout(entries);
        v_.layout(entries);
    }

    // One update with learning rate lr (the schedule's value for this iteration); advances the
    // step counter first, so the first call uses t = 1. Allocates nothing.
    template <class Arch = simd::default_arch>
    void step(basic_arena<T>& params, const basic_arena<T>& grads, float lr) {
        check_layout(params, grads);
        ++t_;
        const auto cd = ops::make_adamw_coeffs<T>(T(lr), T(cfg_.beta1), T(cfg_.beta2), T(cfg_.eps),
                                                  T(cfg_.weight_decay), t_);
        const auto cn =
            ops::make_adamw_coeffs<T>(T(lr), T(cfg_.beta1), T(cfg_.beta2), T(cfg_.eps), T(0), t_);
        // The window's parameters and gradients; m and v hold the window only.
        T* p = params.data() + lo_;
        const T* g = grads.data() + lo_;
        T* m = m_.data();
        T* v = v_.data();
        const auto& views = m_.views();
        // One parallel region over the flat arena (not one per tensor); each thread walks the
        // views its slice overlaps. The kernel is lane-independent, so slices never change bits.
        parallel_ranges(
            static_cast<std::int64_t>(m_.size()),
            [&](std::int64_t b, std::int64_t e) {
                std::size_t off = 0;
                for (const auto& tv : views) {
                    const std::size_t lo = std::max<std::size_t>(off, std::size_t(b));
                    const std::size_t hi = std::min<std::size_t>(off + tv.size, std::size_t(e));
                    off += tv.size;
                    if (lo < hi)
                        ops::adamw_update_serial<Arch>(p + lo, g + lo, m + lo, v + lo, hi - lo,
                                                       tv.decay ? cd : cn);
                    if (off >= std::size_t(e))
                        break;
                }
            },
            std::int64_t{1} << 14);
    }
    // One update at the configured learning rate.
    template <class Arch = simd::default_arch>
    void step(basic_arena<T>& params, const basic_arena<T>& grads) {
        step<Arch>(params, grads, cfg_.lr);
    }

    const adamw_config& config() const { return cfg_; }
    adamw_config& config() { return cfg_; }

    // Updates taken so far; the next step() uses step_count() + 1 for bias correction.
    int step_count() const { return t_; }
    void set_step_count(int t) { t_ = t; } // checkpoint resume

    // First and second moments, laid out as the parameters (for checkpoints).
    basic_arena<T>& m() { return m_; }
    const basic_arena<T>& m() const { return m_; }
    basic_arena<T>& v() { return v_; }
    const basic_arena<T>& v() const { return v_; }

    // Elements of optimizer state (m and v together); state_size() * sizeof(T) bytes.
    std::size_t state_size() const { return m_.size() + v_.size(); }

    // The window of the flat parameters this optimizer updates (all of them unless sharded).
    std::size_t shard_begin() const { return lo_; }
    std::size_t shard_end() const { return lo_ + m_.size(); }
    bool sharded() const { return m_.size() != (total_ == npos ? m_.size() : total_); }

    // Forget the moments and the step count (as a fresh optimizer).
    void reset() {
        m_.zero();
        v_.zero();
        t_ = 0;
    }

  private:
    void check_layout(const basic_arena<T>& params, const basic_arena<T>& grads) const {
        const std::size_t n = sharded() ? total_ : m_.size();
        GPTX_CHECK(params.size() == n && grads.size() == n, "adamw: parameter arena has ",
                   params.size(), " elements, gradients ", grads.size(), ", optimizer state ", n);
        const auto& pv = params.views();
        const auto& mv = m_.views();
        GPTX_CHECK(pv.size() == mv.size(), "adamw: parameter arena has ", pv.size(),
                   " tensors, optimizer state ", mv.size());
        std::size_t off = 0;
        for (std::size_t i = 0; i < pv.size(); ++i) {
            const std::size_t hi = lo_ + m_.size();
            const std::size_t want =
                std::clamp(off + pv[i].size, lo_, hi) - std::clamp(off, lo_, hi);
            off += pv[i].size;
            GPTX_CHECK(want == mv[i].size, "adamw: tensor ", pv[i].name, " has ", want,
                       " elements in the window, optimizer state ", mv[i].size);
        }
    }

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    adamw_config cfg_;
    std::size_t lo_ = 0;       // first parameter of the window (ZeRO-1); 0 when unsharded
    std::size_t total_ = npos; // parameters in the arena when sharded; npos: the state's size
    basic_arena<T> m_;         // (same layout as the parameters)
    basic_arena<T> v_;         // (same layout as the parameters)
    int t_ = 0;
};

} // namespace gptx
