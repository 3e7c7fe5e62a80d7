// The C API over the artifact loader and the executor. Every entry point
// catches exceptions (allocation failures) so none crosses into C.
#include <cstddef>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "runtime/artifact.h"
#include "runtime/executor.h"

namespace {

using kiln::DType;
using kiln::Status;

// kiln_dtype shares DType's numbering.
static_assert(static_cast<int>(DType::F32) == KILN_DTYPE_F32 &&
              static_cast<int>(DType::F16) == KILN_DTYPE_F16 &&
              static_cast<int>(DType::BF16) == KILN_DTYPE_BF16 &&
              static_cast<int>(DType::F64) == KILN_DTYPE_F64 &&
              static_cast<int>(DType::I64) == KILN_DTYPE_I64 &&
              static_cast<int>(DType::I32) == KILN_DTYPE_I32 &&
              static_cast<int>(DType::I8) == KILN_DTYPE_I8 && static_cast<int>(DType::U8) == KILN_DTYPE_U8 &&
              static_cast<int>(DType::Bool) == KILN_DTYPE_BOOL);

bool validDType(kiln_dtype dtype) { return dtype >= KILN_DTYPE_F32 && dtype <= KILN_DTYPE_BOOL; }
DType toDType(kiln_dtype dtype) { return static_cast<DType>(dtype); }
kiln_dtype toCDType(DType dtype) { return static_cast<kiln_dtype>(dtype); }

thread_local std::string lastError;

kiln_status fail(kiln_status status, const std::string& message) {
  lastError = message;
  return status;
}

// Runs `body` (returning kiln_status), turning exceptions into statuses.
template <class Body>
kiln_status guarded(Body&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(KILN_ERROR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(KILN_ERROR_INTERNAL, kiln::cat("internal error: ", e.what()));
  } catch (...) {
    return fail(KILN_ERROR_INTERNAL, "internal error");
  }
}

// An input or output as the C API shows it; owns the strings it points to.
struct ValueDescription {
  std::string name;
  kiln_dtype dtype = KILN_DTYPE_F32;
  std::vector<int64_t> dims;
  std::vector<std::string> dimTexts;
  std::vector<const char*> dimNames;

  explicit ValueDescription(const kiln::Value& value) : name(value.name), dtype(toCDType(value.type.dtype)) {
    for (const kiln::Dim& d : value.type.shape) {
      std::optional<int64_t> constant = d.constant();
      dims.push_back(constant ? *constant : -1);
      dimTexts.push_back(constant ? std::string() : d.str());
    }
    for (size_t i = 0; i < dims.size(); ++i) dimNames.push_back(dims[i] >= 0 ? nullptr : dimTexts[i].c_str());
  }
  ValueDescription(const ValueDescription&) = delete;  // dimNames points into dimTexts

