// The planner lets an op's result take over an operand's slot when the op
// lists that operand in OpDef::inplaceOperands and the two have the same
// shape and element size. Here every such (op, operand) runs its reference
// kernel with the result written over the operand, and must give the bytes
// it gives into fresh memory. A new in-place declaration needs a case here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "tests/unit/op_test_support.h"

namespace kiln {
namespace {

using namespace testsupport;

struct Case {
  std::string op;
  int aliased;  // the operand the result overwrites
  std::vector<Tensor> inputs;
  Attributes attrs = {};
};

std::mt19937_64& rng() {
  static std::mt19937_64 generator(4);
  return generator;
}

// Values in [-2, 2) (floats), [0, 6) (integers) or either bool; `positive`
// keeps floats in [0.5, 2.5) for sqrt and log.
Tensor random(DType dtype, std::vector<int64_t> shape, bool positive = false) {
  Tensor t = Tensor::allocate(dtype, std::move(shape));
  visitDType(dtype, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < t.numElements(); ++i) {
      const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng());
      double value = positive ? 0.5 + 2 * u : 4 * u - 2;
      if (isInteger(dtype)) value = std::floor(6 * u);
      if (dtype == DType::Bool) value = u < 0.5;
      t.data<T>()[i] = storeFromDouble<T>(value);
    }
  });
  return t;
}

Tensor f32(std::vector<int64_t> shape, bool positive = false) { return random(DType::F32, std::move(shape), positive); }

Tensor scalarI64(int64_t value) {
  Tensor t = Tensor::allocate(DType::I64, {});
  t.data<int64_t>()[0] = value;
  return t;
}

std::vector<Case> cases() {
  std::vector<Case> all;
  for (const char* op : {"exp", "tanh", "erf", "sigmoid", "relu", "cos", "sin", "abs", "neg", "reciprocal", "identity"})
    all.push_back({op, 0, {f32({3, 5})}});
  for (const char* op : {"sqrt", "log"}) all.push_back({op, 0, {f32({3, 5}, true)}});
  all.push_back({"not", 0, {random(DType::Bool, {3, 5})}});
  // Binary ops: the overwritten operand has the result's shape, the other
  // broadcasts into it.
  for (const char* op : {"add", "sub", "mul", "div", "pow"}) {
    all.push_back({op, 0, {f32({4, 6}), f32({6}, true)}});
    all.push_back({op, 1, {f32({4, 1}, true), f32({4, 6}, true)}});
  }
  // Comparisons write bool: in place only over 1-byte operands.
  for (const char* op : {"equal", "less", "greater"}) {
    all.push_back({op, 0, {random(DType::U8, {4, 6}), random(DType::U8, {6})}});
    all.push_back({op, 1, {random(DType::U8, {1, 6}), random(DType::U8, {4, 6})}});
  }
  for (const char* op : {"and", "or"}) {
    all.push_back({op, 0, {random(DType::Bool, {4, 6}), random(DType::Bool, {6})}});
    all.push_back({op, 1, {random(DType::Bool, {4, 1}), random(DType::Bool, {4, 6})}});
  }
  for (const char* op : {"min", "max"}) {
    all.push_back({op, 0, {f32({4, 6}), f32({4, 6}), f32({6})}});
    all.push_back({op, 1, {f32({1, 6}), f32({4, 6}), f32({4, 1})}});
  }
  all.push_back({"where", 1, {random(DType::Bool, {4, 6}), f32({4, 6}), f32({6})}});
  all.push_back({"where", 2, {random(DType::Bool, {6}), f32({4, 1}), f32({4, 6})}});
  all.push_back({"cast", 0, {f32({4, 6})}, attrs({{"to", std::string("i32")}})});
  all.push_back({"cast", 0, {random(DType::F16, {4, 6})}, attrs({{"to", std::string("bf16")}})});
  all.push_back({"clip", 0, {f32({4, 6}), f32({}), f32({}, true)}});
  for (int64_t axis : {0, 1, -1}) {
    all.push_back({"softmax", 0, {f32({3, 4, 5})}, attrs({{"axis", axis}})});
    all.push_back({"log_softmax", 0, {f32({3, 4, 5})}, attrs({{"axis", axis}})});
    all.push_back({"cumsum", 0, {f32({3, 4, 5}), scalarI64(axis)},
                   attrs({{"exclusive", axis == 1}, {"reverse", axis != 0}})});
  }
  all.push_back({"layer_norm", 0, {f32({3, 4, 5}), f32({4, 5}), f32({5})},
                 attrs({{"axis", int64_t{1}}, {"epsilon", 1e-3}})});
  // The fused ops (ir/ops/fused.cpp, ir/ops/linalg.cpp).
  all.push_back({"matmul", 3, {f32({2, 4, 5}), f32({5, 6}), f32({6}), f32({2, 4, 6})}});
  all.push_back({"matmul", 3, {f32({4, 5}), f32({6, 5}), {}, f32({4, 6})},
                 attrs({{"activation", std::string("gelu")}, {"transpose_b", true}})});
  // matmul_int8 over 8 rows (the CPU's tiles) and 3 (its rows' kernel).
  all.push_back({"matmul_int8", 4,
                 {f32({2, 4, 5}), random(DType::I8, {5, 6}), f32({2, 6}, true), f32({6}), f32({2, 4, 6})},
                 attrs({{"group", int64_t{3}}, {"activation", std::string("silu")}})});
  all.push_back({"matmul_int8", 4, {f32({3, 5}), random(DType::I8, {5, 6}), f32({1, 6}, true), {}, f32({3, 6})},
                 attrs({{"group", int64_t{5}}})});
  all.push_back({"rms_norm", 0, {f32({3, 4, 5}), f32({5})}, attrs({{"epsilon", 1e-3}})});
  all.push_back({"gelu", 0, {f32({3, 5})}});
  all.push_back({"gelu", 0, {f32({3, 5})}, attrs({{"approximate", std::string("tanh")}})});
  all.push_back({"silu", 0, {f32({3, 5})}});
  all.push_back({"swiglu", 0, {f32({4, 6}), f32({6})}});
  all.push_back({"swiglu", 1, {f32({4, 1}), f32({4, 6})}});
  // Eight operands, each in turn overwritten while the others broadcast.
  for (int k = 0; k < 8; ++k) {
    std::vector<Tensor> inputs;
    for (int i = 0; i < 8; ++i) inputs.push_back(i == k ? f32({4, 300}) : f32({i % 2 ? 300 : 1}));
    all.push_back({"fused_elementwise", k, std::move(inputs),
                   attrs({{"program", std::string("mul $0 $1; add %0 $2; sub %1 $3; tanh %2; mul %3 $4; "
                                                  "add %4 $5; max %5 $6; div %6 $7")}})});
  }
  return all;
}

