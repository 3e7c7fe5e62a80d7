#include "passes/mask_semantics.h"

#include <algorithm>
#include <set>

#include "backends/reference/reference.h"
#include "ir/op_registry.h"

namespace kiln {

// ---- Evaluating a value's construction.

ConeEvaluator::ConeEvaluator(const Graph& graph, ValueId id, const std::vector<ValueId>& probes)
    : graph_(graph), root_(id) {
  // A value is needed for its data (dataNeeded) or, as the operand of a
  // shape/size op, only for its type.
  std::vector<bool> dataNeeded(graph.values().size(), false), shapeNeeded(graph.values().size(), false);
  std::vector<bool> inCone(graph.ops().size(), false);
  std::vector<ValueId> stack = {id};
  dataNeeded[static_cast<size_t>(id)] = true;
  while (!stack.empty() && valid_) {
    const ValueId v = stack.back();
    stack.pop_back();
    const Value& value = graph.value(v);
    if (value.kind == ValueKind::Weight) {
      valid_ = valid_ && value.data.has_value();
      continue;
    }
    if (value.kind == ValueKind::Input || value.producer < 0) {
      valid_ = std::find(probes.begin(), probes.end(), v) != probes.end();
      if (valid_) probesRead_.push_back(v);
      continue;
    }
    const auto index = static_cast<size_t>(value.producer);
    if (inCone[index]) continue;
    inCone[index] = true;
    ops_.push_back(value.producer);
    valid_ = ops_.size() <= kMaxOps;
    const Op& op = graph.ops()[index];
    const bool readsShapeOnly = op.is(OpKind::Shape) || op.is(OpKind::Size);
    for (ValueId operand : op.operands) {
      if (operand == kNoValue) continue;
      const auto o = static_cast<size_t>(operand);
      if (readsShapeOnly) {
        shapeNeeded[o] = true;
      } else if (!dataNeeded[o]) {
        dataNeeded[o] = true;
        stack.push_back(operand);
      }
    }
  }
  if (!valid_) return;
  std::sort(ops_.begin(), ops_.end());
  for (size_t v = 0; v < shapeNeeded.size(); ++v)
    if (shapeNeeded[v] && !dataNeeded[v]) shapeLeaves_.push_back(static_cast<ValueId>(v));
}

std::vector<std::string> ConeEvaluator::symbols() const {
  std::set<std::string> names;
  auto addShape = [&](const Shape& shape) {
    for (const Dim& dim : shape)
      for (std::string& symbol : dim.symbols()) names.insert(std::move(symbol));
  };
  addShape(graph_.value(root_).type.shape);
  for (ValueId leaf : shapeLeaves_) addShape(graph_.value(leaf).type.shape);
  for (ValueId probe : probesRead_) addShape(graph_.value(probe).type.shape);
  for (int32_t index : ops_) {
    const Op& op = graph_.ops()[static_cast<size_t>(index)];
    for (ValueId v : op.operands)
      if (v != kNoValue) addShape(graph_.value(v).type.shape);
    for (ValueId v : op.results) addShape(graph_.value(v).type.shape);
    for (const auto& [name, attr] : op.attrs.all())
      if (const auto* dims = std::get_if<std::vector<Dim>>(&attr)) addShape(*dims);
  }
  return {names.begin(), names.end()};
}

std::optional<Tensor> ConeEvaluator::evaluate(const SymbolBindings& bindings,
                                              const std::map<ValueId, Tensor>& probeValues) const {
  if (!valid_) return std::nullopt;
  std::vector<std::optional<Tensor>> values(graph_.values().size());
  for (ValueId leaf : shapeLeaves_) {
    std::optional<std::vector<int64_t>> dims = graph_.value(leaf).type.substitute(bindings).staticDims();
    if (!dims) return std::nullopt;
    values[static_cast<size_t>(leaf)] = Tensor::allocate(graph_.value(leaf).type.dtype, *dims);
  }
  for (ValueId probe : probesRead_) {
    auto given = probeValues.find(probe);
    if (given == probeValues.end()) return std::nullopt;
    values[static_cast<size_t>(probe)] = given->second;
  }
  if (graph_.value(root_).kind == ValueKind::Input) return values[static_cast<size_t>(root_)];
  for (int32_t index : ops_) {
    const Op& op = graph_.ops()[static_cast<size_t>(index)];
    std::vector<const Tensor*> inputs;
    for (ValueId operand : op.operands) {
      if (operand == kNoValue) {
        inputs.push_back(nullptr);
        continue;
      }
      const Value& value = graph_.value(operand);
      const std::optional<Tensor>& known = value.kind == ValueKind::Weight ? value.data
                                                                            : values[static_cast<size_t>(operand)];
      if (!known) return std::nullopt;
      inputs.push_back(&*known);
    }
    Expected<std::vector<Tensor>> results = evaluateOp(*op.def, op.attrs, inputs,
                                                       static_cast<int>(op.results.size()), &bindings);
    if (!results) return std::nullopt;
    for (size_t r = 0; r < op.results.size(); ++r)
      values[static_cast<size_t>(op.results[r])] = std::move((*results)[r]);
  }
  const Value& root = graph_.value(root_);
  return root.kind == ValueKind::Weight ? root.data : values[static_cast<size_t>(root_)];
}

namespace {

// Symbol values the mask checks try: small and large, in two orders, so
// that sequence lengths differ from each other and from the batch size.
std::vector<SymbolBindings> sampleBindings(const std::vector<std::string>& symbols) {
  std::vector<SymbolBindings> sets(3);
  const auto n = static_cast<int64_t>(symbols.size());
  for (int64_t k = 0; k < n; ++k) {
    const std::string& name = symbols[static_cast<size_t>(k)];
    sets[0][name] = 5 + k;
    sets[1][name] = 2 + (n - 1 - k);
    sets[2][name] = 11 + k;
  }
  return sets;
}

std::vector<std::string> mergedSymbols(const ConeEvaluator& evaluator, const Shape& scores) {
  std::set<std::string> names;
  for (std::string& symbol : evaluator.symbols()) names.insert(std::move(symbol));
  for (const Dim& dim : scores)
    for (std::string& symbol : dim.symbols()) names.insert(std::move(symbol));
  return {names.begin(), names.end()};
}

std::optional<std::vector<int64_t>> boundDims(const Shape& shape, const SymbolBindings& bindings) {
  return TensorType{DType::F32, shape}.substitute(bindings).staticDims();
}

// The symbol a dim is, when it is one alone.
std::optional<std::string> loneSymbol(const Dim& dim) {
  return dim == Dim::symbol(dim.str()) ? std::optional<std::string>(dim.str()) : std::nullopt;
}

// Whether an op reads `id` as the indices of a gather: token ids, which
// hold any integer, not a 0 / 1 mask.
bool readAsIndices(const Graph& graph, ValueId id) {
  for (const Op& op : graph.ops())
    if (op.isOneOf({OpKind::Gather, OpKind::GatherElements}) && op.operands.size() > 1 && op.operands[1] == id)
      return true;
  return false;
}

// Graph inputs that may be a key-padding mask of scores [B, H, S, T]:
// [B, T], or [B, N] with N a symbol of its own (an exported attention mask
// of the past and new tokens, which the export names apart from T). The
// probes give them only 0 and 1, so token ids (a mask built from
// input_ids != pad would read as one) are left out.
std::vector<ValueId> keyPaddingCandidates(const Graph& graph, const Shape& scores) {
  std::vector<ValueId> found;
  for (ValueId id : graph.inputs()) {
    const TensorType& type = graph.value(id).type;
    if (type.rank() == 2 && type.shape[0] == scores[0] && (type.shape[1] == scores[3] || loneSymbol(type.shape[1])) &&
        !readAsIndices(graph, id))
      found.push_back(id);
  }
  return found;
}

// Padding patterns of a [B, T] mask (1 = a real token): none; the end of
// each row padded, more in later rows; holes anywhere.
std::vector<std::vector<uint8_t>> paddingPatterns(int64_t batch, int64_t keys) {
  std::vector<std::vector<uint8_t>> patterns(3, std::vector<uint8_t>(static_cast<size_t>(batch * keys), 1));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < keys; ++j) {
      patterns[1][static_cast<size_t>(b * keys + j)] = j < std::max<int64_t>(1, keys - 1 - b);
      patterns[2][static_cast<size_t>(b * keys + j)] = (j * 7 + b * 3) % 4 != 0;
    }
  return patterns;
}

Tensor probeTensor(DType dtype, int64_t batch, int64_t keys, const std::vector<uint8_t>& pattern) {
  Tensor t = Tensor::allocate(dtype, {batch, keys});
  visitDType(dtype, [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < pattern.size(); ++i) t.data<T>()[i] = storeFromDouble<T>(pattern[i]);
  });
  return t;
}

