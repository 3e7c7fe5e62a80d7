#include "runtime/executor.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/attention.h"
#include "ir/attributes.h"
#include "ir/op_registry.h"
#include "ir/verifier.h"
#include "runtime/artifact_format.h"

namespace kiln::rt {
namespace {

// `%name`, quoted when the name is not [A-Za-z0-9_.]+ (as the text form does).
std::string registerRef(const std::string& name) {
  bool bare = !name.empty();
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
    if (!ok) bare = false;
  }
  return bare ? "%" + name : "%\"" + name + "\"";
}

// "op 'matmul' defining %3 (loc "MatMul_7"): ", the prefix of every op error.
std::string opContext(const Graph& graph, const Op& op) {
  std::string text = cat("op '", op.def ? op.def->name : "?", "'");
  if (!op.results.empty()) {
    text += " defining ";
    for (size_t i = 0; i < op.results.size(); ++i) {
      if (i) text += ", ";
      text += registerRef(graph.value(op.results[i]).name);
    }
  }
  if (!op.location.empty()) text += cat(" (loc \"", op.location, "\")");
  return text + ": ";
}

std::string concreteTypeStr(DType dtype, const std::vector<int64_t>& shape) {
  return cat(dtypeName(dtype), shapeStr(shape));
}

// " (batch = 2, seq = 7)": the bindings of the symbols that appear in `type`.
std::string bindingsNote(const TensorType& type, const SymbolBindings& bindings) {
  std::string note;
  SymbolBindings shown;
  for (const Dim& d : type.shape)
    for (const std::string& s : d.symbols())
      if (auto it = bindings.find(s); it != bindings.end()) shown[s] = it->second;
  for (const auto& [name, value] : shown) note += cat(note.empty() ? " (" : ", ", name, " = ", value);
  return note.empty() ? note : note + ")";
}

enum class Solve { Bound, NoSolution, NotLinear };

// When `dim` (already substituted) is linear in exactly one unbound symbol,
// `c*s + k`, binds s so that it equals `value` (s must come out a whole
// number >= 0).
Solve solveLinear(const Dim& dim, int64_t value, SymbolBindings& bindings) {
  std::optional<std::string> symbol;
  int64_t coefficient = 0, constantTerm = 0;
  for (const auto& [monomial, coeff] : dim.terms()) {
    if (monomial.empty()) {
      constantTerm = coeff;
    } else if (monomial.size() == 1 && !symbol) {
      symbol = monomial[0];
      coefficient = coeff;
    } else {
      return Solve::NotLinear;
    }
  }
  if (!symbol || coefficient == 0) return Solve::NotLinear;
  int64_t rest = value - constantTerm;
  if (rest % coefficient != 0 || rest / coefficient < 0) return Solve::NoSolution;
  bindings[*symbol] = rest / coefficient;
  return Solve::Bound;
}

// Matches a declared (symbolic) shape against a concrete one, binding
// symbols it can. Returns false on a definite mismatch; dims that stay
// symbolic after binding (non-linear in unbound symbols) are not checked.
bool matchShape(const Shape& declared, const std::vector<int64_t>& actual, SymbolBindings& bindings) {
  if (declared.size() != actual.size()) return false;
  for (size_t k = 0; k < declared.size(); ++k) {
    if (declared[k].isUnknown()) continue;
    Dim d = declared[k].substitute(bindings);
    if (auto c = d.constant()) {
      if (*c != actual[k]) return false;
    } else if (solveLinear(d, actual[k], bindings) == Solve::NoSolution) {
      return false;
    }
    // A dim that is not linear in one unbound symbol is left to op inference.
  }
  return true;
}

// Bytes of `type` under `bindings`; nullopt when a dim stays symbolic or
// unknown, or the count overflows.
std::optional<size_t> bytesAt(const TensorType& type, const SymbolBindings& bindings) {
  uint64_t bytes = dtypeSize(type.dtype);
  for (const Dim& dim : type.shape) {
    std::optional<int64_t> n = dim.substitute(bindings).constant();
    if (!n || *n < 0) return std::nullopt;
    if (*n != 0 && bytes > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(*n))
      return std::nullopt;
    bytes *= static_cast<uint64_t>(*n);
  }
  return static_cast<size_t>(bytes);
}

size_t bytesOf(DType dtype, const std::vector<int64_t>& dims) {
  size_t bytes = dtypeSize(dtype);
  for (int64_t d : dims) bytes *= static_cast<size_t>(d);
  return bytes;
}

// Whether [a, a + aBytes) and [b, b + bBytes) share a byte.
bool overlaps(const void* a, size_t aBytes, const void* b, size_t bBytes) {
  auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  return aBytes && bBytes && x < y + bBytes && y < x + aBytes;
}

// What create() checks before planning: the graph verifies, weights have
// data.
// The device that runs an op: its placement's, except for a transfer into
// host memory, which the source device runs (it alone can read its memory).
// `deviceOf` gives a value's device.
template <class DeviceOf>
Expected<Device*> deviceRunning(const Graph& graph, const Op& op, const DeviceOf& deviceOf) {
  std::string_view name = op.placement();
  if (op.is(OpKind::Transfer) && name == kHostDevice) name = deviceOf(op.operands[0]);
  Device* device = findDevice(name);
  if (!device) return Status::error(opContext(graph, op), "it is placed on device '", name,
                                    "', which this runtime does not have");
  if (!device->supports(*op.def))
    return Status::error(opContext(graph, op), "no kernel on device '", device->name(), "'");
  return device;
}

Status checkRunnable(const Graph& graph) {
  KILN_RETURN_IF_ERROR(verifyGraph(graph));
  for (ValueId w : graph.weights()) {
    const Value& v = graph.value(w);
    if (!v.data) return Status::error("weight @", v.name, " has no data; the graph cannot run");
  }
  return Status::ok();
}

// How many ops read each value.
std::vector<int> readCounts(const Graph& graph) {
  std::vector<int> reads(graph.values().size(), 0);
  for (const Op& op : graph.ops())
    for (ValueId o : op.operands)
      if (o != kNoValue) ++reads[static_cast<size_t>(o)];
  return reads;
}

// The op that reads `id`, when exactly one does; -1 otherwise.
int32_t soleReader(const Graph& graph, ValueId id) {
  int32_t reader = -1;
  for (size_t i = 0; i < graph.ops().size(); ++i)
    for (ValueId operand : graph.ops()[i].operands)
      if (operand == id) {
        if (reader >= 0) return -1;
        reader = static_cast<int32_t>(i);
      }
  return reader;
}

// The site's error, or none: see describeKvLayers. `taken` marks the inputs
// and outputs of the sites before it.
Status checkKvSite(const Graph& graph, const std::vector<int>& reads, const KvLayerSite& site,
                   std::vector<bool>& inputTaken, std::vector<bool>& outputTaken) {
  if (site.op >= graph.ops().size())
    return Status::error("op ", site.op, " is past the program's ", graph.ops().size(), " op(s)");
  std::optional<KvLayerEnds> ends = kvLayerEnds(graph, site.op);
  if (!ends) return Status::error("op ", site.op, " is not an attention op with past and present keys and values");
  if ((ends->pastValue == kNoValue) != (site.parts() == 1))
    return Status::error("op ", site.op, site.parts() == 1 ? " caches keys and values, not one latent"
                                                           : " caches one latent, not keys and values");
  const ValueId pasts[] = {ends->pastKey, ends->pastValue}, presents[] = {ends->presentKey, ends->presentValue};
  for (size_t part = 0; part < site.parts(); ++part) {
    const size_t input = site.pastInput(part), output = site.presentOutput(part);
    const ValueId past = pasts[part], present = presents[part];
    if (input >= graph.inputs().size() || inputTaken[input] || graph.inputs()[input] != past ||
        reads[static_cast<size_t>(past)] != 1 ||
        std::find(graph.outputs().begin(), graph.outputs().end(), past) != graph.outputs().end())
      return Status::error("graph input ", input, " is not a past input of op ", site.op, " alone");
    inputTaken[input] = true;
    if (output >= graph.outputs().size() || outputTaken[output] || graph.outputs()[output] != present ||
        reads[static_cast<size_t>(present)] != 0)
      return Status::error("graph output ", output, " is not a present output of op ", site.op, " alone");
    outputTaken[output] = true;
  }
  return Status::ok();
}

}  // namespace

