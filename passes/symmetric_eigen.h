// Eigendecomposition of a real symmetric matrix in double: what the
// latent_attention pass needs for its PCAs (RoRoPE's per-frequency rotation,
// the joint K/V compression). Householder reduction to tridiagonal form, then
// the implicit QL iteration: O(n^3), exact to rounding, no library.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/status.h"

namespace kiln {

// A square matrix, row-major.
struct SquareMatrix {
  int64_t n = 0;
  std::vector<double> values;  // n * n
  double& at(int64_t row, int64_t column) { return values[static_cast<size_t>(row * n + column)]; }
  double at(int64_t row, int64_t column) const { return values[static_cast<size_t>(row * n + column)]; }
};

struct Eigen {
  std::vector<double> values;  // descending
  SquareMatrix vectors;        // column k is the unit eigenvector of values[k]
};

// The eigenvalues and eigenvectors of `symmetric` (only its values are read,
// assumed symmetric); an error when the iteration does not converge.
Expected<Eigen> symmetricEigen(const SquareMatrix& symmetric);
// The eigenvalues alone, descending: a third of the work.
Expected<std::vector<double>> symmetricEigenvalues(const SquareMatrix& symmetric);

}  // namespace kiln
