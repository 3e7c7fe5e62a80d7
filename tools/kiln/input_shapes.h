// Every `--input-shape NAME=DIMS` of a command line, keyed by input name
// (syntax: parseInputShapeOption in frontend/onnx/onnx_importer.h), and
// every `--max-shape SYMBOL=N` (the bounds the memory plan is made for).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/dim.h"
#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::tools {

// A name given twice is an error.
Expected<std::map<std::string, std::vector<Dim>>> parseInputShapes(
    const std::vector<std::string>& specs);

// `SYMBOL=N` specs, N a non-negative integer; a symbol given twice is an
// error.
Expected<SymbolBindings> parseMaxShapes(const std::vector<std::string>& specs);

}  // namespace kiln::tools
