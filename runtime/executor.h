// Runs a verified graph by its memory plan. An Executor is the model-level
// program: the graph, its memory plan and the device of every op, shared
// read-only by any number of Sessions on any threads. A Session is one
// caller's state: an arena per memory space, reserved at the plan's size
// and never touched until a kernel writes it; each op result is a view into
// it at the register's planned offset, so a run allocates no tensor memory
// per op. Ops run in graph order: type inference on the concrete shapes (the
// registry's runtime shape function), a check against the declared types,
// then the device kernel writing straight into the result's slot.
//
// A run whose shapes make a register larger than its planned slot (symbols
// past the plan's bounds) runs under a plan made for exactly its symbol
// bindings; the Executor keeps the last few such plans (kPlanCacheSize), so
// memory follows the largest run seen and never grows without bound.
//
// A decoder (attention ops with past/present KV pairs, which the compiler
// records) can also be stepped: the Session keeps the KV cache in a buffer
// of its own and each step appends to it in place (docs/kv-cache.md).
// Design and guarantees: docs/runtime-api.md ("Inside the library").
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/dim.h"
#include "ir/graph.h"
#include "ir/status.h"
#include "ir/tensor.h"
#include "runtime/device.h"
#include "runtime/planning/memory_plan.h"

namespace kiln::rt {

// A memory plan with what running by it needs: each op's device, each
// memory space's arena size.
struct PreparedPlan {
  MemoryPlan plan;                // registers indexed by ValueId; none when unplanned
  std::vector<Device*> opDevice;  // per op: the device of its results
  std::map<std::string, size_t> arenaBytes;    // memory space -> the bytes its arena needs
  std::map<std::string, Device*> arenaDevice;  // memory space -> the device that reserves it
  // Set when the graph could not be planned (a dim known only at run time):
  // then `plan` is empty and every result gets memory of its own as it is
  // computed.
  std::string unplannedReason;
};

// Where a decoder layer's KV pair is: an attention op whose past_k/past_v
// operands are graph inputs and whose present_k/present_v results are graph
// outputs. The compiler finds them (compiler/kv_layers.h) and records them in
// the artifact; the runtime steps a decoder by that record.
// A latent_attention op caches one tensor, its latent rows: its site has no
// value input or output (kNoKvPart).
inline constexpr size_t kNoKvPart = SIZE_MAX;
struct KvLayerSite {
  size_t op = 0;                                        // the attention op's index
  size_t pastKeyInput = 0, pastValueInput = 0;          // positions among the graph inputs
  size_t presentKeyOutput = 0, presentValueOutput = 0;  // positions among the graph outputs
  bool operator==(const KvLayerSite&) const = default;
  // The cached tensors: keys and values, or the latent rows alone.
  size_t parts() const { return pastValueInput == kNoKvPart ? 1 : 2; }
  size_t pastInput(size_t part) const { return part == 0 ? pastKeyInput : pastValueInput; }
  size_t presentOutput(size_t part) const { return part == 0 ? presentKeyOutput : presentValueOutput; }
};

// Where an attention op's KV pair meets the graph: each past operand is a
// graph input or, when the op is placed on a device, a transfer of one; each
// present result is a graph output or transferred to one. `transfers` are
// those transfer ops (a step skips them: the cache is already on the
// attention's device). nullopt when the op has no such pair.
struct KvLayerEnds {
  ValueId pastKey = kNoValue, pastValue = kNoValue;        // graph inputs (no value: a latent layer)
  ValueId presentKey = kNoValue, presentValue = kNoValue;  // graph outputs
  std::vector<size_t> transfers;
};
std::optional<KvLayerEnds> kvLayerEnds(const Graph& graph, size_t op);

// A graph's KV layers as recorded; nullopt when nothing recorded them (an
// artifact older than format version 4): its executor runs statelessly only.
using KvLayerRecord = std::optional<std::vector<KvLayerSite>>;

// A KV layer with what its types say: static kv heads and head dims.
struct KvLayer : KvLayerSite {
  DType dtype = DType::F32;
  int64_t kvHeads = 0, headDim = 0, valueDim = 0;  // a latent layer: 1 head, the row width, no values
  int64_t width(size_t part) const { return part == 0 ? headDim : valueDim; }
  Dim batch;        // past_k's declared batch dim
  Dim totalLength;  // present_k's declared sequence dim: past + new tokens
};

// The layers at `sites` with their types, after checking each against the
// graph: an attention op whose past_k/past_v are the past inputs, read by
// nothing else and not returned, and whose present_k/present_v are the
// present outputs, read by nothing; rank 4 with static kv heads and head dims. An error says
// which site does not fit.
Expected<std::vector<KvLayer>> describeKvLayers(const Graph& graph, const std::vector<KvLayerSite>& sites);

class Executor {
 public:
  // How many plans made at run time (for bindings past the compiled
  // bounds) the executor keeps, least recently used first out.
  static constexpr size_t kPlanCacheSize = 4;

