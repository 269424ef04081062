// tests/support/bytes.hpp: an arena's raw bytes, so that tests compare model and optimizer
// states bit for bit (exact resume, checkpoint round trips).
#pragma once
#include <string>

#if __has_include(<gptx/core/arena.hpp>)
#include <gptx/core/arena.hpp>
#else
#include <gptx/gptx.hpp> // the single header
#endif

namespace gptx::test {

inline std::string bytes_of(const arena& a) {
    return {reinterpret_cast<const char*>(a.data()), a.size() * sizeof(float)};
}

} // namespace gptx::test