std::optional<KvLayerEnds> kvLayerEnds(const Graph& graph, size_t op) {
  std::optional<attention::KvValues> kv = attention::kvValues(graph.ops()[op]);
  if (!kv) return std::nullopt;
  KvLayerEnds ends;
  // A past transferred onto the device: the transfer's operand, if the
  // attention alone reads the transfer.
  auto pastEnd = [&](ValueId past) {
    const Value& value = graph.value(past);
    if (value.kind != ValueKind::OpResult) return past;
    const Op& producer = graph.ops()[static_cast<size_t>(value.producer)];
    if (!producer.is(OpKind::Transfer) || soleReader(graph, past) != static_cast<int32_t>(op)) return past;
    ends.transfers.push_back(static_cast<size_t>(value.producer));
    return producer.operands[0];
  };
  // A present transferred back to the host: the transfer's result, if it
  // alone reads the present.
  auto presentEnd = [&](ValueId present) {
    const int32_t reader = soleReader(graph, present);
    if (reader < 0 || !graph.ops()[static_cast<size_t>(reader)].is(OpKind::Transfer)) return present;
    ends.transfers.push_back(static_cast<size_t>(reader));
    return graph.ops()[static_cast<size_t>(reader)].results[0];
  };
  ends.pastKey = pastEnd(kv->pastKey);
  ends.presentKey = presentEnd(kv->presentKey);
  if (kv->pastValue != kNoValue) {
    ends.pastValue = pastEnd(kv->pastValue);
    ends.presentValue = presentEnd(kv->presentValue);
  }
  return ends;
}

Expected<std::vector<KvLayer>> describeKvLayers(const Graph& graph, const std::vector<KvLayerSite>& sites) {
  const std::vector<int> reads = readCounts(graph);
  std::vector<bool> inputTaken(graph.inputs().size(), false), outputTaken(graph.outputs().size(), false);
  std::vector<KvLayer> layers;
  for (size_t l = 0; l < sites.size(); ++l) {
    const KvLayerSite& site = sites[l];
    if (Status fits = checkKvSite(graph, reads, site, inputTaken, outputTaken); !fits)
      return fits.withContext(cat("KV layer ", l, ": "));
    const TensorType& keys = graph.value(graph.inputs()[site.pastKeyInput]).type;
    const TensorType& values = graph.value(graph.inputs()[site.pastInput(site.parts() - 1)]).type;
    const TensorType& present = graph.value(graph.outputs()[site.presentKeyOutput]).type;
    std::optional<int64_t> kvHeads = keys.rank() == 4 ? keys.shape[1].constant() : std::nullopt;
    std::optional<int64_t> headDim = keys.rank() == 4 ? keys.shape[3].constant() : std::nullopt;
    // A latent layer: its rows alone, no values (-1: not static).
    const int64_t valueDim =
        site.parts() == 1 ? 0 : values.rank() == 4 ? values.shape[3].constant().value_or(-1) : -1;
    if (!kvHeads || !headDim || valueDim < 0 || present.rank() != 4)
      return Status::error("KV layer ", l, ": past keys ", keys.str(), ", values ", values.str(),
                           " and present keys ", present.str(), " are not rank 4 with static kv heads and head dims");
    layers.push_back(KvLayer{site, keys.dtype, *kvHeads, *headDim, valueDim, keys.shape[0], present.shape[2]});
  }
  return layers;
}

