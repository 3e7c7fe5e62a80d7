#include "passes/device_placement.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <tuple>
#include <utility>

#include "ir/op_registry.h"
#include "passes/min_cut.h"

namespace kiln {
namespace {

// Greedy's merge: a run of fewer consecutive ops than this on a device other
// than its neighbours' goes to the neighbours' device (Forge-UGC merges such
// fragments to save their transitions).
constexpr size_t kGreedyMinRun = 3;

// One placement problem: the graph's ops, the targets and what each op and
// each crossing costs. Devices are target indices; graph inputs, weights and
// outputs are on the host, `host_` (the host's target, or one past the
// targets when the host is none of them).
class PlacementProblem {
 public:
  PlacementProblem(const Graph& graph, const std::vector<DeviceProfile>& targets, const CostModel& model)
      : graph_(graph), targets_(targets), model_(model), host_(static_cast<int>(targets.size())) {
    for (size_t t = 0; t < targets.size(); ++t)
      if (targets[t].device == kHostDevice) host_ = static_cast<int>(t);
    readers_.resize(graph.values().size());
    for (size_t i = 0; i < graph.ops().size(); ++i)
      for (ValueId id : graph.ops()[i].operands)
        if (id != kNoValue) readers_[static_cast<size_t>(id)].push_back(static_cast<int>(i));
    for (ValueId id : graph.outputs()) outputs_.insert(id);
    evicted_.resize(graph.ops().size());
  }

  Status checkPlaceable() const;
  // The op to move off a device whose memory the placement overfills (the
  // one bringing the most weight bytes there), with that device; nullopt
  // when every device's uploaded weights and largest op's other operands
  // and results fit its memory.
  std::optional<std::pair<size_t, int>> overfull(const std::vector<int>& placement) const;
  void evict(size_t op, int device) { evicted_[op].insert(device); }
  std::vector<int> naive() const;
  std::vector<int> greedy() const;
  Expected<std::vector<int>> cheapest() const;
  PlacementFigures figures(const std::vector<int>& placement) const;
  const std::string& deviceName(int device) const {
    static const std::string host(kHostDevice);
    return device < static_cast<int>(targets_.size()) ? targets_[static_cast<size_t>(device)].device : host;
  }

 private:
  bool supports(size_t op, int device) const { return !refusal(op, device); }
  // Why `op` cannot go on `device`: its profile refuses it, or a memory
  // repair moved it off (evict).
  std::optional<std::string> refusal(size_t op, int device) const {
    if (device >= static_cast<int>(targets_.size())) return "no such target";
    const DeviceProfile& profile = targets_[static_cast<size_t>(device)];
    if (evicted_[op].count(device)) return cat("'", profile.name, "' has no memory left for it");
    if (device != host_ && makesShapeValues(graph_.ops()[op]))
      return "it computes a shape, which run-time inference reads in host memory";
    return profile.refusal(graph_, graph_.ops()[op]);
  }
  // Shape arithmetic (isShapeValue results only) stays where run-time
  // inference reads its values.
  bool makesShapeValues(const Op& op) const {
    return std::all_of(op.results.begin(), op.results.end(),
                       [&](ValueId id) { return isShapeValue(graph_.value(id).type); });
  }
  double opSeconds(size_t op, int device) const;
  double valueBytes(ValueId id) const;
  double transferSeconds(ValueId id, int from, int to) const;
  // The devices that read a value under `placement`: its ops' and, for a
  // graph output, the host.
  std::set<int> readingDevices(ValueId id, const std::vector<int>& placement) const;
  int homeOf(ValueId id, const std::vector<int>& placement) const {
    const Value& value = graph_.value(id);
    return value.kind == ValueKind::OpResult ? placement[static_cast<size_t>(value.producer)] : host_;
  }
  void addCrossingCosts(MinCut& cut, ValueId id, size_t home, const std::vector<size_t>& readers) const;