  // Verifies the graph, checks that every weight has data and every op a
  // kernel, and plans memory at the default bounds (planning.md). The graph
  // must outlive the executor and stay unchanged. `kvLayers` are the layers
  // step() appends to (describeKvLayers checks them); none by default.
  static Expected<std::unique_ptr<Executor>> create(const Graph& graph,
                                                    KvLayerRecord kvLayers = std::vector<KvLayerSite>{});
  // The same with a plan made earlier (an artifact's); it must be a plan of
  // this graph: every register in a memory a known device has.
  static Expected<std::unique_ptr<Executor>> create(const Graph& graph, MemoryPlan plan,
                                                    KvLayerRecord kvLayers = std::vector<KvLayerSite>{});
  // The same over a graph it owns (one made at load: runtime/host_fallback.h).
  static Expected<std::unique_ptr<Executor>> createOwning(std::shared_ptr<const Graph> graph,
                                                          KvLayerRecord kvLayers);
  ~Executor();  // the devices forget the weights it lent them

  // Inputs in graph input order; outputs in graph output order. Each input's
  // dtype, rank and static dims must match the graph input type; symbolic
  // dims are bound from the inputs and must agree across them. Runs in a
  // fresh Session; the outputs keep its arena alive. Safe to call from
  // several threads at once.
  Expected<std::vector<Tensor>> run(const std::vector<Tensor>& inputs) const;

  // The input checks of run() alone: the symbol bindings the inputs imply,
  // or the error run() would give for them.
  Expected<SymbolBindings> bindInputs(const std::vector<Tensor>& inputs) const;

  const Graph& graph() const { return graph_; }
  // The plan runs within its bounds use; empty when the graph could not be
  // planned, and unplannedReason() says why.
  const MemoryPlan& plan() const { return compiled_->plan; }
  bool planned() const { return compiled_->unplannedReason.empty(); }
  const std::string& unplannedReason() const { return compiled_->unplannedReason; }

  // The plan for a run with these bindings: the compiled one when every
  // register fits its slot, else one planned for exactly these bindings
  // (cached). `replanned` says which.
  // `stepping`: for a stateful step, whose present_k/present_v results live
  // in the session's KV cache and need no slot.
  Expected<std::shared_ptr<const PreparedPlan>> planFor(const SymbolBindings& bindings,
                                                        bool* replanned = nullptr, bool stepping = false) const;

  // The decoder's KV layers in graph order; empty when the graph has no
  // past/present pairs, or none were recorded (then Session::step refuses it).
  const std::vector<KvLayer>& kvLayers() const { return kvLayers_; }
  // An error, saying to recompile, for a graph whose KV layers nothing
  // recorded (kvLayers() is then empty whatever the graph holds): what
  // stepping it fails with.
  Status checkKvLayersRecorded() const;
  // The graph input positions a step takes (all but the past inputs) and
  // the graph output positions it returns (all but the present outputs).
  const std::vector<size_t>& stepInputs() const { return stepInputs_; }
  const std::vector<size_t>& stepOutputs() const { return stepOutputs_; }
  // The KV capacity a session gets unless its options say otherwise: the
  // total-length dim (past + new) at the plan's bounds; 0 without KV layers.
  int64_t defaultKvCapacity() const;

