#include "ir/attributes.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace kiln {

AttrKind attrKind(const AttrValue& v) {
  switch (v.index()) {
    case 0: return AttrKind::Int;
    case 1: return AttrKind::Float;
    case 2: return AttrKind::String;
    case 3: return AttrKind::Bool;
    case 4: return AttrKind::Ints;
    case 5: return AttrKind::Floats;
    case 6: return AttrKind::Dims;
    default: return AttrKind::Program;
  }
}

std::string_view attrKindName(AttrKind k) {
  switch (k) {
    case AttrKind::Int: return "int";
    case AttrKind::Float: return "float";
    case AttrKind::String: return "string";
    case AttrKind::Bool: return "bool";
    case AttrKind::Ints: return "int list";
    case AttrKind::Floats: return "float list";
    case AttrKind::Dims: return "dim list";
    case AttrKind::Program: return "program";
  }
  return "?";
}

std::optional<Attributes> resolveDimAttributes(const Attributes& attrs, const SymbolBindings& bindings) {
  std::optional<Attributes> resolved;
  for (const auto& [name, value] : attrs.all()) {
    const auto* dims = std::get_if<std::vector<Dim>>(&value);
    if (!dims || std::none_of(dims->begin(), dims->end(),
                              [](const Dim& d) { return !d.isConstant() && !d.isUnknown(); }))
      continue;
    if (!resolved) resolved = attrs;
    std::vector<Dim> substituted;
    substituted.reserve(dims->size());
    for (const Dim& d : *dims) substituted.push_back(d.substitute(bindings));
    resolved->set(name, std::move(substituted));
  }
  return resolved;
}

int64_t Attributes::getInt(const std::string& name, int64_t fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (auto* v = std::get_if<int64_t>(&it->second)) return *v;
  if (auto* b = std::get_if<bool>(&it->second)) return *b ? 1 : 0;
  return fallback;
}

double Attributes::getFloat(const std::string& name, double fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (auto* v = std::get_if<double>(&it->second)) return *v;
  if (auto* v = std::get_if<int64_t>(&it->second)) return static_cast<double>(*v);
  return fallback;
}

std::string Attributes::getString(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (auto* v = std::get_if<std::string>(&it->second)) return *v;
  if (auto* v = std::get_if<ElementwiseProgram>(&it->second)) return v->text;
  return fallback;
}

const ElementwiseProgram* Attributes::getProgram(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : std::get_if<ElementwiseProgram>(&it->second);
}

bool Attributes::getBool(const std::string& name, bool fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (auto* v = std::get_if<bool>(&it->second)) return *v;
  if (auto* v = std::get_if<int64_t>(&it->second)) return *v != 0;
  return fallback;
}

std::vector<int64_t> Attributes::getInts(const std::string& name, std::vector<int64_t> fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second)) return *v;
  if (auto* v = std::get_if<std::vector<double>>(&it->second); v && v->empty()) return {};
  return fallback;
}

std::vector<double> Attributes::getFloats(const std::string& name, std::vector<double> fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (auto* v = std::get_if<std::vector<double>>(&it->second)) return *v;
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second))
    return std::vector<double>(v->begin(), v->end());
  return fallback;
}

std::optional<std::vector<Dim>> Attributes::getDims(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  if (auto* v = std::get_if<std::vector<Dim>>(&it->second)) return *v;
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second)) return std::vector<Dim>(v->begin(), v->end());
  return std::nullopt;
}

namespace {

// Shortest text that parses back to the same double; always has '.' or 'e'
// (or is nan/inf) so a float never reads back as an int.
std::string floatText(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, end);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

std::string quoteString(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string attrValueStr(const AttrValue& v) {
  switch (attrKind(v)) {
    case AttrKind::Int: return std::to_string(std::get<int64_t>(v));
    case AttrKind::Float: return floatText(std::get<double>(v));
    case AttrKind::String: return quoteString(std::get<std::string>(v));
    case AttrKind::Bool: return std::get<bool>(v) ? "true" : "false";
    case AttrKind::Ints: {
      std::string out = "[";
      const auto& list = std::get<std::vector<int64_t>>(v);
      for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + std::to_string(list[i]);
      return out + "]";
    }
    case AttrKind::Floats: {
      std::string out = "[";
      const auto& list = std::get<std::vector<double>>(v);
      for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + floatText(list[i]);
      return out + "]";
    }
    case AttrKind::Dims: {
      std::string out = "[";
      const auto& list = std::get<std::vector<Dim>>(v);
      for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + list[i].str();
      return out + "]";
    }
    case AttrKind::Program: return quoteString(std::get<ElementwiseProgram>(v).text);
  }
  return "";
}

}  // namespace kiln
