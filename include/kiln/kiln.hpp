// A thin header-only C++ wrapper over the C API (kiln.h): RAII Model and
// Session; failures throw kiln::api::Error carrying the kiln_status and the
// message of kiln_last_error(). Needs C++20 (std::span).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/kiln.h"

namespace kiln::api {

class Error : public std::runtime_error {
 public:
  Error(kiln_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  kiln_status status() const noexcept { return status_; }

 private:
  kiln_status status_;
};

namespace detail {
inline void check(kiln_status status) {
  if (status != KILN_OK) throw Error(status, kiln_last_error());
}
}  // namespace detail

// The kiln_dtype of a C++ element type (16-bit floats have none: use the
// dtype directly with raw uint16_t storage).
template <class T> constexpr kiln_dtype dtypeOf();
template <> constexpr kiln_dtype dtypeOf<float>() { return KILN_DTYPE_F32; }
template <> constexpr kiln_dtype dtypeOf<double>() { return KILN_DTYPE_F64; }
template <> constexpr kiln_dtype dtypeOf<int64_t>() { return KILN_DTYPE_I64; }
template <> constexpr kiln_dtype dtypeOf<int32_t>() { return KILN_DTYPE_I32; }
template <> constexpr kiln_dtype dtypeOf<int8_t>() { return KILN_DTYPE_I8; }
template <> constexpr kiln_dtype dtypeOf<uint8_t>() { return KILN_DTYPE_U8; }
template <> constexpr kiln_dtype dtypeOf<bool>() { return KILN_DTYPE_BOOL; }

// An input or output as the model declares it.
struct ValueInfo {
  std::string name;
  kiln_dtype dtype = KILN_DTYPE_F32;
  std::vector<int64_t> dims;           // -1 where not static
  std::vector<std::string> dimNames;   // "" where static, else "batch", "seq + past", "?"

  explicit ValueInfo(const kiln_value_info& info) : name(info.name), dtype(info.dtype) {
    for (size_t i = 0; i < info.rank; ++i) {
      dims.push_back(info.dims[i]);
      dimNames.emplace_back(info.dim_names[i] ? info.dim_names[i] : "");
    }
  }
};

// A named input; the data is borrowed for the duration of Session::run.
struct Input {
  std::string name;
  kiln_dtype dtype = KILN_DTYPE_F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;

  template <class T>
  static Input of(std::string name, std::vector<int64_t> shape, const T* data) {
    return Input{std::move(name), dtypeOf<T>(), std::move(shape), data};
  }
};

// An output view: valid until the session's next run or destruction.
class Output {
 public:
  explicit Output(const kiln_tensor& tensor) : tensor_(tensor) {}
  std::string_view name() const { return tensor_.name; }
  kiln_dtype dtype() const { return tensor_.dtype; }
  std::span<const int64_t> shape() const { return {tensor_.shape, tensor_.rank}; }
  size_t numElements() const {
    size_t n = 1;
    for (int64_t d : shape()) n *= static_cast<size_t>(d);
    return n;
  }
  const void* data() const { return tensor_.data; }
  // The elements as T; throws when T is not the output's dtype.
  template <class T>
  std::span<const T> values() const {
    if (dtypeOf<T>() != tensor_.dtype)
      throw Error(KILN_ERROR_INVALID_ARGUMENT,
                  std::string("output '") + tensor_.name + "' is " + kiln_dtype_name(tensor_.dtype) +
                      ", not " + kiln_dtype_name(dtypeOf<T>()));
    return {static_cast<const T*>(tensor_.data), numElements()};
  }

 private:
  kiln_tensor tensor_;
};

class Model {
 public:
  explicit Model(const std::string& path) {
    kiln_model* model = nullptr;
    detail::check(kiln_model_load(path.c_str(), &model));
    model_.reset(model);
  }

