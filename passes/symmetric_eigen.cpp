#include "passes/symmetric_eigen.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

namespace kiln {
namespace {

// Householder reduction of `v` (a copy of the matrix) to tridiagonal form:
// on return `diagonal` and `off` (off[i] couples rows i - 1 and i) hold the
// tridiagonal matrix and `v` the orthogonal transformation that makes it.
void tridiagonalize(SquareMatrix& v, std::vector<double>& diagonal, std::vector<double>& off, bool vectors) {
  const int64_t n = v.n;
  std::vector<double>& d = diagonal;
  std::vector<double>& e = off;
  for (int64_t j = 0; j < n; ++j) d[j] = v.at(n - 1, j);
  for (int64_t i = n - 1; i > 0; --i) {
    double scale = 0, h = 0;
    for (int64_t k = 0; k < i; ++k) scale += std::fabs(d[k]);
    if (scale == 0) {  // nothing to annihilate in this row
      e[i] = d[i - 1];
      for (int64_t j = 0; j < i; ++j) d[j] = v.at(i - 1, j), v.at(i, j) = 0, v.at(j, i) = 0;
      d[i] = 0;
      continue;
    }
    for (int64_t k = 0; k < i; ++k) d[k] /= scale, h += d[k] * d[k];
    double f = d[i - 1];
    const double g0 = f > 0 ? -std::sqrt(h) : std::sqrt(h);
    e[i] = scale * g0;
    h -= f * g0;
    d[i - 1] = f - g0;
    std::fill(e.begin(), e.begin() + i, 0.0);
    // p = A u / h, accumulated in e.
    for (int64_t j = 0; j < i; ++j) {
      f = d[j];
      v.at(j, i) = f;
      double g = e[j] + v.at(j, j) * f;
      for (int64_t k = j + 1; k < i; ++k) g += v.at(k, j) * d[k], e[k] += v.at(k, j) * f;
      e[j] = g;
    }
    f = 0;
    for (int64_t j = 0; j < i; ++j) e[j] /= h, f += e[j] * d[j];
    const double half = f / (h + h);
    for (int64_t j = 0; j < i; ++j) e[j] -= half * d[j];
    // A -= u q^T + q u^T.
    for (int64_t j = 0; j < i; ++j) {
      f = d[j];
      const double g = e[j];
      for (int64_t k = j; k < i; ++k) v.at(k, j) -= f * e[k] + g * d[k];
      d[j] = v.at(i - 1, j);
      v.at(i, j) = 0;
    }
    d[i] = h;
  }
  // The product of the reflections (the last row of v holds the diagonal
  // either way).
  for (int64_t i = 0; i + 1 < n && vectors; ++i) {
    v.at(n - 1, i) = v.at(i, i);
    v.at(i, i) = 1;
    const double h = d[i + 1];
    if (h != 0) {
      for (int64_t k = 0; k <= i; ++k) d[k] = v.at(k, i + 1) / h;
      for (int64_t j = 0; j <= i; ++j) {
        double g = 0;
        for (int64_t k = 0; k <= i; ++k) g += v.at(k, i + 1) * v.at(k, j);
        for (int64_t k = 0; k <= i; ++k) v.at(k, j) -= g * d[k];
      }
    }
    for (int64_t k = 0; k <= i; ++k) v.at(k, i + 1) = 0;
  }
  if (!vectors)
    for (int64_t i = 0; i + 1 < n; ++i) v.at(n - 1, i) = v.at(i, i);
  for (int64_t j = 0; j < n; ++j) d[j] = v.at(n - 1, j), v.at(n - 1, j) = 0;
  v.at(n - 1, n - 1) = 1;
  e[0] = 0;
}

// The implicit QL iteration on the tridiagonal matrix, rotating `v` along:
// `diagonal` ends holding the eigenvalues. False when it does not converge.
bool diagonalize(SquareMatrix& v, std::vector<double>& diagonal, std::vector<double>& off, bool vectors) {
  constexpr int kMaxIterations = 64;
  const int64_t n = v.n;
  std::vector<double>& d = diagonal;
  std::vector<double>& e = off;
  for (int64_t i = 1; i < n; ++i) e[i - 1] = e[i];
  e[n - 1] = 0;
  double shift = 0, largest = 0;
  const double eps = std::ldexp(1.0, -52);
  for (int64_t l = 0; l < n; ++l) {
    largest = std::max(largest, std::fabs(d[l]) + std::fabs(e[l]));
    int64_t m = l;
    while (m < n && std::fabs(e[m]) > eps * largest) ++m;
    for (int iteration = 0; m > l && std::fabs(e[l]) > eps * largest; ++iteration) {
      if (iteration == kMaxIterations) return false;
      // The Wilkinson-like shift from the leading 2x2 block.
      const double g0 = d[l];
      double p = (d[l + 1] - g0) / (2 * e[l]);
      double r = std::hypot(p, 1.0);
      if (p < 0) r = -r;
      d[l] = e[l] / (p + r);
      d[l + 1] = e[l] * (p + r);
      const double next = d[l + 1];
      double h = g0 - d[l];
      for (int64_t i = l + 2; i < n; ++i) d[i] -= h;
      shift += h;
      // Chase the bulge with Givens rotations from m up to l.
      p = d[m];
      double c = 1, c2 = 1, c3 = 1, s = 0, s2 = 0;
      const double coupling = e[l + 1];
      for (int64_t i = m - 1; i >= l; --i) {
        c3 = c2, c2 = c, s2 = s;
        const double g = c * e[i];
        h = c * p;
        r = std::hypot(p, e[i]);
        e[i + 1] = s * r;
        s = e[i] / r, c = p / r;
        p = c * d[i] - s * g;
        d[i + 1] = h + s * (c * g + s * d[i]);
        for (int64_t k = 0; k < n && vectors; ++k) {
          h = v.at(k, i + 1);
          v.at(k, i + 1) = s * v.at(k, i) + c * h;
          v.at(k, i) = c * v.at(k, i) - s * h;
        }
      }
      p = -s * s2 * c3 * coupling * e[l] / next;
      e[l] = s * p;
      d[l] = c * p;
    }
    d[l] += shift;
    e[l] = 0;
  }
  return true;
}

}  // namespace

Expected<std::vector<double>> symmetricEigenvalues(const SquareMatrix& symmetric) {
  const int64_t n = symmetric.n;
  SquareMatrix v = symmetric;
  std::vector<double> d(static_cast<size_t>(n)), e(static_cast<size_t>(n));
  if (n == 0) return d;
  tridiagonalize(v, d, e, false);
  if (!diagonalize(v, d, e, false)) return Status::error("the eigenvalue iteration did not converge (n = ", n, ")");
  std::sort(d.begin(), d.end(), std::greater<>());
  return d;
}

Expected<Eigen> symmetricEigen(const SquareMatrix& symmetric) {
  const int64_t n = symmetric.n;
  if (n == 0) return Eigen{};
  SquareMatrix v = symmetric;
  std::vector<double> d(static_cast<size_t>(n)), e(static_cast<size_t>(n));
  tridiagonalize(v, d, e, true);
  if (!diagonalize(v, d, e, true)) return Status::error("the eigenvalue iteration did not converge (n = ", n, ")");
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return d[a] > d[b]; });
  Eigen out;
  out.vectors.n = n;
  out.vectors.values.resize(static_cast<size_t>(n * n));
  for (int64_t k = 0; k < n; ++k) {
    out.values.push_back(d[order[k]]);
    for (int64_t row = 0; row < n; ++row) out.vectors.at(row, k) = v.at(row, order[k]);
  }
  return out;
}

}  // namespace kiln