Executor::Executor(const Graph& graph, std::shared_ptr<const PreparedPlan> compiled,
                   std::vector<KvLayer> kvLayers, bool kvLayersRecorded)
    : graph_(graph),
      compiled_(std::move(compiled)),
      kvLayers_(std::move(kvLayers)),
      kvLayersRecorded_(kvLayersRecorded) {
  // Last use of each op result: the last op reading it, or its producer when
  // nothing reads it. Graph outputs are never released.
  std::vector<int32_t> lastUse(graph.values().size(), -1);
  for (size_t i = 0; i < graph.ops().size(); ++i) {
    const Op& op = graph.ops()[i];
    for (ValueId r : op.results) lastUse[static_cast<size_t>(r)] = static_cast<int32_t>(i);
    for (ValueId o : op.operands)
      if (o != kNoValue) lastUse[static_cast<size_t>(o)] = static_cast<int32_t>(i);
  }
  for (ValueId out : graph.outputs()) lastUse[static_cast<size_t>(out)] = -1;
  releaseAfter_.resize(graph.ops().size());
  for (size_t v = 0; v < graph.values().size(); ++v) {
    if (graph.values()[v].kind == ValueKind::OpResult && lastUse[v] >= 0)
      releaseAfter_[static_cast<size_t>(lastUse[v])].push_back(static_cast<ValueId>(v));
  }

  kvLayerOfOp_.assign(graph.ops().size(), -1);
  kvPresent_.assign(graph.values().size(), false);
  skipWhenStepping_.assign(graph.ops().size(), false);
  std::vector<bool> pastInput(graph.inputs().size(), false), presentOutput(graph.outputs().size(), false);
  for (size_t l = 0; l < kvLayers_.size(); ++l) {
    const KvLayer& layer = kvLayers_[l];
    kvLayerOfOp_[layer.op] = static_cast<int32_t>(l);
    for (size_t part = 0; part < layer.parts(); ++part) {
      pastInput[layer.pastInput(part)] = presentOutput[layer.presentOutput(part)] = true;
      kvPresent_[static_cast<size_t>(graph.outputs()[layer.presentOutput(part)])] = true;
    }
    // On a device: the attention's own presents, and the transfers around it.
    const std::optional<attention::KvValues> own = attention::kvValues(graph.ops()[layer.op]);
    for (ValueId present : {own->presentKey, own->presentValue})
      if (present != kNoValue) kvPresent_[static_cast<size_t>(present)] = true;
    const std::optional<KvLayerEnds> ends = kvLayerEnds(graph, layer.op);
    for (size_t transfer : ends->transfers) skipWhenStepping_[transfer] = true;
  }
  for (size_t i = 0; i < pastInput.size(); ++i)
    if (!pastInput[i]) stepInputs_.push_back(i);
  for (size_t i = 0; i < presentOutput.size(); ++i)
    if (!presentOutput[i]) stepOutputs_.push_back(i);
}

void Executor::lendWeights() {
  // Copies share the weights' storage, which so outlives the forget below.
  for (ValueId w : graph_.weights())
    if (graph_.value(w).data) weights_.push_back(*graph_.value(w).data);
  std::vector<const Tensor*> lent;
  for (const Tensor& w : weights_) lent.push_back(&w);
  for (Device* device : compiled_->opDevice)
    if (std::find(devices_.begin(), devices_.end(), device) == devices_.end()) devices_.push_back(device);
  for (Device* device : devices_) device->adoptConstants(lent);
}

Status Executor::uploadWeights() {
  const Graph& graph = graph_;
  uploaded_.clear();
  uploadSource_.assign(graph.values().size(), nullptr);
  isUpload_.assign(graph.ops().size(), false);
  for (size_t i = 0; i < graph.ops().size(); ++i) {
    const Op& op = graph.ops()[i];
    if (!isWeightUpload(graph, op)) continue;
    const Value& weight = graph.value(op.operands[0]);
    if (!weight.data) return Status::error(opContext(graph, op), "its weight has no data");
    Device* destination = findDevice(op.placement());
    Expected<Tensor> copy = destination ? destination->allocate(weight.data->dtype(), weight.data->shape())
                                        : Expected<Tensor>(Status::error("no device '", op.placement(), "'"));
    if (!copy) return copy.status().withContext(opContext(graph, op));
    const Tensor* source = &*weight.data;
    Tensor* result = &*copy;
    Status ran = compiled_->opDevice[i]->run(*op.def, op.attrs, {&source, 1}, {&result, 1}, nullptr);
    if (!ran) return ran.withContext(opContext(graph, op));
    uploaded_.emplace_back(op.results[0], std::move(*copy));
    uploadSource_[static_cast<size_t>(op.results[0])] = source;
    isUpload_[i] = true;
  }
  return Status::ok();
}

Executor::~Executor() {
  std::vector<const Tensor*> lent;
  for (const Tensor& w : weights_) lent.push_back(&w);
  for (Device* device : devices_) device->forgetConstants(lent);
}

Status Executor::checkKvLayersRecorded() const {
  if (kvLayersRecorded_) return Status::ok();
  return Status::error("graph @", graph_.name, " cannot be stepped: its KV layers were not recorded (an artifact ",
                       "older than format version ", kKvLayersSinceFormatVersion, "); recompile it to step it, or ",
                       "run it with explicit past inputs");
}

int64_t Executor::defaultKvCapacity() const {
  if (kvLayers_.empty()) return 0;
  const SymbolBindings bounds =
      compiled_->unplannedReason.empty() ? compiled_->plan.bounds : planningBounds(graph_, {});
  std::optional<int64_t> total = kvLayers_.front().totalLength.substitute(bounds).constant();
  return total && *total > 0 ? *total : kDefaultSymbolBound;
}

Expected<std::unique_ptr<Executor>> Executor::create(const Graph& graph, KvLayerRecord kvLayers) {
  KILN_RETURN_IF_ERROR(checkRunnable(graph));
  Expected<std::vector<KvLayer>> layers = describeKvLayers(graph, kvLayers.value_or(std::vector<KvLayerSite>{}));
  if (!layers) return layers.status();
  Expected<MemoryPlan> plan = planMemory(graph, planningBounds(graph, {}));
  if (plan) return withPlan(graph, std::move(*plan), std::move(*layers), kvLayers.has_value());
  // A graph the planner cannot size (a dim known only at run time) runs
  // with each result allocated as it is computed.
  auto unplanned = std::make_shared<PreparedPlan>();
  for (const Op& op : graph.ops()) {
    Expected<Device*> device = deviceRunning(graph, op, [&](ValueId id) { return graph.deviceOf(id); });
    if (!device) return device.status();
    unplanned->opDevice.push_back(*device);
  }
  unplanned->unplannedReason = plan.status().message();
  std::unique_ptr<Executor> executor(
      new Executor(graph, std::move(unplanned), std::move(*layers), kvLayers.has_value()));
  executor->lendWeights();
  KILN_RETURN_IF_ERROR(executor->uploadWeights());
  return executor;
}