 private:
  friend class Session;
  Executor(const Graph& graph, std::shared_ptr<const PreparedPlan> compiled, std::vector<KvLayer> kvLayers,
           bool kvLayersRecorded);
  static Expected<std::unique_ptr<Executor>> withPlan(const Graph& graph, MemoryPlan plan,
                                                      std::vector<KvLayer> kvLayers, bool kvLayersRecorded);
  Expected<std::shared_ptr<const PreparedPlan>> prepare(MemoryPlan plan) const;
  bool fits(const PreparedPlan& prepared, const SymbolBindings& bindings, bool stepping) const;
  void lendWeights();  // once compiled_ is set
  // Runs each weight upload (a transfer of a weight: isWeightUpload) once,
  // into memory the executor keeps on the destination device.
  Status uploadWeights();

  const Graph& graph_;
  std::shared_ptr<const Graph> ownedGraph_;  // graph_'s, when the executor owns it (createOwning)
  std::shared_ptr<const PreparedPlan> compiled_;
  // For each op, the values whose last use it is: their tensors are dropped
  // after it runs (only memory outside the arena is freed by that).
  std::vector<std::vector<ValueId>> releaseAfter_;
  std::vector<KvLayer> kvLayers_;
  bool kvLayersRecorded_ = true;
  std::vector<int32_t> kvLayerOfOp_;  // per op: its index in kvLayers_, or -1
  // The devices the ops run on (each once) and the weights lent to them
  // (Device::adoptConstants) until the executor goes.
  std::vector<Device*> devices_;
  std::vector<Tensor> weights_;
  std::vector<std::pair<ValueId, Tensor>> uploaded_;  // each upload's result: the weight's copy on its device
  std::vector<const Tensor*> uploadSource_;  // per value: for an upload, the weight (host memory) it copies
  std::vector<bool> isUpload_;     // per op: a weight upload, done at creation, skipped by runs
  std::vector<bool> kvPresent_;       // per value: a present_k/present_v result of a KV layer
  std::vector<bool> skipWhenStepping_;  // per op: a transfer of a KV layer's past or present
  std::vector<size_t> stepInputs_, stepOutputs_;

  mutable std::mutex cacheMutex_;  // guards replans_
  mutable std::list<std::pair<SymbolBindings, std::shared_ptr<const PreparedPlan>>> replans_;
};

struct SessionOptions {
  // Tokens the KV cache of step() holds (past + new); 0: the executor's
  // defaultKvCapacity().
  int64_t kvCapacity = 0;
};

// One caller's state for running an Executor's program: the arenas, the
// tensors of the run in progress and a decoder's KV cache. A session is used
// by one thread at a time; sessions of one executor run concurrently. It
// must not outlive the executor.
class Session {
 public:
  explicit Session(const Executor& executor, SessionOptions options = {});

  // As Executor::run. The outputs are views into the session's arena (or
  // mapped weights): their contents are valid until the next run of this
  // session; an output that is a graph input, or a view of one, is copied,
  // so no output aliases the caller's buffers.
  Expected<std::vector<Tensor>> run(const std::vector<Tensor>& inputs);

  // What the last successful run used.
  struct RunStats {
    bool replanned = false;          // it ran under a plan made for its bindings
    size_t arenaBytes = 0;           // reserved, summed over memory spaces
    int64_t registersOffPlan = 0;    // results allocated outside the arena (no slot fitted them)
    // Values moved between devices by transfer ops (weights' uploads, made
    // once per executor, not counted).
    int64_t transfers = 0;
    size_t transferBytes = 0;
  };
  const RunStats& lastRun() const { return stats_; }

  // Per-op kernel time, summed over the runs and steps since profiling was
  // turned on (`kiln bench --profile`): nanoseconds by op index. Off by
  // default: the clock reads cost ~50 ns an op.
  void setProfiling(bool on) { opNanos_.assign(on ? executor_.graph_.ops().size() : 0, 0); }
  const std::vector<int64_t>& opNanoseconds() const { return opNanos_; }

