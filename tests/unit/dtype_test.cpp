#include "ir/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ir/tensor.h"

namespace kiln {
namespace {

TEST(DTypeTest, NamesRoundTrip) {
  for (DType t : kAllDTypes) EXPECT_EQ(parseDType(dtypeName(t)), t);
  EXPECT_FALSE(parseDType("f8"));
  EXPECT_EQ(dtypeSize(DType::BF16), 2u);
  EXPECT_EQ(dtypeSize(DType::I64), 8u);
}

TEST(DTypeTest, HalfConversion) {
  EXPECT_EQ(floatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(floatToHalf(1e6f), 0x7c00);                  // overflow to inf
  EXPECT_EQ(floatToHalf(5.9604645e-8f), 0x0001);          // smallest subnormal
  EXPECT_EQ(floatToHalf(1.0f + 1.0f / 2048.0f), 0x3c00);  // tie rounds to even
  EXPECT_EQ(halfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(halfToFloat(0x0001), 5.9604645e-8f);
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(std::numeric_limits<float>::quiet_NaN()))));
  for (uint32_t bits = 0; bits < 0x7c00; ++bits)  // every finite half survives a round trip
    ASSERT_EQ(floatToHalf(halfToFloat(static_cast<uint16_t>(bits))), bits);
}

TEST(DTypeTest, BFloat16Conversion) {
  EXPECT_EQ(floatToBFloat16(1.0f), 0x3f80);
  EXPECT_EQ(bfloat16ToFloat(0x4049), 3.140625f);
  EXPECT_EQ(floatToBFloat16(1.00390625f), 0x3f80);  // tie rounds to even
  EXPECT_EQ(floatToBFloat16(1.01171875f), 0x3f82);  // tie rounds up to even
}

TEST(TensorTest, AllocateViewAndElements) {
  Tensor t = Tensor::allocate(DType::I32, {2, 3});
  EXPECT_EQ(t.numElements(), 6);
  EXPECT_EQ(t.byteSize(), 24u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
  for (int i = 0; i < 6; ++i) t.data<int32_t>()[i] = i * 10;
  EXPECT_EQ(t.elementAsInt(4), 40);
  EXPECT_EQ(t.type().str(), "i32[2, 3]");
  Tensor copy = t.clone();
  t.data<int32_t>()[0] = 7;
  EXPECT_EQ(copy.elementAsInt(0), 0);
  Tensor flat = t.reshaped({6});
  EXPECT_EQ(flat.elementAsInt(0), 7);
  EXPECT_EQ(rowMajorStrides({2, 3, 4}), (std::vector<int64_t>{12, 4, 1}));
  Tensor scalar = Tensor::allocate(DType::F16, {});
  scalar.data<Half>()[0] = Half{floatToHalf(1.5f)};
  EXPECT_EQ(scalar.elementAsDouble(0), 1.5);
}

}  // namespace
}  // namespace kiln
