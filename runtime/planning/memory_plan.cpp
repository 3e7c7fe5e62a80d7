#include "runtime/planning/memory_plan.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <optional>

#include "ir/op_registry.h"
#include "runtime/planning/linear_scan_allocator.h"

namespace kiln::rt {
namespace {

size_t alignUp(size_t bytes) { return (bytes + kPlanAlignment - 1) / kPlanAlignment * kPlanAlignment; }

std::string registerName(const Value& value) {
  return cat(value.kind == ValueKind::Weight ? "@" : "%", value.name);
}

// A register's bytes with its symbols at the bounds.
Expected<size_t> boundedBytes(const Value& value, const SymbolBindings& bounds) {
  const auto describe = [&] { return cat("memory plan: register ", registerName(value), " : ", value.type.str()); };
  size_t bytes = dtypeSize(value.type.dtype);
  for (const Dim& dim : value.type.shape) {
    if (dim.isUnknown())
      return Status::error(describe(), " has a dim unknown at compile time (?), so its size cannot be planned");
    const std::optional<int64_t> size = dim.substitute(bounds).constant();
    if (!size) {
      std::string unbound;
      for (const std::string& symbol : dim.symbols())
        if (!bounds.count(symbol)) unbound += cat(unbound.empty() ? "" : ", ", symbol);
      return Status::error(describe(), ": symbol ", unbound,
                           " has no bound (give one with --max-shape SYMBOL=N)");
    }
    if (*size < 0)
      return Status::error(describe(), ": dim ", dim.str(), " is ", *size, " at the bounds");
    const auto count = static_cast<size_t>(*size);
    if (count != 0 && bytes > std::numeric_limits<size_t>::max() / 2 / count)
      return Status::error(describe(), " is too large at the bounds");
    bytes *= count;
  }
  return bytes;
}

bool isBatchLike(const std::string& symbol) {
  std::string lower = symbol;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("batch") != std::string::npos;
}

// May `result` take over the slot of operand `k`'s register group `group`,
// whose last read is this op? The kernel writes each result element after
// reading the same element of that operand, so the two must have the same
// shape and element size, and no other operand may read the group's bytes.
bool canTakeOver(const Graph& graph, const Op& op, size_t k, ValueId result,
                 const std::vector<ValueId>& root) {
  const TensorType& operand = graph.value(op.operands[k]).type;
  const TensorType& written = graph.value(result).type;
  if (operand.shape != written.shape || dtypeSize(operand.dtype) != dtypeSize(written.dtype)) return false;
  const ValueId group = root[static_cast<size_t>(op.operands[k])];
  for (size_t j = 0; j < op.operands.size(); ++j)
    if (j != k && op.operands[j] != kNoValue && root[static_cast<size_t>(op.operands[j])] == group)
      return false;
  return true;
}

// Runs the allocator once per memory space, each space an arena of its own
// (its intervals' reuse indices renumbered within it): the assignments in
// `intervals`' order, buffers numbered across the spaces, and the plan's
// totals summed over them.
std::vector<Assignment> allocatePerMemory(const std::vector<LiveInterval>& intervals,
                                          const std::vector<std::string>& memoryOf, MemoryPlan& plan) {
  std::map<std::string, std::vector<size_t>> members;  // space -> interval indices, in order
  for (size_t i = 0; i < intervals.size(); ++i) members[memoryOf[i]].push_back(i);
  std::vector<Assignment> assignments(intervals.size());
  for (const auto& [memory, indices] : members) {
    std::vector<int32_t> local(intervals.size(), -1);
    std::vector<LiveInterval> own;
    for (size_t i : indices) {
      local[i] = static_cast<int32_t>(own.size());
      own.push_back(intervals[i]);
      if (own.back().reuse >= 0) own.back().reuse = local[static_cast<size_t>(own.back().reuse)];
    }
    size_t peak = 0;
    const std::vector<Assignment> placed = LinearScanAllocator(kPlanAlignment).allocate(own, &peak);
    int32_t buffers = 0;
    for (size_t j = 0; j < indices.size(); ++j) {
      assignments[indices[j]] = placed[j];
      if (placed[j].buffer >= 0) assignments[indices[j]].buffer += plan.buffers;
      buffers = std::max(buffers, placed[j].buffer + 1);
    }
    plan.peakBytes += peak;
    plan.lowerBoundBytes += liveBytesLowerBound(own);
    plan.buffers += buffers;
  }
  return assignments;
}

}  // namespace

std::string memorySpaceOf(std::string_view device) {
  return device == kHostDevice ? std::string(kHostMemory) : std::string(device);
}

bool isWeightUpload(const Graph& graph, const Op& op) {
  return op.is(OpKind::Transfer) && !op.operands.empty() && op.operands[0] != kNoValue &&
         graph.value(op.operands[0]).kind == ValueKind::Weight;
}

Expected<MemoryPlan> planMemory(const Graph& graph, const SymbolBindings& bounds) {
  const std::vector<Value>& values = graph.values();
  const std::vector<Op>& ops = graph.ops();
  const auto afterLastOp = static_cast<int64_t>(ops.size());
  const size_t count = values.size();

  MemoryPlan plan;
  plan.bounds = bounds;
  plan.registers.resize(count);

  std::vector<int64_t> lastRead(count, -1);
  for (size_t i = 0; i < ops.size(); ++i)
    for (ValueId operand : ops[i].operands)
      if (operand != kNoValue) lastRead[static_cast<size_t>(operand)] = static_cast<int64_t>(i);
  for (ValueId output : graph.outputs()) lastRead[static_cast<size_t>(output)] = afterLastOp;

  // Sizes; op results must have one, inputs and weights have one when known.
  std::vector<std::optional<size_t>> rawBytes(count);
  for (size_t v = 0; v < count; ++v) {
    const Value& value = values[v];
    RegisterPlan& reg = plan.registers[v];
    reg.value = static_cast<ValueId>(v);
    reg.kind = value.kind == ValueKind::Input    ? RegisterPlan::Input
               : value.kind == ValueKind::Weight ? RegisterPlan::Weight
                                                 : RegisterPlan::Arena;
    reg.device = graph.deviceOf(reg.value);
    reg.memory = memorySpaceOf(reg.device);
    if (value.kind == ValueKind::OpResult && isWeightUpload(graph, ops[static_cast<size_t>(value.producer)]))
      reg.kind = RegisterPlan::Weight;
    reg.liveStart = reg.kind == RegisterPlan::Arena ? value.producer : 0;
    reg.liveEnd = std::max(reg.liveStart, lastRead[v]);
    Expected<size_t> bytes = boundedBytes(value, bounds);
    if (!bytes && reg.kind == RegisterPlan::Arena) return bytes.status();
    if (bytes) {
      rawBytes[v] = *bytes;
      reg.bytes = alignUp(*bytes);
    }
  }

  // Views share their operand's register group (`root`), whose slot stays
  // live until the last read of any of them.
  std::vector<ValueId> root(count);
  for (size_t v = 0; v < count; ++v) root[v] = static_cast<ValueId>(v);
  for (const Op& op : ops) {
    if (!op.def->resultIsView || op.results.size() != 1 || op.operands.empty() || op.operands[0] == kNoValue)
      continue;
    const auto source = static_cast<size_t>(op.operands[0]);
    const auto result = static_cast<size_t>(op.results[0]);
    if (!rawBytes[source] || rawBytes[source] != rawBytes[result]) continue;  // not a pure reinterpretation
    root[result] = root[source];
    plan.registers[result].kind = RegisterPlan::View;
    plan.registers[result].viewOf = root[source];
  }
  std::vector<int64_t> groupEnd(count, -1);
  for (size_t v = 0; v < count; ++v) {
    const auto group = static_cast<size_t>(root[v]);
    groupEnd[group] = std::max(groupEnd[group], plan.registers[v].liveEnd);
  }

  // One interval per arena slot, in op order; an op's single result takes
  // over an operand's slot at that operand's last read when the op allows it.
  std::vector<LiveInterval> intervals;
  std::vector<std::string> intervalMemory;
  std::vector<int32_t> intervalOf(count, -1);
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    for (ValueId result : op.results) {
      const auto r = static_cast<size_t>(result);
      if (plan.registers[r].kind != RegisterPlan::Arena) continue;
      plan.registers[r].liveEnd = groupEnd[r];
      intervalOf[r] = static_cast<int32_t>(intervals.size());
      intervals.push_back({static_cast<int64_t>(i), groupEnd[r], plan.registers[r].bytes});
      intervalMemory.push_back(plan.registers[r].memory);
    }
    if (op.results.size() != 1 || intervalOf[static_cast<size_t>(op.results[0])] < 0) continue;
    for (int k : op.def->inplaceOperands) {
      const auto position = static_cast<size_t>(k);
      if (position >= op.operands.size() || op.operands[position] == kNoValue) continue;
      const auto group = static_cast<size_t>(root[static_cast<size_t>(op.operands[position])]);
      if (plan.registers[group].kind != RegisterPlan::Arena || groupEnd[group] != static_cast<int64_t>(i)) continue;
      if (!canTakeOver(graph, op, position, op.results[0], root)) continue;
      intervals[static_cast<size_t>(intervalOf[static_cast<size_t>(op.results[0])])].reuse = intervalOf[group];
      break;
    }
  }

  const std::vector<Assignment> assignments = allocatePerMemory(intervals, intervalMemory, plan);
  for (size_t v = 0; v < count; ++v) {
    RegisterPlan& reg = plan.registers[v];
    if (reg.kind == RegisterPlan::Arena || reg.kind == RegisterPlan::View) plan.naiveBytes += reg.bytes;
    const int32_t interval = intervalOf[static_cast<size_t>(root[v])];
    if (interval < 0) continue;  // not in the arena
    const Assignment& slot = assignments[static_cast<size_t>(interval)];
    reg.offset = slot.offset;
    reg.buffer = slot.buffer;
  }
  return plan;
}

SymbolBindings planningBounds(const Graph& graph, const SymbolBindings& given) {
  SymbolBindings bounds = given;
  for (const Value& value : graph.values())
    for (const Dim& dim : value.type.shape)
      for (const std::string& symbol : dim.symbols())
        if (!bounds.count(symbol)) bounds[symbol] = isBatchLike(symbol) ? 1 : kDefaultSymbolBound;
  return bounds;
}

}  // namespace kiln::rt
