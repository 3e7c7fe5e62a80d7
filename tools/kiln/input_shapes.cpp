#include "tools/kiln/input_shapes.h"

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

}  // namespace kiln::tools