Expected<std::unique_ptr<Executor>> Executor::createOwning(std::shared_ptr<const Graph> graph,
                                                           KvLayerRecord kvLayers) {
  Expected<std::unique_ptr<Executor>> made = create(*graph, std::move(kvLayers));
  if (made) (*made)->ownedGraph_ = std::move(graph);
  return made;
}

Expected<std::unique_ptr<Executor>> Executor::create(const Graph& graph, MemoryPlan plan, KvLayerRecord kvLayers) {
  KILN_RETURN_IF_ERROR(checkRunnable(graph));
  Expected<std::vector<KvLayer>> layers = describeKvLayers(graph, kvLayers.value_or(std::vector<KvLayerSite>{}));
  if (!layers) return layers.status();
  return withPlan(graph, std::move(plan), std::move(*layers), kvLayers.has_value());
}

Expected<std::unique_ptr<Executor>> Executor::withPlan(const Graph& graph, MemoryPlan plan,
                                                       std::vector<KvLayer> kvLayers, bool kvLayersRecorded) {
  std::unique_ptr<Executor> executor(new Executor(graph, nullptr, std::move(kvLayers), kvLayersRecorded));
  Expected<std::shared_ptr<const PreparedPlan>> prepared = executor->prepare(std::move(plan));
  if (!prepared) return prepared.status();
  executor->compiled_ = std::move(*prepared);
  executor->lendWeights();
  KILN_RETURN_IF_ERROR(executor->uploadWeights());
  return executor;
}

Expected<std::shared_ptr<const PreparedPlan>> Executor::prepare(MemoryPlan plan) const {
  const Graph& graph = graph_;
  auto prepared = std::make_shared<PreparedPlan>();
  if (plan.registers.size() != graph.values().size())
    return Status::error("the memory plan has ", plan.registers.size(), " register(s); the graph has ",
                         graph.values().size(), " value(s)");
  for (size_t i = 0; i < plan.registers.size(); ++i) {
    const RegisterPlan& r = plan.registers[i];
    const std::string where = cat("the memory plan's register for ", registerRef(graph.values()[i].name));
    if (r.value != static_cast<ValueId>(i))
      return Status::error("the memory plan's register ", i, " is for value ", r.value, ", not ", i);
    Device* device = findDevice(r.device);
    if (!device) return Status::error(where, " is on device '", r.device, "', which this runtime does not have");
    if (!device->hasMemory(r.memory))
      return Status::error(where, " is in memory '", r.memory, "', which device '", r.device, "' does not have");
    if (r.kind == RegisterPlan::Arena) {
      if (r.offset % kArenaAlignment != 0)
        return Status::error(where, " is at offset ", r.offset, ", not a multiple of ", kArenaAlignment);
      size_t& extent = prepared->arenaBytes[r.memory];
      extent = std::max(extent, r.offset + r.bytes);
      prepared->arenaDevice[r.memory] = device;
    }
  }
  for (const Op& op : graph.ops()) {
    for (ValueId result : op.results)
      if (plan.registers[static_cast<size_t>(result)].device != op.placement())
        return Status::error(opContext(graph, op), "the program places it on '", op.placement(),
                             "' but the memory plan puts its result ", registerRef(graph.value(result).name),
                             " on '", plan.registers[static_cast<size_t>(result)].device, "'");
    Expected<Device*> device = deviceRunning(graph, op, [&](ValueId id) -> std::string_view {
      return plan.registers[static_cast<size_t>(id)].device;
    });
    if (!device) return device.status();
    prepared->opDevice.push_back(*device);
  }
  prepared->plan = std::move(plan);
  return std::shared_ptr<const PreparedPlan>(std::move(prepared));
}

bool Executor::fits(const PreparedPlan& prepared, const SymbolBindings& bindings, bool stepping) const {
  for (const RegisterPlan& r : prepared.plan.registers) {
    if (r.kind != RegisterPlan::Arena) continue;
    if (stepping && kvPresent_[static_cast<size_t>(r.value)]) continue;  // lives in the KV cache
    // A size that stays unknown is checked when the op runs.
    std::optional<size_t> bytes = bytesAt(graph_.value(r.value).type, bindings);
    if (bytes && *bytes > r.bytes) return false;
  }
  return true;
}

Expected<std::shared_ptr<const PreparedPlan>> Executor::planFor(const SymbolBindings& bindings,
                                                                bool* replanned, bool stepping) const {
  if (replanned) *replanned = false;
  if (!compiled_->unplannedReason.empty() || fits(*compiled_, bindings, stepping)) return compiled_;
  if (replanned) *replanned = true;
  {
    std::lock_guard<std::mutex> lock(cacheMutex_);
    for (auto it = replans_.begin(); it != replans_.end(); ++it) {
      if (it->first != bindings) continue;
      replans_.splice(replans_.begin(), replans_, it);  // most recently used first
      return it->second;
    }
  }
  // Plan outside the lock: other sessions keep running meanwhile. Symbols
  // the inputs do not bind keep their compiled bounds.
  SymbolBindings bounds = compiled_->plan.bounds;
  for (const auto& [symbol, value] : bindings) bounds[symbol] = value;
  Expected<MemoryPlan> plan = planMemory(graph_, bounds);
  if (!plan) return plan.status();
  Expected<std::shared_ptr<const PreparedPlan>> prepared = prepare(std::move(*plan));
  if (!prepared) return prepared.status();
  std::lock_guard<std::mutex> lock(cacheMutex_);
  for (const auto& [cached, plan] : replans_)
    if (cached == bindings) return plan;  // another session planned it meanwhile
  replans_.emplace_front(bindings, *prepared);
  if (replans_.size() > kPlanCacheSize) replans_.pop_back();
  return *prepared;
}