  const Graph& graph_;
  const std::vector<DeviceProfile>& targets_;
  const CostModel& model_;
  int host_;
  std::vector<std::vector<int>> readers_;  // per value: the ops that read it
  std::set<ValueId> outputs_;
  std::vector<std::set<int>> evicted_;     // per op: devices a memory repair moved it off
};

double PlacementProblem::opSeconds(size_t index, int device) const {
  if (!supports(index, device)) return MinCut::kInfinite;
  const DeviceProfile& profile = targets_[static_cast<size_t>(device)];
  const Op& op = graph_.ops()[index];
  const OpCost cost = opCost(graph_, op, model_);
  const bool matmulLike = op.isOneOf({OpKind::Matmul, OpKind::Gemm, OpKind::Attention});
  return profile.launchSeconds + cost.bytes / profile.bytesPerSecond +
         cost.flops / (matmulLike ? profile.matmulFlopsPerSecond : profile.vectorFlopsPerSecond);
}

double PlacementProblem::valueBytes(ValueId id) const {
  const TensorType& type = graph_.value(id).type;
  double bytes = static_cast<double>(dtypeSize(type.dtype));
  for (const Dim& dim : type.shape) bytes *= static_cast<double>(model_.dimValue(dim));
  return bytes;
}

// Across the host link of each side that is not the host (both, between two
// devices: through host memory).
double PlacementProblem::transferSeconds(ValueId id, int from, int to) const {
  double seconds = 0;
  for (int side : {from, to}) {
    if (side == host_) continue;
    const HostLink& link = targets_[static_cast<size_t>(side)].hostLink;
    seconds += link.latencySeconds + valueBytes(id) / link.bytesPerSecond;
  }
  return seconds;
}

std::set<int> PlacementProblem::readingDevices(ValueId id, const std::vector<int>& placement) const {
  std::set<int> devices;
  for (int reader : readers_[static_cast<size_t>(id)]) devices.insert(placement[static_cast<size_t>(reader)]);
  if (outputs_.count(id)) devices.insert(host_);
  return devices;
}

Status PlacementProblem::checkPlaceable() const {
  for (size_t i = 0; i < graph_.ops().size(); ++i) {
    bool any = false;
    std::string reasons;
    for (size_t t = 0; t < targets_.size() && !any; ++t) {
      const std::optional<std::string> why = refusal(i, static_cast<int>(t));
      any = !why;
      if (why) reasons += cat(reasons.empty() ? "" : "; ", *why);
    }
    const Op& op = graph_.ops()[i];
    if (!any)
      return Status::error("op '", op.def->name, "' defining %", graph_.value(op.results.at(0)).name,
                           op.location.empty() ? "" : cat(" (loc \"", op.location, "\")"),
                           " fits none of the targets: ", reasons);
  }
  return Status::ok();
}

std::optional<std::pair<size_t, int>> PlacementProblem::overfull(const std::vector<int>& placement) const {
  for (size_t t = 0; t < targets_.size(); ++t) {
    if (targets_[t].memoryBytes == 0) continue;
    double weights = 0, largestOp = 0, mostWeights = -1;
    size_t heaviest = 0;
    std::set<ValueId> uploaded;
    for (size_t i = 0; i < placement.size(); ++i) {
      if (placement[i] != static_cast<int>(t)) continue;
      double own = 0;  // the op's weights, already counted among the uploads
      for (ValueId id : graph_.ops()[i].operands)
        if (id != kNoValue && graph_.value(id).kind == ValueKind::Weight) {
          own += valueBytes(id);
          if (uploaded.insert(id).second) weights += valueBytes(id);
        }
      largestOp = std::max(largestOp, opCost(graph_, graph_.ops()[i], model_).bytes - own);
      if (own > mostWeights) std::tie(mostWeights, heaviest) = std::pair{own, i};
    }
    if (mostWeights >= 0 && weights + largestOp > static_cast<double>(targets_[t].memoryBytes))
      return std::pair{heaviest, static_cast<int>(t)};
  }
  return std::nullopt;
}

std::vector<int> PlacementProblem::naive() const {
  std::vector<int> placement(graph_.ops().size(), 0);
  for (size_t i = 0; i < placement.size(); ++i)
    while (!supports(i, placement[i])) ++placement[i];
  return placement;
}

std::vector<int> PlacementProblem::greedy() const {
  std::vector<int> placement = naive();
  for (size_t start = 0; start < placement.size();) {
    size_t end = start;
    while (end < placement.size() && placement[end] == placement[start]) ++end;
    const int neighbour = start > 0 ? placement[start - 1] : end < placement.size() ? placement[end] : -1;
    bool fits = neighbour >= 0 && end - start < kGreedyMinRun && placement[start] != host_;
    for (size_t i = start; fits && i < end; ++i) fits = supports(i, neighbour);
    if (fits)
      for (size_t i = start; i < end; ++i) placement[i] = neighbour;
    start = end;
  }
  return placement;
}

PlacementFigures PlacementProblem::figures(const std::vector<int>& placement) const {
  PlacementFigures figures;
  for (size_t i = 0; i < placement.size(); ++i) {
    ++figures.opsByDevice[deviceName(placement[i])];
    figures.modelledSeconds += opSeconds(i, placement[i]);
  }
  for (size_t v = 0; v < graph_.values().size(); ++v) {
    const auto id = static_cast<ValueId>(v);
    const int home = homeOf(id, placement);
    for (int device : readingDevices(id, placement)) {
      if (device == home) continue;
      if (graph_.value(id).kind == ValueKind::Weight) {
        figures.uploadBytes += valueBytes(id);
        continue;
      }
      ++figures.transitions;
      figures.transferBytes += valueBytes(id);
      figures.modelledSeconds += transferSeconds(id, home, device);
    }
  }
  return figures;
}

// With two targets, t0 on the cut's source side and t1 on the sink side:
// moving `id` from its home node to a reader on the other side costs its
// transfer once, however many readers are there (one helper node per
// direction: the home node pays to reach it, and it reaches every reader).
void PlacementProblem::addCrossingCosts(MinCut& cut, ValueId id, size_t home,
                                        const std::vector<size_t>& readers) const {
  constexpr size_t source = 0, sink = 1;
  if (home != sink) {
    const size_t helper = cut.addNode();
    cut.addEdge(home, helper, transferSeconds(id, 0, 1));
    for (size_t reader : readers)
      if (reader != source) cut.addEdge(helper, reader, MinCut::kInfinite);
  }
  if (home != source) {
    const size_t helper = cut.addNode();
    cut.addEdge(helper, home, transferSeconds(id, 1, 0));
    for (size_t reader : readers)
      if (reader != sink) cut.addEdge(reader, helper, MinCut::kInfinite);
  }
}

// The placement of least modelled time: every op on the one target, or for
// two targets (one of them the host) the minimum cut between them.
Expected<std::vector<int>> PlacementProblem::cheapest() const {
  if (targets_.size() == 1) return naive();
  if (targets_.size() != 2 || host_ >= 2)
    return Status::error("cost-based placement takes two targets, one of them '", kHostDevice,
                         "' (or one target); use --placement greedy for others");
  constexpr size_t source = 0, sink = 1;
  const size_t hostNode = host_ == 0 ? source : sink;
  const auto opNode = [](size_t op) { return op + 2; };
  MinCut cut(graph_.ops().size() + 2);
  for (size_t i = 0; i < graph_.ops().size(); ++i) {
    cut.addEdge(source, opNode(i), opSeconds(i, 1));  // cut when the op is on t1
    cut.addEdge(opNode(i), sink, opSeconds(i, 0));
  }
  for (size_t v = 0; v < graph_.values().size(); ++v) {
    const Value& value = graph_.values()[v];
    if (value.kind == ValueKind::Weight) continue;  // uploaded once: no per-run cost
    std::vector<size_t> readers;
    for (int reader : readers_[v]) readers.push_back(opNode(static_cast<size_t>(reader)));
    if (outputs_.count(static_cast<ValueId>(v))) readers.push_back(hostNode);
    const size_t home = value.kind == ValueKind::OpResult ? opNode(static_cast<size_t>(value.producer)) : hostNode;
    addCrossingCosts(cut, static_cast<ValueId>(v), home, readers);
  }
  std::vector<bool> onSource;
  cut.solve(source, sink, onSource);
  std::vector<int> placement(graph_.ops().size());
  for (size_t i = 0; i < placement.size(); ++i) placement[i] = onSource[opNode(i)] ? 0 : 1;
  return placement;
}

}  // namespace

namespace {

// Rewrites the graph to `placement`: each op gets its device, and a transfer
// goes before the first op that reads a value on another device (one per
// value and device); an output off the host gets a transfer back that takes
// over its name, so callers see the same outputs.
class PlacementWriter {
 public:
  explicit PlacementWriter(Graph& graph) : graph_(graph) {
    for (ValueId id = 0; id < static_cast<ValueId>(graph.values().size()); ++id)
      deviceOf_.emplace_back(graph.deviceOf(id));
  }

