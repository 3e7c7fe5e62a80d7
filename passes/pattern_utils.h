// Shared machinery of the rewriting passes: use lists that stay exact while a
// pass rewrites, a Rewriter that places new ops where the pattern they
// replace stood and drops the ops it made dead, and matchers for the small
// expressions exporters spell in many ways (constants, products in any
// association, GELU / SiLU chains).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ir/activation.h"
#include "ir/graph.h"
#include "ir/op_registry.h"
#include "ir/status.h"

namespace kiln {

// What an op computes, apart from its results and place: a pass checks a
// candidate form (Rewriter::inferTypes) before it applies it (reform).
struct OpForm {
  OpKind kind;
  std::vector<ValueId> operands;
  Attributes attrs;
};

// Collects a pass's rewrites and applies them in one commit. Ops are named by
// their index in graph.ops(); the ops that exist when the Rewriter is made
// ("original ops") keep their indices until commit(); ops it creates are
// appended after them and placed at commit.
class Rewriter {
 public:
  explicit Rewriter(Graph& graph);

  Graph& graph() { return graph_; }
  const Graph& graph() const { return graph_; }
  size_t originalOpCount() const { return originalOpCount_; }
  const Op& op(int32_t index) const { return graph_.ops()[static_cast<size_t>(index)]; }

  // ---- Uses, exact at every point of the rewrite (ops marked for removal
  // ---- still count as users until commit).
  // One entry per operand slot that reads `value` (an op reading it twice is
  // listed twice).
  const std::vector<int32_t>& users(ValueId value) const;
  bool isGraphOutput(ValueId value) const;
  // Operand slots plus graph-output slots.
  size_t useCount(ValueId value) const;
  // The op that reads `value` when it is its only use (and not a graph
  // output); -1 otherwise.
  int32_t soleUser(ValueId value) const;
  // True when every use of every result of `ops` other than `root`'s results
  // is by an op in `ops`, and none is a graph output: rewriting the pattern
  // then leaves none of its inner values needed elsewhere.
  bool isConfined(const std::vector<int32_t>& ops, int32_t root) const;

  // The op producing `value` when it is an op result of an op of `kind`
  // not yet marked for removal; nullptr otherwise.
  const Op* producer(ValueId value, OpKind kind) const;
  int32_t producerIndex(ValueId value) const;  // -1 for inputs and weights

  // ---- Rewriting.
  // Creates an op with inferred result types, to be placed just before the
  // original op `anchor` (or at the end for anchor == originalOpCount()).
  Expected<std::vector<ValueId>> create(int32_t anchor, OpKind kind,
                                        std::vector<ValueId> operands, Attributes attrs = {},
                                        int numResults = 1, std::string location = {});
  Expected<ValueId> create1(int32_t anchor, OpKind kind,
                            std::vector<ValueId> operands, Attributes attrs = {},
                            std::string location = {});
  // The result types an op of `form` with `numResults` results would have.
  Status inferTypes(const OpForm& form, int numResults, std::vector<TensorType>& types) const;
  // The op at `index` becomes `form`, keeping its results (their names,
  // types and users) and location; the caller sets the result types.
  // Canonicalize simplifies an op one rule at a time: a new op per step would
  // take new register numbers and rename every later one.
  void reform(int32_t index, OpForm form);
  // A new weight named after `base` (made unique).
  ValueId addWeight(const std::string& base, Tensor data);
  // Every use of `from` (op operands, graph outputs) reads `to` instead. A
  // value this Rewriter created takes over `from`'s name, so outputs keep
  // their names and the IR reads as before.
  Status replace(ValueId from, ValueId to);
  // Like replace, for a pattern whose ops stay in place (attention fusion
  // leaves them for dce; canonicalize marks a no-op and reads its input):
  // only the uses placed after `to`'s op switch, since the pattern's own ops
  // before it (reading the KV-cache concat it replaces) cannot read a later
  // value. Names stay, but a graph output keeps its name: at commit `to`
  // takes it and `from` becomes `<name>_unfused` (until then, names a pass
  // derives new ones from are the old ones).
  void bypass(ValueId from, ValueId to);
  // Ops created so far. A pass that tries several forms of one rewrite
  // (attention fusion's fallbacks) drops the ops of a refused form with
  // discardCreated(count taken before it); their results must be unused.
  size_t createdCount() const { return anchors_.size(); }
  void discardCreated(size_t count);
  // Marks an original op as part of a rewritten pattern: matchers skip it
  // (isMarked) and commit() removes it once nothing uses its results.
  void mark(int32_t index);
  void mark(const std::vector<int32_t>& indices);
  bool isMarked(int32_t index) const;

  bool changed() const { return changed_; }
  // Orders the new ops before their anchors, removes marked ops without
  // users, refreshes result types that a replacement made more precise
  // (mergeTypes), and compacts the graph. Does nothing when no rewrite was
  // recorded.
  Status commit();

 private:
  void addUses(int32_t opIndex);
  // Whether op `a` is placed after op `b` once committed.
  bool placedAfter(int32_t a, int32_t b) const;
  // Points the uses of `from` by ops placed after op `after` (every use for
  // -1) and its graph-output slots at `to`; whether an output moved.
  bool moveUses(ValueId from, ValueId to, int32_t after);
  Status refreshTypes();

