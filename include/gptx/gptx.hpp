// gptx/gptx.hpp: the one public include of gptx, and the root of the single-header amalgamation.
// Each room below is tested under tests/<room>/.
#pragma once

#include "core/arena.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "core/rng.hpp"
#include "core/shape.hpp"
#include "simd/simd.hpp"
#include "ops/gemm.hpp"