// The mask broadcast to scores [B, H, S, T] as attend (1) / masked (0);
// nothing when it does not broadcast, or an additive value is neither 0 nor
// masking (a bias, not a mask).
std::optional<std::vector<uint8_t>> attendMatrix(const Tensor& mask, MaskForm form, const std::vector<int64_t>& scores) {
  if (mask.rank() > 4 || (form == MaskForm::Additive) != isFloat(mask.dtype())) return std::nullopt;
  std::vector<int64_t> dims(4, 1);
  for (size_t i = 0; i < mask.rank(); ++i) dims[4 - mask.rank() + i] = mask.shape()[i];
  std::vector<int64_t> strides = rowMajorStrides(dims);
  for (size_t d = 0; d < 4; ++d) {
    if (dims[d] != 1 && dims[d] != scores[d]) return std::nullopt;
    if (dims[d] == 1) strides[d] = 0;
  }
  std::vector<uint8_t> attend(static_cast<size_t>(scores[0] * scores[1] * scores[2] * scores[3]));
  size_t at = 0;
  for (int64_t b = 0; b < scores[0]; ++b)
    for (int64_t h = 0; h < scores[1]; ++h)
      for (int64_t i = 0; i < scores[2]; ++i)
        for (int64_t j = 0; j < scores[3]; ++j, ++at) {
          const double v = mask.elementAsDouble(b * strides[0] + h * strides[1] + i * strides[2] + j * strides[3]);
          if (form == MaskForm::Additive && v != 0.0 && !(v <= kMaskedScoreLimit)) return std::nullopt;
          attend[at] = form == MaskForm::Additive ? v == 0.0 : (v != 0.0) == (form == MaskForm::KeepWhereTrue);
        }
  return attend;
}

