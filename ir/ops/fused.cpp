// Ops that the optimisation passes produce (attention, norms, fused
// epilogues and elementwise chains). Being written.
#include "ir/op_registry.h"

namespace kiln {

void registerFusedOps(OpRegistry&) {}

}  // namespace kiln
