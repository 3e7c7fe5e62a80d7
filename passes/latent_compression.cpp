#include "passes/latent_compression.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

namespace kiln {
namespace {

// A dense row-major matrix in double.
struct Matrix {
  int64_t rows = 0, columns = 0;
  std::vector<double> values;
  Matrix(int64_t r, int64_t c) : rows(r), columns(c), values(static_cast<size_t>(r * c), 0.0) {}
  double& at(int64_t r, int64_t c) { return values[static_cast<size_t>(r * columns + c)]; }
  double at(int64_t r, int64_t c) const { return values[static_cast<size_t>(r * columns + c)]; }
};

Matrix product(const Matrix& a, const Matrix& b) {
  Matrix out(a.rows, b.columns);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t k = 0; k < a.columns; ++k) {
      const double x = a.at(i, k);
      if (x == 0) continue;
      for (int64_t j = 0; j < b.columns; ++j) out.at(i, j) += x * b.at(k, j);
    }
  return out;
}

Matrix transposed(const Matrix& a) {
  Matrix out(a.columns, a.rows);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < a.columns; ++j) out.at(j, i) = a.at(i, j);
  return out;
}

// Row vector b as [1, n].
Matrix rowOf(const std::vector<double>& b) {
  Matrix out(1, static_cast<int64_t>(b.size()));
  out.values = b;
  return out;
}

// E[y y^T] of y = A^T x + b (A [D, m]): A^T S A + A^T mu b^T + b mu^T A + b b^T,
// with S = E[x x^T] and mu = E[x]; without moments x is white (S = I, mu = 0).
SquareMatrix secondMoment(const Matrix& a, const std::vector<double>& bias, const ActivationMoments* moments) {
  Matrix spread = a;  // S A
  if (moments) {
    Matrix s(a.rows, a.rows);
    s.values = moments->second.values;
    spread = product(s, a);
  }
  Matrix m = product(transposed(a), spread);
  std::vector<double> projectedMean(static_cast<size_t>(a.columns), 0.0);  // A^T mu
  if (moments)
    for (int64_t i = 0; i < a.rows; ++i)
      for (int64_t j = 0; j < a.columns; ++j) projectedMean[static_cast<size_t>(j)] += a.at(i, j) * moments->mean[i];
  for (int64_t i = 0; i < a.columns; ++i)
    for (int64_t j = 0; j < a.columns; ++j)
      m.at(i, j) += projectedMean[i] * bias[j] + bias[i] * projectedMean[j] + bias[i] * bias[j];
  return SquareMatrix{m.rows, std::move(m.values)};
}

// RoRoPE (TransMLA's, arXiv 2502.07864): per frequency j, a PCA over the G kv heads'
// key pairs (re: dim j, im: dim j + d/2 of each head) turns them by one
// orthogonal G x G matrix U_j, the same for the real and imaginary parts, so
// every RoPE dot product is kept. `basis` [G d, G d] maps key dims to
// rotated ones (column (j, m, part)); `energy` per rotated pair (j, m).
struct RotatedKeys {
  Matrix basis;
  std::vector<std::pair<double, std::pair<int64_t, int64_t>>> energy;  // (variance, (j, m))
  int64_t column(int64_t j, int64_t m, int part, int64_t G, int64_t half) const {
    return part * G * half + j * G + m;
  }
};

