// The op registry: each op is declared once, here and only here, with its
// operands, attributes, type inference (which is also its verifier and, on
// concrete shapes, its runtime shape function) and its cost. Its kernels live
// outside the IR: the reference kernel in backends/reference (the yardstick),
// the fast ones in each device's backend.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/attributes.h"
#include "ir/op_kind.h"
#include "ir/status.h"
#include "ir/tensor.h"
#include "ir/type.h"

namespace kiln {

struct OpDef;

// What type inference sees of one operand: its type, and its value when known
// (a weight at compile time; every operand at run time). type is null for an
// absent optional operand.
struct OperandInfo {
  const TensorType* type = nullptr;
  const Tensor* value = nullptr;
};

class InferContext {
 public:
  InferContext(const OpDef& def, const Attributes& attrs,
               std::span<const OperandInfo> operands, int numResults,
               const SymbolBindings* bindings = nullptr)
      : def_(def), attrs_(attrs), operands_(operands), numResults_(numResults), bindings_(bindings) {}

  const OpDef& def() const { return def_; }
  const Attributes& attrs() const { return attrs_; }
  size_t numOperands() const { return operands_.size(); }
  bool has(size_t i) const { return i < operands_.size() && operands_[i].type; }
  const TensorType& type(size_t i) const { return *operands_[i].type; }
  const Tensor* value(size_t i) const { return has(i) ? operands_[i].value : nullptr; }
  int numResults() const { return numResults_; }
  // A dim from an attribute (a folded reshape's `shape`), with the run's
  // symbol values substituted when they are known (at run time).
  Dim resolve(const Dim& dim) const { return bindings_ ? dim.substitute(*bindings_) : dim; }

  // An error prefixed with the op name, listing the operand types.
  template <class... Parts>
  Status error(const Parts&... parts) const {
    return Status::error(describe(), ": ", parts...);
  }
  std::string describe() const;  // "reshape(f32[2, 3], i64[2])"

 private:
  const OpDef& def_;
  const Attributes& attrs_;
  std::span<const OperandInfo> operands_;
  int numResults_;
  const SymbolBindings* bindings_;
};

// Result types are appended to `results`; an error explains what is wrong
// with the operands or attributes.
using InferFn = Status (*)(const InferContext& ctx, std::vector<TensorType>& results);

// What an op's cost function sees (passes/cost_model.h): its operand and
// result types, each dim at a representative value, and its attributes.
class CostContext {
 public:
  using DimValue = std::function<double(const Dim&)>;
  CostContext(const Attributes& attrs, std::vector<const TensorType*> operands,
              std::vector<const TensorType*> results, DimValue dimValue)
      : attrs_(attrs), operands_(std::move(operands)), results_(std::move(results)), dimValue_(std::move(dimValue)) {}

  const Attributes& attrs() const { return attrs_; }
  size_t numOperands() const { return operands_.size(); }
  bool present(size_t i) const { return i < operands_.size() && operands_[i]; }
  // Dim `axis` of operand i (negative: from the end); 1 when out of range.
  double dim(size_t i, int64_t axis) const;
  double elements(size_t i) const { return present(i) ? elementsOf(*operands_[i]) : 0; }
  double resultElements() const { return results_.empty() ? 0 : elementsOf(*results_[0]); }

 private:
  double elementsOf(const TensorType& type) const;
  const Attributes& attrs_;
  std::vector<const TensorType*> operands_, results_;
  DimValue dimValue_;
};
// FLOPs of one op; null for an op that moves data and computes nothing.
using FlopsFn = double (*)(const CostContext& ctx);
// The bytes an op moves: its operands and results; nothing (a view: see
// OpDef::resultIsView); its results only (reads metadata); or its results
// twice and the operands other than the first (reads only the selected
// elements of its data operand).
enum class Traffic : uint8_t { OperandsAndResults, ResultsOnly, SelectedElements };

// Per-element FLOPs: arithmetic costs one, transcendental functions several
// multiply-adds on real hardware.
template <int kFlopsPerElement>
double perResultElement(const CostContext& ctx) {
  return kFlopsPerElement * ctx.resultElements();
}
inline constexpr FlopsFn kArithmetic = perResultElement<1>;
inline constexpr FlopsFn kTranscendental = perResultElement<8>;

struct AttrSpec {
  std::string_view name;
  AttrKind kind;
  bool required = false;
};

struct OpDef {
  OpKind kind{};                // its entry in the op table (ir/ops.def)
  std::string_view name;        // set by OpRegistry::add from the op table: "matmul", "reduce_mean"
  std::string_view summary;     // one line, for docs and --help
  std::vector<std::string_view> operands;  // names; a trailing "..." means variadic
  int minOperands = 0;          // the first minOperands are required
  int maxOperands = 0;          // -1: variadic
  int minResults = 1, maxResults = 1;  // usually 1; split is variadic (-1)
  std::vector<AttrSpec> attrs;
  InferFn infer = nullptr;
  // Memory planning. Operands whose buffer the single result may take over at
  // the operand's last use (same dtype and bytes); the kernel is written to be
  // correct when the result aliases that operand.
  std::vector<int> inplaceOperands;
  // The result is operand 0's bytes reinterpreted (reshape and its kin): the
  // planner gives it no buffer of its own and the kernel copies nothing when
  // the two alias. The cost model counts no bytes and no FLOPs for it.
  bool resultIsView = false;
  // The cost model (passes/cost_model.h).
  FlopsFn flops = nullptr;
  Traffic traffic = Traffic::OperandsAndResults;
};

class OpRegistry {
 public:
  static const OpRegistry& global();  // every op kiln knows; aborts if a kind has no OpDef
  void add(OpDef def);                // aborts on a kind declared twice (a kiln bug)
  const OpDef& get(OpKind kind) const { return *ops_[static_cast<size_t>(kind)]; }
  const OpDef* find(std::string_view name) const;  // by text name: the parser and importers
  std::vector<const OpDef*> all() const;  // sorted by name

 private:
  std::array<std::unique_ptr<OpDef>, kNumOpKinds> ops_;
};

// The declaration of `kind` in the global registry.
inline const OpDef& opDef(OpKind kind) { return OpRegistry::global().get(kind); }

// Family registration, one per file in ir/ops/.
void registerElementwiseOps(OpRegistry& registry);
void registerReductionOps(OpRegistry& registry);
void registerLinalgOps(OpRegistry& registry);
void registerShapeOps(OpRegistry& registry);
void registerFusedOps(OpRegistry& registry);  // what the optimisation passes produce
void registerLatentAttentionOps(OpRegistry& registry);  // what the latent_attention pass makes
void registerTransferOps(OpRegistry& registry);  // between devices

// Parses the def's program attributes given as text (an op built by a pass,
// the text parser, a test) into their typed form, so kernels and the cost
// model read it parsed; text that does not parse stays text, for inference
// to report. Returns the typed copy, or nullopt when there is nothing to
// parse (the common case costs no copy). Graph::addOp and evaluateOp
// (backends/reference) apply it.
std::optional<Attributes> typedAttributes(const OpDef& def, size_t numOperands, const Attributes& attrs);

// Checks attribute names and kinds against the def, then runs inference.
// `bindings` gives the symbols' values at run time (null at compile time).
Status inferResultTypes(const OpDef& def, const Attributes& attrs,
                        std::span<const OperandInfo> operands, int numResults,
                        std::vector<TensorType>& results,
                        const SymbolBindings* bindings = nullptr);

}  // namespace kiln
