// matmul_int8's CPU kernels (backends/cpu/int8_matmul.h) against its
// reference kernel: the rows' path (1-5 rows, threads splitting b's rows)
// and the tiles' (6 rows and more), column and K tails, one group and
// groups that do and do not divide K, the epilogue (bias, activation,
// residual, written over the residual), on every instruction set this CPU
// has; and the operands the kernels leave to the reference.
#include "backends/cpu/int8_matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"

namespace kiln::cpu {
namespace {

std::mt19937& rng() {
  static std::mt19937 generator(7);
  return generator;
}

Tensor randomF32(std::vector<int64_t> shape, float lo, float hi) {
  Tensor t = Tensor::allocate(DType::F32, std::move(shape));
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = dist(rng());
  return t;
}

Tensor randomInt8(int64_t K, int64_t N) {
  Tensor t = Tensor::allocate(DType::I8, {K, N});
  std::uniform_int_distribution<int> dist(-127, 127);
  for (int64_t i = 0; i < t.numElements(); ++i) t.data<int8_t>()[i] = static_cast<int8_t>(dist(rng()));
  return t;
}

struct Case {
  int64_t rows, K, N, group;
  bool bias = false, residual = false;
  std::string activation = "none";
};

struct Operands {
  Tensor a, b, scale, bias, residual;
  Attributes attrs;
};

Operands operandsOf(const Case& c) {
  Operands o{randomF32({c.rows, c.K}, -1.0f, 1.0f), randomInt8(c.K, c.N),
             randomF32({(c.K + c.group - 1) / c.group, c.N}, 0.001f, 0.02f), randomF32({c.N}, -1.0f, 1.0f),
             randomF32({c.rows, c.N}, -1.0f, 1.0f), {}};
  o.attrs.set("group", c.group);
  if (c.activation != "none") o.attrs.set("activation", c.activation);
  return o;
}

// Runs the op on `operands` into `out`: the CPU kernel with `isa`, or the
// reference kernel when isa is unset.
std::optional<Status> run(const Case& c, const Operands& o, Tensor& out, std::optional<Isa> isa) {
  const Tensor* inputs[] = {&o.a, &o.b, &o.scale, c.bias ? &o.bias : nullptr, c.residual ? &o.residual : nullptr};
  Tensor* outputs[] = {&out};
  const KernelContext ctx{opDef(OpKind::MatmulInt8), o.attrs, inputs, outputs};
  if (isa) return runMatmulInt8(ctx, *isa);
  return referenceKernel(OpKind::MatmulInt8)(ctx);
}

// The bound on a float sum's error: a few ulps of the sum of the terms'
// magnitudes.
std::vector<double> errorBounds(const Case& c, const Operands& o) {
  std::vector<double> bounds(static_cast<size_t>(c.rows * c.N), 1e-6);
  for (int64_t i = 0; i < c.rows; ++i)
    for (int64_t k = 0; k < c.K; ++k)
      for (int64_t n = 0; n < c.N; ++n) {
        const double w = o.b.data<int8_t>()[k * c.N + n] * o.scale.data<float>()[k / c.group * c.N + n];
        bounds[static_cast<size_t>(i * c.N + n)] += 4e-7 * std::fabs(o.a.data<float>()[i * c.K + k] * w);
      }
  return bounds;
}

void expectMatchesReference(const Case& c) {
  const Operands o = operandsOf(c);
  Tensor expected = Tensor::allocate(DType::F32, {c.rows, c.N});
  ASSERT_TRUE(run(c, o, expected, std::nullopt)->isOk());
  const std::vector<double> bounds = errorBounds(c, o);
  for (Isa isa : isasOfThisCpu()) {
    SCOPED_TRACE(std::string(isaName(isa)) + " rows " + std::to_string(c.rows) + " K " + std::to_string(c.K) +
                 " N " + std::to_string(c.N) + " group " + std::to_string(c.group));
    Tensor out = Tensor::allocate(DType::F32, {c.rows, c.N});
    const std::optional<Status> ran = run(c, o, out, isa);
    ASSERT_TRUE(ran.has_value());
    ASSERT_TRUE(ran->isOk()) << ran->message();
    for (int64_t i = 0; i < out.numElements(); ++i)
      ASSERT_NEAR(out.data<float>()[i], expected.data<float>()[i], bounds[static_cast<size_t>(i)]) << "element " << i;
  }
}

TEST(MatmulInt8, RowsMatchTheReference) {
  for (int64_t rows : {1, 2, 5})
    for (int64_t group : {int64_t{37}, int64_t{32}, int64_t{3}}) expectMatchesReference({rows, 37, 45, group, true});
  expectMatchesReference({1, 4096, 17, 4096});  // K in one group, scaled at the end
  expectMatchesReference({3, 8, 4100, 8, false, true, "silu"});  // columns past one 4096-column pass
}

TEST(MatmulInt8, TilesMatchTheReference) {
  for (int64_t rows : {6, 7, 50, 97})
    for (int64_t group : {int64_t{130}, int64_t{32}, int64_t{5}})
      expectMatchesReference({rows, 130, 70, group, true, true, "gelu"});
}

TEST(MatmulInt8, ThreadsSplitLargeProducts) {
  setenv("KILN_NUM_THREADS", "2", 1);
  expectMatchesReference({1, 1030, 300, 1030, true});  // rows of b split, partial sums added
  expectMatchesReference({2, 1030, 300, 32, false, true, "relu"});
  expectMatchesReference({60, 200, 200, 200, true});  // column blocks split
  unsetenv("KILN_NUM_THREADS");
}

TEST(MatmulInt8, TheResultMayBeTheResidual) {
  for (Isa isa : isasOfThisCpu()) {
    for (int64_t rows : {int64_t{4}, int64_t{12}}) {  // the rows' path and the tiles'
      const Case shaped{rows, 64, 40, 64, false, true};
      Operands in = operandsOf(shaped);
      Tensor reference = Tensor::allocate(DType::F32, {rows, shaped.N});
      ASSERT_TRUE(run(shaped, in, reference, std::nullopt)->isOk());
      Tensor inPlace = in.residual;  // the result written over its residual
      ASSERT_TRUE(run(shaped, in, inPlace, isa)->isOk());
      for (int64_t i = 0; i < inPlace.numElements(); ++i)
        ASSERT_NEAR(inPlace.data<float>()[i], reference.data<float>()[i], 1e-4) << isaName(isa) << " element " << i;
    }
  }
}

TEST(MatmulInt8, DeclinesABroadcastResidual) {
  Case c{3, 16, 8, 16, false, true};
  Operands o = operandsOf(c);
  o.residual = randomF32({1, c.N}, -1.0f, 1.0f);  // broadcast over the rows: the reference's
  Tensor out = Tensor::allocate(DType::F32, {c.rows, c.N});
  for (Isa isa : isasOfThisCpu()) EXPECT_FALSE(run(c, o, out, isa).has_value());
}

}  // namespace
}  // namespace kiln::cpu
