// Reading protobuf files with errors that say what went wrong: a missing or
// unreadable file, or bytes that are not the expected message.
#pragma once

#include <string>

#include <google/protobuf/message_lite.h>

#include "ir/status.h"

namespace kiln {

// The whole file; the error names the path and the OS reason.
Expected<std::string> readFileBytes(const std::string& path);

// Parses `path` as `message`; `what` names the expected content in errors
// ("ONNX model", "TensorProto").
Status parseProtoFile(const std::string& path, google::protobuf::MessageLite& message,
                      const std::string& what);

// The folder holding `path` ("." for a bare file name).
std::string parentDir(const std::string& path);

}  // namespace kiln