  Status write(const std::vector<std::string>& deviceOfOp) {
    const std::vector<Op> original = graph_.ops();
    for (size_t i = 0; i < original.size(); ++i) {
      Op op = original[i];
      op.device = deviceOfOp[i] == kHostDevice ? std::string() : deviceOfOp[i];
      for (ValueId& operand : op.operands)
        if (operand != kNoValue) operand = valueOn(operand, deviceOfOp[i]);
      for (ValueId result : op.results) deviceOf_[static_cast<size_t>(result)] = deviceOfOp[i];
      ops_.push_back(std::move(op));
    }
    std::vector<ValueId> outputs = graph_.outputs();
    for (ValueId& output : outputs) {
      if (deviceOf_[static_cast<size_t>(output)] == kHostDevice) continue;
      const ValueId onHost = valueOn(output, std::string(kHostDevice));
      const std::string name = graph_.value(output).name;
      KILN_RETURN_IF_ERROR(graph_.rename(output, graph_.uniqueName(name + "." + deviceOf_[static_cast<size_t>(output)])));
      KILN_RETURN_IF_ERROR(graph_.rename(onHost, name));
      output = onHost;
    }
    graph_.setOps(std::move(ops_));
    graph_.setOutputs(std::move(outputs));
    return Status::ok();
  }

