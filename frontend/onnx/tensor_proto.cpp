#include "frontend/onnx/tensor_proto.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "frontend/onnx/proto_io.h"

namespace kiln {

namespace {

using onnx::TensorProto;

// Element counts above this are refused before allocating, so a corrupt
// dims field cannot ask for petabytes.
constexpr int64_t kMaxElements = int64_t{1} << 40;

std::string tensorLabel(const TensorProto& proto) {
  return proto.name().empty() ? std::string("tensor") : cat("tensor '", proto.name(), "'");
}

Expected<std::vector<int64_t>> protoShape(const TensorProto& proto) {
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (int64_t d : proto.dims()) {
    if (d < 0) return Status::error(tensorLabel(proto), " has a negative dim ", d);
    if (d != 0 && count > kMaxElements / d) {
      return Status::error(tensorLabel(proto), " is too large (dims overflow)");
    }
    count *= d;
    shape.push_back(d);
  }
  return shape;
}

// One element of a typed field as storage type T. The 16-bit floats come
// as their bit patterns in int32_data.
template <class T, class Source>
T convertElement(Source v) {
  if constexpr (std::is_same_v<T, Source>) {
    return v;
  } else if constexpr (std::is_same_v<T, Half>) {
    return Half{static_cast<uint16_t>(v)};
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return BFloat16{static_cast<uint16_t>(v)};
  } else {
    return storeFromDouble<T>(static_cast<double>(v));
  }
}

// Copies `values` (a typed repeated field) into `out`.
template <class Field>
Status copyTypedField(const TensorProto& proto, const Field& values, Tensor& out,
                      const char* fieldName) {
  if (static_cast<int64_t>(values.size()) != out.numElements()) {
    return Status::error(tensorLabel(proto), ": ", fieldName, " has ", values.size(),
                         " elements, its dims ", shapeStr(out.shape()), " need ",
                         out.numElements());
  }
  visitDType(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* dst = out.data<T>();
    for (int i = 0; i < values.size(); ++i) dst[i] = convertElement<T>(values.Get(i));
  });
  return Status::ok();
}

Status readTypedFields(const TensorProto& proto, Tensor& out) {
  switch (proto.data_type()) {
    case TensorProto::FLOAT: return copyTypedField(proto, proto.float_data(), out, "float_data");
    case TensorProto::DOUBLE: return copyTypedField(proto, proto.double_data(), out, "double_data");
    case TensorProto::INT64: return copyTypedField(proto, proto.int64_data(), out, "int64_data");
    // Every narrower type lives in int32_data.
    default: return copyTypedField(proto, proto.int32_data(), out, "int32_data");
  }
}

// Bytes are little-endian in ONNX, as on every host kiln supports. A bool
// byte other than 0/1 is normalised, since a C++ bool may only hold those.
void copyRawBytes(const char* bytes, Tensor& out) {
  if (out.byteSize() == 0) return;
  std::memcpy(out.data(), bytes, out.byteSize());
  if (out.dtype() == DType::Bool) {
    auto* raw = static_cast<unsigned char*>(out.data());
    for (int64_t i = 0; i < out.numElements(); ++i) raw[i] = raw[i] != 0;
  }
}

// A location that stays inside the model's folder: relative, no "..".
Status checkExternalLocation(const TensorProto& proto, const std::string& location) {
  std::filesystem::path p(location);
  if (location.empty()) {
    return Status::error(tensorLabel(proto), ": external data has no location");
  }
  if (p.is_absolute()) {
    return Status::error(tensorLabel(proto), ": external data location '", location,
                         "' is absolute; it must be relative to the model's folder");
  }
  for (const auto& part : p) {
    if (part == "..") {
      return Status::error(tensorLabel(proto), ": external data location '", location,
                           "' leaves the model's folder");
    }
  }
  return Status::ok();
}

Expected<int64_t> parseExternalNumber(const TensorProto& proto, const std::string& key,
                                      const std::string& text) {
  int64_t value = 0;
  size_t used = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || value < 0) {
    return Status::error(tensorLabel(proto), ": external data ", key, " '", text,
                         "' is not a non-negative integer");
  }
  return value;
}

Status readExternalData(const TensorProto& proto, const std::string& baseDir, Tensor& out) {
  std::string location;
  int64_t offset = 0;
  std::optional<int64_t> length;
  for (const auto& entry : proto.external_data()) {
    if (entry.key() == "location") {
      location = entry.value();
    } else if (entry.key() == "offset") {
      Expected<int64_t> v = parseExternalNumber(proto, "offset", entry.value());
      if (!v) return v.status();
      offset = *v;
    } else if (entry.key() == "length") {
      Expected<int64_t> v = parseExternalNumber(proto, "length", entry.value());
      if (!v) return v.status();
      length = *v;
    }
    // "checksum" (SHA-1) is optional in ONNX and not verified here.
  }
  KILN_RETURN_IF_ERROR(checkExternalLocation(proto, location));
  const int64_t needed = static_cast<int64_t>(out.byteSize());
  if (length && *length != needed) {
    return Status::error(tensorLabel(proto), ": external data length ", *length,
                         " does not match its dims ", shapeStr(out.shape()), " x ",
                         dtypeName(out.dtype()), " (", needed, " bytes)");
  }
  const std::string path = (std::filesystem::path(baseDir) / location).string();
  std::error_code ec;
  const auto fileSize = std::filesystem::file_size(path, ec);
  if (ec) {
    return Status::error(tensorLabel(proto), ": cannot open external data file '", path,
                         "': ", ec.message());
  }
  if (offset + needed > static_cast<int64_t>(fileSize)) {
    return Status::error(tensorLabel(proto), ": external data file '", path, "' has ",
                         fileSize, " bytes; bytes [", offset, ", ", offset + needed,
                         ") are needed (truncated file?)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::error(tensorLabel(proto), ": cannot open external data file '", path,
                         "': ", std::strerror(errno));
  }
  std::string bytes(static_cast<size_t>(needed), '\0');
  in.seekg(offset);
  in.read(bytes.data(), needed);
  if (!in) {
    return Status::error(tensorLabel(proto), ": cannot read ", needed, " bytes at offset ",
                         offset, " of '", path, "'");
  }
  copyRawBytes(bytes.data(), out);
  return Status::ok();
}

}  // namespace

