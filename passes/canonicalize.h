// Canonicalisation: folds the shape arithmetic exporters emit into symbolic
// dims and removes ops that do nothing, so later passes see one spelling of
// each thing. See passes/canonicalize.cpp for the rewrites and docs/passes.md.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createCanonicalize();

}  // namespace kiln
