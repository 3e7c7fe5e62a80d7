// Typed op identity: the OpKind enum and the name table, both expanded from
// the op table (ir/ops.def). Code compares kinds, never names; names are for
// the text form, the importers' tables and diagnostics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string_view>

namespace kiln {

enum class OpKind : uint8_t {
#define KILN_OP(kind, name) kind,
#include "ir/ops.def"
#undef KILN_OP
  kCount
};

inline constexpr std::string_view kOpNames[] = {
#define KILN_OP(kind, name) name,
#include "ir/ops.def"
#undef KILN_OP
};
inline constexpr size_t kNumOpKinds = static_cast<size_t>(OpKind::kCount);
static_assert(std::size(kOpNames) == kNumOpKinds, "ir/ops.def: one name per kind");

namespace detail {
constexpr bool opNamesUnique() {
  for (size_t i = 0; i < kNumOpKinds; ++i)
    for (size_t j = i + 1; j < kNumOpKinds; ++j)
      if (kOpNames[i] == kOpNames[j]) return false;
  return true;
}
}  // namespace detail
static_assert(detail::opNamesUnique(), "ir/ops.def: an op name is declared twice");

constexpr std::string_view opName(OpKind kind) { return kOpNames[static_cast<size_t>(kind)]; }
constexpr bool isOneOf(OpKind kind, std::initializer_list<OpKind> kinds) {
  for (OpKind k : kinds)
    if (k == kind) return true;
  return false;
}
// The kind of a text name ("matmul"); nullopt for a name kiln does not know.
std::optional<OpKind> opKindNamed(std::string_view name);

}  // namespace kiln
