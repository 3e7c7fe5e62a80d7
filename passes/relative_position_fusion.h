// Relative position fusion: T5's relative position bias (the bucket of every
// query-key distance, computed from two ranges by integer and log
// arithmetic; a gather of the [buckets, heads] table; the transpose to
// [heads, S, T]) becomes one relative_position_bias op. The bucket
// arithmetic is recognised by what it computes, as mask_semantics.h
// recognises masks: it reads no input data, and evaluated for sample lengths
// it gives at every (i, j) the bucket of j - i that relative_position::bucket
// gives for one direction and max_distance, out to distances where both have
// reached their last buckets.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createRelativePositionFusion();

}  // namespace kiln
