// symmetricEigen: A v = lambda v for every pair, orthonormal vectors,
// eigenvalues descending, on random symmetric matrices of several sizes,
// a diagonal one, repeated eigenvalues and a rank-deficient covariance.
#include "passes/symmetric_eigen.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace kiln {
namespace {

SquareMatrix randomSymmetric(int64_t n, std::mt19937& rng) {
  std::normal_distribution<double> normal;
  SquareMatrix a{n, std::vector<double>(static_cast<size_t>(n * n))};
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) a.at(i, j) = a.at(j, i) = normal(rng);
  return a;
}

void expectDecomposes(const SquareMatrix& a, double tolerance) {
  Expected<Eigen> eigen = symmetricEigen(a);
  ASSERT_TRUE(eigen.isOk()) << eigen.status().message();
  const int64_t n = a.n;
  Expected<std::vector<double>> values = symmetricEigenvalues(a);
  ASSERT_TRUE(values.isOk()) << values.status().message();
  for (int64_t k = 0; k < n; ++k) EXPECT_NEAR((*values)[k], eigen->values[k], tolerance) << "value " << k;
  ASSERT_EQ(static_cast<int64_t>(eigen->values.size()), n);
  for (int64_t k = 0; k < n; ++k) {
    if (k > 0) {
      EXPECT_GE(eigen->values[k - 1], eigen->values[k]);
    }
    for (int64_t row = 0; row < n; ++row) {
      double product = 0;
      for (int64_t j = 0; j < n; ++j) product += a.at(row, j) * eigen->vectors.at(j, k);
      EXPECT_NEAR(product, eigen->values[k] * eigen->vectors.at(row, k), tolerance) << "pair " << k;
    }
    for (int64_t other = 0; other < n; ++other) {
      double dot = 0;
      for (int64_t row = 0; row < n; ++row) dot += eigen->vectors.at(row, k) * eigen->vectors.at(row, other);
      EXPECT_NEAR(dot, k == other ? 1.0 : 0.0, tolerance) << k << " . " << other;
    }
  }
}

TEST(SymmetricEigen, RandomMatricesOfSeveralSizes) {
  std::mt19937 rng(3);
  for (int64_t n : {1, 2, 3, 7, 32, 130}) expectDecomposes(randomSymmetric(n, rng), 1e-9);
}

TEST(SymmetricEigen, DiagonalAndRepeatedEigenvalues) {
  SquareMatrix diagonal{4, {3, 0, 0, 0, 0, -1, 0, 0, 0, 0, 7, 0, 0, 0, 0, 3}};
  Expected<Eigen> eigen = symmetricEigen(diagonal);
  ASSERT_TRUE(eigen.isOk());
  EXPECT_EQ(eigen->values, (std::vector<double>{7, 3, 3, -1}));
  expectDecomposes(diagonal, 1e-12);
  SquareMatrix ones{3, std::vector<double>(9, 1.0)};  // eigenvalues 3, 0, 0
  expectDecomposes(ones, 1e-12);
}

// A covariance of rank 2 in 6 dims: four zero eigenvalues, and the two
// others those of the data.
TEST(SymmetricEigen, RankDeficientCovariance) {
  SquareMatrix c{6, std::vector<double>(36, 0.0)};
  const double u[6] = {1, 2, 0, -1, 0, 1}, w[6] = {0, 1, 1, 1, -2, 0};
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 6; ++j) c.at(i, j) = 4 * u[i] * u[j] + w[i] * w[j];
  Expected<Eigen> eigen = symmetricEigen(c);
  ASSERT_TRUE(eigen.isOk());
  for (int64_t k = 2; k < 6; ++k) EXPECT_NEAR(eigen->values[k], 0.0, 1e-12);
  EXPECT_NEAR(eigen->values[0] + eigen->values[1], 4 * 7 + 7, 1e-9);  // the trace
  expectDecomposes(c, 1e-9);
}

}  // namespace
}  // namespace kiln