  void fill(kiln_value_info* out) const {
    out->name = name.c_str();
    out->dtype = dtype;
    out->rank = dims.size();
    out->dims = dims.data();
    out->dim_names = dimNames.data();
  }
};

// The shared, immutable part of a model: the loaded artifact, its executor
// (the graph, the memory plan and the plans made for runs beyond its
// bounds; safe to use from several sessions at once) and the descriptions
// handed out by kiln_model_input/output.
struct ModelState {
  kiln::rt::Artifact artifact;
  std::unique_ptr<kiln::rt::Executor> executor;
  std::vector<std::unique_ptr<ValueDescription>> inputs, outputs;
  // 0, 1, ...: the inputs kiln_session_run takes and the outputs it gives.
  std::vector<size_t> inputPositions, outputPositions;
  std::vector<std::pair<const char*, const char*>> kvPairs;  // (past input, present output) names
};

kiln_status describeValue(const ModelState* model, size_t index, kiln_value_info* out, bool input) {
  const char* what = input ? "input" : "output";
  if (!model || !out)
    return fail(KILN_ERROR_INVALID_ARGUMENT,
                kiln::cat("kiln_model_", what, ": model and out must not be NULL"));
  const auto& list = input ? model->inputs : model->outputs;
  if (index >= list.size())
    return fail(KILN_ERROR_INVALID_ARGUMENT,
                kiln::cat(what, " index ", index, " is out of range: the model has ", list.size()));
  list[index]->fill(out);
  return KILN_OK;
}

// Matches the caller's named tensors to the graph inputs at `accepted`
// (positions among the model's inputs); `bound` gets one tensor per
// accepted position, in its order. `refused` explains an input that exists
// but is not accepted here.
kiln_status bindNamedInputs(const ModelState& model, const std::vector<size_t>& accepted,
                            const kiln_tensor* inputs, size_t n_inputs, const char* refused,
                            std::vector<kiln::Tensor>& bound) {
  bound.assign(accepted.size(), kiln::Tensor{});
  std::vector<bool> given(accepted.size(), false);
  for (size_t i = 0; i < n_inputs; ++i) {
    const kiln_tensor& t = inputs[i];
    if (!t.name) return fail(KILN_ERROR_INVALID_ARGUMENT, kiln::cat("input ", i, " has no name"));
    size_t slot = 0;
    while (slot < accepted.size() && model.inputs[accepted[slot]]->name != t.name) ++slot;
    if (slot == accepted.size()) {
      for (const auto& d : model.inputs)
        if (d->name == t.name)
          return fail(KILN_ERROR_INVALID_ARGUMENT, kiln::cat("input '", t.name, "' ", refused));
      std::string names;
      for (size_t position : accepted)
        names += kiln::cat(names.empty() ? "" : ", ", "'", model.inputs[position]->name, "'");
      return fail(KILN_ERROR_INVALID_ARGUMENT,
                  kiln::cat("unknown input '", t.name, "'; the model's inputs are ", names));
    }
    if (given[slot]) return fail(KILN_ERROR_INVALID_ARGUMENT, kiln::cat("input '", t.name, "' is given twice"));
    if (!validDType(t.dtype))
      return fail(KILN_ERROR_INVALID_ARGUMENT,
                  kiln::cat("input '", t.name, "' has invalid dtype ", static_cast<int>(t.dtype)));
    if (t.rank && !t.shape)
      return fail(KILN_ERROR_INVALID_ARGUMENT,
                  kiln::cat("input '", t.name, "' has rank ", t.rank, " but no shape"));
    std::vector<int64_t> shape(t.shape, t.shape + t.rank);
    // Guard the byte count, so a wild shape cannot make a view past the buffer.
    uint64_t bytes = kiln::dtypeSize(toDType(t.dtype));
    for (int64_t d : shape) {
      if (d < 0 || (d && bytes > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d)))
        return fail(KILN_ERROR_INVALID_ARGUMENT,
                    kiln::cat("input '", t.name, "' has invalid shape ", kiln::shapeStr(shape)));
      bytes *= static_cast<uint64_t>(d);
    }
    if (bytes && !t.data)
      return fail(KILN_ERROR_INVALID_ARGUMENT, kiln::cat("input '", t.name, "' has no data"));
    // Kernels never write their inputs, so viewing const data is safe.
    bound[slot] = kiln::Tensor::view(toDType(t.dtype), std::move(shape), const_cast<void*>(t.data));
    given[slot] = true;
  }
  for (size_t slot = 0; slot < given.size(); ++slot) {
    if (!given[slot])
      return fail(KILN_ERROR_INVALID_ARGUMENT,
                  kiln::cat("missing input '", model.inputs[accepted[slot]]->name, "'"));
  }
  return KILN_OK;
}

// Describes `results` (outputs of the graph outputs at `positions`) to the caller.
void fillOutputs(const ModelState& model, const std::vector<kiln::Tensor>& results,
                 const std::vector<size_t>& positions, kiln_tensor* outputs) {
  for (size_t i = 0; i < positions.size(); ++i) {
    const kiln::Tensor& t = results[i];
    outputs[i].name = model.outputs[positions[i]]->name.c_str();
    outputs[i].dtype = toCDType(t.dtype());
    outputs[i].rank = t.rank();
    outputs[i].shape = t.shape().data();
    outputs[i].data = t.data();
  }
}

}  // namespace

struct kiln_model {
  std::shared_ptr<const ModelState> state;
};

struct kiln_session {
  std::shared_ptr<const ModelState> model;
  kiln::rt::Session session;          // this session's arena
  std::vector<kiln::Tensor> outputs;  // of the last run: views into the arena
};