// The causal / window structure of an attend matrix without padding: every
// row the same over batch and heads, a run of keys ending at the query's
// position (causal) or at the last key, starting at 0 or `window` keys back.
std::optional<MaskSemantics> structureOf(const std::vector<uint8_t>& attend, const std::vector<int64_t>& scores) {
  const int64_t S = scores[2], T = scores[3], rows = scores[0] * scores[1];
  std::vector<std::pair<int64_t, int64_t>> runs;  // per query: [first, last] attended key
  for (int64_t i = 0; i < S; ++i) {
    const uint8_t* row = attend.data() + i * T;
    for (int64_t r = 1; r < rows; ++r)
      if (!std::equal(row, row + T, attend.data() + (r * S + i) * T)) return std::nullopt;
    const auto first = std::find(row, row + T, 1) - row, end = T - (std::find(std::make_reverse_iterator(row + T),
                                                                               std::make_reverse_iterator(row), 1) -
                                                                     std::make_reverse_iterator(row + T));
    if (first >= end || std::find(row + first, row + end, 0) != row + end) return std::nullopt;
    runs.emplace_back(first, end - 1);
  }
  MaskSemantics m;
  for (int64_t i = 0; i < S; ++i) m.causal = m.causal || runs[static_cast<size_t>(i)].second != T - 1;
  for (int64_t i = 0; i < S; ++i) {
    const auto [first, last] = runs[static_cast<size_t>(i)];
    if (m.causal && last != i + T - S) return std::nullopt;
    if (first == 0) continue;
    if (!m.causal || (m.window && m.window != last - first + 1)) return std::nullopt;
    m.window = last - first + 1;
  }
  for (const auto& [first, last] : runs)
    if (m.window && first == 0 && last + 1 > m.window) return std::nullopt;
  return m;
}