Expected<SymbolBindings> Executor::bindInputs(const std::vector<Tensor>& inputs) const {
  const std::vector<ValueId>& graphInputs = graph_.inputs();
  if (inputs.size() != graphInputs.size()) {
    std::string names;
    for (ValueId id : graphInputs) names += cat(names.empty() ? "" : ", ", "'", graph_.value(id).name, "'");
    return Status::error("graph @", graph_.name, " takes ", graphInputs.size(), " input(s) (", names,
                         "), got ", inputs.size());
  }

  SymbolBindings bindings;
  std::map<std::string, std::string, std::less<>> boundBy;  // symbol -> input that bound it
  auto mismatch = [&](size_t i) {
    const Value& v = graph_.value(graphInputs[i]);
    return Status::error("input '", v.name, "': expected ", v.type.str(), ", got ",
                         concreteTypeStr(inputs[i].dtype(), inputs[i].shape()));
  };

  // First the dtype, rank and constant dims, and the dims that are one symbol.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = graph_.value(graphInputs[i]);
    const Tensor& t = inputs[i];
    if (t.dtype() != v.type.dtype || t.rank() != v.type.rank()) return mismatch(i);
    for (size_t k = 0; k < t.rank(); ++k) {
      const Dim& d = v.type.shape[k];
      int64_t n = t.shape()[k];
      if (n < 0) return mismatch(i);
      if (auto c = d.constant()) {
        if (*c != n) return mismatch(i);
      } else if (auto symbol = d.plainSymbol()) {
        auto [it, inserted] = bindings.emplace(*symbol, n);
        if (inserted) {
          boundBy[*symbol] = v.name;
        } else if (it->second != n) {
          return Status::error("dim '", *symbol, "' is ", it->second, " in input '", boundBy[*symbol],
                               "' but ", n, " in input '", v.name, "'");
        }
      }
    }
    if (t.isNull()) return Status::error("input '", v.name, "' has no data");
  }
  // Then compound dims (`seq + past`), which may bind what is left.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = graph_.value(graphInputs[i]);
    if (!matchShape(v.type.shape, inputs[i].shape(), bindings)) {
      return Status::error("input '", v.name, "': expected ", v.type.str(), bindingsNote(v.type, bindings),
                           ", got ", concreteTypeStr(inputs[i].dtype(), inputs[i].shape()));
    }
  }
  return bindings;
}

Expected<std::vector<Tensor>> Executor::run(const std::vector<Tensor>& inputs) const {
  Session session(*this);
  return session.run(inputs);
}

Session::Session(const Executor& executor, SessionOptions options)
    : executor_(executor),
      opReadsValues_(executor.graph_.ops().size(), -1),
      kvCapacity_(options.kvCapacity > 0 ? options.kvCapacity : executor.defaultKvCapacity()) {}

Status Session::reserveArenas(const PreparedPlan& prepared) {
  for (const auto& [memory, bytes] : prepared.arenaBytes) {
    size_t& reserved = arenaSizes_[memory];
    if (arenas_.count(memory) && reserved >= bytes) continue;
    // The old block goes now (outputs of earlier runs that view it keep it).
    arenas_.erase(memory);
    Expected<std::shared_ptr<void>> block = prepared.arenaDevice.at(memory)->reserveArena(memory, bytes);
    if (!block) return block.status();
    arenas_[memory] = std::move(*block);
    reserved = bytes;
  }
  return Status::ok();
}

