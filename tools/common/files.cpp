#include "tools/common/files.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace kiln::tools {

Expected<std::string> readFile(const std::string& path) {
  std::ostringstream contents;
  if (path == "-") {
    contents << std::cin.rdbuf();
    if (std::cin.bad()) return Status::error("cannot read stdin");
    return contents.str();
  }
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) return Status::error(path, ": is a directory");
  std::ifstream file(path, std::ios::binary);
  if (!file) return Status::error(path, ": cannot open: ", std::strerror(errno));
  contents << file.rdbuf();
  if (file.bad()) return Status::error(path, ": read failed");
  return contents.str();
}

}  // namespace kiln::tools
