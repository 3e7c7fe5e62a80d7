// SwiGLU fusion: silu(gate) * up, spelled with a silu op, as
// gate * sigmoid(gate) * up in any association, or as a matmul with a silu
// epilogue times up, becomes one swiglu op.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createSwigluFusion();

}  // namespace kiln
