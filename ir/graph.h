// The typed register graph. Every value is a virtual register (`%name`) with
// a static type: a graph input, an op result, or a weight (`@name`, a constant
// in the weights table). Ops are kept in a valid topological order; each names
// its operands and results by ValueId.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ir/attributes.h"
#include "ir/op_kind.h"
#include "ir/status.h"
#include "ir/tensor.h"
#include "ir/type.h"

namespace kiln {

struct OpDef;

using ValueId = int32_t;
inline constexpr ValueId kNoValue = -1;  // an absent optional operand, printed `_`

enum class ValueKind { Input, OpResult, Weight };

// The device of graph inputs, weights and every op that placement has not
// put elsewhere (passes/device_placement.cpp): the host CPU, whose memory the
// caller's tensors and the weights live in.
inline constexpr std::string_view kHostDevice = "cpu";

struct Value {
  std::string name;  // without sigil; unique in the graph across kinds
  TensorType type;
  ValueKind kind = ValueKind::OpResult;
  int32_t producer = -1;  // index into Graph::ops() for OpResult
  // Weights: the data, when loaded. A weight parsed from text without data
  // (`weight @w : f32[4]`) has none and cannot be evaluated.
  std::optional<Tensor> data;
};

struct Op {
  const OpDef* def = nullptr;
  std::vector<ValueId> operands;  // kNoValue for an absent optional operand
  std::vector<ValueId> results;
  Attributes attrs;
  std::string location;  // source node name, for diagnostics; printed as loc("...")
  // The device its results live on and its kernel runs on, set by placement
  // and printed `on "opencl"`; empty: the host (kHostDevice). Every operand
  // of a placed op lives on its device: `transfer` ops move values between.
  std::string device;

  std::string_view placement() const { return device.empty() ? kHostDevice : std::string_view(device); }
  OpKind kind() const;
  bool is(OpKind k) const { return def && kind() == k; }
  bool isOneOf(std::initializer_list<OpKind> kinds) const { return def && kiln::isOneOf(kind(), kinds); }
};

class Graph {
 public:
  std::string name = "main";

  // Creation. Names must be unique; an empty name gets the next free number.
  ValueId addInput(std::string name, TensorType type);
  ValueId addWeight(std::string name, Tensor data);
  ValueId addWeightDecl(std::string name, TensorType type);  // no data
  // Appends an op whose result types are given (no inference; see Builder).
  int32_t addOp(const OpDef* def, std::vector<ValueId> operands,
                std::vector<TensorType> resultTypes, Attributes attrs = {},
                std::string location = {}, std::vector<std::string> resultNames = {});
  void setOutputs(std::vector<ValueId> outputs) { outputs_ = std::move(outputs); }
  // Reorders or drops inputs (values of kind Input: addInput made them).
  void setInputs(std::vector<ValueId> inputs) { inputs_ = std::move(inputs); }

  const std::vector<Value>& values() const { return values_; }
  Value& value(ValueId id) { return values_.at(static_cast<size_t>(id)); }
  const Value& value(ValueId id) const { return values_.at(static_cast<size_t>(id)); }
  const std::vector<Op>& ops() const { return ops_; }
  std::vector<Op>& ops() { return ops_; }
  const std::vector<ValueId>& inputs() const { return inputs_; }
  const std::vector<ValueId>& outputs() const { return outputs_; }
  std::vector<ValueId> weights() const;  // in creation order
  // The device a value lives on: its producer's placement; the host for
  // graph inputs and weights.
  std::string_view deviceOf(ValueId id) const;

  std::optional<ValueId> find(const std::string& name) const;
  // Renames a value; fails if the name is taken by another value.
  Status rename(ValueId id, const std::string& newName);
  // A fresh name (`base`, `base_1`, ...) not used by any value.
  std::string uniqueName(const std::string& base) const;
  // Every dim of every value's type and of every dim-list attribute with
  // `symbol` replaced by `with`: what an op's run-time constraint (the
  // non-axis dims of a concat are equal) proves about an input's symbol.
  void replaceSymbol(std::string_view symbol, const Dim& with);

  // Replaces the ops list (passes rebuild it) and re-links producers.
  void setOps(std::vector<Op> ops);
  // Drops values no op, input or output refers to (dead results, unused
  // weights) and renumbers ValueIds densely; names are kept.
  void compact();

 private:
  ValueId addValue(std::string name, TensorType type, ValueKind kind);
  std::vector<Value> values_;
  std::vector<Op> ops_;
  std::vector<ValueId> inputs_;
  std::vector<ValueId> outputs_;
  std::unordered_map<std::string, ValueId> byName_;
  int64_t nextNumber_ = 0;
};

}  // namespace kiln
