#include "frontend/onnx/proto_io.h"

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace kiln {

Expected<std::string> readFileBytes(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return Status::error("cannot read '", path, "': it is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("cannot open '", path, "': ", std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::error("cannot read '", path, "': ", std::strerror(errno));
  return bytes;
}

Status parseProtoFile(const std::string& path, google::protobuf::MessageLite& message,
                      const std::string& what) {
  Expected<std::string> bytes = readFileBytes(path);
  if (!bytes) return bytes.status();
  if (bytes->empty()) return Status::error("'", path, "' is empty, not an ", what);
  // Protobuf cannot parse messages of 2 GiB or more; such models keep their
  // weights in ONNX external data.
  if (bytes->size() >= static_cast<size_t>(INT_MAX)) {
    return Status::error("'", path, "' is ", bytes->size(),
                         " bytes, over protobuf's 2 GiB limit (store weights as external data)");
  }
  if (!message.ParseFromString(*bytes)) {
    return Status::error("'", path, "' is not a valid ", what,
                         " (protobuf parse failed: truncated or not this kind of file)");
  }
  return Status::ok();
}

std::string parentDir(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace kiln
