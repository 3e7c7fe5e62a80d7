// The reference backend covers the op table: every op kind has a reference
// kernel, the yardstick that device kernels are tested against.
#include <gtest/gtest.h>

#include <cstddef>
#include <string>

#include "backends/reference/reference.h"
#include "ir/op_kind.h"

namespace kiln {
namespace {

TEST(ReferenceKernels, EveryOpKindHasOne) {
  for (size_t i = 0; i < kNumOpKinds; ++i) {
    const auto kind = static_cast<OpKind>(i);
    EXPECT_NE(referenceKernel(kind), nullptr) << "op '" << std::string(opName(kind)) << "' has no reference kernel";
  }
}

}  // namespace
}  // namespace kiln
