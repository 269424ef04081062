// Test support: the model shapes the tests share. Small on purpose: a test proves a property of
// the code, and these shapes have every part of a block (several heads, two layers, both norm
// placements) at a cost of milliseconds, also under AddressSanitizer.
#pragma once
#if __has_include(<gptx/core/shape.hpp>)
#include <gptx/core/shape.hpp>
#else
#include <gptx/gptx.hpp> // the single header
#endif

namespace gptx::test::shapes {

// Gradient checks in double: width 16, 2 heads of 8, 2 layers.
inline constexpr shape grad_pre{16, 2, 2, norm::pre};
inline constexpr shape grad_post{16, 2, 2, norm::post};
// One layer: the cheapest model that trains (run loops, PPO bookkeeping, MPI ranks).
inline constexpr shape toy{16, 2, 1, norm::pre};
// Width 32, 4 heads: batched paths with more than two heads (checkpoints, heads, scoring).
inline constexpr shape small_pre{32, 4, 2, norm::pre};
inline constexpr shape small_post{32, 4, 2, norm::post};
// presets::tiny (width 64, 4 heads, 2 layers): what `gptx train --preset tiny` builds, so the CLI's
// checkpoints load into it.
inline constexpr shape tiny = presets::tiny;

} // namespace gptx::test::shapes
