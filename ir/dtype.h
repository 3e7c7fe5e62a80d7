// Element types of tensors, with their text names (f32, i64, ...) and the
// conversions the reference kernels need for the 16-bit floats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kiln {

enum class DType : uint8_t { F32, F16, BF16, F64, I64, I32, I8, U8, Bool };

inline constexpr DType kAllDTypes[] = {DType::F32, DType::F16, DType::BF16,
                                       DType::F64, DType::I64, DType::I32,
                                       DType::I8,  DType::U8,  DType::Bool};

std::string_view dtypeName(DType t);                  // "f32", "bool", ...
std::optional<DType> parseDType(std::string_view name);
size_t dtypeSize(DType t);
bool isFloat(DType t);    // f32, f16, bf16, f64
bool isInteger(DType t);  // i64, i32, i8, u8

// IEEE half and bfloat16 stored as raw bits; round to nearest even.
struct Half {
  uint16_t bits = 0;
};
struct BFloat16 {
  uint16_t bits = 0;
};
float halfToFloat(uint16_t bits);
uint16_t floatToHalf(float value);
float bfloat16ToFloat(uint16_t bits);
uint16_t floatToBFloat16(float value);

// Maps a C++ storage type to its DType, for typed kernels.
template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::F32; };
template <> struct DTypeOf<Half> { static constexpr DType value = DType::F16; };
template <> struct DTypeOf<BFloat16> { static constexpr DType value = DType::BF16; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::F64; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::I64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::I32; };
template <> struct DTypeOf<int8_t> { static constexpr DType value = DType::I8; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::U8; };
template <> struct DTypeOf<bool> { static constexpr DType value = DType::Bool; };

// Calls fn(T{}) with T the storage type of `t` (Half/BFloat16 for 16-bit floats).
template <class Fn>
decltype(auto) visitDType(DType t, Fn&& fn) {
  switch (t) {
    case DType::F32: return fn(float{});
    case DType::F16: return fn(Half{});
    case DType::BF16: return fn(BFloat16{});
    case DType::F64: return fn(double{});
    case DType::I64: return fn(int64_t{});
    case DType::I32: return fn(int32_t{});
    case DType::I8: return fn(int8_t{});
    case DType::U8: return fn(uint8_t{});
    case DType::Bool: return fn(bool{});
  }
  return fn(float{});
}

// Value conversion through double, used by reference kernels that compute in
// a wide type: load(p) reads element i as double, store writes it back.
template <class T>
inline double loadAsDouble(const T& v) {
  if constexpr (std::is_same_v<T, Half>) return halfToFloat(v.bits);
  else if constexpr (std::is_same_v<T, BFloat16>) return bfloat16ToFloat(v.bits);
  else return static_cast<double>(v);
}
template <class T>
inline T storeFromDouble(double v) {
  if constexpr (std::is_same_v<T, Half>) return Half{floatToHalf(static_cast<float>(v))};
  else if constexpr (std::is_same_v<T, BFloat16>) return BFloat16{floatToBFloat16(static_cast<float>(v))};
  else if constexpr (std::is_same_v<T, bool>) return v != 0.0;
  else return static_cast<T>(v);
}

}  // namespace kiln
