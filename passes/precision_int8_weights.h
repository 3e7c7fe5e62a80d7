// int8 weights: the constant f32 weight b of each f32 matmul becomes an int8
// weight with an f32 scale per column and group of rows (symmetric: the
// largest magnitude of a group maps to 127), read by a matmul_int8 op;
// everything else stays f32.
#pragma once

#include <cstdint>
#include <memory>

#include "passes/pass.h"

namespace kiln {

struct Int8WeightOptions {
  // Rows of b (along K) that share a scale; 0: all of them (one scale per
  // output column).
  int64_t group = 0;
};

std::unique_ptr<Pass> createPrecisionInt8Weights(Int8WeightOptions options = {});

}  // namespace kiln
