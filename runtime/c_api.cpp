// The C API over the artifact loader and the executor. Every entry point
// catches exceptions (allocation failures) so none crosses into C.
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
    *out = new kiln_session{model->state, kiln::rt::Session(*model->state->executor), {}};
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

    // Match the named inputs to graph input positions.
    std::vector<kiln::Tensor> bound(model.inputs.size());
    std::vector<bool> given(model.inputs.size(), false);
    for (size_t i = 0; i < n_inputs; ++i) {
      const kiln_tensor& t = inputs[i];
      if (!t.name) return fail(KILN_ERROR_INVALID_ARGUMENT, kiln::cat("input ", i, " has no name"));
      size_t position = 0;
      while (position < model.inputs.size() && model.inputs[position]->name != t.name) ++position;
      if (position == model.inputs.size()) {
        std::string names;
        for (const auto& d : model.inputs) names += kiln::cat(names.empty() ? "" : ", ", "'", d->name, "'");
        return fail(KILN_ERROR_INVALID_ARGUMENT,
                    kiln::cat("unknown input '", t.name, "'; the model's inputs are ", names));
      }
      if (given[position])
        return fail(KILN_ERROR_INVALID_ARGUMENT, kiln::cat("input '", t.name, "' is given twice"));
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
      bound[position] = kiln::Tensor::view(toDType(t.dtype), std::move(shape), const_cast<void*>(t.data));
      given[position] = true;
    }
    for (size_t position = 0; position < given.size(); ++position) {
      if (!given[position])
        return fail(KILN_ERROR_INVALID_ARGUMENT,
                    kiln::cat("missing input '", model.inputs[position]->name, "'"));
    }

    auto checked = model.executor->bindInputs(bound);
    if (!checked) return fail(KILN_ERROR_INVALID_ARGUMENT, checked.status().message());
    // The outputs live in the session's arena (an output that is an input,
    // or a view of one, is copied there), so none aliases the caller's buffers.
    auto results = session->session.run(bound);
    if (!results) return fail(KILN_ERROR_RUN, results.status().message());
    session->outputs = std::move(results.value());
    for (size_t i = 0; i < n_outputs; ++i) {
      const kiln::Tensor& t = session->outputs[i];
      outputs[i].name = model.outputs[i]->name.c_str();
      outputs[i].dtype = toCDType(t.dtype());
      outputs[i].rank = t.rank();
      outputs[i].shape = t.shape().data();
      outputs[i].data = t.data();
    }
    return KILN_OK;
  });
}

}  // extern "C"
