#include "tools/kiln/input_shapes.h"

#include <charconv>

#include "frontend/onnx/onnx_importer.h"

namespace kiln::tools {

Expected<std::map<std::string, std::vector<Dim>>> parseInputShapes(
    const std::vector<std::string>& specs) {
  std::map<std::string, std::vector<Dim>> shapes;
  for (const std::string& spec : specs) {
    auto shape = parseInputShapeOption(spec);
    if (!shape) return shape.status();
    if (!shapes.emplace(shape->first, shape->second).second)
      return Status::error("--input-shape gives input '", shape->first, "' twice");
  }
  return shapes;
}

Expected<SymbolBindings> parseMaxShapes(const std::vector<std::string>& specs) {
  SymbolBindings bounds;
  for (const std::string& spec : specs) {
    const size_t equals = spec.find('=');
    const std::string symbol = spec.substr(0, equals);
    const std::string text = equals == std::string::npos ? "" : spec.substr(equals + 1);
    int64_t value = -1;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (symbol.empty() || text.empty() || error != std::errc() || end != text.data() + text.size() || value < 0)
      return Status::error("--max-shape '", spec, "': expected SYMBOL=N with N a non-negative integer");
    if (!bounds.emplace(symbol, value).second)
      return Status::error("--max-shape gives symbol '", symbol, "' twice");
  }
  return bounds;
}

}  // namespace kiln::tools
