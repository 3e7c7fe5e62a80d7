// The text printer. Its output is the canonical form that parser.cpp reads
// back: parse then print gives the same bytes.
#include <charconv>
#include <cmath>

#include "ir/op_registry.h"
#include "ir/text.h"

namespace kiln {
namespace {

bool isBareNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '.';
}

// `name` bare when it is made of [A-Za-z0-9_.], quoted otherwise.
void appendName(std::string& out, std::string_view name) {
  bool bare = !name.empty();
  for (char c : name) bare = bare && isBareNameChar(c);
  if (bare) out += name;
  else out += quoteString(name);
}

void appendValueRef(std::string& out, const Graph& graph, ValueId id) {
  if (id == kNoValue) {
    out += '_';
    return;
  }
  if (id < 0 || static_cast<size_t>(id) >= graph.values().size()) {
    // Only a corrupted graph gets here; print something the parser rejects.
    out += "%<invalid value ";
    out += std::to_string(id);
    out += '>';
    return;
  }
  const Value& v = graph.value(id);
  out += v.kind == ValueKind::Weight ? '@' : '%';
  appendName(out, v.name);
}

// Shortest text that reads back as the same value, always with '.' or 'e'
// (or nan/inf) so a float never looks like an int.
template <class F>
void appendFloat(std::string& out, F value) {
  if (std::isnan(value)) {
    out += "nan";
    return;
  }
  if (std::isinf(value)) {
    out += value < 0 ? "-inf" : "inf";
    return;
  }
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string_view text(buffer, static_cast<size_t>(end - buffer));
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
}

void appendElement(std::string& out, const Tensor& data, int64_t i) {
  visitDType(data.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T& element = data.data<T>()[i];
    if constexpr (std::is_same_v<T, Half>) {
      appendFloat(out, halfToFloat(element.bits));
    } else if constexpr (std::is_same_v<T, BFloat16>) {
      appendFloat(out, bfloat16ToFloat(element.bits));
    } else if constexpr (std::is_floating_point_v<T>) {
      appendFloat(out, element);
    } else if constexpr (std::is_same_v<T, bool>) {
      out += element ? "true" : "false";
    } else {
      out += std::to_string(static_cast<int64_t>(element));
    }
  });
}

void appendWeight(std::string& out, const Value& weight, const PrintOptions& options) {
  out += "  weight @";
  appendName(out, weight.name);
  out += " : ";
  out += weight.type.str();
  if (!weight.data) {
    out += '\n';
    return;
  }
  const Tensor& data = *weight.data;
  int64_t count = data.numElements();
  if (options.maxInlineWeightElements >= 0 && count > options.maxInlineWeightElements) {
    out += '\n';
    return;
  }
  out += " = [";
  for (int64_t i = 0; i < count; ++i) {
    if (i) out += ", ";
    appendElement(out, data, i);
  }
  out += "]\n";
}

void appendOp(std::string& out, const Graph& graph, const Op& op) {
  out += "  ";
  for (size_t i = 0; i < op.results.size(); ++i) {
    if (i) out += ", ";
    appendValueRef(out, graph, op.results[i]);
  }
  if (!op.results.empty()) out += " = ";
  out += op.def ? op.def->name : std::string_view("<op without definition>");
  for (size_t i = 0; i < op.operands.size(); ++i) {
    out += i ? ", " : " ";
    appendValueRef(out, graph, op.operands[i]);
  }
  if (!op.attrs.empty()) {
    out += " {";
    bool first = true;
    for (const auto& [name, value] : op.attrs.all()) {
      if (!first) out += ", ";
      first = false;
      appendName(out, name);
      out += " = ";
      out += attrValueStr(value);
    }
    out += '}';
  }
  for (size_t i = 0; i < op.results.size(); ++i) {
    out += i ? ", " : " : ";
    ValueId id = op.results[i];
    if (id >= 0 && static_cast<size_t>(id) < graph.values().size()) out += graph.value(id).type.str();
  }
  if (!op.device.empty()) {
    out += " on ";
    out += quoteString(op.device);
  }
  if (!op.location.empty()) {
    out += " loc(";
    out += quoteString(op.location);
    out += ')';
  }
  out += '\n';
}

}  // namespace

std::string printGraph(const Graph& graph, const PrintOptions& options) {
  std::string out = "graph @";
  appendName(out, graph.name);
  out += '(';
  for (size_t i = 0; i < graph.inputs().size(); ++i) {
    if (i) out += ", ";
    appendValueRef(out, graph, graph.inputs()[i]);
    out += ": ";
    out += graph.value(graph.inputs()[i]).type.str();
  }
  out += ") -> (";
  for (size_t i = 0; i < graph.outputs().size(); ++i) {
    if (i) out += ", ";
    ValueId id = graph.outputs()[i];
    appendValueRef(out, graph, id);
    if (id >= 0 && static_cast<size_t>(id) < graph.values().size()) {
      out += ": ";
      out += graph.value(id).type.str();
    }
  }
  out += ") {\n";
  for (ValueId id : graph.weights()) appendWeight(out, graph.value(id), options);
  for (const Op& op : graph.ops()) appendOp(out, graph, op);
  out += "  return";
  for (size_t i = 0; i < graph.outputs().size(); ++i) {
    out += i ? ", " : " ";
    appendValueRef(out, graph, graph.outputs()[i]);
  }
  out += "\n}\n";
  return out;
}

}  // namespace kiln
