#include "tools/common/output_comparison.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace kiln::tools {

double maxAbsDifference(const Tensor& a, const Tensor& b) {
  double worst = 0.0;
  for (int64_t i = 0; i < a.numElements(); ++i) {
    double x = a.elementAsDouble(i), y = b.elementAsDouble(i);
    double diff;
    if (std::isnan(x) || std::isnan(y)) diff = std::isnan(x) && std::isnan(y) ? 0.0 : INFINITY;
    else if (x == y) diff = 0.0;  // also equal infinities
    else diff = std::fabs(x - y);
    worst = std::max(worst, diff);
  }
  return worst;
}

namespace {

// log(sum(exp(x))) of one row, shifted by its max so large logits do not
// overflow; -inf for a row of -inf only.
double logSumExp(const std::vector<double>& x) {
  const double top = *std::max_element(x.begin(), x.end());
  if (std::isinf(top)) return top;
  double sum = 0.0;
  for (double v : x) sum += std::exp(v - top);
  return top + std::log(sum);
}

// KL(softmax(p) || softmax(q)) of one row, in double.
double rowDivergence(const std::vector<double>& p, const std::vector<double>& q) {
  for (size_t i = 0; i < p.size(); ++i)
    if (std::isnan(p[i]) || std::isnan(q[i])) return std::numeric_limits<double>::quiet_NaN();
  const double normP = logSumExp(p), normQ = logSumExp(q);
  // A row of -inf (or with +inf) is no distribution.
  if (!std::isfinite(normP) || !std::isfinite(normQ)) return std::numeric_limits<double>::quiet_NaN();
  double kl = 0.0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double logP = p[i] - normP;
    if (std::isinf(logP)) continue;  // probability 0: no term
    const double logQ = q[i] - normQ;
    kl += std::exp(logP) * (logP - logQ);  // +inf when q's probability is 0
  }
  return std::max(kl, 0.0);  // rounding may leave a tiny negative sum
}

}  // namespace

SoftmaxDivergence softmaxKlDivergence(const Tensor& reference, const Tensor& output) {
  SoftmaxDivergence result;
  const std::vector<int64_t>& shape = reference.shape();
  const int64_t width = shape.empty() ? 1 : shape.back();
  if (reference.numElements() == 0 || width == 0) return result;
  result.rows = reference.numElements() / width;
  std::vector<double> p(static_cast<size_t>(width)), q(static_cast<size_t>(width));
  double sum = 0.0;
  bool sawNaN = false;
  for (int64_t row = 0; row < result.rows; ++row) {
    for (int64_t i = 0; i < width; ++i) {
      p[static_cast<size_t>(i)] = reference.elementAsDouble(row * width + i);
      q[static_cast<size_t>(i)] = output.elementAsDouble(row * width + i);
    }
    const double kl = rowDivergence(p, q);
    if (std::isnan(kl)) {
      sawNaN = true;
      continue;
    }
    sum += kl;
    result.max = std::max(result.max, kl);
  }
  if (sawNaN) {
    result.mean = result.max = std::numeric_limits<double>::quiet_NaN();
    return result;
  }
  result.mean = sum / static_cast<double>(result.rows);
  return result;
}

}  // namespace kiln::tools
