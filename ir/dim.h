// One dimension of a shape: a polynomial with integer coefficients over named
// symbols (`128`, `seq`, `seq + past`, `batch*seq`, `2*heads - 1`), or unknown
// (`?`) when no expression is known at compile time. A concrete shape is the
// special case where every dim is a constant.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

using SymbolBindings = std::map<std::string, int64_t, std::less<>>;

class Dim {
 public:
  // A product of symbols, sorted, with repeats for powers; empty = constant term.
  using Monomial = std::vector<std::string>;

  Dim() : Dim(int64_t{0}) {}
  Dim(int64_t value);  // implicit: a static dim
  static Dim symbol(std::string name);
  static Dim unknown();

  bool isUnknown() const { return unknown_; }
  bool isConstant() const;                  // known and no symbols
  std::optional<int64_t> constant() const;  // value when isConstant()
  std::vector<std::string> symbols() const; // distinct symbols, sorted
  // The symbol's name when the dim is exactly one symbol with coefficient 1.
  std::optional<std::string> plainSymbol() const;

  // Arithmetic; any unknown operand gives unknown.
  friend Dim operator+(const Dim& a, const Dim& b);
  friend Dim operator-(const Dim& a, const Dim& b);
  friend Dim operator*(const Dim& a, const Dim& b);
  // Exact division: a constant divisor that divides every coefficient, or an
  // equal dim (gives 1). Anything else gives unknown.
  friend Dim operator/(const Dim& a, const Dim& b);

  // Structural equality of the canonical polynomial (unknown != anything).
  friend bool operator==(const Dim& a, const Dim& b);
  friend bool operator!=(const Dim& a, const Dim& b) { return !(a == b); }

  // Substitutes bound symbols; the result is constant when all are bound.
  Dim substitute(const SymbolBindings& bindings) const;
  // `symbol` replaced by the expression `with` (batch_heads -> 4*batch).
  Dim replaced(std::string_view symbol, const Dim& with) const;

  std::string str() const;  // canonical text: "seq + past + 1", "2*seq", "?"
  // Parses the text form; returns nullopt and sets *error on a syntax error.
  static std::optional<Dim> parse(std::string_view text, std::string* error);

  const std::map<Monomial, int64_t>& terms() const { return terms_; }

 private:
  void normalize();
  bool unknown_ = false;
  std::map<Monomial, int64_t> terms_;  // no zero coefficients
};

}  // namespace kiln
