// Every `--input-shape NAME=DIMS` of a command line, keyed by input name
// (syntax: parseInputShapeOption in frontend/onnx/onnx_importer.h).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/dim.h"
#include "ir/status.h"

namespace kiln::tools {

// A name given twice is an error.
Expected<std::map<std::string, std::vector<Dim>>> parseInputShapes(
    const std::vector<std::string>& specs);

}  // namespace kiln::tools
