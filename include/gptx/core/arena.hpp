// gptx/core/arena.hpp: one flat, 64-byte aligned float buffer with named views into it.
// Tested by tests/core/test_core.cpp.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>
#include <vector>

#include "error.hpp"

namespace gptx {

struct aligned_free {
    void operator()(void* p) const noexcept { std::free(p); }
};

template <class T> using aligned_ptr = std::unique_ptr<T[], aligned_free>;

template <class T> aligned_ptr<T> aligned_alloc_zeroed(std::size_t n) {
    if (n == 0)
        return {};
    std::size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (!p)
        throw std::bad_alloc();
    std::memset(p, 0, bytes);
    return aligned_ptr<T>(static_cast<T*>(p));
}

// Grow-once, 64-byte aligned per-thread scratch; Tag and Slot name independent buffers (a kernel's
// own type as Tag keeps kernels from sharing one). OpenMP reuses its threads, so steady-state
// calls never allocate.
template <class T, class Tag, int Slot = 0> T* thread_scratch(std::size_t n) {
    thread_local aligned_ptr<T> buf;
    thread_local std::size_t cap = 0;
    if (cap < n) {
        buf = aligned_alloc_zeroed<T>(n);
        cap = n;
    }
    return buf.get();
}

// A named slice of an arena.
template <class T = float> struct tensor_view {
    std::string_view name;
    T* data = nullptr;
    std::size_t size = 0;
    bool decay = false; // AdamW weight decay applies (2-D weights only)
};

// A flat float arena laid out from a list of (name, size) entries, in order, without padding,
// so the layout is exactly the concatenation (llm.c's ParameterTensors).
template <class T = float> class basic_arena {
  public:
    struct entry {
        std::string_view name;
        std::size_t size;
        bool decay = false;
    };

    basic_arena() = default;
    explicit basic_arena(const std::vector<entry>& entries) { layout(entries); }

    void layout(const std::vector<entry>& entries) {
        std::size_t total = 0;
        for (const auto& e : entries)
            total += e.size;
        data_ = aligned_alloc_zeroed<T>(total);
        size_ = total;
        views_.clear();
        std::size_t off = 0;
        for (const auto& e : entries) {
            views_.push_back({e.name, data_.get() + off, e.size, e.decay});
            off += e.size;
        }
    }

    T* data() { return data_.get(); }
    const T* data() const { return data_.get(); }
    std::size_t size() const { return size_; }
    const std::vector<tensor_view<T>>& views() const { return views_; }
    const tensor_view<T>& view(std::size_t i) const { return views_[i]; }
    void zero() {
        if (size_)
            std::memset(data_.get(), 0, size_ * sizeof(T));
    }

  private:
    aligned_ptr<T> data_;
    std::size_t size_ = 0;
    std::vector<tensor_view<T>> views_;
};

using arena = basic_arena<float>;

} // namespace gptx
