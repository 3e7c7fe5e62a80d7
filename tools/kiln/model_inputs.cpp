#include "tools/kiln/model_inputs.h"

#include <cctype>
#include <filesystem>
#include <random>

#include "frontend/onnx/tensor_proto.h"

namespace kiln::tools {

namespace fs = std::filesystem;

namespace {

std::string lowercase(const std::string& text) {
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

// The size a symbolic dim gets for random inputs unless --input-shape fixes
// it: 1 for batch-like names, 8 otherwise.
int64_t defaultSymbolValue(const std::string& symbol) {
  return lowercase(symbol).find("batch") != std::string::npos ? 1 : 8;
}

}  // namespace

std::string dataFile(const std::string& dir, const char* kind, size_t index) {
  return (fs::path(dir) / cat(kind, "_", index, ".pb")).string();
}

Expected<std::vector<Tensor>> readInputs(const Graph& graph, const std::string& dir) {
  if (!fs::is_directory(dir)) return Status::error("input dir '", dir, "' is not a directory");
  const size_t count = graph.inputs().size();
  std::vector<Tensor> inputs;
  for (size_t k = 0; k < count; ++k) {
    std::string path = dataFile(dir, "input", k);
    if (!fs::exists(path))
      return Status::error(path, ": not found; the model takes ", count, " input(s), as ",
                           "input_0.pb ... input_", count - 1, ".pb");
    Expected<Tensor> tensor = readTensorProtoFile(path);
    if (!tensor) return tensor.status();
    inputs.push_back(std::move(*tensor));
  }
  if (std::string extra = dataFile(dir, "input", count); fs::exists(extra))
    return Status::error(extra, ": the model takes only ", count, " input(s)");
  return inputs;
}

Expected<std::vector<Tensor>> randomInputs(const Graph& graph,
                                           const std::map<std::string, std::vector<Dim>>& given,
                                           uint64_t seed) {
  SymbolBindings bindings;
  for (const auto& [name, dims] : given) {
    std::optional<ValueId> id = graph.find(name);
    if (!id || graph.value(*id).kind != ValueKind::Input)
      return Status::error("--input-shape: the model has no input '", name, "'");
    const Shape& declared = graph.value(*id).type.shape;
    if (declared.size() != dims.size())
      return Status::error("--input-shape: input '", name, "' has rank ", declared.size(),
                           " (", graph.value(*id).type.str(), "), not ", dims.size());
    for (size_t i = 0; i < dims.size(); ++i) {
      if (!dims[i].isConstant())
        return Status::error("--input-shape needs integer dims for random inputs; '", name,
                             "' has ", dims[i].str());
      std::vector<std::string> symbols = declared[i].symbols();
      if (symbols.size() == 1 && declared[i] == Dim::symbol(symbols[0]))
        bindings.emplace(symbols[0], *dims[i].constant());
    }
  }

  std::mt19937_64 rng(seed);
  std::vector<Tensor> inputs;
  for (ValueId id : graph.inputs()) {
    const Value& input = graph.value(id);
    std::vector<int64_t> shape;
    if (auto it = given.find(input.name); it != given.end()) {
      for (const Dim& dim : it->second) shape.push_back(*dim.constant());
    } else {
      for (const Dim& dim : input.type.shape) {
        for (const std::string& symbol : dim.symbols())
          bindings.emplace(symbol, defaultSymbolValue(symbol));
        std::optional<int64_t> size = dim.substitute(bindings).constant();
        shape.push_back(size ? *size : 1);  // `?` dims: 1 unless --input-shape says
      }
    }
    const bool isMask = lowercase(input.name).find("mask") != std::string::npos;
    Tensor tensor = Tensor::allocate(input.type.dtype, shape);
    visitDType(input.type.dtype, [&](auto tag) {
      using T = decltype(tag);
      T* data = tensor.data<T>();
      std::uniform_real_distribution<double> real(-1.0, 1.0);
      std::uniform_int_distribution<int> bit(0, 1);
      for (int64_t i = 0; i < tensor.numElements(); ++i) {
        double value = isFloat(input.type.dtype) ? real(rng) : isMask ? 1.0 : bit(rng);
        data[i] = storeFromDouble<T>(value);
      }
    });
    inputs.push_back(std::move(tensor));
  }
  return inputs;
}

}  // namespace kiln::tools
