// The per-op half of the ONNX importer: one converter per ONNX op type,
// declared once in a table with the ONNX attributes it understands and the
// kiln ops it emits. The importer resolves a node's inputs, checks its
// attributes against the table, and hands it to the converter through an
// OnnxNodeContext.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <onnx/onnx_pb.h>

#include "ir/builder.h"
#include "ir/graph.h"
#include "ir/status.h"

namespace kiln {

class OnnxNodeContext {
 public:
  OnnxNodeContext(Graph& graph, const onnx::NodeProto& node, std::string location,
                  std::vector<ValueId> inputs, const std::string& modelDir,
                  const std::unordered_set<std::string>& consumedNames);

  const onnx::NodeProto& node() const { return node_; }
  const std::string& location() const { return location_; }
  const std::string& modelDir() const { return modelDir_; }
  Graph& graph() { return graph_; }
  const Graph& graph() const { return graph_; }

  // Inputs; an omitted optional input (empty name, or past the end) reads
  // as kNoValue.
  size_t numInputs() const { return inputs_.size(); }
  bool hasInput(size_t i) const { return i < inputs_.size() && inputs_[i] != kNoValue; }
  ValueId input(size_t i) const { return hasInput(i) ? inputs_[i] : kNoValue; }
  const TensorType& inputType(size_t i) const { return graph_.value(inputs_[i]).type; }
  // The value of input i when it is a weight with data (an initializer or a
  // Constant), else null.
  const Tensor* inputValue(size_t i) const;

  // Outputs: whether output i exists and something (a node or a graph
  // output) reads it.
  size_t numOutputs() const { return static_cast<size_t>(node_.output_size()); }
  bool outputUsed(size_t i) const;

  // Attribute reads. The importer has already checked that every attribute
  // of the node is declared with its ONNX type, so these cannot mismatch.
  const onnx::AttributeProto* attribute(std::string_view name) const;
  bool hasAttribute(std::string_view name) const { return attribute(name) != nullptr; }
  int64_t intAttr(std::string_view name, int64_t fallback) const;
  double floatAttr(std::string_view name, double fallback) const;
  std::vector<int64_t> intsAttr(std::string_view name) const;

  // Appends kiln op `opName` at this node's location. Attribute values are
  // converted to the kinds the op declares (an ONNX int 0/1 to a bool, an
  // int to a float). When every operand is known (weights with data; for
  // shape and size, a static type) and the results are small, the op is
  // evaluated now and its results are weights: shape arithmetic on static
  // dims then gives the known values that later ops (reshape, expand...)
  // need for their result types.
  Expected<std::vector<ValueId>> emit(std::string_view opName, std::vector<ValueId> operands,
                                      Attributes attrs = {}, int numResults = 1);
  Expected<ValueId> emit1(std::string_view opName, std::vector<ValueId> operands,
                          Attributes attrs = {});
  // A weight named after this node (`<location>.<suffix>`).
  ValueId addWeight(const std::string& suffix, Tensor data);
  // A weight named after output i, for Constant nodes.
  ValueId addOutputWeight(size_t i, Tensor data);

  void setOutput(size_t i, ValueId value);
  const std::vector<ValueId>& outputs() const { return outputs_; }
  // Results this node created through emit (the importer may rename them
  // after the ONNX graph outputs they are).
  bool created(ValueId value) const;

 private:
  static constexpr int64_t kMaxFoldElements = 1 << 16;
  // The op's results as weights when it can be evaluated now; nullopt when
  // it cannot (an unknown operand, a large or non-static result).
  Expected<std::optional<std::vector<ValueId>>> fold(const OpDef& def, const Attributes& attrs,
                                                     const std::vector<ValueId>& operands,
                                                     const std::vector<TensorType>& resultTypes);
  // The result as a weight when it is shape arithmetic whose value does not
  // depend on the symbolic dims its operands carry (a static dim of a tensor
  // whose batch and sequence are symbolic); nullopt otherwise.
  std::optional<std::vector<ValueId>> foldSymbolic(const OpDef& def, const Attributes& attrs,
                                                   const std::vector<ValueId>& operands,
                                                   const std::vector<TensorType>& resultTypes);
  // A weight for result i, named after the node's output.
  ValueId resultWeight(size_t i, Tensor data);

  Graph& graph_;
  Builder builder_;
  const onnx::NodeProto& node_;
  std::string location_;
  std::vector<ValueId> inputs_;
  std::vector<ValueId> outputs_;
  std::vector<ValueId> created_;
  const std::string& modelDir_;
  const std::unordered_set<std::string>& consumedNames_;
};

struct OnnxOpConverter;
// `self` is the table entry, so one function can serve several op types.
using OnnxConvertFn = Status (*)(OnnxNodeContext& ctx, const OnnxOpConverter& self);

struct OnnxAttrDecl {
  std::string_view name;
  onnx::AttributeProto::AttributeType type;
};

struct OnnxOpConverter {
  std::string_view opType;
  std::vector<std::string_view> kilnOps;  // registry ops it needs; one missing = unsupported
  std::vector<OnnxAttrDecl> attributes;   // any other attribute is refused
  OnnxConvertFn convert = nullptr;
};

// An i64 vector of `values` (axes, sizes and shapes the converters add as weights).
Tensor int64Vector(const std::vector<int64_t>& values);
// An error naming the first of the first `count` inputs that is absent:
// ONNX checkers allow models that omit required ones.
Status requireInputs(const OnnxNodeContext& ctx, size_t count);

// The converters that compose kiln ops for an ONNX op kiln has no op for
// (onnx_composite_converters.cpp); onnxOpConverters() includes them.
std::vector<OnnxOpConverter> compositeOnnxConverters();

// The converter of an ai.onnx op type, or null.
const OnnxOpConverter* findOnnxOpConverter(std::string_view opType);
const std::vector<OnnxOpConverter>& onnxOpConverters();

// "FLOAT", "INTS", ... for messages.
std::string_view onnxAttrTypeName(onnx::AttributeProto::AttributeType type);

}  // namespace kiln
