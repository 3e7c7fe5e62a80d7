// Sibling matmul merge: matmuls that read the same input with constant
// weights of the same K (Q/K/V projections, gate/up) become one matmul over
// the concatenated weights (and biases), split back into the original results.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createSiblingMatmulMerge();

}  // namespace kiln
