// Dead code elimination: drops ops none of whose results reach a graph
// output, then weights no remaining op uses.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createDeadCodeElimination();

}  // namespace kiln
