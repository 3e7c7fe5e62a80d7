// Layout: removes data movement that a consumer can absorb. Transposes of the
// last two dims feeding a matmul (or gemm) become its transpose flags;
// transpose pairs compose into one transpose (none when they cancel); a
// transpose of a weight becomes a transposed weight; and the head split
// (reshape [B,S,H*D] -> [B,S,H,D], transpose 0,2,1,3) before an attention's
// q, k and v, and the head merge after its output, become the attention's
// "bsd" layouts.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createLayout();

}  // namespace kiln