Expected<RotatedKeys> rotateKeys(const LayerProjections& layer, const SquareMatrix& keyMoment) {
  const int64_t G = layer.kvHeads, d = layer.headDim, half = d / 2;
  RotatedKeys out{Matrix(G * d, G * d), {}};
  for (int64_t j = 0; j < half; ++j) {
    SquareMatrix c{G, std::vector<double>(static_cast<size_t>(G * G), 0.0)};
    for (int64_t g = 0; g < G; ++g)
      for (int64_t h = 0; h < G; ++h)
        c.at(g, h) = keyMoment.at(g * d + j, h * d + j) + keyMoment.at(g * d + j + half, h * d + j + half);
    Expected<Eigen> eigen = symmetricEigen(c);
    if (!eigen) return eigen.status();
    for (int64_t m = 0; m < G; ++m) {
      out.energy.push_back({eigen->values[m], {j, m}});
      for (int64_t g = 0; g < G; ++g)
        for (int part = 0; part < 2; ++part)
          out.basis.at(g * d + j + part * half, out.column(j, m, part, G, half)) = eigen->vectors.at(g, m);
    }
  }
  return out;
}

// Columns of `weights` [D, n] (with bias) times `basis` [n, k].
std::pair<Matrix, std::vector<double>> project(const Matrix& weights, const std::vector<double>& bias,
                                               const Matrix& basis) {
  Matrix w = product(weights, basis);
  Matrix b = product(rowOf(bias), basis);
  return {std::move(w), std::move(b.values)};
}

Tensor toTensor(const std::vector<double>& values, std::vector<int64_t> shape) {
  Tensor t = Tensor::allocate(DType::F32, std::move(shape));
  for (size_t i = 0; i < values.size(); ++i) t.data<float>()[i] = static_cast<float>(values[i]);
  return t;
}

Matrix slice(const std::vector<double>& values, int64_t rows, int64_t columns, int64_t first, int64_t count) {
  Matrix out(rows, count);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < count; ++c) out.at(r, c) = values[static_cast<size_t>(r * columns + first + c)];
  return out;
}

bool anyNonZero(const std::vector<double>& v) {
  return std::any_of(v.begin(), v.end(), [](double x) { return x != 0; });
}

}  // namespace

double ropeCostWeight(double angle, int64_t context) {
  double moved = 0, weights = 0;
  for (int64_t t = 1; t <= context; ++t) {
    const double weight = 1.0 / static_cast<double>(t);  // nearer keys draw more attention
    moved += weight * (2 - 2 * std::cos(angle * static_cast<double>(t)));
    weights += weight;
  }
  return moved / weights;
}

