// How far a run's outputs are from reference outputs: the figures
// `kiln run --check` prints (docs/cli.md).
#pragma once

#include <cstdint>

#include "ir/tensor.h"

namespace kiln::tools {

// The largest |a - b| over the elements of two tensors of one shape; NaN
// against NaN counts as equal, NaN against a number as infinitely far.
double maxAbsDifference(const Tensor& a, const Tensor& b);

// KL(reference || output) between the distributions softmax(reference row)
// and softmax(output row), in nats, for each row along the last axis (every
// index of the other axes; a scalar is one row of one element): its mean and
// its largest value over the rows. Terms where the reference probability is 0
// count 0; a row where the output's probability is 0 and the reference's is
// not is infinite. A row that is no distribution (a NaN or +inf in either,
// or all -inf) makes the mean and the max NaN.
struct SoftmaxDivergence {
  double mean = 0;
  double max = 0;
  int64_t rows = 0;
};
SoftmaxDivergence softmaxKlDivergence(const Tensor& reference, const Tensor& output);

}  // namespace kiln::tools
