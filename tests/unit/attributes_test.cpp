// resolveDimAttributes (ir/attributes.h): the run's symbol values substituted
// into dim-list attributes, and evaluateOp handing the resolved attributes to
// the reference kernel.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/attributes.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "tests/unit/op_test_support.h"

namespace kiln {
namespace {

using namespace testsupport;

using Dims = std::vector<Dim>;

const SymbolBindings kRun = {{"batch", 2}, {"seq", 3}, {"past", 5}};

TEST(ResolveDimAttributes, SubstitutesEveryDimList) {
  Attributes attrs;
  attrs.set("shape", Dims{kBatch, kSeq, 4, kSeq * 2});
  attrs.set("start", Dims{kPast});
  attrs.set("axes", std::vector<int64_t>{1});
  attrs.set("mode", std::string("x"));
  std::optional<Attributes> resolved = resolveDimAttributes(attrs, kRun);
  ASSERT_TRUE(resolved);
  EXPECT_EQ(attrValueStr(resolved->all().at("shape")), "[2, 3, 4, 6]");
  EXPECT_EQ(attrValueStr(resolved->all().at("start")), "[5]");
  // Other attributes are copied as they are.
  EXPECT_EQ(resolved->getInts("axes"), (std::vector<int64_t>{1}));
  EXPECT_EQ(resolved->getString("mode"), "x");
  EXPECT_EQ(resolved->all().size(), 4u);
  // The input is untouched.
  EXPECT_EQ(attrValueStr(attrs.all().at("shape")), "[batch, seq, 4, 2*seq]");
}

TEST(ResolveDimAttributes, NothingToResolve) {
  // No dim list, or dim lists of numbers only: no copy is made.
  Attributes plain;
  plain.set("axis", int64_t{1});
  EXPECT_FALSE(resolveDimAttributes(plain, kRun));
  Attributes numbers;
  numbers.set("shape", Dims{2, 3});
  EXPECT_FALSE(resolveDimAttributes(numbers, kRun));
  EXPECT_FALSE(resolveDimAttributes(Attributes{}, kRun));
  // A symbol the run does not bind stays a symbol.
  Attributes unbound;
  unbound.set("shape", Dims{Dim::symbol("other"), 4});
  std::optional<Attributes> resolved = resolveDimAttributes(unbound, kRun);
  ASSERT_TRUE(resolved);
  EXPECT_EQ(attrValueStr(resolved->all().at("shape")), "[other, 4]");
}

TEST(ResolveDimAttributes, EvaluateOpResolvesForTheKernel) {
  const OpDef& range = *OpRegistry::global().find("range");
  Attributes positions;
  positions.set("start", Dims{kPast});
  positions.set("limit", Dims{kPast + kSeq});
  // past = 5, seq = 3: positions 5, 6, 7.
  Expected<std::vector<Tensor>> y = evaluateOp(range, positions, {}, 1, &kRun);
  ASSERT_TRUE(y) << y.status().message();
  EXPECT_EQ(valuesOf((*y)[0]), (std::vector<double>{5, 6, 7}));
  // Without bindings the symbolic shape cannot run.
  Expected<std::vector<Tensor>> unbound = evaluateOp(range, positions, {}, 1);
  ASSERT_FALSE(unbound);
  EXPECT_NE(unbound.status().message().find("not concrete"), std::string::npos) << unbound.status().message();

  // A reshape to [batch, seq * 2] of 12 elements.
  Tensor x = Tensor::allocate(DType::F32, {2, 6});
  for (int64_t i = 0; i < 12; ++i) x.data<float>()[i] = static_cast<float>(i);
  Attributes toRows;
  toRows.set("shape", Dims{kBatch, kSeq * 2});
  const Tensor* inputs[] = {&x};
  Expected<std::vector<Tensor>> rows = evaluateOp(*OpRegistry::global().find("reshape"), toRows, inputs, 1, &kRun);
  ASSERT_TRUE(rows) << rows.status().message();
  EXPECT_EQ((*rows)[0].shape(), (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(valuesOf((*rows)[0]), valuesOf(x));
}

}  // namespace
}  // namespace kiln