 private:
  // `id` on `device`: itself, or its transfer there (made on first use).
  ValueId valueOn(ValueId id, const std::string& device) {
    if (deviceOf_[static_cast<size_t>(id)] == device) return id;
    auto [it, fresh] = moved_.try_emplace({id, device}, kNoValue);
    if (!fresh) return it->second;
    const std::string& from = deviceOf_[static_cast<size_t>(id)];
    Attributes attrs;
    attrs.set("from", from);
    attrs.set("to", device);
    const std::string name = graph_.uniqueName(graph_.value(id).name + "." + device);
    const int32_t index = graph_.addOp(&opDef(OpKind::Transfer), {id}, {graph_.value(id).type}, std::move(attrs),
                                       {}, {name});
    Op transfer = graph_.ops()[static_cast<size_t>(index)];
    transfer.device = device == kHostDevice ? std::string() : device;
    it->second = transfer.results[0];
    deviceOf_.push_back(device);
    ops_.push_back(std::move(transfer));
    return it->second;
  }

  Graph& graph_;
  std::vector<std::string> deviceOf_;  // per value, as placed so far
  std::map<std::pair<ValueId, std::string>, ValueId> moved_;
  std::vector<Op> ops_;
};

class DevicePlacement final : public Pass {
 public:
  explicit DevicePlacement(PlacementOptions options) : options_(std::move(options)) {}
  std::string_view name() const override { return "device_placement"; }
  std::string_view summary() const override {
    return "places each op on a target device by modelled time (or greedy/naive) and inserts transfers";
  }

  Expected<bool> run(Graph& graph) override {
    const auto start = std::chrono::steady_clock::now();
    const std::vector<DeviceProfile>& targets = options_.targets;
    if (targets.empty() || (targets.size() == 1 && targets[0].device == kHostDevice)) return false;
    for (const Op& op : graph.ops())
      if (!op.device.empty() || op.is(OpKind::Transfer))
        return Status::error("the graph is placed already (op '", op.def->name, "' is on '", op.placement(), "')");
    PlacementProblem problem(graph, targets, options_.model);
    Expected<std::vector<int>> placement = placeWithinMemory(problem);
    if (!placement) return placement.status();
    record(problem, *placement, start);
    std::vector<std::string> deviceOfOp;
    for (int device : *placement) deviceOfOp.push_back(problem.deviceName(device));
    KILN_RETURN_IF_ERROR(PlacementWriter(graph).write(deviceOfOp));
    return true;
  }

 private:
  Expected<std::vector<int>> choose(const PlacementProblem& problem) const {
    switch (options_.strategy) {
      case PlacementStrategy::Naive: return problem.naive();
      case PlacementStrategy::Greedy: return problem.greedy();
      case PlacementStrategy::Cost: break;
    }
    return problem.cheapest();
  }

  // A device must hold the weights uploaded to it and, at its largest op,
  // that op's operands and results (at the model's dims): while a placement
  // overfills one, the op bringing the most weights there moves off it and
  // the strategy places again. Every op must still fit some target.
  Expected<std::vector<int>> placeWithinMemory(PlacementProblem& problem) const {
    for (;;) {
      KILN_RETURN_IF_ERROR(problem.checkPlaceable());
      Expected<std::vector<int>> placement = choose(problem);
      if (!placement) return placement.status();
      const std::optional<std::pair<size_t, int>> eviction = problem.overfull(*placement);
      if (!eviction) return placement;
      problem.evict(eviction->first, eviction->second);
    }
  }

  void record(const PlacementProblem& problem, const std::vector<int>& placement,
              std::chrono::steady_clock::time_point start) {
    const PlacementFigures chosen = problem.figures(placement);
    statistics_.add("transitions", chosen.transitions);
    for (const auto& [device, count] : chosen.opsByDevice) statistics_.add(cat("ops-on-", device), count);
    if (!options_.report) return;
    PlacementReport& report = *options_.report;
    report.strategy = options_.strategy;
    report.chosen = chosen;
    report.naive = problem.figures(problem.naive());
    report.greedy = problem.figures(problem.greedy());
    report.passMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }

  PlacementOptions options_;
};

}  // namespace

std::optional<PlacementStrategy> parsePlacementStrategy(std::string_view name) {
  if (name == "cost") return PlacementStrategy::Cost;
  if (name == "greedy") return PlacementStrategy::Greedy;
  if (name == "naive") return PlacementStrategy::Naive;
  return std::nullopt;
}

std::unique_ptr<Pass> createDevicePlacement(PlacementOptions options) {
  return std::make_unique<DevicePlacement>(std::move(options));
}

}  // namespace kiln