  Graph& graph_;
  size_t originalOpCount_;
  ValueId originalValueCount_;
  std::vector<std::vector<int32_t>> users_;  // by ValueId
  std::vector<int32_t> outputUses_;          // by ValueId
  std::vector<int32_t> anchors_;             // by created op (index - originalOpCount_)
  std::vector<bool> marked_;                 // by original op
  std::vector<std::pair<ValueId, ValueId>> outputRenames_;  // bypassed output, its replacement
  bool changed_ = false;
  bool typesNeedRefresh_ = false;
};

// ---- Types.

// Dims that may be equal: equal, or either unknown (`?`, which never
// compares equal, even to itself).
bool compatibleDims(const Dim& a, const Dim& b);
// Same dtype and rank, every dim compatible.
bool compatibleTypes(const TensorType& a, const TensorType& b);
// What inference says now, with the dims it cannot tell taken from the type
// the value had (a fact about the value checked at run time); `inferred`
// itself when dtype or rank differ.
TensorType mergeTypes(const TensorType& inferred, const TensorType& declared);

// ---- Constants.

// The value of a weight whose elements are all equal (a scalar, or a splat
// tensor), as double; nullopt for anything else (inputs, op results, weights
// without data, NaN).
std::optional<double> splatValue(const Graph& graph, ValueId value);
// splatValue equal to `expected` within a relative tolerance (exporters write
// 1/sqrt(2) and sqrt(2/pi) in float32).
bool isSplat(const Graph& graph, ValueId value, double expected, double tolerance = 1e-5);
// Nearly equal, relative to the larger magnitude.
bool nearlyEqual(double a, double b, double tolerance = 1e-5);

// The operand of binary `op` that is not `known`; kNoValue when `known` is
// not an operand. When both operands are `known`, returns `known`.
ValueId otherOperand(const Op& op, ValueId known);

// ---- Products in any association.

// A product tree flattened: coefficient * factors[0] * factors[1] * ...
// Walks mul, div by a constant, neg, and pow by a small positive integer,
// descending into an operand only when the pattern root is its sole user;
// splat constants fold into the coefficient.
struct Product {
  double coefficient = 1.0;
  std::vector<ValueId> factors;  // in walk order, repeated for powers
  std::vector<int32_t> ops;      // the ops walked, root first
};
Product flattenProduct(const Rewriter& rewriter, ValueId root);
// Whether `factors` holds exactly the values of `expected`, as multisets.
bool sameFactors(std::vector<ValueId> factors, std::vector<ValueId> expected);

// ---- Activations spelled out in primitive ops, or as one op.

struct ActivationMatch {
  Activation activation = Activation::None;
  ValueId input = kNoValue;
  std::vector<int32_t> ops;  // the ops of the pattern; ops.front() is the root
};
// The activation whose last op is `root`: relu(x); tanh(x); gelu(x); silu(x);
// x * 0.5 * (1 + erf(x / sqrt(2))) in any association; the tanh GELU
// 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))); x * sigmoid(x).
std::optional<ActivationMatch> matchActivation(const Rewriter& rewriter, int32_t root);
// The activation applied to `input`: tries the ops on the single-use paths
// that start at `input`'s users, and accepts a match only when every use of
// `input` and of the pattern's inner values lies inside the pattern.
std::optional<ActivationMatch> findActivationOf(const Rewriter& rewriter, ValueId input);

// ---- Weight data.

// A tensor of `shape` with every element `value`.
Tensor filledTensor(DType dtype, const std::vector<int64_t>& shape, double value);
// Runs an op of `kind` on constant tensors with its reference kernel
// (concatenating weights, scaling them).
Expected<Tensor> evaluateConstant(OpKind kind, const std::vector<const Tensor*>& inputs,
                                  Attributes attrs = {});

// ---- Reductions.

// The axes of reduce_mean `op` (x, axes) as a sorted list in [0, rank) when
// they are a known constant and keepdims holds; nullopt otherwise.
std::optional<std::vector<int64_t>> keptReductionAxes(const Graph& graph, const Op& op);

// A weight with data (a constant the pass can read).
bool isWeight(const Graph& graph, ValueId id);

// ---- Transposes.

// The permutation of transpose `op`, axes normalised to [0, rank); without
// a perm attribute, the axes reversed (ONNX's default).
std::vector<int64_t> transposePermutation(const Graph& graph, const Op& op);
bool isIdentityPermutation(const std::vector<int64_t>& perm);

// ---- Slices.

// A slice of one axis with constant bounds (dim-list attributes, the
// canonical form, or one-element weight operands, the exporters' form),
// resolved against that axis's static dim: negative bounds from the end,
// clamped into [0, dim]. nullopt for several axes, a bound not known, a dim
// not static, or a step below 1.
struct AxisSlice {
  int64_t axis = 0;  // in [0, rank)
  int64_t start = 0, end = 0, step = 1;
};
std::optional<AxisSlice> sliceOfOneAxis(const Graph& graph, const Op& slice);

}  // namespace kiln