  // One step of a decoder (docs/kv-cache.md). `inputs` are the graph inputs
  // at Executor::stepInputs(), in that order (input_ids, ...); the outputs
  // are the graph outputs at stepOutputs() (logits, ...), valid until the
  // next run or step. The past keys and values are the cache's first
  // kvLength() rows, bound to the past inputs' sequence symbol; each
  // attention op appends the step's new rows to the cache in place and
  // attends over the cache, so nothing of the past is copied. On success
  // kvLength() grows by the step's new tokens. A step that does not fit
  // (no KV layers, bad inputs, a batch other than the cached one, or past +
  // new tokens beyond kvCapacity()) fails before running, with the cache and
  // kvLength() unchanged; an op failing mid-step leaves kvLength() unchanged
  // too (rows past it may have been written). `failure` says which kind of
  // error it was.
  enum class StepFailure { None, Inputs, CacheFull, Run };
  Expected<std::vector<Tensor>> step(const std::vector<Tensor>& inputs, StepFailure* failure = nullptr);
  // Forgets the cached tokens; the cache keeps its memory.
  void resetKv() { kvLength_ = 0; }
  // Keeps only the first `length` cached tokens (length <= kvLength()): a
  // rewind, as speculative decoding or a re-run of the last step needs.
  Status truncateKv(int64_t length);
  // Fills the cache with a past given as tensors, keys then values of each
  // layer of Executor::kvLayers() in order ([batch, kv_heads, past,
  // head_dim] each; a latent layer's rows alone, [batch, 1, past, width]),
  // replacing what it held; kvLength() becomes `past`.
  // Restores a saved conversation, and lets a benchmark time a step at a
  // chosen past length.
  Status loadKv(const std::vector<Tensor>& past);
  int64_t kvLength() const { return kvLength_; }
  int64_t kvCapacity() const { return kvCapacity_; }
  // Per KV layer: the cache, [batch, kv_heads, capacity, head_dim] each
  // (a latent layer's rows in keys, no values); empty until the first step
  // reserves it. It lives in the memory of the
  // attention's device: host memory unless placement put it elsewhere.
  struct KvCache {
    Tensor keys, values;
  };
  const std::vector<KvCache>& kvCache() const { return kvCache_; }

 private:
  Status reserveArenas(const PreparedPlan& prepared);
  Status reserveKvCache(int64_t batch);
  // `bytes` of host memory into the KV cache (on kvDevice_).
  Status copyIntoKvCache(void* to, const void* from, size_t bytes);
  // run() and step() after the input checks; `stepping` binds the KV cache
  // to the KV layers' attention ops and returns only the step outputs.
  Expected<std::vector<Tensor>> runProgram(const std::vector<Tensor>& inputs, SymbolBindings& bindings,
                                           bool stepping);
  // After `transfer` ran: keeps the host copy of a shape value it sent to a device.
  void keepHostShapeCopy(const Graph& graph, const Op& transfer, const Tensor& source);

  const Executor& executor_;
  std::map<std::string, std::shared_ptr<void>, std::less<>> arenas_;  // memory space -> block
  std::map<std::string, size_t, std::less<>> arenaSizes_;
  // The plan of the last run and the bindings (and mode) it was chosen for.
  SymbolBindings lastBindings_;
  bool lastStepping_ = false;
  std::shared_ptr<const PreparedPlan> lastPlan_;
  std::vector<Tensor> values_;  // by ValueId, during a run
  // During a run: for each shape value (isShapeValue) sent from host memory
  // to a device, its host copy, which inference reads.
  std::unordered_map<ValueId, Tensor> hostShapeCopies_;
  RunStats stats_;
  // Each op's concrete result shapes and dim-resolved attributes in the last
  // run. A run with the last run's bindings reuses them instead of inferring
  // again (inference is a third of a tiny model's run): with the same
  // bindings every input has the same shape, so every op whose result shapes
  // follow from its operands' shapes alone has the same results. Ops whose
  // inference reads operand values (a reshape to a computed shape) infer on
  // every run: opReadsValues_, found at an op's first inference (-1: not yet).
  struct OpShapes {
    std::vector<std::vector<int64_t>> results;
    std::optional<Attributes> attrs;  // set when the op has dim attributes
  };
  bool lastShapesValid_ = false;
  std::vector<OpShapes> lastShapes_;
  std::vector<int8_t> opReadsValues_;
  std::vector<int64_t> opNanos_;  // empty unless profiling
  // The KV cache of step(): one reserved block holding every layer's keys
  // and values for kvBatch_ sequences of kvCapacity_ tokens.
  int64_t kvCapacity_ = 0;
  int64_t kvLength_ = 0;
  int64_t kvBatch_ = 0;
  std::shared_ptr<void> kvBlock_;
  std::vector<KvCache> kvCache_;
  Device* kvDevice_ = nullptr;  // the device whose memory holds the cache
};

}  // namespace kiln::rt