std::optional<DType> dtypeFromOnnx(int32_t onnxType) {
  switch (onnxType) {
    case TensorProto::FLOAT: return DType::F32;
    case TensorProto::FLOAT16: return DType::F16;
    case TensorProto::BFLOAT16: return DType::BF16;
    case TensorProto::DOUBLE: return DType::F64;
    case TensorProto::INT64: return DType::I64;
    case TensorProto::INT32: return DType::I32;
    case TensorProto::INT8: return DType::I8;
    case TensorProto::UINT8: return DType::U8;
    case TensorProto::BOOL: return DType::Bool;
    default: return std::nullopt;
  }
}

int32_t onnxTypeOf(DType dtype) {
  switch (dtype) {
    case DType::F32: return TensorProto::FLOAT;
    case DType::F16: return TensorProto::FLOAT16;
    case DType::BF16: return TensorProto::BFLOAT16;
    case DType::F64: return TensorProto::DOUBLE;
    case DType::I64: return TensorProto::INT64;
    case DType::I32: return TensorProto::INT32;
    case DType::I8: return TensorProto::INT8;
    case DType::U8: return TensorProto::UINT8;
    case DType::Bool: return TensorProto::BOOL;
  }
  return TensorProto::UNDEFINED;
}

std::string onnxTypeName(int32_t onnxType) {
  if (onnx::TensorProto_DataType_IsValid(onnxType)) {
    return onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(onnxType));
  }
  return cat("type ", onnxType);
}

Expected<Tensor> tensorFromProto(const TensorProto& proto, const std::string& baseDir) {
  std::optional<DType> dtype = dtypeFromOnnx(proto.data_type());
  if (!dtype) {
    return Status::error(tensorLabel(proto), ": unsupported dtype ",
                         onnxTypeName(proto.data_type()));
  }
  if (proto.has_segment()) {
    return Status::error(tensorLabel(proto), ": unsupported segmented tensor");
  }
  Expected<std::vector<int64_t>> shape = protoShape(proto);
  if (!shape) return shape.status();
  Tensor out = Tensor::allocate(*dtype, *shape);

  if (proto.data_location() == TensorProto::EXTERNAL) {
    KILN_RETURN_IF_ERROR(readExternalData(proto, baseDir, out));
  } else if (proto.has_raw_data()) {
    if (proto.raw_data().size() != out.byteSize()) {
      return Status::error(tensorLabel(proto), ": raw_data has ", proto.raw_data().size(),
                           " bytes, its dims ", shapeStr(out.shape()), " x ",
                           dtypeName(out.dtype()), " need ", out.byteSize(),
                           " (truncated file?)");
    }
    copyRawBytes(proto.raw_data().data(), out);
  } else {
    KILN_RETURN_IF_ERROR(readTypedFields(proto, out));
  }
  return out;
}

TensorProto tensorToProto(const Tensor& tensor, const std::string& name) {
  TensorProto proto;
  proto.set_name(name);
  proto.set_data_type(onnxTypeOf(tensor.dtype()));
  for (int64_t d : tensor.shape()) proto.add_dims(d);
  if (tensor.byteSize() != 0) {
    proto.set_raw_data(tensor.data(), tensor.byteSize());
  } else {
    proto.set_raw_data("");
  }
  return proto;
}

Expected<Tensor> readTensorProtoFile(const std::string& path) {
  TensorProto proto;
  KILN_RETURN_IF_ERROR(parseProtoFile(path, proto, "ONNX TensorProto"));
  Expected<Tensor> tensor = tensorFromProto(proto, parentDir(path));
  if (!tensor) return tensor.status().withContext(cat(path, ": "));
  return tensor;
}

Status writeTensorProtoFile(const Tensor& tensor, const std::string& name,
                            const std::string& path) {
  TensorProto proto = tensorToProto(tensor, name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Status::error("cannot create '", path, "': ", std::strerror(errno));
  if (!proto.SerializeToOstream(&out)) {
    return Status::error("cannot write '", path, "': ", std::strerror(errno));
  }
  out.close();
  if (!out) return Status::error("cannot write '", path, "': ", std::strerror(errno));
  return Status::ok();
}

}  // namespace kiln
