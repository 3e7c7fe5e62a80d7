// Helpers shared by the gtest files of tests/unit, tests/planning and
// tests/passes: tensors from literal values, attributes, evaluating an op
// through the registry and reading back its values or error, and parsing a
// text-IR graph. A test file brings them in with
// `using namespace kiln::testsupport;`; a file-local helper of the same name
// hides the shared one.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "ir/text.h"

namespace kiln::testsupport {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kInf = std::numeric_limits<double>::infinity();

inline const Dim kBatch = Dim::symbol("batch");
inline const Dim kSeq = Dim::symbol("seq");
inline const Dim kPast = Dim::symbol("past");

// A tensor of `dtype` from values given as double (exact for every test value).
inline Tensor make(DType dtype, std::vector<int64_t> shape, const std::vector<double>& values) {
  Tensor t = Tensor::allocate(dtype, std::move(shape));
  EXPECT_EQ(t.numElements(), static_cast<int64_t>(values.size()));
  visitDType(dtype, [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < values.size(); ++i) t.data<T>()[i] = storeFromDouble<T>(values[i]);
  });
  return t;
}
inline Tensor f32(std::vector<int64_t> shape, const std::vector<double>& v) {
  return make(DType::F32, std::move(shape), v);
}
inline Tensor boolean(std::vector<int64_t> shape, const std::vector<double>& v) {
  return make(DType::Bool, std::move(shape), v);
}
// int64 values beyond 2^53 must not pass through double.
inline Tensor i64(std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  Tensor t = Tensor::allocate(DType::I64, std::move(shape));
  for (size_t i = 0; i < values.size(); ++i) t.data<int64_t>()[i] = values[i];
  return t;
}

inline std::vector<double> valuesOf(const Tensor& t) {
  std::vector<double> out;
  for (int64_t i = 0; i < t.numElements(); ++i) out.push_back(t.elementAsDouble(i));
  return out;
}

// The elements of an integer tensor; empty for any other dtype.
inline std::vector<int64_t> ints(const Tensor& t) {
  std::vector<int64_t> out;
  visitDType(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_integral_v<T>)
      for (int64_t i = 0; i < t.numElements(); ++i) out.push_back(static_cast<int64_t>(t.data<T>()[i]));
  });
  return out;
}

// Dims parsed from text ("batch", "seq + past", "4"); every text must parse.
inline Shape dims(std::initializer_list<const char*> texts) {
  Shape shape;
  for (const char* text : texts) {
    std::string error;
    shape.push_back(*Dim::parse(text, &error));
  }
  return shape;
}

inline Attributes attrs(std::initializer_list<std::pair<std::string, AttrValue>> values) {
  Attributes a;
  for (const auto& [name, value] : values) a.set(name, value);
  return a;
}

// `op` through evaluateOp: inference on the concrete shapes, then the reference kernel.
inline Expected<std::vector<Tensor>> evaluate(std::string_view op, std::vector<const Tensor*> inputs,
                                              const Attributes& a = {}, int numResults = 1) {
  const OpDef* def = OpRegistry::global().find(op);
  if (!def) return Status::error("no op ", op);
  return evaluateOp(*def, a, inputs, numResults);
}

// The results of `op`; on an error the test fails and gets empty f32 tensors,
// so that what it reads next does not crash.
inline std::vector<Tensor> runAll(std::string_view op, std::vector<const Tensor*> inputs, const Attributes& a,
                                  int numResults) {
  Expected<std::vector<Tensor>> result = evaluate(op, std::move(inputs), a, numResults);
  if (!result) {
    ADD_FAILURE() << op << ": " << result.status().message();
    return std::vector<Tensor>(static_cast<size_t>(numResults), Tensor::allocate(DType::F32, {0}));
  }
  return result.value();
}

// The only result of `op`; fails the test on an error.
inline Tensor run(std::string_view op, std::vector<const Tensor*> inputs, const Attributes& a = {}) {
  return runAll(op, std::move(inputs), a, 1)[0];
}

// The error message of `op`, or "(no error)".
inline std::string errorOf(std::string_view op, std::vector<const Tensor*> inputs, const Attributes& a = {},
                           int numResults = 1) {
  Expected<std::vector<Tensor>> result = evaluate(op, std::move(inputs), a, numResults);
  return result ? "(no error)" : result.status().message();
}

// `actual` has `dtype`, `shape` and `expected` values to a relative
// `tolerance`; NaN and infinities must match exactly.
inline void expectClose(const Tensor& actual, DType dtype, const std::vector<int64_t>& shape,
                        const std::vector<double>& expected, double tolerance = 1e-6) {
  EXPECT_EQ(actual.dtype(), dtype);
  EXPECT_EQ(actual.shape(), shape);
  ASSERT_EQ(actual.numElements(), static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    const double got = actual.elementAsDouble(static_cast<int64_t>(i));
    if (std::isnan(expected[i])) EXPECT_TRUE(std::isnan(got)) << "element " << i;
    else if (std::isinf(expected[i])) EXPECT_EQ(got, expected[i]) << "element " << i;
    else EXPECT_NEAR(got, expected[i], tolerance * std::max(1.0, std::abs(expected[i]))) << "element " << i;
  }
}

// A graph from text IR; on a parse error the test fails and gets an empty graph.
inline Graph parse(std::string_view text) {
  Expected<Graph> graph = parseGraph(text);
  EXPECT_TRUE(graph.isOk()) << graph.status().message();
  return graph.isOk() ? std::move(*graph) : Graph{};
}

}  // namespace kiln::testsupport
