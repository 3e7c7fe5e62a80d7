// SwiGLU fusion: silu(gate) * up, spelled with a silu op, as
// gate * sigmoid(gate) * up in any association, or as a matmul with a silu
// epilogue times up, becomes one swiglu op. When gate and up are the two
// halves of a split of the last axis (a merged gate|up matmul) read by
// nothing else, the swiglu reads the packed tensor and the split goes.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createSwigluFusion();

}  // namespace kiln
