// File reading for the tools, with messages that name the path.
#pragma once

#include <string>

#include "ir/status.h"

namespace kiln::tools {

// The whole file; "-" reads stdin.
Expected<std::string> readFile(const std::string& path);

}  // namespace kiln::tools