Status Session::reserveKvCache(int64_t batch) {
  if (!kvCache_.empty() && kvBatch_ == batch) return Status::ok();
  const std::vector<KvLayer>& layers = executor_.kvLayers_;
  // Every layer's keys and values (or latent rows) in one block, each part aligned; the
  // block is reserved, not touched, so capacity costs only the rows written.
  std::vector<size_t> offsets;
  uint64_t total = 0;
  const uint64_t rows = static_cast<uint64_t>(batch) * static_cast<uint64_t>(kvCapacity_);
  const uint64_t limit = std::numeric_limits<uint64_t>::max() / 4;
  for (const KvLayer& layer : layers) {
    for (size_t part = 0; part < 2; ++part) {  // a latent layer's second part is empty
      const int64_t width = layer.width(part);
      const uint64_t rowBytes = static_cast<uint64_t>(layer.kvHeads * width) * dtypeSize(layer.dtype);
      if (rowBytes && rows > (limit - total) / rowBytes)
        return Status::error("a KV cache of ", kvCapacity_, " tokens for batch ", batch, " is too large");
      offsets.push_back(static_cast<size_t>(total));
      total += (rows * rowBytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
    }
  }
  // The cache lives where the attention's present results would.
  const std::string_view deviceName = executor_.graph_.ops()[layers.front().op].placement();
  const std::string memory = memorySpaceOf(deviceName);
  Device* device = findDevice(deviceName);
  kvCache_.clear();
  kvBlock_.reset();
  Expected<std::shared_ptr<void>> block = device->reserveArena(memory, static_cast<size_t>(total));
  if (!block) return block.status().withContext("cannot reserve the KV cache: ");
  kvBlock_ = std::move(*block);
  kvDevice_ = device;
  char* base = static_cast<char*>(kvBlock_.get());
  for (size_t l = 0; l < layers.size(); ++l) {
    const KvLayer& layer = layers[l];
    kvCache_.push_back(KvCache{
        Tensor::view(layer.dtype, {batch, layer.kvHeads, kvCapacity_, layer.headDim}, base + offsets[2 * l],
                     kvBlock_),
        layer.parts() == 1 ? Tensor{}
                           : Tensor::view(layer.dtype, {batch, layer.kvHeads, kvCapacity_, layer.valueDim},
                                          base + offsets[2 * l + 1], kvBlock_)});
  }
  kvBatch_ = batch;
  return Status::ok();
}

Status Session::copyIntoKvCache(void* to, const void* from, size_t bytes) {
  if (kvDevice_->name() == kHostDevice) {
    std::memcpy(to, from, bytes);
    return Status::ok();
  }
  Attributes attrs;
  attrs.set("from", std::string(kHostDevice));
  attrs.set("to", std::string(kvDevice_->name()));
  const Tensor source = Tensor::view(DType::U8, {static_cast<int64_t>(bytes)}, const_cast<void*>(from));
  Tensor destination = Tensor::view(DType::U8, {static_cast<int64_t>(bytes)}, to);
  const Tensor* input = &source;
  Tensor* output = &destination;
  return kvDevice_->run(opDef(OpKind::Transfer), attrs, {&input, 1}, {&output, 1}, nullptr);
}

Status Session::truncateKv(int64_t length) {
  if (length < 0 || length > kvLength_)
    return Status::error("cannot truncate a KV cache of ", kvLength_, " token(s) to ", length);
  kvLength_ = length;
  return Status::ok();
}

Status Session::loadKv(const std::vector<Tensor>& past) {
  const std::vector<KvLayer>& layers = executor_.kvLayers_;
  const Graph& graph = executor_.graph_;
  KILN_RETURN_IF_ERROR(executor_.checkKvLayersRecorded());
  if (layers.empty()) return Status::error("graph @", graph.name, " has no KV cache to load");
  size_t parts = 0;
  for (const KvLayer& layer : layers) parts += layer.parts();
  if (past.size() != parts)
    return Status::error("a KV cache of ", layers.size(), " layer(s) takes ", parts,
                         " past tensors (keys and values, or latent rows, per layer), got ", past.size());
  const int64_t batch = past[0].rank() == 4 ? past[0].shape()[0] : 0;
  const int64_t length = past[0].rank() == 4 ? past[0].shape()[2] : 0;
  for (size_t l = 0, at = 0; l < layers.size(); ++l) {
    const KvLayer& layer = layers[l];
    for (size_t part = 0; part < layer.parts(); ++part) {
      const Tensor& given = past[at++];
      const std::vector<int64_t> want{batch, layer.kvHeads, length, layer.width(part)};
      if (given.dtype() != layer.dtype || given.shape() != want)
        return Status::error("past input '", graph.value(graph.inputs()[layer.pastInput(part)]).name, "' must be ",
                             concreteTypeStr(layer.dtype, want), ", got ", given.type().str());
    }
  }
  if (batch < 1) return Status::error("the past tensors have no batch");
  if (length > kvCapacity_)
    return Status::error("a past of ", length, " tokens exceeds the KV cache capacity ", kvCapacity_);
  KILN_RETURN_IF_ERROR(reserveKvCache(batch));
  // Row by row: the cache's rows are capacity-strided, the given ones packed.
  for (size_t l = 0, at = 0; l < layers.size(); ++l) {
    for (size_t part = 0; part < layers[l].parts(); ++part) {
      const Tensor& given = past[at++];
      Tensor& cache = part == 0 ? kvCache_[l].keys : kvCache_[l].values;
      const size_t rowBytes = static_cast<size_t>(length * given.shape()[3]) * dtypeSize(given.dtype());
      const size_t cacheRowBytes = static_cast<size_t>(kvCapacity_ * given.shape()[3]) * dtypeSize(given.dtype());
      for (int64_t head = 0; head < batch * given.shape()[1]; ++head)
        KILN_RETURN_IF_ERROR(copyIntoKvCache(static_cast<char*>(cache.data()) + static_cast<size_t>(head) * cacheRowBytes,
                                             static_cast<const char*>(given.data()) + static_cast<size_t>(head) * rowBytes,
                                             rowBytes));
    }
  }
  kvLength_ = length;
  return Status::ok();
}

Expected<std::vector<Tensor>> Session::step(const std::vector<Tensor>& inputs, StepFailure* failure) {
  StepFailure ignored;
  StepFailure& kind = failure ? *failure : ignored;
  kind = StepFailure::Inputs;
  const Graph& graph = executor_.graph_;
  const std::vector<KvLayer>& layers = executor_.kvLayers_;
  const std::vector<size_t>& stepInputs = executor_.stepInputs_;
  KILN_RETURN_IF_ERROR(executor_.checkKvLayersRecorded());
  if (layers.empty())
    return Status::error("graph @", graph.name, " has no KV cache to step: no attention op reads past keys and ",
                         "values from graph inputs and writes the present ones to graph outputs; run it with ",
                         "explicit inputs instead");
  if (inputs.size() != stepInputs.size()) {
    std::string names;
    for (size_t position : stepInputs)
      names += cat(names.empty() ? "" : ", ", "'", graph.value(graph.inputs()[position]).name, "'");
    return Status::error("a step of graph @", graph.name, " takes ", stepInputs.size(), " input(s) (", names,
                         "; the past keys and values come from the KV cache), got ", inputs.size());
  }

  // The batch, from the step's inputs: the cache holds that many sequences.
  SymbolBindings seen;
  for (size_t i = 0; i < inputs.size(); ++i)
    matchShape(graph.value(graph.inputs()[stepInputs[i]]).type.shape, inputs[i].shape(), seen);
  std::optional<int64_t> batch = layers.front().batch.substitute(seen).constant();
  if (!batch || *batch < 1)
    return Status::error("cannot tell the batch of the KV cache (", layers.front().batch.str(),
                         ") from the step's inputs");
  if (kvLength_ > 0 && *batch != kvBatch_)
    return Status::error("the KV cache holds ", kvLength_, " token(s) of batch ", kvBatch_,
                         "; this step has batch ", *batch, " (reset the session to change the batch)");
  if (Status reserved = reserveKvCache(*batch); !reserved) {
    kind = StepFailure::Run;
    return reserved;
  }

  // The graph's inputs: the step's, and for each past input the cache's
  // first kvLength_ rows as its shape. The kernel reads the cache through
  // the binding (capacity-strided rows); these views only give the past
  // inputs their shape, which binds the past length symbol to kvLength_.
  std::vector<Tensor> full(graph.inputs().size());
  for (size_t i = 0; i < inputs.size(); ++i) full[stepInputs[i]] = inputs[i];
  for (size_t l = 0; l < layers.size(); ++l) {
    const KvLayer& layer = layers[l];
    for (size_t part = 0; part < layer.parts(); ++part)
      full[layer.pastInput(part)] =
          Tensor::view(layer.dtype, {*batch, layer.kvHeads, kvLength_, layer.width(part)},
                       (part == 0 ? kvCache_[l].keys : kvCache_[l].values).data(), kvBlock_);
  }
  Expected<SymbolBindings> bound = executor_.bindInputs(full);
  if (!bound) return bound.status();
  std::optional<int64_t> total = layers.front().totalLength.substitute(*bound).constant();
  if (!total || *total < kvLength_)
    return Status::error("cannot tell the step's total length (", layers.front().totalLength.str(),
                         ") from its inputs");
  if (*total > kvCapacity_) {
    kind = StepFailure::CacheFull;
    return Status::error("KV cache full: ", kvLength_, " cached + ", *total - kvLength_,
                         " new tokens exceed capacity ", kvCapacity_);
  }

  Expected<std::vector<Tensor>> outputs = runProgram(full, *bound, true);
  if (!outputs) {
    kind = StepFailure::Run;
    return outputs.status();
  }
  kvLength_ = *total;
  kind = StepFailure::None;
  return outputs;
}

Expected<std::vector<Tensor>> Session::run(const std::vector<Tensor>& inputs) {
  Expected<SymbolBindings> bound = executor_.bindInputs(inputs);
  if (!bound) return bound.status();
  return runProgram(inputs, *bound, false);
}

void Session::keepHostShapeCopy(const Graph& graph, const Op& transfer, const Tensor& source) {
  if (isShapeValue(graph.value(transfer.results[0]).type) && graph.deviceOf(transfer.operands[0]) == kHostDevice)
    hostShapeCopies_[transfer.results[0]] = source.clone();
}

Expected<std::vector<Tensor>> Session::runProgram(const std::vector<Tensor>& inputs, SymbolBindings& bindings,
                                                  bool stepping) {
  const Graph& graph = executor_.graph_;
  RunStats stats;
  // Shapes are the last run's when its bindings were these; cleared first so
  // a run that fails part-way leaves none half-valid.
  const bool reuseShapes = lastShapesValid_ && lastPlan_ && bindings == lastBindings_ && stepping == lastStepping_;
  lastShapesValid_ = false;
  if (!reuseShapes) lastShapes_.assign(graph.ops().size(), OpShapes{});
  if (!lastPlan_ || bindings != lastBindings_ || stepping != lastStepping_) {
    Expected<std::shared_ptr<const PreparedPlan>> chosen =
        executor_.planFor(bindings, &stats.replanned, stepping);
    if (!chosen) return chosen.status().withContext("cannot plan memory for this run: ");
    lastPlan_ = std::move(*chosen);
    lastBindings_ = bindings;
    lastStepping_ = stepping;
  } else {
    stats.replanned = lastPlan_ != executor_.compiled_;
  }
  const PreparedPlan& prepared = *lastPlan_;
  KILN_RETURN_IF_ERROR(reserveArenas(prepared));
  for (const auto& [memory, bytes] : arenaSizes_) stats.arenaBytes += bytes;

  // Each arena register's arena (its base and keep-alive), resolved once per
  // run; null for the rest, and for all of an unplanned program.
  std::vector<const std::shared_ptr<void>*> arenaOf(prepared.plan.registers.size(), nullptr);
  for (size_t i = 0; i < prepared.plan.registers.size(); ++i) {
    const RegisterPlan& r = prepared.plan.registers[i];
    if (r.kind != RegisterPlan::Arena) continue;
    auto it = arenas_.find(r.memory);
    if (it != arenas_.end()) arenaOf[i] = &it->second;
  }

  // Tensors of inputs and op results by ValueId; weights are read in place.
  values_.assign(graph.values().size(), Tensor{});
  hostShapeCopies_.clear();
  std::vector<bool> present(graph.values().size(), false);
  for (size_t i = 0; i < inputs.size(); ++i) {
    values_[static_cast<size_t>(graph.inputs()[i])] = inputs[i];
    present[static_cast<size_t>(graph.inputs()[i])] = true;
  }
  for (const auto& [id, uploaded] : executor_.uploaded_) {
    values_[static_cast<size_t>(id)] = uploaded;
    present[static_cast<size_t>(id)] = true;
  }
  auto tensorOf = [&](ValueId id) -> const Tensor* {
    const Value& v = graph.value(id);
    if (v.kind == ValueKind::Weight) return &*v.data;
    return present[static_cast<size_t>(id)] ? &values_[static_cast<size_t>(id)] : nullptr;
  };
  // Drops the run's tensors however it ends (heap results are freed).
  struct ClearOnExit {
    std::vector<Tensor>& values;
    ~ClearOnExit() { values.assign(values.size(), Tensor{}); }
  } clearOnExit{values_};

  std::vector<TensorType> operandTypes;
  std::vector<OperandInfo> operandInfos;
  std::vector<const Tensor*> operandTensors;
  std::vector<TensorType> inferred;
  std::vector<Tensor*> resultPtrs;
  for (size_t opIndex = 0; opIndex < graph.ops().size(); ++opIndex) {
    const Op& op = graph.ops()[opIndex];
    if (executor_.isUpload_[opIndex]) continue;  // a weight on its device, uploaded once
    if (stepping && executor_.skipWhenStepping_[opIndex]) {
      // The KV cache is on the attention's device already: a past's transfer
      // passes the cache through; a present's has nothing to move.
      if (const Tensor* past = tensorOf(op.operands[0])) {
        values_[static_cast<size_t>(op.results[0])] = *past;
        present[static_cast<size_t>(op.results[0])] = true;
      }
      continue;
    }
    // Built only on failure: this loop is the hot path of every run.
    auto context = [&] { return opContext(graph, op); };

    size_t n = op.operands.size();
    operandTensors.assign(n, nullptr);
    for (size_t i = 0; i < n; ++i) {
      if (op.operands[i] == kNoValue) continue;
      const Tensor* t = tensorOf(op.operands[i]);
      if (!t) {  // the verifier rules this out; guard anyway
        return Status::error(context(), "operand ", registerRef(graph.value(op.operands[i]).name),
                             " has no value");
      }
      operandTensors[i] = t;
    }

    OpShapes& shapes = lastShapes_[opIndex];
    if (!reuseShapes || opReadsValues_[opIndex] != 0) {
      // Shapes on the concrete operands, checked against the declared types.
      operandTypes.assign(n, TensorType{});
      operandInfos.assign(n, OperandInfo{});
      for (size_t i = 0; i < n; ++i) {
        if (!operandTensors[i]) continue;
        operandTypes[i] = operandTensors[i]->type();
        // Inference may read a value only where the host can: in its memory,
        // or for a weight's upload the weight itself.
        const auto operand = static_cast<size_t>(op.operands[i]);
        const auto copy = hostShapeCopies_.find(op.operands[i]);
        const Tensor* readable = graph.deviceOf(op.operands[i]) == kHostDevice ? operandTensors[i]
                                 : copy != hostShapeCopies_.end()               ? &copy->second
                                                                                : executor_.uploadSource_[operand];
        operandInfos[i] = OperandInfo{&operandTypes[i], readable};
      }
      inferred.clear();
      int numResults = static_cast<int>(op.results.size());
      Status inferStatus = inferResultTypes(*op.def, op.attrs, operandInfos, numResults, inferred, &bindings);
      if (!inferStatus) return inferStatus.withContext(context());
      if (inferred.size() != op.results.size()) {
        return Status::error(context(), "inference gave ", inferred.size(), " result type(s) for ",
                             op.results.size(), " result(s)");
      }
      shapes.results.clear();
      for (size_t r = 0; r < op.results.size(); ++r) {
        const Value& result = graph.value(op.results[r]);
        std::optional<std::vector<int64_t>> dims = inferred[r].staticDims();
        if (!dims) {
          return Status::error(context(), "inference gave result ", registerRef(result.name),
                               " the non-concrete type ", inferred[r].str(), " on concrete operands");
        }
        if (inferred[r].dtype != result.type.dtype || !matchShape(result.type.shape, *dims, bindings)) {
          return Status::error(context(), "result ", registerRef(result.name), " is ",
                               concreteTypeStr(inferred[r].dtype, *dims), " but the graph declares ",
                               result.type.str(), bindingsNote(result.type, bindings));
        }
        shapes.results.push_back(std::move(*dims));
      }
      shapes.attrs = resolveDimAttributes(op.attrs, bindings);
      if (opReadsValues_[opIndex] < 0) {
        // Again without the values of computed operands (weights keep
        // theirs: they never change): other shapes, or none, mean it reads them.
        for (size_t i = 0; i < n; ++i)
          if (op.operands[i] != kNoValue && graph.value(op.operands[i]).kind != ValueKind::Weight)
            operandInfos[i].value = nullptr;
        std::vector<TensorType> shapeOnly;
        const bool same = inferResultTypes(*op.def, op.attrs, operandInfos, numResults, shapeOnly, &bindings).isOk() &&
                          shapeOnly.size() == op.results.size() &&
                          std::equal(shapeOnly.begin(), shapeOnly.end(), shapes.results.begin(),
                                     [](const TensorType& type, const std::vector<int64_t>& dims) {
                                       return type.staticDims() == dims;
                                     });
        opReadsValues_[opIndex] = same ? 0 : 1;
      }
    }
    Device* device = prepared.opDevice[opIndex];
    // A KV layer's attention in a step writes `out` only: present_k/present_v
    // are the session's cache, appended in place.
    const int32_t kvLayer = stepping ? executor_.kvLayerOfOp_[opIndex] : -1;
    resultPtrs.assign(kvLayer >= 0 ? 1 : op.results.size(), nullptr);
    for (size_t r = 0; r < op.results.size(); ++r) {
      const ValueId id = op.results[r];
      const DType dtype = graph.value(id).type.dtype;
      const std::vector<int64_t>& dims = shapes.results[r];
      if (r >= resultPtrs.size()) continue;  // in the KV cache
      // Into its slot: the bytes it views, its place in the arena, or (no
      // plan, or it outgrew the slot) memory of its own.
      Tensor& slot = values_[static_cast<size_t>(id)];
      const RegisterPlan* planned =
          prepared.plan.registers.empty() ? nullptr : &prepared.plan.registers[static_cast<size_t>(id)];
      const Tensor* viewed = planned && planned->kind == RegisterPlan::View ? operandTensors[0] : nullptr;
      const size_t bytes = bytesOf(dtype, dims);
      if (viewed && viewed->dtype() == dtype && viewed->byteSize() == bytes) {
        slot = viewed->reshaped(dims);
      } else if (planned && planned->kind == RegisterPlan::Arena && bytes <= planned->bytes &&
                 arenaOf[static_cast<size_t>(id)]) {
        const std::shared_ptr<void>& arena = *arenaOf[static_cast<size_t>(id)];
        slot = Tensor::view(dtype, dims, static_cast<char*>(arena.get()) + planned->offset,
                            arena);
      } else {
        // In the memory of the op's placement: a transfer to the host runs on
        // the source device but its result is host memory.
        Device* home = op.is(OpKind::Transfer) ? findDevice(op.placement()) : device;
        if (!home) return Status::error(context(), "no device '", op.placement(), "' to hold its result");
        Expected<Tensor> allocated = home->allocate(dtype, dims);
        if (!allocated) return allocated.status().withContext(context());
        slot = std::move(*allocated);
        ++stats.registersOffPlan;
      }
      present[static_cast<size_t>(id)] = true;
      resultPtrs[r] = &slot;
    }

    KvCacheBinding cacheBinding;
    if (kvLayer >= 0) {
      const KvCache& cache = kvCache_[static_cast<size_t>(kvLayer)];
      cacheBinding = KvCacheBinding{cache.keys.data(), cache.values.data(), kvCapacity_, kvLength_};
    }
    const auto kernelStart = opNanos_.empty() ? std::chrono::steady_clock::time_point{}
                                              : std::chrono::steady_clock::now();
    Status ran = device->run(*op.def, shapes.attrs ? *shapes.attrs : op.attrs, operandTensors, resultPtrs,
                             kvLayer >= 0 ? &cacheBinding : nullptr);
    if (!ran) return ran.withContext(context());
    if (op.is(OpKind::Transfer)) {
      ++stats.transfers;
      stats.transferBytes += operandTensors[0]->byteSize();
      keepHostShapeCopy(graph, op, *operandTensors[0]);
    }
    if (!opNanos_.empty()) {
      // An asynchronous device's time belongs to this op, not the next that waits.
      KILN_RETURN_IF_ERROR(device->synchronize().withContext(context()));
      opNanos_[opIndex] += std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now() - kernelStart)
                               .count();
    }

    for (ValueId dead : executor_.releaseAfter_[opIndex]) {
      values_[static_cast<size_t>(dead)] = Tensor{};
      present[static_cast<size_t>(dead)] = false;
    }
  }

  std::vector<Tensor> outputs;
  outputs.reserve(graph.outputs().size());
  for (ValueId out : graph.outputs()) {
    if (stepping && executor_.kvPresent_[static_cast<size_t>(out)]) continue;  // in the KV cache
    const Tensor* t = tensorOf(out);
    if (!t) return Status::error("output ", registerRef(graph.value(out).name), " was not computed");
    bool aliasesInput = false;
    for (const Tensor& input : inputs)
      aliasesInput = aliasesInput || overlaps(t->data(), t->byteSize(), input.data(), input.byteSize());
    outputs.push_back(aliasesInput ? t->clone() : *t);
  }
  stats_ = stats;
  lastShapesValid_ = true;
  return outputs;
}

}  // namespace kiln::rt
