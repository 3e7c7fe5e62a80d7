#include "tools/kiln/input_shapes.h"

#include <charconv>
#include <set>

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

Status checkBoundSymbols(const Graph& graph, const SymbolBindings& bounds) {
  std::set<std::string> symbols;
  for (const Value& value : graph.values())
    for (const Dim& dim : value.type.shape)
      for (const std::string& symbol : dim.symbols()) symbols.insert(symbol);
  for (const auto& [symbol, value] : bounds) {
    if (symbols.count(symbol)) continue;
    std::string known;
    for (const std::string& s : symbols) known += cat(known.empty() ? "" : ", ", s);
    return Status::error("--max-shape: the compiled program has no symbol '", symbol, "' (",
                         known.empty() ? std::string("it has none") : "its symbols: " + known, ")");
  }
  return Status::ok();
}

}  // namespace kiln::tools
