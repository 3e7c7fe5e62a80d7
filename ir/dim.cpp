#include "ir/dim.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

namespace kiln {

Dim::Dim(int64_t value) {
  if (value != 0) terms_[{}] = value;
}

Dim Dim::symbol(std::string name) {
  Dim d;
  d.terms_[{std::move(name)}] = 1;
  return d;
}

Dim Dim::unknown() {
  Dim d;
  d.unknown_ = true;
  return d;
}

bool Dim::isConstant() const {
  if (unknown_) return false;
  return terms_.empty() || (terms_.size() == 1 && terms_.begin()->first.empty());
}

std::optional<int64_t> Dim::constant() const {
  if (!isConstant()) return std::nullopt;
  return terms_.empty() ? 0 : terms_.begin()->second;
}

std::vector<std::string> Dim::symbols() const {
  std::set<std::string> names;
  for (const auto& [monomial, coefficient] : terms_)
    names.insert(monomial.begin(), monomial.end());
  return {names.begin(), names.end()};
}

void Dim::normalize() {
  std::erase_if(terms_, [](const auto& term) { return term.second == 0; });
}

Dim operator+(const Dim& a, const Dim& b) {
  if (a.unknown_ || b.unknown_) return Dim::unknown();
  Dim sum = a;
  for (const auto& [monomial, coefficient] : b.terms_) sum.terms_[monomial] += coefficient;
  sum.normalize();
  return sum;
}

Dim operator-(const Dim& a, const Dim& b) { return a + b * Dim(-1); }

Dim operator*(const Dim& a, const Dim& b) {
  if (a.unknown_ || b.unknown_) return Dim::unknown();
  Dim product;
  for (const auto& [ma, ca] : a.terms_) {
    for (const auto& [mb, cb] : b.terms_) {
      Dim::Monomial m = ma;
      m.insert(m.end(), mb.begin(), mb.end());
      std::sort(m.begin(), m.end());
      product.terms_[m] += ca * cb;
    }
  }
  product.normalize();
  return product;
}

Dim operator/(const Dim& a, const Dim& b) {
  if (a.unknown_ || b.unknown_) return Dim::unknown();
  if (a == b && !a.terms_.empty()) return Dim(1);
  if (auto divisor = b.constant()) {
    if (*divisor == 0) return Dim::unknown();
    Dim quotient;
    for (const auto& [monomial, coefficient] : a.terms_) {
      if (coefficient % *divisor != 0) return Dim::unknown();
      quotient.terms_[monomial] = coefficient / *divisor;
    }
    return quotient;
  }
  // A single-monomial divisor that divides every term of a (batch*seq*128 / seq).
  if (b.terms_.size() == 1) {
    const auto& [divMonomial, divCoefficient] = *b.terms_.begin();
    Dim quotient;
    for (const auto& [monomial, coefficient] : a.terms_) {
      if (coefficient % divCoefficient != 0) return Dim::unknown();
      Dim::Monomial rest = monomial;
      for (const std::string& symbol : divMonomial) {
        auto it = std::find(rest.begin(), rest.end(), symbol);
        if (it == rest.end()) return Dim::unknown();
        rest.erase(it);
      }
      quotient.terms_[rest] += coefficient / divCoefficient;
    }
    quotient.normalize();
    return quotient;
  }
  return Dim::unknown();
}

bool operator==(const Dim& a, const Dim& b) {
  if (a.unknown_ || b.unknown_) return false;
  return a.terms_ == b.terms_;
}

Dim Dim::substitute(const SymbolBindings& bindings) const {
  if (unknown_) return *this;
  Dim result;
  for (const auto& [monomial, coefficient] : terms_) {
    Dim term(coefficient);
    for (const std::string& symbol : monomial) {
      auto it = bindings.find(symbol);
      term = term * (it == bindings.end() ? Dim::symbol(symbol) : Dim(it->second));
    }
    result = result + term;
  }
  return result;
}

std::optional<std::string> Dim::plainSymbol() const {
  if (unknown_ || terms_.size() != 1) return std::nullopt;
  const auto& [monomial, coefficient] = *terms_.begin();
  if (monomial.size() != 1 || coefficient != 1) return std::nullopt;
  return monomial[0];
}

Dim Dim::replaced(std::string_view symbol, const Dim& with) const {
  if (unknown_) return *this;
  Dim result;
  for (const auto& [monomial, coefficient] : terms_) {
    Dim term(coefficient);
    for (const std::string& factor : monomial) term = term * (factor == symbol ? with : Dim::symbol(factor));
    result = result + term;
  }
  return result;
}

std::string Dim::str() const {
  if (unknown_) return "?";
  if (terms_.empty()) return "0";
  // Symbolic terms first (in monomial order), the constant last: "seq + past + 1".
  std::vector<std::pair<Monomial, int64_t>> ordered;
  for (const auto& term : terms_)
    if (!term.first.empty()) ordered.push_back(term);
  if (auto it = terms_.find(Monomial{}); it != terms_.end()) ordered.push_back(*it);

  std::string out;
  bool first = true;
  for (const auto& [monomial, coefficient] : ordered) {
    int64_t magnitude = coefficient < 0 ? -coefficient : coefficient;
    if (first) {
      if (coefficient < 0) out += "-";
    } else {
      out += coefficient < 0 ? " - " : " + ";
    }
    first = false;
    std::string product;
    if (magnitude != 1 || monomial.empty()) product = std::to_string(magnitude);
    for (const std::string& symbol : monomial) {
      if (!product.empty()) product += "*";
      product += symbol;
    }
    out += product;
  }
  return out;
}

namespace {

// Recursive descent over: expr := ['-'] term (('+'|'-') term)* ; term := factor ('*' factor)*
class DimParser {
 public:
  explicit DimParser(std::string_view text) : text_(text) {}

