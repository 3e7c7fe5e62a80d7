// Helpers shared by the KV cache tests: token tensors, stateless runs with
// explicit past, steps, and reading a session's cache.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/kv_layers.h"
#include "ir/text.h"
#include "runtime/executor.h"

namespace kiln::rt::kvtest {

// The executor of an in-memory graph, stepping the KV layers the compiler
// finds in it (as an artifact would record them).
inline std::unique_ptr<Executor> makeExecutor(const Graph& graph) {
  auto executor = Executor::create(graph, findKvLayers(graph));
  EXPECT_TRUE(executor.isOk()) << executor.status().message();
  return executor.isOk() ? std::move(*executor) : nullptr;
}

// The text IR graph in file `path`.
inline Graph parseFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  auto graph = parseGraph(text.str());
  EXPECT_TRUE(graph.isOk()) << path << ": " << graph.status().message();
  return graph.isOk() ? std::move(*graph) : Graph();
}

// Token ids [batch, n]: each batch row holds `ids`.
inline Tensor tokens(const std::vector<int64_t>& ids, int64_t batch = 1) {
  Tensor t = Tensor::allocate(DType::I64, {batch, static_cast<int64_t>(ids.size())});
  for (int64_t b = 0; b < batch; ++b) std::copy(ids.begin(), ids.end(), t.data<int64_t>() + b * ids.size());
  return t;
}

inline std::vector<float> floats(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numElements());
}

// Logits row `s` of batch 0 ([batch, seq, vocab]).
inline std::vector<float> logitsRow(const Tensor& logits, int64_t s) {
  const int64_t vocab = logits.shape()[2];
  const float* row = logits.data<float>() + s * vocab;
  return std::vector<float>(row, row + vocab);
}

// One stateless run with explicit past tensors (one per graph input after
// input_ids, in graph order); the outputs are cloned, all of them.
inline std::vector<Tensor> runStateless(const Executor& executor, const Tensor& ids,
                                        const std::vector<Tensor>& past) {
  std::vector<Tensor> inputs = {ids};
  inputs.insert(inputs.end(), past.begin(), past.end());
  auto outputs = executor.run(inputs);
  EXPECT_TRUE(outputs.isOk()) << outputs.status().message();
  std::vector<Tensor> owned;
  if (outputs)
    for (const Tensor& t : *outputs) owned.push_back(t.clone());
  return owned;
}

// The empty past of every KV input of `executor`'s graph, for batch 1.
inline std::vector<Tensor> emptyPast(const Executor& executor) {
  std::vector<Tensor> past;
  for (const KvLayer& layer : executor.kvLayers())
    for (size_t part = 0; part < layer.parts(); ++part)
      past.push_back(Tensor::allocate(layer.dtype, {1, layer.kvHeads, 0, layer.width(part)}));
  return past;
}

// Rows [0, length) of a cache tensor [1, heads, capacity, dim], as [1, heads, length, dim].
inline std::vector<float> cachedRows(const Tensor& cache, int64_t length) {
  const int64_t heads = cache.shape()[1], capacity = cache.shape()[2], dim = cache.shape()[3];
  std::vector<float> rows;
  for (int64_t h = 0; h < heads; ++h) {
    const float* head = cache.data<float>() + h * capacity * dim;
    rows.insert(rows.end(), head, head + length * dim);
  }
  return rows;
}

inline Tensor stepLogits(Session& session, const std::vector<int64_t>& ids) {
  auto outputs = session.step({tokens(ids)});
  EXPECT_TRUE(outputs.isOk()) << outputs.status().message();
  if (!outputs) return Tensor{};
  EXPECT_EQ(outputs->size(), 1u);  // logits only: the present outputs stay in the cache
  return (*outputs)[0].clone();
}

inline void expectNear(const std::vector<float>& got, const std::vector<float>& want, float tolerance) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tolerance) << "element " << i;
}

}  // namespace kiln::rt::kvtest
