// The activation a matmul's epilogue applies (attribute `activation`), one
// enum for the IR, the passes that fuse it and every device's kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>

namespace kiln {

enum class Activation : uint8_t { None, Relu, Gelu, GeluTanh, Silu, Tanh };

inline constexpr std::string_view kActivationNames[] = {"none", "relu", "gelu", "gelu_tanh", "silu", "tanh"};

constexpr std::string_view activationName(Activation activation) {
  return kActivationNames[static_cast<size_t>(activation)];
}

// The activation named `name` ("gelu_tanh"); nullopt for another name.
constexpr std::optional<Activation> parseActivation(std::string_view name) {
  for (size_t i = 0; i < std::size(kActivationNames); ++i)
    if (kActivationNames[i] == name) return static_cast<Activation>(i);
  return std::nullopt;
}

}  // namespace kiln
