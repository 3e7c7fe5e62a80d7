// Symbolic values of small integer tensors. The shape arithmetic exporters
// emit (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) computes tensors
// whose elements are dims of other tensors; this analysis knows such a tensor
// element by element as Dims (`[batch, seq, 8, 16]`), so canonicalisation can
// fold the arithmetic into the dim-list attributes of its consumers.
//
// Soundness: an element is a Dim only when it equals that polynomial for
// every binding of the symbols. Comparisons are decided only when they hold
// for every binding with each symbol >= 0 (a dim is never negative); nothing
// else about the symbols is assumed.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "ir/dim.h"
#include "ir/graph.h"
#include "ir/tensor.h"
#include "ir/type.h"

namespace kiln {

// Tensors with more elements than this are data, not shape arithmetic.
inline constexpr int64_t kMaxSymbolicElements = 256;

struct SymbolicTensor {
  DType dtype = DType::I64;    // i64, i32 or bool (elements 0 and 1)
  std::vector<int64_t> shape;  // always static
  std::vector<Dim> elements;   // row-major; an element may be unknown

  bool complete() const;    // every element known
  bool isConstant() const;  // every element a number
  // The tensor when isConstant().
  Tensor toTensor() const;
};

// Whether values of `type` are tracked: i64, i32 or bool, static and small.
bool isSymbolicCandidate(const TensorType& type);
// A tracked tensor's value (a weight's data).
std::optional<SymbolicTensor> symbolicFromTensor(const Tensor& tensor);

// -1, 0 or 1 when a < b, a == b or a > b for every binding of the symbols
// (each >= 0); nullopt when that depends on the binding.
std::optional<int> compareDims(const Dim& a, const Dim& b);

// The value of the single result of `op`, whose type `result` is inferred;
// operandTypes and operandValues follow op.operands (a value is null when not
// known, a type null for an absent operand). nullopt when the op is not
// shape arithmetic or its inputs are not known well enough.
std::optional<SymbolicTensor> evaluateSymbolic(const Op& op,
                                               std::span<const TensorType* const> operandTypes,
                                               std::span<const SymbolicTensor* const> operandValues,
                                               const TensorType& result);

// The value of `id` in `graph`, evaluated through its producers (weights with
// data are known; graph inputs are not); nullopt when it is not shape
// arithmetic or not known well enough. For importers that must know a value
// (a Loop's trip count) before passes run.
std::optional<SymbolicTensor> symbolicValueOf(const Graph& graph, ValueId id);

}  // namespace kiln
