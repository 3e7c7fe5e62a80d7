#include "tools/kiln/latent_calibration.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "runtime/executor.h"
#include "tools/kiln/model_inputs.h"

namespace kiln::tools {
namespace {

// Adds the tokens of x [..., D] (f32) to the moments.
Status accumulate(const Tensor& x, ActivationMoments& moments) {
  if (x.dtype() != DType::F32 || x.rank() == 0)
    return Status::error("a calibrated value is ", x.type().str(), ", not an f32 tensor of tokens");
  const int64_t D = x.shape().back(), tokens = x.numElements() / std::max<int64_t>(D, 1);
  if (moments.tokens == 0) {
    moments.mean.assign(static_cast<size_t>(D), 0.0);
    moments.second = SquareMatrix{D, std::vector<double>(static_cast<size_t>(D * D), 0.0)};
  }
  std::vector<double> row(static_cast<size_t>(D));
  for (int64_t t = 0; t < tokens; ++t) {
    const float* values = x.data<float>() + t * D;
    for (int64_t i = 0; i < D; ++i) row[i] = values[i], moments.mean[i] += values[i];
    for (int64_t i = 0; i < D; ++i)
      for (int64_t j = 0; j <= i; ++j) moments.second.at(i, j) += row[i] * row[j];
  }
  moments.tokens += tokens;
  return Status::ok();
}

// Sums to means; the second moment's upper triangle from its lower one.
void normalize(ActivationMoments& moments) {
  const double n = static_cast<double>(std::max<int64_t>(moments.tokens, 1));
  const int64_t D = moments.second.n;
  for (double& m : moments.mean) m /= n;
  for (int64_t i = 0; i < D; ++i)
    for (int64_t j = 0; j <= i; ++j) moments.second.at(j, i) = moments.second.at(i, j) /= n;
}

Expected<std::vector<ActivationMoments>> measure(const std::vector<std::string>& sets, const Graph& graph,
                                                 const std::vector<ValueId>& values) {
  Graph probe = graph;
  probe.setOutputs(values);
  Expected<std::unique_ptr<rt::Executor>> executor = rt::Executor::create(probe);
  if (!executor) return executor.status();
  std::vector<ActivationMoments> moments(values.size());
  for (const std::string& set : sets) {
    Expected<std::vector<Tensor>> inputs = readInputs(probe, set);
    if (!inputs) return inputs.status().withContext(cat(set, ": "));
    Expected<std::vector<Tensor>> outputs = (*executor)->run(*inputs);
    if (!outputs) return outputs.status().withContext(cat(set, ": "));
    for (size_t v = 0; v < values.size(); ++v) KILN_RETURN_IF_ERROR(accumulate((*outputs)[v], moments[v]));
  }
  for (ActivationMoments& m : moments) normalize(m);
  return moments;
}

}  // namespace

Expected<Calibrate> calibrationFromDir(const std::string& dir) {
  std::error_code error;
  std::vector<std::string> sets;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error))
    if (entry.is_directory()) sets.push_back(entry.path().string());
  if (error) return Status::error("--calibration-dir '", dir, "': ", error.message());
  if (sets.empty()) return Status::error("--calibration-dir '", dir, "' holds no data set (a directory of input_K.pb)");
  std::sort(sets.begin(), sets.end());
  return Calibrate([sets](const Graph& graph, const std::vector<ValueId>& values) {
    return measure(sets, graph, values);
  });
}

}  // namespace kiln::tools
