// The text parser: a recursive descent over the characters, with newlines as
// plain whitespace and `//` comments skipped (lit tests keep their RUN and
// CHECK lines in the same file). Every error says `line:column` and what was
// expected there. The graph is built as it is read; it is not verified.
#include <charconv>
#include <cmath>
#include <limits>

#include "ir/op_registry.h"
#include "ir/text.h"

namespace kiln {
namespace {

bool isBareNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '.';
}

bool isWordChar(char c) { return isBareNameChar(c) && c != '.'; }

std::string sigiled(char sigil, const std::string& name) { return std::string(1, sigil) + name; }

// A float is written with '.', an exponent, or as nan/inf; anything else is an int.
bool looksLikeFloat(std::string_view token) {
  return token.find_first_of(".eE") != std::string_view::npos || token == "nan" ||
         token == "inf" || token == "-inf";
}

template <class F>
std::optional<F> parseFloatToken(std::string_view token) {
  F value{};
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (ec != std::errc() || end != token.data() + token.size()) return std::nullopt;
  return value;
}

std::optional<int64_t> parseIntToken(std::string_view token) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (ec != std::errc() || end != token.data() + token.size()) return std::nullopt;
  return value;
}

struct ValueRef {
  char sigil = '%';
  std::string name;
  size_t at = 0;  // offset of the sigil, for errors
  std::string str() const { return sigiled(sigil, name); }
};

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Expected<Graph> parse() {
    Status status = parseGraph();
    if (!status) return status;
    return std::move(graph_);
  }

 private:
  // ---- Errors ----------------------------------------------------------

  std::string position(size_t at) const {
    size_t line = 1, lineStart = 0;
    for (size_t i = 0; i < at && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        lineStart = i + 1;
      }
    }
    return cat(line, ":", at - lineStart + 1);
  }

  template <class... Parts>
  Status failAt(size_t at, const Parts&... parts) const {
    return Status::error(position(at), ": ", parts...);
  }

  // What stands at the cursor, for "got ...": a whole word or register when
  // one starts there, else the single character.
  std::string describeHere() const {
    if (pos_ >= text_.size()) return "end of input";
    size_t end = pos_;
    if (text_[end] == '%' || text_[end] == '@') ++end;
    while (end < text_.size() && isBareNameChar(text_[end])) ++end;
    if (end == pos_ || (end == pos_ + 1 && !isBareNameChar(text_[pos_]))) end = pos_ + 1;
    return cat("'", text_.substr(pos_, end - pos_), "'");
  }

  Status expected(std::string_view what) {
    skipSpace();
    return failAt(pos_, "expected ", what, ", got ", describeHere());
  }

  // ---- Characters and tokens ------------------------------------------

  void skipSpace() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '/' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '/') {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else {
        return;
      }
    }
  }

  char peek() {
    skipSpace();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }

  bool consume(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }

  Status expect(char c) {
    if (consume(c)) return Status::ok();
    return expected(cat("'", c, "'"));
  }

  Status expect(std::string_view token) {
    skipSpace();
    if (text_.substr(pos_, token.size()) == token) {
      pos_ += token.size();
      return Status::ok();
    }
    return expected(cat("'", token, "'"));
  }

  // The word ([A-Za-z0-9_]+) at the cursor, not consumed.
  std::string_view peekWord() {
    skipSpace();
    size_t end = pos_;
    while (end < text_.size() && isWordChar(text_[end])) ++end;
    return text_.substr(pos_, end - pos_);
  }

  bool consumeKeyword(std::string_view keyword) {
    if (peekWord() != keyword) return false;
    pos_ += keyword.size();
    return true;
  }

  // A number-like token: an optional sign, then letters, digits, '_' and
  // '.', with a sign allowed right after an exponent 'e'. Covers ints,
  // floats, nan, inf and true/false; conversion decides what it is.
  std::string_view scanNumberToken() {
    skipSpace();
    size_t start = pos_, end = pos_;
    if (end < text_.size() && (text_[end] == '-' || text_[end] == '+')) ++end;
    while (end < text_.size()) {
      char c = text_[end];
      bool exponentSign = (c == '-' || c == '+') && end > start &&
                          (text_[end - 1] == 'e' || text_[end - 1] == 'E');
      if (!isBareNameChar(c) && !exponentSign) break;
      ++end;
    }
    if (end == start + 1 && !isBareNameChar(text_[start])) end = start;  // a lone sign
    pos_ = end;
    return text_.substr(start, end - start);
  }

  Status parseQuoted(std::string& out) {
    skipSpace();
    size_t start = pos_;
    if (!consume('"')) return expected("'\"'");
    out.clear();
    while (pos_ < text_.size() && text_[pos_] != '"') {
      char c = text_[pos_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) break;
      char escaped = text_[pos_++];
      switch (escaped) {
        case '"': case '\\': out += escaped; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'x': {
          unsigned value = 0;
          auto [end, ec] = std::from_chars(text_.data() + pos_,
                                           text_.data() + std::min(pos_ + 2, text_.size()),
                                           value, 16);
          if (ec != std::errc() || end != text_.data() + pos_ + 2)
            return failAt(pos_ - 2, "expected two hex digits after '\\x'");
          out += static_cast<char>(value);
          pos_ += 2;
          break;
        }
        default:
          return failAt(pos_ - 2, "expected an escape (\\\", \\\\, \\n, \\t, \\r, \\xHH), got '\\",
                        escaped, "'");
      }
    }
    if (pos_ >= text_.size())
      return failAt(start, "expected '\"' to close the string, got end of input");
    ++pos_;
    return Status::ok();
  }

  // A name right after its sigil: bare [A-Za-z0-9_.]+ or a quoted string.
  Status parseName(std::string& name) {
    if (pos_ < text_.size() && text_[pos_] == '"') {
      size_t start = pos_;
      KILN_RETURN_IF_ERROR(parseQuoted(name));
      if (name.empty()) return failAt(start, "expected a name, got an empty string");
      return Status::ok();
    }
    size_t start = pos_;
    while (pos_ < text_.size() && isBareNameChar(text_[pos_])) ++pos_;
    if (pos_ == start) return failAt(start, "expected a name, got ", describeHere());
    name.assign(text_.substr(start, pos_ - start));
    return Status::ok();
  }

  Status parseValueRef(ValueRef& ref) {
    char c = peek();
    if (c != '%' && c != '@') return expected("a register (%name) or a weight (@name)");
    ref.sigil = c;
    ref.at = pos_++;
    return parseName(ref.name);
  }

  // ---- Types ----------------------------------------------------------

  Status parseType(TensorType& type) {
    skipSpace();
    size_t at = pos_;
    std::string_view word = peekWord();
    auto dtype = parseDType(word);
    if (!dtype) return failAt(at, "expected a type such as f32[2, seq], got ", describeHere());
    pos_ += word.size();
    type.dtype = *dtype;
    type.shape.clear();
    KILN_RETURN_IF_ERROR(expect('['));
    if (consume(']')) return Status::ok();
    for (;;) {
      Dim dim;
      KILN_RETURN_IF_ERROR(parseDim(dim));
      type.shape.push_back(dim);
      if (consume(']')) return Status::ok();
      if (!consume(',')) return expected("',' or ']'");
    }
  }

  // A dim is the text up to the next ',' or ']', read by Dim::parse.
  Status parseDim(Dim& dim) {
    skipSpace();
    size_t start = pos_;
    size_t end = start;
    while (end < text_.size() && text_[end] != ',' && text_[end] != ']' && text_[end] != '\n')
      ++end;
    size_t last = end;
    while (last > start && (text_[last - 1] == ' ' || text_[last - 1] == '\t' ||
                            text_[last - 1] == '\r'))
      --last;
    if (last == start) return expected("a dim");
    std::string_view dimText = text_.substr(start, last - start);
    std::string error;
    auto parsed = Dim::parse(dimText, &error);
    if (!parsed) return failAt(start, "invalid dim '", dimText, "': ", error);
    if (parsed->constant() && *parsed->constant() < 0)
      return failAt(start, "invalid dim '", dimText, "': a dim cannot be negative");
    dim = *parsed;
    pos_ = last;
    return Status::ok();
  }

  // ---- Attributes -----------------------------------------------------

  // The rest of `[d, d, ...]` after '[', as a symbolic dim list.
  Status parseDimList(AttrValue& value) {
    std::vector<Dim> dims;
    for (;;) {
      Dim dim;
      KILN_RETURN_IF_ERROR(parseDim(dim));
      dims.push_back(dim);
      if (consume(']')) break;
      if (!consume(',')) return expected("',' or ']'");
    }
    value = std::move(dims);
    return Status::ok();
  }

  Status parseAttrValue(AttrValue& value) {
    char c = peek();
    if (c == '"') {
      std::string text;
      KILN_RETURN_IF_ERROR(parseQuoted(text));
      value = std::move(text);
      return Status::ok();
    }
    if (c == '[') {
      ++pos_;
      size_t listStart = pos_;
      std::vector<std::pair<std::string_view, size_t>> tokens;
      bool anyFloat = false;
      if (!consume(']')) {
        for (;;) {
          skipSpace();
          size_t at = pos_;
          std::string_view token = scanNumberToken();
          // A symbol or expression (`[batch, 2*seq]`) makes it a dim list.
          const bool number = parseIntToken(token) || parseFloatToken<double>(token);
          if (!number || (peek() != ',' && peek() != ']')) {
            pos_ = listStart;
            return parseDimList(value);
          }
          anyFloat = anyFloat || looksLikeFloat(token);
          tokens.emplace_back(token, at);
          if (consume(']')) break;
          if (!consume(',')) return expected("',' or ']'");
        }
      }
      // An empty list reads as an int list; Attributes accepts it as either.
      if (anyFloat) {
        std::vector<double> list;
        for (auto [token, at] : tokens) {
          auto v = parseFloatToken<double>(token);
          if (!v) return failAt(at, "expected a number, got '", token, "'");
          list.push_back(*v);
        }
        value = std::move(list);
      } else {
        std::vector<int64_t> list;
        for (auto [token, at] : tokens) {
          auto v = parseIntToken(token);
          if (!v) return failAt(at, "expected an integer, got '", token, "'");
          list.push_back(*v);
        }
        value = std::move(list);
      }
      return Status::ok();
    }
    if (consumeKeyword("true")) {
      value = true;
      return Status::ok();
    }
    if (consumeKeyword("false")) {
      value = false;
      return Status::ok();
    }
    size_t at = pos_;
    std::string_view token = scanNumberToken();
    if (token.empty()) return expected("an attribute value");
    if (looksLikeFloat(token)) {
      auto v = parseFloatToken<double>(token);
      if (!v) return failAt(at, "expected an attribute value, got '", token, "'");
      value = *v;
    } else {
      auto v = parseIntToken(token);
      if (!v) return failAt(at, "expected an attribute value, got '", token, "'");
      value = *v;
    }
    return Status::ok();
  }

  Status parseAttributes(Attributes& attrs) {
    KILN_RETURN_IF_ERROR(expect('{'));
    if (consume('}')) return Status::ok();
    for (;;) {
      skipSpace();
      size_t at = pos_;
      std::string name;
      KILN_RETURN_IF_ERROR(parseName(name));
      if (attrs.has(name)) return failAt(at, "attribute '", name, "' is given twice");
      KILN_RETURN_IF_ERROR(expect('='));
      AttrValue value;
      KILN_RETURN_IF_ERROR(parseAttrValue(value));
      attrs.set(name, std::move(value));
      if (consume('}')) return Status::ok();
      if (!consume(',')) return expected("',' or '}'");
    }
  }

  // ---- Values ---------------------------------------------------------

  Status checkFresh(const ValueRef& ref) {
    if (graph_.find(ref.name))
      return failAt(ref.at, "redefinition of ", ref.str(), " (names are unique across registers and weights)");
    return Status::ok();
  }

  Status resolve(const ValueRef& ref, ValueId& id) {
    auto found = graph_.find(ref.name);
    if (!found) {
      return failAt(ref.at, "use of undefined ", ref.sigil == '@' ? "weight " : "register ",
                    ref.str());
    }
    bool isWeight = graph_.value(*found).kind == ValueKind::Weight;
    if (isWeight && ref.sigil == '%')
      return failAt(ref.at, ref.str(), " is a weight; refer to it as ", sigiled('@', ref.name));
    if (!isWeight && ref.sigil == '@')
      return failAt(ref.at, ref.str(), " is a register, not a weight; refer to it as ",
                    sigiled('%', ref.name));
    id = *found;
    return Status::ok();
  }

  // One element of weight data, converted to the weight's dtype.
  Status parseElement(std::string_view token, size_t at, Tensor& data, int64_t i) {
    DType dtype = data.dtype();
    return visitDType(dtype, [&](auto tag) -> Status {
      using T = decltype(tag);
      T* out = data.data<T>() + i;
      if constexpr (std::is_same_v<T, bool>) {
        if (token != "true" && token != "false")
          return failAt(at, "expected true or false, got '", token, "'");
        *out = token == "true";
      } else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16> ||
                           std::is_same_v<T, float>) {
        auto v = parseFloatToken<float>(token);
        if (!v) return failAt(at, "expected a ", dtypeName(dtype), " value, got '", token, "'");
        if constexpr (std::is_same_v<T, Half>) *out = Half{floatToHalf(*v)};
        else if constexpr (std::is_same_v<T, BFloat16>) *out = BFloat16{floatToBFloat16(*v)};
        else *out = *v;
      } else if constexpr (std::is_same_v<T, double>) {
        auto v = parseFloatToken<double>(token);
        if (!v) return failAt(at, "expected a f64 value, got '", token, "'");
        *out = *v;
      } else {
        auto v = parseIntToken(token);
        if (!v) return failAt(at, "expected an integer, got '", token, "'");
        if (*v < std::numeric_limits<T>::min() || *v > std::numeric_limits<T>::max())
          return failAt(at, token, " is out of range for ", dtypeName(dtype));
        *out = static_cast<T>(*v);
      }
      return Status::ok();
    });
  }

  // weight @name : type [= [v, v, ...]]
  Status parseWeight() {
    ValueRef ref;
    KILN_RETURN_IF_ERROR(parseValueRef(ref));
    if (ref.sigil != '@')
      return failAt(ref.at, "expected a weight name (@name), got ", ref.str());
    KILN_RETURN_IF_ERROR(checkFresh(ref));
    KILN_RETURN_IF_ERROR(expect(':'));
    skipSpace();
    size_t typeAt = pos_;
    TensorType type;
    KILN_RETURN_IF_ERROR(parseType(type));
    if (!consume('=')) {
      graph_.addWeightDecl(ref.name, type);
      return Status::ok();
    }
    auto dims = type.staticDims();
    if (!dims)
      return failAt(typeAt, "weight ", ref.str(), " has data, so its type needs static dims, got ",
                    type.str());
    KILN_RETURN_IF_ERROR(expect('['));
    std::vector<std::pair<std::string_view, size_t>> tokens;
    if (!consume(']')) {
      for (;;) {
        skipSpace();
        size_t at = pos_;
        std::string_view token = scanNumberToken();
        if (token.empty()) return expected("a value");
        tokens.emplace_back(token, at);
        if (consume(']')) break;
        if (!consume(',')) return expected("',' or ']'");
      }
    }
    // Counted with overflow checks: the dims come from the text.
    int64_t count = 1;
    for (int64_t d : *dims)
      if (__builtin_mul_overflow(count, d, &count))
        return failAt(typeAt, "weight ", ref.str(), " of type ", type.str(), " is too large");
    if (static_cast<int64_t>(tokens.size()) != count) {
      return failAt(typeAt, "weight ", ref.str(), " of type ", type.str(), " needs ", count,
                    " values, got ", tokens.size());
    }
    Tensor data = Tensor::allocate(type.dtype, *dims);
    for (int64_t i = 0; i < count; ++i) {
      auto [token, at] = tokens[static_cast<size_t>(i)];
      KILN_RETURN_IF_ERROR(parseElement(token, at, data, i));
    }
    graph_.addWeight(ref.name, std::move(data));
    return Status::ok();
  }

  // [%r, ... =] opname operands [{attrs}] [: types] [on "device"] [loc("...")]
  Status parseOp() {
    std::vector<ValueRef> results;
    if (peek() == '%') {
      for (;;) {
        ValueRef ref;
        KILN_RETURN_IF_ERROR(parseValueRef(ref));
        if (ref.sigil != '%') return failAt(ref.at, "expected a register (%name), got ", ref.str());
        KILN_RETURN_IF_ERROR(checkFresh(ref));
        for (const ValueRef& earlier : results)
          if (earlier.name == ref.name) return failAt(ref.at, "redefinition of ", ref.str());
        results.push_back(std::move(ref));
        if (!consume(',')) break;
      }
      KILN_RETURN_IF_ERROR(expect('='));
    }

    skipSpace();
    size_t opAt = pos_;
    std::string_view opName = peekWord();
    if (opName.empty()) return expected("an op name");
    const OpDef* def = OpRegistry::global().find(opName);
    if (!def) return failAt(opAt, "unknown op '", opName, "'");
    pos_ += opName.size();

    // Operands are resolved after the whole list is read: a list followed by
    // '=' is the next statement's results (this op has neither operands nor
    // results), and the cursor goes back to it.
    size_t operandsAt = pos_;
    std::vector<ValueRef> operandRefs;
    if (startsOperand()) {
      for (;;) {
        ValueRef ref;
        if (peek() == '_') {
          ref.sigil = '_';
          ++pos_;
        } else {
          KILN_RETURN_IF_ERROR(parseValueRef(ref));
        }
        operandRefs.push_back(std::move(ref));
        if (!consume(',')) break;
      }
      if (results.empty() && peek() == '=') {
        pos_ = operandsAt;
        operandRefs.clear();
      }
    }
    std::vector<ValueId> operands;
    for (const ValueRef& ref : operandRefs) {
      ValueId id = kNoValue;
      if (ref.sigil != '_') KILN_RETURN_IF_ERROR(resolve(ref, id));
      operands.push_back(id);
    }

    Attributes attrs;
    if (peek() == '{') KILN_RETURN_IF_ERROR(parseAttributes(attrs));

    std::vector<TensorType> types;
    if (!results.empty()) {
      KILN_RETURN_IF_ERROR(expect(':'));
      for (;;) {
        skipSpace();
        if (types.size() == results.size())
          return failAt(pos_, "expected ", results.size(), " result type",
                        results.size() == 1 ? "" : "s", ", got more");
        TensorType type;
        KILN_RETURN_IF_ERROR(parseType(type));
        types.push_back(std::move(type));
        if (!consume(',')) break;
      }
      if (types.size() != results.size())
        return expected(cat("',' and ", results.size() - types.size(), " more result type",
                            results.size() - types.size() == 1 ? "" : "s"));
    }

    std::string device;
    if (consumeKeyword("on")) {
      size_t deviceAt = pos_;
      KILN_RETURN_IF_ERROR(parseQuoted(device));
      if (device.empty()) return failAt(deviceAt, "expected a device name after 'on', got \"\"");
    }

    std::string location;
    if (consumeKeyword("loc")) {
      KILN_RETURN_IF_ERROR(expect('('));
      KILN_RETURN_IF_ERROR(parseQuoted(location));
      KILN_RETURN_IF_ERROR(expect(')'));
    }

    std::vector<std::string> names;
    for (ValueRef& ref : results) names.push_back(std::move(ref.name));
    graph_.addOp(def, std::move(operands), std::move(types), std::move(attrs),
                 std::move(location), std::move(names));
    graph_.ops().back().device = std::move(device);
    return Status::ok();
  }

  // An operand list starts with a sigil or with `_` standing alone.
  bool startsOperand() {
    char c = peek();
    if (c == '%' || c == '@') return true;
    return c == '_' && (pos_ + 1 >= text_.size() || !isBareNameChar(text_[pos_ + 1]));
  }

  // return refs..., checked against the signature's outputs.
  Status parseReturn() {
    std::vector<ValueRef> refs;
    std::vector<ValueId> outputs;
    char c = peek();
    if (c == '%' || c == '@') {
      for (;;) {
        ValueRef ref;
        KILN_RETURN_IF_ERROR(parseValueRef(ref));
        ValueId id = kNoValue;
        KILN_RETURN_IF_ERROR(resolve(ref, id));
        outputs.push_back(id);
        refs.push_back(std::move(ref));
        if (!consume(',')) break;
      }
    }
    if (refs.size() != signatureOutputs_.size()) {
      return failAt(returnAt_, "return has ", refs.size(), " value", refs.size() == 1 ? "" : "s",
                    " but the signature declares ", signatureOutputs_.size(), " output",
                    signatureOutputs_.size() == 1 ? "" : "s");
    }
    for (size_t i = 0; i < refs.size(); ++i) {
      const auto& [declared, declaredType] = signatureOutputs_[i];
      if (refs[i].sigil != declared.sigil || refs[i].name != declared.name) {
        return failAt(refs[i].at, "expected ", declared.str(), " (output ", i,
                      " in the signature), got ", refs[i].str());
      }
      // Compared as text: `?` dims are equal here, unlike under Dim's ==.
      const TensorType& actual = graph_.value(outputs[i]).type;
      if (actual.str() != declaredType.str()) {
        return failAt(declared.at, "output ", declared.str(), " is declared ", declaredType.str(),
                      " in the signature but has type ", actual.str());
      }
    }
    graph_.setOutputs(std::move(outputs));
    return Status::ok();
  }

  // graph @name(%in: type, ...) -> (%out: type, ...) { body }
  Status parseGraph() {
    if (!consumeKeyword("graph")) return expected("'graph'");
    KILN_RETURN_IF_ERROR(expect('@'));
    KILN_RETURN_IF_ERROR(parseName(graph_.name));

    KILN_RETURN_IF_ERROR(expect('('));
    if (!consume(')')) {
      for (;;) {
        ValueRef ref;
        KILN_RETURN_IF_ERROR(parseValueRef(ref));
        if (ref.sigil != '%') return failAt(ref.at, "expected an input register (%name), got ", ref.str());
        KILN_RETURN_IF_ERROR(checkFresh(ref));
        KILN_RETURN_IF_ERROR(expect(':'));
        TensorType type;
        KILN_RETURN_IF_ERROR(parseType(type));
        graph_.addInput(ref.name, std::move(type));
        if (consume(')')) break;
        if (!consume(',')) return expected("',' or ')'");
      }
    }

    KILN_RETURN_IF_ERROR(expect("->"));
    KILN_RETURN_IF_ERROR(expect('('));
    if (!consume(')')) {
      for (;;) {
        ValueRef ref;
        KILN_RETURN_IF_ERROR(parseValueRef(ref));
        KILN_RETURN_IF_ERROR(expect(':'));
        TensorType type;
        KILN_RETURN_IF_ERROR(parseType(type));
        signatureOutputs_.emplace_back(std::move(ref), std::move(type));
        if (consume(')')) break;
        if (!consume(',')) return expected("',' or ')'");
      }
    }

    KILN_RETURN_IF_ERROR(expect('{'));
    for (;;) {
      skipSpace();
      returnAt_ = pos_;
      if (consumeKeyword("return")) {
        KILN_RETURN_IF_ERROR(parseReturn());
        break;
      }
      if (consumeKeyword("weight")) {
        KILN_RETURN_IF_ERROR(parseWeight());
        continue;
      }
      char c = peek();
      if (c != '%' && !isWordChar(c)) return expected("an op, a weight or 'return'");
      KILN_RETURN_IF_ERROR(parseOp());
    }
    KILN_RETURN_IF_ERROR(expect('}'));
    skipSpace();
    if (pos_ != text_.size()) return expected("end of input");
    return Status::ok();
  }

  std::string_view text_;
  size_t pos_ = 0;
  size_t returnAt_ = 0;
  Graph graph_;
  std::vector<std::pair<ValueRef, TensorType>> signatureOutputs_;
};

}  // namespace

Expected<Graph> parseGraph(std::string_view text) { return Parser(text).parse(); }

}  // namespace kiln
