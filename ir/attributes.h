// Op attributes: a name-sorted map of small typed values. Text form:
// `{axis = 0, eps = 1e-05, perm = [0, 2, 1, 3], to = "f16", transpose_b = true}`.
// A dim list (`shape = [batch, seq, 64]`) holds symbolic dims: the target
// shape of a reshape once shape arithmetic is folded.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ir/dim.h"
#include "ir/elementwise_program.h"
#include "ir/status.h"

namespace kiln {

// Program: fused_elementwise's parsed program, written in the text form as
// its string (ir/elementwise_program.h).
enum class AttrKind { Int, Float, String, Bool, Ints, Floats, Dims, Program };

using AttrValue = std::variant<int64_t, double, std::string, bool, std::vector<int64_t>,
                               std::vector<double>, std::vector<Dim>, ElementwiseProgram>;

AttrKind attrKind(const AttrValue& v);
std::string_view attrKindName(AttrKind k);  // "int", "float", "string", ...

class Attributes {
 public:
  void set(const std::string& name, AttrValue value) { values_[name] = std::move(value); }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  void erase(const std::string& name) { values_.erase(name); }
  const std::map<std::string, AttrValue>& all() const { return values_; }
  bool empty() const { return values_.empty(); }

  // Typed reads with defaults. An Int attribute reads as float too; an empty
  // list reads as either list kind. Reading a present attribute of another
  // kind returns the default (the verifier reports kind mismatches).
  int64_t getInt(const std::string& name, int64_t fallback = 0) const;
  double getFloat(const std::string& name, double fallback = 0.0) const;
  // A program attribute reads as its text.
  std::string getString(const std::string& name, const std::string& fallback = "") const;
  bool getBool(const std::string& name, bool fallback = false) const;
  std::vector<int64_t> getInts(const std::string& name, std::vector<int64_t> fallback = {}) const;
  std::vector<double> getFloats(const std::string& name, std::vector<double> fallback = {}) const;
  // A dim list; an int list reads as constant dims.
  std::optional<std::vector<Dim>> getDims(const std::string& name) const;
  // A parsed program; null when absent or still text (see typedAttributes).
  const ElementwiseProgram* getProgram(const std::string& name) const;

  friend bool operator==(const Attributes& a, const Attributes& b) { return a.values_ == b.values_; }

 private:
  std::map<std::string, AttrValue> values_;
};

// Dim-list attributes (a folded reshape's `shape`, a range's `start`) may
// hold symbols; a kernel needs them as numbers. Returns `attrs` with the
// run's symbol values substituted into every dim list, or nullopt when no
// dim list holds a symbol (use `attrs` as it is: the common case costs no
// copy). evaluateOp applies it for the kernel; the executor for its devices.
std::optional<Attributes> resolveDimAttributes(const Attributes& attrs, const SymbolBindings& bindings);

std::string attrValueStr(const AttrValue& v);  // canonical text of one value
// `"text"` with `"` and `\` escaped and control bytes as \n, \t, \r or \xHH, so
// every printed construct stays on one line.
std::string quoteString(std::string_view text);

}  // namespace kiln