std::string describe(const Case& c) { return c.op + " over operand " + std::to_string(c.aliased); }

TEST(InPlaceKernels, WritingOverTheOperandGivesTheSameBytes) {
  for (const Case& c : cases()) {
    const OpDef* def = OpRegistry::global().find(c.op);
    ASSERT_NE(def, nullptr) << c.op;
    // A default-constructed input is an absent optional operand.
    std::vector<const Tensor*> inputs;
    for (const Tensor& t : c.inputs) inputs.push_back(t.data() ? &t : nullptr);
    Expected<std::vector<Tensor>> fresh = evaluateOp(*def, c.attrs, inputs, 1);
    ASSERT_TRUE(fresh.isOk()) << describe(c) << ": " << fresh.status().message();
    const Tensor& expected = fresh.value()[0];

    // The same inputs in new storage; the result is written over one of them.
    std::vector<Tensor> copies;
    for (const Tensor& t : c.inputs) copies.push_back(t.data() ? t.clone() : Tensor{});
    const Tensor& target = copies[static_cast<size_t>(c.aliased)];
    ASSERT_EQ(target.shape(), expected.shape()) << describe(c);
    ASSERT_EQ(dtypeSize(target.dtype()), dtypeSize(expected.dtype())) << describe(c);
    Tensor result = Tensor::view(expected.dtype(), expected.shape(), target.data());
    std::vector<const Tensor*> aliasedInputs;
    for (const Tensor& t : copies) aliasedInputs.push_back(t.data() ? &t : nullptr);
    Tensor* outputs[] = {&result};
    // As Graph::addOp leaves them: programs parsed.
    const Attributes typed = typedAttributes(*def, aliasedInputs.size(), c.attrs).value_or(c.attrs);
    ASSERT_TRUE(referenceKernel(def->kind)(KernelContext{*def, typed, aliasedInputs, outputs}).isOk()) << describe(c);
    EXPECT_EQ(std::memcmp(result.data(), expected.data(), expected.byteSize()), 0) << describe(c);
  }
}

TEST(InPlaceKernels, EveryDeclaredInPlaceOperandHasACase) {
  std::set<std::pair<std::string, int>> covered;
  for (const Case& c : cases()) covered.emplace(c.op, c.aliased);
  for (const OpDef* def : OpRegistry::global().all())
    for (int operand : def->inplaceOperands)
      EXPECT_TRUE(covered.count({std::string(def->name), operand}))
          << def->name << " declares operand " << operand
          << " in place: add a case to tests/planning/inplace_kernels_test.cpp";
}

}  // namespace
}  // namespace kiln
