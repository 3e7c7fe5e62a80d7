// Structural and type checks of a whole graph. Messages name the op, its
// location, the register and the shapes, e.g.
//   op 'matmul' defining %3 (loc "MatMul_7"): matmul(f32[2, 3], f32[4, 5]):
//   inner dimensions differ: 3 vs 4
#pragma once

#include "ir/graph.h"
#include "ir/status.h"

namespace kiln {

// Checks: operands defined before use, operand and result counts, attribute
// names and kinds, declared result types against inferred ones, outputs
// defined, weight data sizes matching their types.
Status verifyGraph(const Graph& graph);

}  // namespace kiln
