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

constexpr int64_t kMaxElements = int64_t{1} << 48;

std::string tensorLabel(const TensorProto& proto) {
  return proto.name().empty() ? std::string("tensor") : cat("tensor '", proto.name(), "'");
}

int64_t elementCount(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  return count;
}

// The dims, checked: none negative, and a product that cannot overflow when
// multiplied by an element size. Nothing is allocated until the data is
// known to be there, so a corrupt dims field cannot ask for petabytes.
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

// The typed field's elements as a tensor of `dtype` and `shape`, after
// checking that the field holds exactly that many.
template <class Field>
Expected<Tensor> fromTypedField(const TensorProto& proto, const Field& values, DType dtype,
                                const std::vector<int64_t>& shape, const char* fieldName) {
  const int64_t count = elementCount(shape);
  if (static_cast<int64_t>(values.size()) != count) {
    return Status::error(tensorLabel(proto), ": ", fieldName, " has ", values.size(),
                         " elements, its dims ", shapeStr(shape), " need ", count);
  }
  Tensor out = Tensor::allocate(dtype, shape);
  visitDType(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* dst = out.data<T>();
    for (int i = 0; i < values.size(); ++i) dst[i] = convertElement<T>(values.Get(i));
  });
  return out;
}

Expected<Tensor> fromTypedFields(const TensorProto& proto, DType dtype,
                                 const std::vector<int64_t>& shape) {
  switch (proto.data_type()) {
    case TensorProto::FLOAT:
      return fromTypedField(proto, proto.float_data(), dtype, shape, "float_data");
    case TensorProto::DOUBLE:
      return fromTypedField(proto, proto.double_data(), dtype, shape, "double_data");
    case TensorProto::INT64:
      return fromTypedField(proto, proto.int64_data(), dtype, shape, "int64_data");
    // Every narrower type lives in int32_data.
    default: return fromTypedField(proto, proto.int32_data(), dtype, shape, "int32_data");
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

// The checked dtype, dims and byte size of `proto`'s data.
struct TensorLayout {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int64_t bytes = 0;
};

Expected<TensorLayout> layoutOf(const TensorProto& proto) {
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
  const int64_t bytes = elementCount(*shape) * static_cast<int64_t>(dtypeSize(*dtype));
  return TensorLayout{*dtype, std::move(*shape), bytes};
}

Expected<ExternalDataRef> externalRef(const TensorProto& proto, const std::string& baseDir,
                                      const TensorLayout& layout) {
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
  if (length && *length != layout.bytes) {
    return Status::error(tensorLabel(proto), ": external data length ", *length,
                         " does not match its dims ", shapeStr(layout.shape), " x ", dtypeName(layout.dtype),
                         " (", layout.bytes, " bytes)");
  }
  return ExternalDataRef{(std::filesystem::path(baseDir) / location).string(), offset, layout.bytes};
}

Expected<Tensor> fromExternalData(const TensorProto& proto, const std::string& baseDir,
                                  const TensorLayout& layout) {
  Expected<ExternalDataRef> ref = externalRef(proto, baseDir, layout);
  if (!ref) return ref.status();
  std::error_code ec;
  const auto fileSize = std::filesystem::file_size(ref->path, ec);
  if (ec) {
    return Status::error(tensorLabel(proto), ": cannot open external data file '", ref->path,
                         "': ", ec.message());
  }
  KILN_RETURN_IF_ERROR(checkExternalRange(proto, *ref, fileSize));
  std::ifstream in(ref->path, std::ios::binary);
  if (!in) {
    return Status::error(tensorLabel(proto), ": cannot open external data file '", ref->path,
                         "': ", std::strerror(errno));
  }
  std::string bytes(static_cast<size_t>(ref->length), '\0');
  in.seekg(ref->offset);
  in.read(bytes.data(), ref->length);
  if (!in) {
    return Status::error(tensorLabel(proto), ": cannot read ", ref->length, " bytes at offset ",
                         ref->offset, " of '", ref->path, "'");
  }
  Tensor out = Tensor::allocate(layout.dtype, layout.shape);
  copyRawBytes(bytes.data(), out);
  return out;
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
  Expected<TensorLayout> layout = layoutOf(proto);
  if (!layout) return layout.status();
  if (proto.data_location() == TensorProto::EXTERNAL) return fromExternalData(proto, baseDir, *layout);
  if (!proto.has_raw_data()) return fromTypedFields(proto, layout->dtype, layout->shape);
  if (static_cast<int64_t>(proto.raw_data().size()) != layout->bytes) {
    return Status::error(tensorLabel(proto), ": raw_data has ", proto.raw_data().size(),
                         " bytes, its dims ", shapeStr(layout->shape), " x ", dtypeName(layout->dtype),
                         " need ", layout->bytes, " (truncated file?)");
  }
  Tensor out = Tensor::allocate(layout->dtype, layout->shape);
  copyRawBytes(proto.raw_data().data(), out);
  return out;
}

Expected<ExternalDataRef> externalDataOf(const TensorProto& proto, const std::string& baseDir) {
  Expected<TensorLayout> layout = layoutOf(proto);
  if (!layout) return layout.status();
  return externalRef(proto, baseDir, *layout);
}

Status checkExternalRange(const TensorProto& proto, const ExternalDataRef& ref, uint64_t fileSize) {
  if (static_cast<uint64_t>(ref.offset) > fileSize || static_cast<uint64_t>(ref.length) > fileSize - ref.offset) {
    return Status::error(tensorLabel(proto), ": external data file '", ref.path, "' has ", fileSize,
                         " bytes; bytes [", ref.offset, ", ", ref.offset + ref.length,
                         ") are needed (truncated file?)");
  }
  return Status::ok();
}

Expected<Tensor> tensorOverBytes(const TensorProto& proto, std::string_view bytes,
                                 const std::shared_ptr<const void>& keepAlive, bool view) {
  Expected<TensorLayout> layout = layoutOf(proto);
  if (!layout) return layout.status();
  if (static_cast<int64_t>(bytes.size()) != layout->bytes) {
    return Status::error(tensorLabel(proto), ": raw_data has ", bytes.size(), " bytes, its dims ",
                         shapeStr(layout->shape), " x ", dtypeName(layout->dtype), " need ", layout->bytes,
                         " (truncated file?)");
  }
  // Bools are copied: a stored byte other than 0/1 must become one.
  if (view && layout->dtype != DType::Bool) {
    return Tensor::view(layout->dtype, layout->shape, const_cast<char*>(bytes.data()), keepAlive);
  }
  Tensor out = Tensor::allocateUninitialized(layout->dtype, layout->shape);
  copyRawBytes(bytes.data(), out);
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