  std::optional<Dim> parse(std::string* error) {
    skipSpace();
    if (pos_ < text_.size() && text_[pos_] == '?') {
      ++pos_;
      skipSpace();
      if (pos_ != text_.size()) return fail(error, "unexpected text after '?'");
      return Dim::unknown();
    }
    Dim sum;
    bool negate = false;
    if (peek('-')) {
      ++pos_;
      negate = true;
    }
    for (;;) {
      auto term = parseTerm(error);
      if (!term) return std::nullopt;
      sum = negate ? sum - *term : sum + *term;
      skipSpace();
      if (pos_ == text_.size()) return sum;
      if (peek('+')) negate = false;
      else if (peek('-')) negate = true;
      else return fail(error, "expected '+', '-' or '*' in dim expression");
      ++pos_;
    }
  }

 private:
  std::optional<Dim> parseTerm(std::string* error) {
    auto product = parseFactor(error);
    if (!product) return std::nullopt;
    for (;;) {
      skipSpace();
      if (!peek('*')) return product;
      ++pos_;
      auto factor = parseFactor(error);
      if (!factor) return std::nullopt;
      product = *product * *factor;
    }
  }

  std::optional<Dim> parseFactor(std::string* error) {
    skipSpace();
    if (pos_ >= text_.size()) return fail(error, "expected a number or a symbol in dim expression");
    char c = text_[pos_];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      int64_t value = 0;
      auto [end, ec] = std::from_chars(text_.data() + pos_, text_.data() + text_.size(), value);
      if (ec != std::errc()) return fail(error, "dim value out of range");
      pos_ = static_cast<size_t>(end - text_.data());
      return Dim(value);
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t start = pos_;
      while (pos_ < text_.size() &&
             (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_'))
        ++pos_;
      return Dim::symbol(std::string(text_.substr(start, pos_ - start)));
    }
    return fail(error, std::string("unexpected character '") + c + "' in dim expression");
  }

  bool peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
  void skipSpace() {
    while (pos_ < text_.size() && text_[pos_] == ' ') ++pos_;
  }
  std::optional<Dim> fail(std::string* error, const std::string& message) {
    if (error) *error = message;
    return std::nullopt;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

std::optional<Dim> Dim::parse(std::string_view text, std::string* error) {
  return DimParser(text).parse(error);
}

}  // namespace kiln
