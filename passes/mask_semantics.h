// What an attention mask means, found by evaluating how the graph builds it
// rather than by matching how it is spelled. Exporters build the same causal,
// sliding-window and key-padding masks in many ways (trilu, range compares,
// slices of a constant buffer, masked_fill of an expanded [B, T] mask, sums
// and minimums of those); evaluating the mask's construction for sample
// shapes and sample key-padding masks and reading off which keys each query
// attends recognises them all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace kiln {

// Evaluates the cone of ops that computes a value from weights, the shapes of
// other values (shape, size), and the data of chosen graph inputs (probes),
// for chosen values of the shape symbols and of the probes.
class ConeEvaluator {
 public:
  // At most this many ops are evaluated; a larger cone is not a mask.
  static constexpr size_t kMaxOps = 256;

  ConeEvaluator(const Graph& graph, ValueId id, const std::vector<ValueId>& probes = {});
  // False when the value reads the data of a graph input that is not a probe
  // (or of a weight without data), or its cone is too large.
  bool valid() const { return valid_; }
  // The probes whose data the value reads.
  const std::vector<ValueId>& probesRead() const { return probesRead_; }
  // The symbols in the types and dim attributes of the cone, sorted.
  std::vector<std::string> symbols() const;
  // The value with the symbols bound and each probe read given its value;
  // nothing when a dim stays unknown or a kernel refuses the bound shapes.
  std::optional<Tensor> evaluate(const SymbolBindings& bindings,
                                 const std::map<ValueId, Tensor>& probeValues = {}) const;

 private:
  const Graph& graph_;
  ValueId root_;
  bool valid_ = true;
  std::vector<int32_t> ops_;          // the cone, in graph order
  std::vector<ValueId> shapeLeaves_;  // values read only for their shape
  std::vector<ValueId> probesRead_;
};

// How a mask value selects the keys a query attends.
enum class MaskForm {
  Additive,        // added to the scores: 0 = attend, very negative = masked
  KeepWhereTrue,   // where(mask, scores, fill)
  MaskWhereTrue,   // where(mask, fill, scores)
};

// Masked scores at or below this are an exact zero after softmax in f32.
inline constexpr double kMaskedScoreLimit = -1e4;

// Which keys a mask lets query i of scores [B, H, S, T] attend. Positions
// align at the end, as with a KV cache: query i sits at position i + T - S.
struct MaskSemantics {
  bool causal = false;     // keys up to the query's position
  int64_t window = 0;      // > 0 (causal only): and only the last `window` of those
  // A graph input [B, T] of which only the keys where it is nonzero (zero,
  // when inverted) are attended; kNoValue when the mask reads none.
  ValueId keyPadding = kNoValue;
  bool keyPaddingInverted = false;

  friend bool operator==(const MaskSemantics&, const MaskSemantics&) = default;
};

// What `mask` means for scores of shape `scores`, checked for several
// bindings of the shape symbols and, when it reads a key-padding input, for
// several padding patterns; nothing when it is no mask of that kind (an
// additive bias with finite nonzero values, a mask mixing other inputs, a
// pattern that is not causal, windowed or all-attending). Rows every key of
// which a padding pattern masks are not compared: exporters fill them
// differently, and no tokenizer's padding makes one.
std::optional<MaskSemantics> maskSemantics(const Graph& graph, ValueId mask, MaskForm form, const Shape& scores);

// True when `fill` times `factor` evaluates (for sample bindings) to values
// at or below kMaskedScoreLimit everywhere: a where() fill that masks.
bool isMaskingFill(const Graph& graph, ValueId fill, const Shape& scores, double factor = 1.0);

}  // namespace kiln