  size_t numInputs() const { return kiln_model_num_inputs(get()); }
  size_t numOutputs() const { return kiln_model_num_outputs(get()); }
  ValueInfo input(size_t index) const {
    kiln_value_info info;
    detail::check(kiln_model_input(get(), index, &info));
    return ValueInfo(info);
  }
  ValueInfo output(size_t index) const {
    kiln_value_info info;
    detail::check(kiln_model_output(get(), index, &info));
    return ValueInfo(info);
  }
  std::vector<ValueInfo> inputs() const {
    std::vector<ValueInfo> all;
    for (size_t i = 0; i < numInputs(); ++i) all.push_back(input(i));
    return all;
  }
  std::vector<ValueInfo> outputs() const {
    std::vector<ValueInfo> all;
    for (size_t i = 0; i < numOutputs(); ++i) all.push_back(output(i));
    return all;
  }
  // A decoder's KV pairs, (past input, present output) names; empty when
  // the model cannot be stepped.
  std::vector<std::pair<std::string, std::string>> kvPairs() const {
    std::vector<std::pair<std::string, std::string>> pairs;
    for (size_t i = 0; i < kiln_model_num_kv_pairs(get()); ++i) {
      const char *input = nullptr, *output = nullptr;
      detail::check(kiln_model_kv_pair(get(), i, &input, &output));
      pairs.emplace_back(input, output);
    }
    return pairs;
  }

  kiln_model* get() const { return model_.get(); }

 private:
  struct Free {
    void operator()(kiln_model* m) const { kiln_model_free(m); }
  };
  std::unique_ptr<kiln_model, Free> model_;
};

struct SessionOptions {
  int64_t kvCapacity = 0;  // tokens the KV cache of step() holds; 0: the model's default
};

// A session keeps its model's data alive; the Model object may go first.
class Session {
 public:
  explicit Session(const Model& model, const SessionOptions& options = {})
      : numOutputs_(model.numOutputs()),
        numStepOutputs_(model.numOutputs() - kiln_model_num_kv_pairs(model.get())) {
    kiln_session_options c{};
    c.struct_size = sizeof(c);
    c.kv_capacity = options.kvCapacity;
    kiln_session* session = nullptr;
    detail::check(kiln_session_create(model.get(), &c, &session));
    session_.reset(session);
  }

  // Outputs in graph order; they stay valid until the next run.
  std::vector<Output> run(const std::vector<Input>& inputs) {
    std::vector<kiln_tensor> in = toTensors(inputs);
    std::vector<kiln_tensor> out(numOutputs_);
    detail::check(kiln_session_run(session_.get(), in.data(), in.size(), out.data(), out.size()));
    return std::vector<Output>(out.begin(), out.end());
  }

  // One decoder step on the session's KV cache (kiln_session_step): every
  // input but the past KV ones; outputs but the present KV ones, in graph
  // order, valid until the next run or step. A full cache throws an Error
  // with status KILN_ERROR_KV_CACHE_FULL, the cache unchanged.
  std::vector<Output> step(const std::vector<Input>& inputs) {
    std::vector<kiln_tensor> in = toTensors(inputs);
    std::vector<kiln_tensor> out(numStepOutputs_);
    detail::check(kiln_session_step(session_.get(), in.data(), in.size(), out.data(), out.size()));
    return std::vector<Output>(out.begin(), out.end());
  }
  void reset() { detail::check(kiln_session_reset(session_.get())); }
  int64_t kvLength() const { return kiln_session_kv_length(session_.get()); }
  int64_t kvCapacity() const { return kiln_session_kv_capacity(session_.get()); }

  kiln_session* get() const { return session_.get(); }

 private:
  struct Free {
    void operator()(kiln_session* s) const { kiln_session_free(s); }
  };
  static std::vector<kiln_tensor> toTensors(const std::vector<Input>& inputs) {
    std::vector<kiln_tensor> tensors;
    for (const Input& input : inputs)
      tensors.push_back(
          kiln_tensor{input.name.c_str(), input.dtype, input.shape.size(), input.shape.data(), input.data});
    return tensors;
  }
  size_t numOutputs_, numStepOutputs_;
  std::unique_ptr<kiln_session, Free> session_;
};

}  // namespace kiln::api
