#include "passes/cost_model.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "ir/activation.h"
#include "ir/elementwise_program.h"
#include "ir/op_registry.h"

namespace kiln {

namespace {

bool containsIgnoringCase(std::string_view text, std::string_view word) {
  auto it = std::search(text.begin(), text.end(), word.begin(), word.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
  return it != text.end();
}

// FLOPs per element of one elementwise function: transcendental functions
// cost several multiply-adds on real hardware, arithmetic costs one.
double elementwiseFlops(OpKind kind) {
  return isOneOf(kind, {OpKind::Exp, OpKind::Log, OpKind::Tanh, OpKind::Erf, OpKind::Sigmoid, OpKind::Sqrt,
                        OpKind::Pow, OpKind::Cos, OpKind::Sin, OpKind::Gelu, OpKind::Silu})
             ? 8
             : 1;
}

double activationFlops(Activation activation) { return activation == Activation::Relu ? 1 : 8; }

// Ops that only reinterpret their input's shape: a backend aliases them.
bool isView(const Op& op) {
  return op.isOneOf({OpKind::Reshape, OpKind::Squeeze, OpKind::Unsqueeze, OpKind::Flatten, OpKind::Identity});
}

// Ops that move data but compute nothing.
bool movesOnly(const Op& op) {
  return op.isOneOf({OpKind::Transpose, OpKind::Gather, OpKind::Slice, OpKind::Concat, OpKind::Split,
                     OpKind::Expand, OpKind::Shape, OpKind::Size, OpKind::ConstantOfShape, OpKind::Range,
                     OpKind::Trilu});
}

class OpCoster {
 public:
  OpCoster(const Graph& graph, const Op& op, const CostModel& model)
      : graph_(graph), op_(op), model_(model) {}

  bool present(size_t i) const { return i < op_.operands.size() && op_.operands[i] != kNoValue; }
  const TensorType& operandType(size_t i) const { return graph_.value(op_.operands[i]).type; }
  const TensorType& resultType(size_t i) const { return graph_.value(op_.results[i]).type; }
  double dim(const TensorType& type, int64_t axis) const {
    const int64_t rank = static_cast<int64_t>(type.rank());
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return 1;
    return static_cast<double>(model_.dimValue(type.shape[static_cast<size_t>(axis)]));
  }
  double elements(const TensorType& type) const {
    double n = 1;
    for (const Dim& d : type.shape) n *= static_cast<double>(model_.dimValue(d));
    return n;
  }
  double bytes(const TensorType& type) const {
    return elements(type) * static_cast<double>(dtypeSize(type.dtype));
  }
  double operandBytes(size_t i) const { return present(i) ? bytes(operandType(i)) : 0; }
  double allOperandBytes() const {
    double total = 0;
    for (size_t i = 0; i < op_.operands.size(); ++i) total += operandBytes(i);
    return total;
  }
  double allResultBytes() const {
    double total = 0;
    for (size_t i = 0; i < op_.results.size(); ++i) total += bytes(resultType(i));
    return total;
  }
  double resultElements() const { return op_.results.empty() ? 0 : elements(resultType(0)); }

  OpCost cost() const {
    const OpKind kind = op_.kind();
    if (isView(op_)) return {};
    OpCost cost;
    if (kind == OpKind::Shape || kind == OpKind::Size) {
      cost.bytes = allResultBytes();  // reads metadata only
    } else if (kind == OpKind::Gather || kind == OpKind::Slice) {
      // Reads only the selected elements of its data operand.
      cost.bytes = allOperandBytes() - operandBytes(0) + 2 * allResultBytes();
    } else {
      cost.bytes = allOperandBytes() + allResultBytes();
    }
    cost.flops = flops(kind);
    return cost;
  }

 private:
  double flops(OpKind kind) const {
    if (movesOnly(op_)) return 0;
    const double n = resultElements();
    if (kind == OpKind::Matmul) return matmulFlops();
    if (kind == OpKind::Gemm) {
      const double k = dim(operandType(0), op_.attrs.getInt("trans_a") ? -2 : -1);
      return 2 * n * k + 2 * n;
    }
    if (kind == OpKind::Attention) return attentionFlops();
    if (kind == OpKind::Softmax || kind == OpKind::LogSoftmax) return 5 * n;
    if (kind == OpKind::LayerNorm) return 8 * n;
    if (kind == OpKind::RmsNorm) return 5 * n;
    if (kind == OpKind::Swiglu) return (elementwiseFlops(OpKind::Silu) + 1) * n;
    if (kind == OpKind::ReduceMean || kind == OpKind::ReduceSum || kind == OpKind::ReduceMax || kind == OpKind::Cumsum)
      return present(0) ? elements(operandType(0)) : 0;
    if (kind == OpKind::FusedElementwise) return n * programFlops();
    return n * elementwiseFlops(kind);
  }

  // 2*M*N*K per matrix product, plus the epilogue on each result element.
  double matmulFlops() const {
    const double n = resultElements();
    const double k = dim(operandType(0), op_.attrs.getBool("transpose_a") ? -2 : -1);
    double total = 2 * n * k;
    if (present(2)) total += n;  // bias
    if (present(3)) total += n;  // residual
    const Activation activation =
        parseActivation(op_.attrs.getString("activation", "none")).value_or(Activation::None);
    if (activation != Activation::None) total += n * activationFlops(activation);
    return total;
  }

  // Q·Kᵀ and P·V (2*S*T*D each per head), softmax with scale and mask (5 per
  // score) and, with rope, 6 per element of q and k.
  double attentionFlops() const {
    const double heads = static_cast<double>(op_.attrs.getInt("heads", 1));
    const std::string layout = op_.attrs.getString("qkv_layout", "bhsd");
    // bsd_packed: q holds the q|k|v rows, (heads + 2*kv_heads) head rows per token; k and v are absent.
    const bool packed = layout == "bsd_packed", bsd = layout == "bsd" || packed;
    const double kvHeads = static_cast<double>(op_.attrs.getInt("kv_heads", 1));
    const double rowHeads = packed ? heads + 2 * kvHeads : heads;
    const TensorType& q = operandType(0);
    const double batch = dim(q, 0);
    const double queries = bsd ? dim(q, 1) : dim(q, 2);
    const double headDim = bsd ? dim(q, -1) / rowHeads : dim(q, -1);
    double keys = packed ? queries : bsd ? dim(operandType(1), 1) : dim(operandType(1), 2);
    if (present(6)) keys += dim(operandType(6), 2);  // past_k
    const double scores = batch * heads * queries * keys;
    double total = 4 * scores * headDim + 5 * scores;
    if (op_.attrs.getString("rope", "none") != "none")
      total += 6 * (packed ? batch * queries * (heads + kvHeads) * headDim
                           : elements(q) + elements(operandType(1)));
    return total;
  }

  double programFlops() const {
    Expected<ElementwiseProgram> program =
        parseElementwiseProgram(op_.attrs.getString("program"), op_.operands.size());
    double total = 0;
    if (program)
      for (const ProgramInstruction& instruction : *program) total += isTranscendental(instruction.op) ? 8 : 1;
    return total;
  }

  const Graph& graph_;
  const Op& op_;
  const CostModel& model_;
};

}  // namespace

int64_t CostModel::symbolValue(const std::string& symbol) const {
  if (auto it = bindings.find(symbol); it != bindings.end()) return it->second;
  if (containsIgnoringCase(symbol, "batch")) return batchSize;
  if (containsIgnoringCase(symbol, "past")) return pastLength;
  return sequenceLength;
}

int64_t CostModel::dimValue(const Dim& dim) const {
  if (dim.isUnknown()) return unknownDim;
  if (std::optional<int64_t> value = dim.constant()) return *value;
  SymbolBindings values;
  for (const std::string& symbol : dim.symbols()) values[symbol] = symbolValue(symbol);
  return dim.substitute(values).constant().value_or(unknownDim);
}

OpCost opCost(const Graph& graph, const Op& op, const CostModel& model) {
  return OpCoster(graph, op, model).cost();
}

GraphCost graphCost(const Graph& graph, const CostModel& model) {
  GraphCost total;
  for (const Op& op : graph.ops()) {
    const OpCost cost = opCost(graph, op, model);
    total.bytes += cost.bytes;
    total.flops += cost.flops;
    total.seconds += cost.bytes / model.bytesPerSecond + cost.flops / model.flopsPerSecond;
    bool unknown = false;
    for (ValueId id : op.operands)
      if (id != kNoValue)
        for (const Dim& d : graph.value(id).type.shape) unknown = unknown || d.isUnknown();
    for (ValueId id : op.results)
      for (const Dim& d : graph.value(id).type.shape) unknown = unknown || d.isUnknown();
    if (unknown) ++total.opsWithUnknownDims;
  }
  return total;
}

}  // namespace kiln
