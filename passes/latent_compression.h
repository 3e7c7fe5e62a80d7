// The latent_attention pass's weights (docs/latent-attention.md): what one
// attention layer's projections become, exactly or compressed to a rank,
// after TransMLA (arXiv 2502.07864): RoRoPE, K/V balancing and a joint PCA of
// the no-rope keys and the values, on calibration moments or, without them,
// on the weights alone.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ir/status.h"
#include "ir/tensor.h"
#include "passes/symmetric_eigen.h"

namespace kiln {

// One layer's q, k and v projections, x W + b, in double: W row-major
// [D, columns], b [columns] (zeros without a bias).
struct LayerProjections {
  int64_t heads = 0, kvHeads = 0, headDim = 0, valueDim = 0, width = 0;  // H, G, d, d_v, D
  bool rope = false;  // rotate-half RoPE on q and k
  // The angle per position of each RoPE frequency (inv_freq, d / 2), when
  // the graph holds them as a weight; empty otherwise.
  std::vector<double> ropeFrequencies;
  std::vector<double> q, k, v, qBias, kBias, vBias;
};

// The first and second moments of a layer's input x over calibration tokens:
// mean [D] and E[x x^T] [D, D].
struct ActivationMoments {
  int64_t tokens = 0;
  std::vector<double> mean;
  SquareMatrix second;
};

struct LatentWeights {
  int64_t rank = 0, ropeDims = 0;
  std::vector<int64_t> ropeFrequencies;  // per rope pair, rotate-half order
  Tensor down;                           // [D, rank + ropeDims]
  std::optional<Tensor> downBias;        // [rank + ropeDims]
  std::optional<Tensor> keyUp;           // [H, d, rank] (W_UK), or none: no score from the latent
  std::optional<Tensor> ropeUp;          // [H, d, ropeDims] (W_QR), when ropeDims > 0
  Tensor valueUp;                        // [H, rank, valueDim]
};

// The layer compressed to a latent of `rank` plus `ropeDims` rope dims
// (ropeDims 0 without RoPE): RoRoPE keeps RoPE on the ropeDims / 2 rotated
// key pairs whose loss of it would cost most, the other key dims lose it and
// join the values in the joint PCA. A pair's cost is its energy times how far
// its frequency turns over a context (ropeCostWeight): a slow frequency
// barely turns, and dropping its rotation changes little. Statistics come from `moments`, or with none from the
// weights alone (x taken as white: E[x x^T] = I). Each query head keeps its
// own q and reads the latent through its W_UK, the rope key through W_QR.
// The mean squared distance a unit vector moves when turned by angle*t, over
// t = 1 .. context: 2 - 2 mean(cos(angle t)).
double ropeCostWeight(double angle, int64_t context);

// The rope dims that leave the least out of a latent row of `budget`
// values: for each even split, the joint PCA's residual past the rank plus
// the cost of the pairs that lose RoPE (both in the PCA's balanced units);
// 0 without RoPE.
Expected<int64_t> chooseRopeDims(const LayerProjections& layer, const ActivationMoments* moments, int64_t budget);

Expected<LatentWeights> compressedWeights(const LayerProjections& layer, const ActivationMoments* moments,
                                          int64_t rank, int64_t ropeDims);

}  // namespace kiln
