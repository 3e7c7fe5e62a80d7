// ONNX TensorProto <-> kiln Tensor: initializers, Constant values, and the
// backend-test files `input_K.pb` / `output_K.pb`.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <onnx/onnx_pb.h>

#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln {

// The kiln dtype of an ONNX TensorProto.DataType; nullopt for the ones kiln
// does not have (uint16, int16, uint32, uint64, string, complex, float8...).
std::optional<DType> dtypeFromOnnx(int32_t onnxType);
int32_t onnxTypeOf(DType dtype);
// "FLOAT", "UINT16", ... (or "type 42" for a code this ONNX does not know).
std::string onnxTypeName(int32_t onnxType);

// Reads the data of `proto`: raw_data, the typed fields (float_data,
// int32_data, ...), or ONNX external data (location/offset/length, a path
// relative to `baseDir`, which may not leave it).
Expected<Tensor> tensorFromProto(const onnx::TensorProto& proto, const std::string& baseDir);

// Where a TensorProto's ONNX external data lies: `path` (the location under
// the base folder) and bytes [offset, offset + length), the length its dims
// need (a stated length must agree). The file itself is not looked at.
struct ExternalDataRef {
  std::string path;
  int64_t offset = 0;
  int64_t length = 0;
};
Expected<ExternalDataRef> externalDataOf(const onnx::TensorProto& proto, const std::string& baseDir);
// An error naming the tensor and the file unless the range fits in `fileSize`.
Status checkExternalRange(const onnx::TensorProto& proto, const ExternalDataRef& ref, uint64_t fileSize);

// The tensor of `proto`'s dtype and dims whose data are `bytes` (raw_data or
// external data found elsewhere, e.g. in a mapped file that `keepAlive`
// holds): a view of them when `view`, else a copy. Bools are always copied,
// to normalise bytes other than 0/1.
Expected<Tensor> tensorOverBytes(const onnx::TensorProto& proto, std::string_view bytes,
                                 const std::shared_ptr<const void>& keepAlive, bool view);

// A TensorProto with raw_data (little-endian), as ONNX's numpy_helper writes.
onnx::TensorProto tensorToProto(const Tensor& tensor, const std::string& name);

// One serialized TensorProto per file, external data relative to its folder.
Expected<Tensor> readTensorProtoFile(const std::string& path);
Status writeTensorProtoFile(const Tensor& tensor, const std::string& name,
                            const std::string& path);

}  // namespace kiln
