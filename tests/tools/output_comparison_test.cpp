// The figures of `kiln run --check` (tools/common/output_comparison.h): the
// softmax KL divergence on distributions whose divergence is known in closed
// form, and the max abs difference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "tests/unit/op_test_support.h"
#include "tools/common/output_comparison.h"

namespace kiln::tools {
namespace {

using testsupport::f32;
using testsupport::kInf;
using testsupport::kNaN;

TEST(SoftmaxKlDivergence, EqualRowsAndShiftedRowsDivergeByNothing) {
  Tensor logits = f32({2, 3}, {1, 2, 3, -4, 0, 0.5});
  SoftmaxDivergence same = softmaxKlDivergence(logits, logits);
  EXPECT_EQ(same.rows, 2);
  EXPECT_EQ(same.mean, 0.0);
  EXPECT_EQ(same.max, 0.0);
  // softmax ignores a constant added to a row.
  Tensor shifted = f32({2, 3}, {11, 12, 13, -1, 3, 3.5});
  SoftmaxDivergence kl = softmaxKlDivergence(logits, shifted);
  EXPECT_NEAR(kl.mean, 0.0, 1e-15);
  EXPECT_NEAR(kl.max, 0.0, 1e-15);
}

TEST(SoftmaxKlDivergence, TwoPointDistributions) {
  // Row 0: p = (1/2, 1/2) against q = (1/4, 3/4):
  //   KL = 1/2 ln(2) + 1/2 ln(2/3) = 1/2 ln(4/3).
  // Row 1: p = (1/4, 3/4) against q = (1/2, 1/2), the other way round:
  //   KL = 1/4 ln(1/2) + 3/4 ln(3/2).
  const double ln3 = std::log(3.0);
  Tensor reference = f32({2, 2}, {0, 0, 0, ln3});
  Tensor output = f32({2, 2}, {0, ln3, 5, 5});
  const double row0 = 0.5 * std::log(4.0 / 3.0);
  const double row1 = 0.25 * std::log(0.5) + 0.75 * std::log(1.5);
  SoftmaxDivergence kl = softmaxKlDivergence(reference, output);
  EXPECT_EQ(kl.rows, 2);
  // f32 logits: ln 3 is stored to about 6e-8.
  EXPECT_NEAR(kl.mean, (row0 + row1) / 2, 1e-7);
  EXPECT_NEAR(kl.max, std::max(row0, row1), 1e-7);
  // KL is not symmetric: the two rows differ.
  EXPECT_GT(std::abs(row0 - row1), 1e-3);
}

TEST(SoftmaxKlDivergence, RowsAreTheLastAxisOfEveryLeadingIndex) {
  // [2, 2, 2]: four rows; only the last one differs, by the row0 case above.
  const double ln3 = std::log(3.0);
  Tensor reference = f32({2, 2, 2}, {1, 2, 3, 4, 5, 6, 0, 0});
  Tensor output = f32({2, 2, 2}, {1, 2, 3, 4, 5, 6, 0, ln3});
  SoftmaxDivergence kl = softmaxKlDivergence(reference, output);
  EXPECT_EQ(kl.rows, 4);
  EXPECT_NEAR(kl.max, 0.5 * std::log(4.0 / 3.0), 1e-7);
  EXPECT_NEAR(kl.mean, 0.5 * std::log(4.0 / 3.0) / 4, 1e-7);
  // A scalar is one row of one element.
  Tensor scalar = f32({}, {3});
  Tensor other = f32({}, {-7});
  EXPECT_EQ(softmaxKlDivergence(scalar, other).rows, 1);
  EXPECT_EQ(softmaxKlDivergence(scalar, other).mean, 0.0);
}

TEST(SoftmaxKlDivergence, ZeroProbabilities) {
  // p = (1/2, 0, 1/2) against uniform q: the zero term counts 0, KL = ln(3/2).
  Tensor reference = f32({3}, {0, -kInf, 0});
  Tensor uniform = f32({3}, {2, 2, 2});
  EXPECT_NEAR(softmaxKlDivergence(reference, uniform).mean, std::log(1.5), 1e-12);
  // q gives 0 where p does not: infinite.
  EXPECT_EQ(softmaxKlDivergence(uniform, reference).mean, kInf);
  EXPECT_EQ(softmaxKlDivergence(uniform, reference).max, kInf);
}

TEST(SoftmaxKlDivergence, LargeLogitsDoNotOverflow) {
  // exp(1000) overflows a double; the shift by the row's max keeps this
  // (1/2, 1/2) against (1/4, 3/4).
  const double ln3 = std::log(3.0);
  Tensor reference = f32({2}, {1000, 1000});
  Tensor output = f32({2}, {-1000, -1000 + ln3});
  EXPECT_NEAR(softmaxKlDivergence(reference, output).mean, 0.5 * std::log(4.0 / 3.0), 1e-4);
}

TEST(SoftmaxKlDivergence, NoDistributionIsNaN) {
  Tensor good = f32({2, 2}, {0, 0, 1, 2});
  Tensor withNaN = f32({2, 2}, {0, 0, kNaN, 2});
  Tensor withInf = f32({2, 2}, {kInf, 0, 1, 2});
  EXPECT_TRUE(std::isnan(softmaxKlDivergence(good, withNaN).mean));
  EXPECT_TRUE(std::isnan(softmaxKlDivergence(good, withNaN).max));
  EXPECT_TRUE(std::isnan(softmaxKlDivergence(withInf, good).mean));
}

TEST(SoftmaxKlDivergence, RandomPerturbationsAgainstTheDirectFormula) {
  // Small perturbations of random logits against sum p ln(p / q) computed
  // from explicitly normalised probabilities.
  std::mt19937 random(3);
  std::normal_distribution<double> normal(0.0, 2.0), noise(0.0, 0.01);
  for (int64_t width : {1, 2, 7, 64, 1000}) {
    std::vector<double> p(static_cast<size_t>(width)), q(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] = static_cast<float>(normal(random));
      q[i] = static_cast<float>(p[i] + noise(random));
    }
    double sumP = 0, sumQ = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      sumP += std::exp(p[i]);
      sumQ += std::exp(q[i]);
    }
    double expected = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      const double pi = std::exp(p[i]) / sumP, qi = std::exp(q[i]) / sumQ;
      expected += pi * std::log(pi / qi);
    }
    SoftmaxDivergence kl = softmaxKlDivergence(f32({width}, p), f32({width}, q));
    EXPECT_NEAR(kl.mean, expected, 1e-12 + 1e-9 * expected) << "width " << width;
    if (width > 1) {
      EXPECT_GT(kl.mean, 0.0) << "width " << width;
    }
  }
}

TEST(MaxAbsDifference, LargestElementDifferenceWithNaNRules) {
  Tensor a = f32({4}, {1, 2, kNaN, kInf});
  Tensor b = f32({4}, {1.5, -1, kNaN, kInf});
  EXPECT_EQ(maxAbsDifference(a, b), 3.0);  // NaN vs NaN and inf vs inf are equal
  Tensor c = f32({4}, {1, 2, 0, kInf});
  EXPECT_EQ(maxAbsDifference(a, c), kInf);  // NaN vs a number
}

}  // namespace
}  // namespace kiln::tools
