#include "backends/opencl/ahead_code.h"

#include <cstring>
#include <optional>
#include <set>

#include "backends/opencl/op_kernels.h"
#include "backends/opencl/opencl_device.h"
#include "runtime/byte_stream.h"

namespace kiln::opencl {
namespace {

// A constant operand's value: a weight, or its upload to the device.
const Tensor* constantValue(const Graph& graph, ValueId id) {
  const Value& value = graph.value(id);
  if (value.kind == ValueKind::Weight) return value.data ? &*value.data : nullptr;
  if (value.kind != ValueKind::OpResult) return nullptr;
  const Op& producer = graph.ops()[static_cast<size_t>(value.producer)];
  if (!producer.is(OpKind::Transfer) || graph.value(producer.operands[0]).kind != ValueKind::Weight) return nullptr;
  return constantValue(graph, producer.operands[0]);
}

// A value's type at the bounds; nullopt when a dim has no value there.
std::optional<ShapedType> shapedAt(const Graph& graph, ValueId id, const SymbolBindings& bounds) {
  const TensorType& type = graph.value(id).type;
  std::optional<std::vector<int64_t>> dims = type.substitute(bounds).staticDims();
  if (!dims) return std::nullopt;
  return ShapedType{type.dtype, std::move(*dims)};
}

// What the op's kernel builds, or nothing when a type has no size at the bounds.
std::vector<std::string> opPrograms(const Graph& graph, const Op& op, const SymbolBindings& bounds,
                                    OpenClSources predict) {
  const std::optional<Attributes> resolved = resolveDimAttributes(op.attrs, bounds);
  OpTypes types{*op.def, resolved ? *resolved : op.attrs, {}, {}, {}};
  for (ValueId id : op.operands) {
    types.values.push_back(id == kNoValue ? nullptr : constantValue(graph, id));
    types.inputs.push_back(id == kNoValue ? std::nullopt : shapedAt(graph, id, bounds));
    if (id != kNoValue && !types.inputs.back()) return {};
  }
  for (ValueId id : op.results) {
    types.outputs.push_back(shapedAt(graph, id, bounds));
    if (!types.outputs.back()) return {};
  }
  std::vector<std::string> sources;
  predict(types, sources);
  return sources;
}

// Beyond this many symbols, only the all-1 and all-2 shapes are added.
constexpr size_t kMaxEnumeratedSymbols = 4;

}  // namespace

std::vector<uint8_t> encodeAheadCode(const AheadCode& code) {
  using rt::append, rt::appendBytes;
  std::vector<uint8_t> out;
  uint64_t binaryBytes = 0;
  for (const AheadProgram& program : code.programs) binaryBytes += program.binary.size();
  append<uint32_t>(out, static_cast<uint32_t>(code.programs.size()));
  append<uint64_t>(out, binaryBytes);
  append<uint32_t>(out, kAheadCodeVersion);
  appendBytes<uint32_t>(out, code.key.data(), code.key.size());
  for (const AheadProgram& program : code.programs) {
    appendBytes<uint32_t>(out, program.source.data(), program.source.size());
    appendBytes<uint32_t>(out, program.options.data(), program.options.size());
    appendBytes<uint64_t>(out, program.binary.data(), program.binary.size());
  }
  return out;
}

Expected<AheadCode> decodeAheadCode(std::span<const uint8_t> blob) {
  auto bad = [](const auto&... parts) { return Status::error("opencl: bad device code: ", parts...); };
  rt::ByteReader in(blob);
  uint32_t count = 0, version = 0;
  uint64_t binaryBytes = 0;
  if (!in.read(count) || !in.read(binaryBytes) || !in.read(version))
    return bad(blob.size(), " bytes, shorter than its 16-byte header");
  if (version != kAheadCodeVersion)
    return bad("version ", version, " (this runtime reads version ", kAheadCodeVersion, ")");
  AheadCode code;
  if (!in.readBytes<uint32_t>(code.key)) return bad("the device key runs past the end");
  uint64_t binaries = 0;
  for (uint32_t i = 0; i < count; ++i) {
    // Each program takes at least its three lengths: a huge count fails here, not in an allocation.
    if (in.left() < 16) return bad("program ", i, " of ", count, " runs past the end");
    AheadProgram& program = code.programs.emplace_back();
    if (!in.readBytes<uint32_t>(program.source) || !in.readBytes<uint32_t>(program.options) ||
        !in.readBytes<uint64_t>(program.binary))
      return bad("program ", i, " of ", count, " runs past the end");
    binaries += program.binary.size();
  }
  if (in.left() != 0) return bad(in.left(), " bytes after the last of its ", count, " programs");
  if (binaries != binaryBytes) return bad("its header counts ", binaryBytes, " binary bytes, its programs ", binaries);
  return code;
}

std::vector<SymbolBindings> predictionShapes(const SymbolBindings& bounds) {
  std::vector<SymbolBindings> shapes = {bounds};
  if (bounds.size() > kMaxEnumeratedSymbols) {
    for (int64_t value : {1, 2}) {
      SymbolBindings all = bounds;
      for (auto& [symbol, bound] : all) bound = value;
      shapes.push_back(std::move(all));
    }
    return shapes;
  }
  for (size_t mask = 0; mask < (size_t{1} << bounds.size()); ++mask) {
    SymbolBindings shape = bounds;
    size_t bit = 0;
    for (auto& [symbol, bound] : shape) bound = (mask >> bit++) & 1 ? 2 : 1;
    shapes.push_back(std::move(shape));
  }
  return shapes;
}

std::vector<std::string> predictedPrograms(const Graph& graph, const SymbolBindings& bounds) {
  std::vector<std::string> programs;
  std::set<std::string, std::less<>> seen;
  for (const SymbolBindings& shape : predictionShapes(bounds))
    for (const Op& op : graph.ops()) {
      if (op.placement() != OpenClDevice::kName) continue;
      const OpenClSources predict = openclKernels().sources(op.kind());
      if (!predict) continue;
      for (std::string& source : opPrograms(graph, op, shape, predict))
        if (seen.insert(source).second) programs.push_back(std::move(source));
    }
  return programs;
}

}  // namespace kiln::opencl