extern "C" {

const char* kiln_last_error(void) { return lastError.c_str(); }

const char* kiln_dtype_name(kiln_dtype dtype) {
  static const char* const kNames[] = {"f32", "f16", "bf16", "f64", "i64", "i32", "i8", "u8", "bool"};
  return validDType(dtype) ? kNames[dtype] : "invalid";
}

size_t kiln_dtype_size(kiln_dtype dtype) { return validDType(dtype) ? kiln::dtypeSize(toDType(dtype)) : 0; }

kiln_status kiln_model_load(const char* path, kiln_model** out) {
  return guarded([&] {
    if (!path || !out)
      return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_model_load: path and out must not be NULL");
    *out = nullptr;
    kiln::rt::LoadFailure failure = kiln::rt::LoadFailure::None;
    kiln::Expected<kiln::rt::Artifact> loaded = kiln::rt::loadArtifact(path, &failure);
    if (!loaded) {
      return fail(failure == kiln::rt::LoadFailure::Io ? KILN_ERROR_IO : KILN_ERROR_INVALID_ARTIFACT,
                  loaded.status().message());
    }
    auto state = std::make_shared<ModelState>();
    state->artifact = std::move(loaded.value());
    const kiln::Graph& graph = state->artifact.graph;
    auto executor = kiln::rt::createExecutor(state->artifact);
    if (!executor) return fail(KILN_ERROR_INVALID_ARTIFACT, executor.status().message());
    state->executor = std::move(executor.value());
    for (kiln::ValueId id : graph.inputs())
      state->inputs.push_back(std::make_unique<ValueDescription>(graph.value(id)));
    for (kiln::ValueId id : graph.outputs())
      state->outputs.push_back(std::make_unique<ValueDescription>(graph.value(id)));
    for (size_t i = 0; i < state->inputs.size(); ++i) state->inputPositions.push_back(i);
    for (size_t i = 0; i < state->outputs.size(); ++i) state->outputPositions.push_back(i);
    for (const kiln::rt::KvLayer& layer : state->executor->kvLayers())
      for (size_t part = 0; part < layer.parts(); ++part)
        state->kvPairs.emplace_back(state->inputs[layer.pastInput(part)]->name.c_str(),
                                    state->outputs[layer.presentOutput(part)]->name.c_str());
    *out = new kiln_model{std::move(state)};
    return KILN_OK;
  });
}

void kiln_model_free(kiln_model* model) { delete model; }

size_t kiln_model_num_inputs(const kiln_model* model) { return model ? model->state->inputs.size() : 0; }

size_t kiln_model_num_outputs(const kiln_model* model) { return model ? model->state->outputs.size() : 0; }

kiln_status kiln_model_input(const kiln_model* model, size_t index, kiln_value_info* out) {
  return describeValue(model ? model->state.get() : nullptr, index, out, true);
}

kiln_status kiln_model_output(const kiln_model* model, size_t index, kiln_value_info* out) {
  return describeValue(model ? model->state.get() : nullptr, index, out, false);
}

size_t kiln_model_num_kv_pairs(const kiln_model* model) { return model ? model->state->kvPairs.size() : 0; }

kiln_status kiln_model_kv_pair(const kiln_model* model, size_t index, const char** input_name,
                               const char** output_name) {
  if (!model || !input_name || !output_name)
    return fail(KILN_ERROR_INVALID_ARGUMENT,
                "kiln_model_kv_pair: model, input_name and output_name must not be NULL");
  const auto& pairs = model->state->kvPairs;
  if (index >= pairs.size())
    return fail(KILN_ERROR_INVALID_ARGUMENT,
                kiln::cat("KV pair index ", index, " is out of range: the model has ", pairs.size()));
  *input_name = pairs[index].first;
  *output_name = pairs[index].second;
  return KILN_OK;
}

kiln_status kiln_session_create(const kiln_model* model, const kiln_session_options* options,
                                kiln_session** out) {
  return guarded([&] {
    if (!model || !out)
      return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_session_create: model and out must not be NULL");
    *out = nullptr;
    if (options && (options->struct_size == 0 || options->struct_size > sizeof(kiln_session_options)))
      return fail(KILN_ERROR_INVALID_ARGUMENT,
                  kiln::cat("kiln_session_create: options->struct_size is ", options->struct_size,
                            "; set it to sizeof(kiln_session_options)"));
    kiln::rt::SessionOptions sessionOptions;
    // Fields past struct_size (an older caller's struct) keep their defaults.
    if (options && options->struct_size >= offsetof(kiln_session_options, kv_capacity) + sizeof(int64_t)) {
      if (options->kv_capacity < 0)
        return fail(KILN_ERROR_INVALID_ARGUMENT,
                    kiln::cat("kiln_session_create: options->kv_capacity is ", options->kv_capacity,
                              "; it must be >= 0 (0: the default)"));
      sessionOptions.kvCapacity = options->kv_capacity;
    }
    *out = new kiln_session{model->state, kiln::rt::Session(*model->state->executor, sessionOptions), {}};
    return KILN_OK;
  });
}

void kiln_session_free(kiln_session* session) { delete session; }

kiln_status kiln_session_run(kiln_session* session, const kiln_tensor* inputs, size_t n_inputs,
                             kiln_tensor* outputs, size_t n_outputs) {
  return guarded([&] {
    if (!session) return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_session_run: session is NULL");
    if ((n_inputs && !inputs) || (n_outputs && !outputs))
      return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_session_run: inputs or outputs is NULL");
    const ModelState& model = *session->model;
    if (n_outputs != model.outputs.size())
      return fail(KILN_ERROR_INVALID_ARGUMENT,
                  kiln::cat("kiln_session_run: the model has ", model.outputs.size(),
                            " output(s), got room for ", n_outputs));

    std::vector<kiln::Tensor> bound;
    if (kiln_status matched = bindNamedInputs(model, model.inputPositions, inputs, n_inputs, "", bound);
        matched != KILN_OK)
      return matched;
    auto checked = model.executor->bindInputs(bound);
    if (!checked) return fail(KILN_ERROR_INVALID_ARGUMENT, checked.status().message());
    // The outputs live in the session's arena (an output that is an input,
    // or a view of one, is copied there), so none aliases the caller's buffers.
    auto results = session->session.run(bound);
    if (!results) return fail(KILN_ERROR_RUN, results.status().message());
    session->outputs = std::move(results.value());
    fillOutputs(model, session->outputs, model.outputPositions, outputs);
    return KILN_OK;
  });
}

kiln_status kiln_session_step(kiln_session* session, const kiln_tensor* inputs, size_t n_inputs,
                              kiln_tensor* outputs, size_t n_outputs) {
  return guarded([&] {
    if (!session) return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_session_step: session is NULL");
    if ((n_inputs && !inputs) || (n_outputs && !outputs))
      return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_session_step: inputs or outputs is NULL");
    const ModelState& model = *session->model;
    const kiln::rt::Executor& executor = *model.executor;
    if (kiln::Status recorded = executor.checkKvLayersRecorded(); !recorded)
      return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_session_step: " + recorded.message());
    if (executor.kvLayers().empty())
      return fail(KILN_ERROR_INVALID_ARGUMENT,
                  "kiln_session_step: the model has no KV pairs (an attention op whose past keys and values "
                  "are model inputs and whose present ones are model outputs); use kiln_session_run");
    const std::vector<size_t>& stepOutputs = executor.stepOutputs();
    if (n_outputs != stepOutputs.size())
      return fail(KILN_ERROR_INVALID_ARGUMENT,
                  kiln::cat("kiln_session_step: a step has ", stepOutputs.size(),
                            " output(s) (the model's outputs but its KV pairs' present ones), got room for ",
                            n_outputs));
    std::vector<kiln::Tensor> bound;
    if (kiln_status matched = bindNamedInputs(model, executor.stepInputs(), inputs, n_inputs,
                                              "is a KV pair's past input: a step reads it from the session's "
                                              "KV cache",
                                              bound);
        matched != KILN_OK)
      return matched;
    using Failure = kiln::rt::Session::StepFailure;
    Failure failure = Failure::None;
    auto results = session->session.step(bound, &failure);
    if (!results) {
      const kiln_status status = failure == Failure::CacheFull ? KILN_ERROR_KV_CACHE_FULL
                                 : failure == Failure::Inputs  ? KILN_ERROR_INVALID_ARGUMENT
                                                               : KILN_ERROR_RUN;
      return fail(status, results.status().message());
    }
    session->outputs = std::move(results.value());
    fillOutputs(model, session->outputs, stepOutputs, outputs);
    return KILN_OK;
  });
}

kiln_status kiln_session_reset(kiln_session* session) {
  if (!session) return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_session_reset: session is NULL");
  session->session.resetKv();
  return KILN_OK;
}

int64_t kiln_session_kv_length(const kiln_session* session) {
  return session ? session->session.kvLength() : 0;
}

int64_t kiln_session_kv_capacity(const kiln_session* session) {
  return session ? session->session.kvCapacity() : 0;
}

}  // extern "C"