// Whether `attend` is `structure` (per query and key) with the keys the
// pattern pads masked too; rows left with no key are not compared.
bool paddedAs(const std::vector<uint8_t>& attend, const std::vector<uint8_t>& structure,
              const std::vector<uint8_t>& pattern, const std::vector<int64_t>& scores) {
  const int64_t B = scores[0], H = scores[1], S = scores[2], T = scores[3];
  std::vector<uint8_t> want(static_cast<size_t>(T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < S; ++i) {
        for (int64_t j = 0; j < T; ++j)
          want[static_cast<size_t>(j)] = structure[static_cast<size_t>(i * T + j)] && pattern[static_cast<size_t>(b * T + j)];
        if (std::find(want.begin(), want.end(), 1) == want.end()) continue;
        if (!std::equal(want.begin(), want.end(), attend.begin() + ((b * H + h) * S + i) * T)) return false;
      }
  return true;
}

// The semantics for one binding of the symbols, the key-padding input (if
// any) read as `inverted` (zeros attend) or not (nonzeros attend).
std::optional<MaskSemantics> semanticsAt(const Graph& graph, const ConeEvaluator& evaluator, MaskForm form,
                                         const SymbolBindings& bindings, const std::vector<int64_t>& scores,
                                         bool inverted) {
  const ValueId probe = evaluator.probesRead().empty() ? kNoValue : evaluator.probesRead()[0];
  // Each pattern says which keys are real tokens; the probe holds it, or its complement when inverted.
  auto attendFor = [&](const std::vector<uint8_t>& pattern) -> std::optional<std::vector<uint8_t>> {
    std::map<ValueId, Tensor> probes;
    if (probe != kNoValue) {
      std::vector<uint8_t> held(pattern);
      if (inverted) for (uint8_t& x : held) x = !x;
      probes.emplace(probe, probeTensor(graph.value(probe).type.dtype, scores[0], scores[3], held));
    }
    std::optional<Tensor> value = evaluator.evaluate(bindings, probes);
    return value ? attendMatrix(*value, form, scores) : std::nullopt;
  };
  const std::vector<std::vector<uint8_t>> patterns = paddingPatterns(scores[0], scores[3]);
  std::optional<std::vector<uint8_t>> unpadded = attendFor(patterns[0]);
  if (!unpadded) return std::nullopt;
  std::optional<MaskSemantics> m = structureOf(*unpadded, scores);
  if (!m || probe == kNoValue) return m;
  const std::vector<uint8_t> structure(unpadded->begin(), unpadded->begin() + scores[2] * scores[3]);
  for (size_t p = 1; p < patterns.size(); ++p) {
    std::optional<std::vector<uint8_t>> attend = attendFor(patterns[p]);
    if (!attend || !paddedAs(*attend, structure, patterns[p], scores)) return std::nullopt;
  }
  m->keyPadding = probe;
  m->keyPaddingInverted = inverted;
  return m;
}

// The semantics for every sample binding, the same for each but for a
// window, which short lengths do not reach.
std::optional<MaskSemantics> semanticsFor(const Graph& graph, const ConeEvaluator& evaluator, MaskForm form,
                                          const Shape& scores, bool inverted) {
  // A key-padding input's own length symbol is the keys' length.
  std::optional<std::string> keyLength;
  if (!evaluator.probesRead().empty() && graph.value(evaluator.probesRead()[0]).type.shape[1] != scores[3])
    keyLength = loneSymbol(graph.value(evaluator.probesRead()[0]).type.shape[1]);
  std::optional<MaskSemantics> result;
  for (SymbolBindings bindings : sampleBindings(mergedSymbols(evaluator, scores))) {
    if (keyLength) bindings.erase(*keyLength);
    std::optional<std::vector<int64_t>> dims = boundDims(scores, bindings);
    if (!dims) return std::nullopt;
    if (keyLength) bindings[*keyLength] = (*dims)[3];
    std::optional<MaskSemantics> m = semanticsAt(graph, evaluator, form, bindings, *dims, inverted);
    if (!m) return std::nullopt;
    if (!result) result = m;
    if (m->window && result->window && m->window != result->window) return std::nullopt;
    result->window = m->window = std::max(result->window, m->window);
    if (!(*m == *result)) return std::nullopt;
  }
  return result;
}

}  // namespace

std::optional<MaskSemantics> maskSemantics(const Graph& graph, ValueId mask, MaskForm form, const Shape& scores) {
  if (scores.size() != 4) return std::nullopt;
  ConeEvaluator evaluator(graph, mask, keyPaddingCandidates(graph, scores));
  if (!evaluator.valid() || evaluator.probesRead().size() > 1) return std::nullopt;
  std::optional<MaskSemantics> m = semanticsFor(graph, evaluator, form, scores, /*inverted=*/false);
  if (!m && !evaluator.probesRead().empty()) m = semanticsFor(graph, evaluator, form, scores, /*inverted=*/true);
  return m;
}

bool isMaskingFill(const Graph& graph, ValueId fill, const Shape& scores, double factor) {
  ConeEvaluator evaluator(graph, fill);
  if (!evaluator.valid()) return false;
  for (const SymbolBindings& bindings : sampleBindings(mergedSymbols(evaluator, scores))) {
    std::optional<Tensor> value = evaluator.evaluate(bindings);
    if (!value || !isFloat(value->dtype())) return false;
    for (int64_t i = 0; i < value->numElements(); ++i)
      if (!(value->elementAsDouble(i) * factor <= kMaskedScoreLimit)) return false;
  }
  return true;
}

}  // namespace kiln