namespace {

// The context a pair's rotation is weighed over: the default bound of a sequence.
constexpr int64_t kContext = 2048;

// E[q_c^2] of each query column c: w_c^T S w_c + 2 (w_c . mu) b_c + b_c^2
// (x white without moments).
std::vector<double> queryColumnEnergy(const LayerProjections& layer, const ActivationMoments* moments) {
  const int64_t D = layer.width, columns = layer.heads * layer.headDim;
  std::vector<double> energy(static_cast<size_t>(columns));
  std::vector<double> w(static_cast<size_t>(D));
  for (int64_t c = 0; c < columns; ++c) {
    for (int64_t r = 0; r < D; ++r) w[r] = layer.q[static_cast<size_t>(r * columns + c)];
    double e = 0, mean = 0;
    for (int64_t r = 0; r < D; ++r) {
      if (!moments) {
        e += w[r] * w[r];
        continue;
      }
      double row = 0;
      for (int64_t k = 0; k < D; ++k) row += moments->second.at(r, k) * w[k];
      e += w[r] * row;
      mean += w[r] * moments->mean[r];
    }
    const double b = layer.qBias[c];
    energy[c] = e + 2 * mean * b + b * b;
  }
  return energy;
}

// Per rotated pair (j, m), at j G + m: the query heads' energy on it,
// sum over h of U_j[g(h), m]^2 (E[q_h[j]^2] + E[q_h[j + d/2]^2]).
std::vector<double> pairQueryEnergy(const LayerProjections& layer, const Matrix& basis,
                                    const ActivationMoments* moments) {
  const int64_t G = layer.kvHeads, d = layer.headDim, half = d / 2, group = layer.heads / G;
  const std::vector<double> columns = queryColumnEnergy(layer, moments);
  std::vector<double> energy(static_cast<size_t>(half * G), 0.0);
  for (int64_t j = 0; j < half; ++j)
    for (int64_t m = 0; m < G; ++m)
      for (int64_t h = 0; h < layer.heads; ++h) {
        const double u = basis.at((h / group) * d + j, j * G + m);
        energy[static_cast<size_t>(j * G + m)] += u * u * (columns[h * d + j] + columns[h * d + j + half]);
      }
  return energy;
}

// The layer's k and v weights and, once, the second moment of [k ; v]: every
// split's PCA reads its blocks instead of going back to D-sized products.
struct LayerMoments {
  Matrix wk, wv;
  SquareMatrix kv;  // [G d + G d_v]: keys first
  double at(int64_t i, int64_t j) const { return kv.at(i, j); }
};

LayerMoments layerMoments(const LayerProjections& layer, const ActivationMoments* moments) {
  const int64_t D = layer.width, keyDims = layer.kvHeads * layer.headDim, valueDims = layer.kvHeads * layer.valueDim;
  LayerMoments out{slice(layer.k, D, keyDims, 0, keyDims), slice(layer.v, D, valueDims, 0, valueDims), {}};
  Matrix both(D, keyDims + valueDims);
  for (int64_t r = 0; r < D; ++r) {
    for (int64_t c = 0; c < keyDims; ++c) both.at(r, c) = out.wk.at(r, c);
    for (int64_t c = 0; c < valueDims; ++c) both.at(r, keyDims + c) = out.wv.at(r, c);
  }
  std::vector<double> bias = layer.kBias;
  bias.insert(bias.end(), layer.vBias.begin(), layer.vBias.end());
  out.kv = secondMoment(both, bias, moments);
  return out;
}

// The keys' rotated basis [G d, G d] (identity without RoPE) and, with RoPE,
// its pairs (j, m) ranked by what losing RoPE would cost, most first.
struct KeyBasis {
  Matrix basis;
  std::vector<std::pair<double, std::pair<int64_t, int64_t>>> ranked;
};

Expected<KeyBasis> keyBasis(const LayerProjections& layer, const LayerMoments& lm, const ActivationMoments* moments) {
  const int64_t keyDims = layer.kvHeads * layer.headDim;
  KeyBasis out{Matrix(keyDims, keyDims), {}};
  if (!layer.rope) {
    for (int64_t i = 0; i < keyDims; ++i) out.basis.at(i, i) = 1;
    return out;
  }
  SquareMatrix keyMoment{keyDims, std::vector<double>(static_cast<size_t>(keyDims * keyDims))};
  for (int64_t i = 0; i < keyDims; ++i)
    for (int64_t j = 0; j < keyDims; ++j) keyMoment.at(i, j) = lm.at(i, j);
  Expected<RotatedKeys> rotated = rotateKeys(layer, keyMoment);
  if (!rotated) return rotated.status();
  // A pair's score error is its key energy times the queries' energy on it
  // (relative to the mean, so the cost stays in key-energy units) times how
  // far its frequency turns.
  const std::vector<double> queryEnergy = pairQueryEnergy(layer, rotated->basis, moments);
  double meanQuery = 0;
  for (double e : queryEnergy) meanQuery += e / static_cast<double>(queryEnergy.size());
  for (auto& [energy, pair] : rotated->energy) {
    const auto [j, m] = pair;
    if (meanQuery > 0) energy *= queryEnergy[static_cast<size_t>(j * layer.kvHeads + m)] / meanQuery;
    if (!layer.ropeFrequencies.empty())
      energy *= ropeCostWeight(layer.ropeFrequencies[static_cast<size_t>(j)], kContext);
  }
  std::stable_sort(rotated->energy.begin(), rotated->energy.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  out.basis = std::move(rotated->basis);
  out.ranked = std::move(rotated->energy);
  return out;
}

// The basis columns that keep RoPE (rotate-half order: first elements, then
// second ones) and the rest; the cost of the pairs that lose it.
struct Split {
  std::vector<int64_t> rope, nope, frequencies;
  double droppedCost = 0;
};

Split splitAt(const LayerProjections& layer, const KeyBasis& keys, int64_t ropeDims) {
  const int64_t G = layer.kvHeads, half = layer.headDim / 2, keyDims = G * layer.headDim;
  Split split;
  std::vector<std::pair<int64_t, int64_t>> kept;
  for (size_t p = 0; p < keys.ranked.size(); ++p) {
    if (static_cast<int64_t>(p) < ropeDims / 2) kept.push_back(keys.ranked[p].second);
    else split.droppedCost += keys.ranked[p].first;
  }
  std::sort(kept.begin(), kept.end());
  for (int part = 0; part < 2; ++part)
    for (const auto& [j, m] : kept) split.rope.push_back(part * G * half + j * G + m);
  for (const auto& [j, m] : kept) split.frequencies.push_back(j);
  for (int64_t c = 0; c < keyDims; ++c)
    if (std::find(split.rope.begin(), split.rope.end(), c) == split.rope.end()) split.nope.push_back(c);
  return split;
}

// z = [alpha K_nope ; V], balanced so that neither dominates, and its PCA:
// E[z z^T] assembled from the layer's [k ; v] moment in the rotated basis.
// Without `vectors` only the eigenvalues (what a split's error needs).
struct JointPca {
  double alpha = 1;
  Matrix toNope, toRope;
  Eigen eigen;
};

Expected<JointPca> jointPca(const LayerProjections& layer, const LayerMoments& lm, const KeyBasis& keys,
                            const Split& split, bool vectors) {
  const int64_t keyDims = layer.kvHeads * layer.headDim, valueDims = layer.kvHeads * layer.valueDim;
  const auto nope = static_cast<int64_t>(split.nope.size()), rope = static_cast<int64_t>(split.rope.size());
  JointPca out{1, Matrix(keyDims, nope), Matrix(keyDims, rope), {}};
  for (int64_t i = 0; i < keyDims; ++i) {
    for (int64_t c = 0; c < nope; ++c) out.toNope.at(i, c) = keys.basis.at(i, split.nope[c]);
    for (int64_t c = 0; c < rope; ++c) out.toRope.at(i, c) = keys.basis.at(i, split.rope[c]);
  }
  // T = [toNope^T 0 ; 0 I] turns [k ; v] into [K_nope ; V]; E[z z^T] = A T^T M T A with A = diag(alpha, 1).
  Matrix keysToNope(keyDims + valueDims, nope + valueDims);
  for (int64_t i = 0; i < keyDims; ++i)
    for (int64_t c = 0; c < nope; ++c) keysToNope.at(i, c) = out.toNope.at(i, c);
  for (int64_t c = 0; c < valueDims; ++c) keysToNope.at(keyDims + c, nope + c) = 1;
  Matrix m(keyDims + valueDims, keyDims + valueDims);
  m.values = lm.kv.values;
  Matrix zMoment = product(transposed(keysToNope), product(m, keysToNope));
  double kEnergy = 0, vEnergy = 0;
  for (int64_t i = 0; i < nope; ++i) kEnergy += zMoment.at(i, i);
  for (int64_t i = nope; i < nope + valueDims; ++i) vEnergy += zMoment.at(i, i);
  out.alpha = kEnergy > 0 && vEnergy > 0 ? std::sqrt(vEnergy / kEnergy) : 1.0;
  for (int64_t i = 0; i < zMoment.rows; ++i)
    for (int64_t j = 0; j < zMoment.columns; ++j)
      zMoment.at(i, j) *= (i < nope ? out.alpha : 1.0) * (j < nope ? out.alpha : 1.0);
  const SquareMatrix balanced{zMoment.rows, std::move(zMoment.values)};
  if (vectors) {
    Expected<Eigen> eigen = symmetricEigen(balanced);
    if (!eigen) return eigen.status();
    out.eigen = std::move(*eigen);
  } else {
    Expected<std::vector<double>> values = symmetricEigenvalues(balanced);
    if (!values) return values.status();
    out.eigen.values = std::move(*values);
  }
  return out;
}

// What the latent leaves out, in z's units: the PCA's residual past `rank`,
// and the pairs that lose RoPE (key energy, scaled as K_nope is).
double estimatedError(const JointPca& pca, const Split& split, int64_t rank) {
  double residual = 0;
  for (size_t k = static_cast<size_t>(rank); k < pca.eigen.values.size(); ++k) residual += std::max(0.0, pca.eigen.values[k]);
  return residual + pca.alpha * pca.alpha * split.droppedCost;
}

Expected<LatentWeights> buildWeights(const LayerProjections& layer, const LayerMoments& lm, const JointPca& pca,
                                     const Split& split, int64_t rank);

}  // namespace

Expected<int64_t> chooseRopeDims(const LayerProjections& layer, const ActivationMoments* moments, int64_t budget) {
  if (!layer.rope) return 0;
  const int64_t keyDims = layer.kvHeads * layer.headDim;
  const LayerMoments lm = layerMoments(layer, moments);
  Expected<KeyBasis> keys = keyBasis(layer, lm, moments);
  if (!keys) return keys.status();
  // Each candidate costs a PCA: a coarse pass over the range, then the even
  // splits around the best of it.
  const int64_t most = std::min(keyDims, budget - 1) / 2 * 2;
  int64_t best = 2;
  double bestError = -1;
  Status status = Status::ok();
  auto consider = [&](int64_t rope) {
    const Split split = splitAt(layer, *keys, rope);
    Expected<JointPca> pca = jointPca(layer, lm, *keys, split, false);
    if (!pca) {
      status = pca.status();
      return;
    }
    const double error = estimatedError(*pca, split, budget - rope);
    if (bestError < 0 || error < bestError) best = rope, bestError = error;
  };
  const int64_t step = std::max<int64_t>(2, most / 8 / 2 * 2);
  for (int64_t rope = 2; rope <= most && status; rope += step) consider(rope);
  const int64_t coarse = best;
  for (int64_t rope = std::max<int64_t>(2, coarse - step + 2); rope < std::min(most + 1, coarse + step) && status;
       rope += 2)
    if (rope != coarse) consider(rope);
  if (!status) return status;
  return best;
}

Expected<LatentWeights> compressedWeights(const LayerProjections& layer, const ActivationMoments* moments,
                                          int64_t rank, int64_t ropeDims) {
  const LayerMoments lm = layerMoments(layer, moments);
  Expected<KeyBasis> keys = keyBasis(layer, lm, moments);
  if (!keys) return keys.status();
  const Split split = splitAt(layer, *keys, ropeDims);
  const int64_t most = static_cast<int64_t>(split.nope.size()) + layer.kvHeads * layer.valueDim;
  if (rank < 1 || rank > most)
    return Status::error("rank ", rank, " is outside [1, ", most, "] (the no-rope key dims and the values)");
  Expected<JointPca> pca = jointPca(layer, lm, *keys, split, true);
  if (!pca) return pca.status();
  return buildWeights(layer, lm, *pca, split, rank);
}

namespace {

// The layer's latent weights from the split and the PCA's top `rank` components.
Expected<LatentWeights> buildWeights(const LayerProjections& layer, const LayerMoments& lm, const JointPca& pca,
                                     const Split& split, int64_t rank) {
  const int64_t H = layer.heads, G = layer.kvHeads, d = layer.headDim, dv = layer.valueDim, D = layer.width;
  const int64_t group = H / G, nope = static_cast<int64_t>(split.nope.size());
  const double alpha = pca.alpha;
  const Matrix& toNope = pca.toNope;
  const Matrix& toRope = pca.toRope;
  Matrix components(nope + G * dv, rank);  // P: the top `rank` eigenvectors
  for (int64_t i = 0; i < components.rows; ++i)
    for (int64_t c = 0; c < rank; ++c) components.at(i, c) = pca.eigen.vectors.at(i, c);
  LatentWeights w;
  w.ropeFrequencies = split.frequencies;

  // The down-projection: the latent P^T z, then the rotated rope keys.
  w.rank = rank, w.ropeDims = static_cast<int64_t>(split.rope.size());
  const int64_t row = rank + w.ropeDims;
  // z = [alpha K_nope ; V] as a projection of x: [alpha W_K toNope | W_V].
  auto [kNope, kNopeBias] = project(lm.wk, layer.kBias, toNope);
  Matrix z(D, nope + G * dv);
  std::vector<double> zBias(static_cast<size_t>(nope + G * dv));
  for (int64_t r = 0; r < D; ++r) {
    for (int64_t c = 0; c < nope; ++c) z.at(r, c) = alpha * kNope.at(r, c);
    for (int64_t c = 0; c < G * dv; ++c) z.at(r, nope + c) = lm.wv.at(r, c);
  }
  for (int64_t c = 0; c < nope; ++c) zBias[c] = alpha * kNopeBias[c];
  for (int64_t c = 0; c < G * dv; ++c) zBias[nope + c] = layer.vBias[c];
  auto [latent, latentBias] = project(z, zBias, components);
  auto [ropeKeys, ropeBias] = project(lm.wk, layer.kBias, toRope);
  std::vector<double> down(static_cast<size_t>(D * row)), downBias(static_cast<size_t>(row));
  for (int64_t r = 0; r < D; ++r) {
    for (int64_t c = 0; c < rank; ++c) down[static_cast<size_t>(r * row + c)] = latent.at(r, c);
    for (int64_t c = 0; c < w.ropeDims; ++c) down[static_cast<size_t>(r * row + rank + c)] = ropeKeys.at(r, c);
  }
  std::copy(latentBias.begin(), latentBias.end(), downBias.begin());
  std::copy(ropeBias.begin(), ropeBias.end(), downBias.begin() + rank);
  w.down = toTensor(down, {D, row});
  if (anyNonZero(downBias)) w.downBias = toTensor(downBias, {row});

  // Per head, from its own q: W_QR its rope query (the rope pairs of the
  // rotated basis), W_UK its latent query.
  std::vector<double> ropeUp(static_cast<size_t>(H * d * w.ropeDims));
  std::vector<double> keyUp(static_cast<size_t>(H * d * rank)), valueUp(static_cast<size_t>(H * rank * dv));
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / group;
    for (int64_t a = 0; a < d; ++a) {
      for (int64_t c = 0; c < w.ropeDims; ++c)
        ropeUp[static_cast<size_t>((h * d + a) * w.ropeDims + c)] = toRope.at(g * d + a, c);
      // W_UK[h][a] = (1 / alpha) sum over no-rope dims i of basis[(g, a), i] P[i].
      for (int64_t i = 0; i < nope; ++i)
        for (int64_t c = 0; c < rank; ++c)
          keyUp[static_cast<size_t>((h * d + a) * rank + c)] += toNope.at(g * d + a, i) * components.at(i, c) / alpha;
    }
    for (int64_t c = 0; c < rank; ++c)
      for (int64_t e = 0; e < dv; ++e)
        valueUp[static_cast<size_t>((h * rank + c) * dv + e)] = components.at(nope + g * dv + e, c);
  }
  if (w.ropeDims > 0) w.ropeUp = toTensor(ropeUp, {H, d, w.ropeDims});
  if (nope > 0) w.keyUp = toTensor(keyUp, {H, d, rank});
  w.valueUp = toTensor(valueUp, {H, rank, dv});
  return w;
}

}  // namespace

}  // namespace kiln
