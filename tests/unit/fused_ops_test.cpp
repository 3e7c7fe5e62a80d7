// The ops that the optimisation passes produce (ir/ops/fused.cpp and
// backends/reference/fused.cpp): reference kernels against hand-computed
// values and (for attention) against a naive computation written out here,
// type inference on symbolic shapes, and the errors for operands that do not
// fit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "ir/op_registry.h"
#include "ir/relative_position.h"
#include "ir/tensor.h"
#include "tests/unit/op_test_support.h"

namespace kiln {
namespace {

using namespace testsupport;

// The inferred result types as text ("f32[2], f32[3]"), or the error message.
// A null type is an absent optional operand.
std::string inferred(std::string_view op, std::vector<const TensorType*> types, const Attributes& attrs = {},
                     int numResults = 1) {
  std::vector<OperandInfo> operands;
  for (const TensorType* t : types) operands.push_back({t, nullptr});
  std::vector<TensorType> results;
  Status status = inferResultTypes(*OpRegistry::global().find(op), attrs, operands, numResults, results);
  if (!status) return status.message();
  std::string text;
  for (const TensorType& t : results) text += (text.empty() ? "" : ", ") + t.str();
  return text;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Deterministic values in [-1, 1).
std::vector<double> pseudoRandom(size_t n, uint32_t seed) {
  std::vector<double> out(n);
  uint32_t state = seed * 2654435761u + 1;
  for (double& x : out) {
    state = state * 1664525u + 1013904223u;
    x = static_cast<double>(state >> 8) / static_cast<double>(1u << 23) - 1.0;
  }
  return out;
}

// ---- attention

TEST(AttentionOp, HandComputedSingleQuery) {
  // One head, one query, two keys of head dim 1: scores [0, ln 3] give
  // weights [1/4, 3/4] over the values [4, 8]: 1 + 6 = 7.
  Tensor q = f32({1, 1, 1, 1}, {1});
  Tensor k = f32({1, 1, 2, 1}, {0, std::log(3.0)});
  Tensor v = f32({1, 1, 2, 1}, {4, 8});
  const Attributes a = attrs({{"heads", int64_t{1}}, {"kv_heads", int64_t{1}}, {"scale", 1.0}});
  Tensor out = run("attention", {&q, &k, &v}, a);
  EXPECT_EQ(out.shape(), (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_NEAR(valuesOf(out)[0], 7.0, 1e-6);
  // scale 0 gives equal weights: 6; so does an additive mask that adds ln 3 to key 0's score.
  Attributes unscaled = attrs({{"heads", int64_t{1}}, {"kv_heads", int64_t{1}}, {"scale", 0.0}});
  EXPECT_NEAR(valuesOf(run("attention", {&q, &k, &v}, unscaled))[0], 6.0, 1e-6);
  Tensor mask = f32({2}, {std::log(3.0), 0});
  EXPECT_NEAR(valuesOf(run("attention", {&q, &k, &v, &mask}, a))[0], 6.0, 1e-6);
  // A bool mask that hides key 1 leaves only value 4.
  Tensor hide = make(DType::Bool, {1, 2}, {1, 0});
  EXPECT_NEAR(valuesOf(run("attention", {&q, &k, &v, &hide}, a))[0], 4.0, 1e-6);
}

TEST(AttentionOp, HandComputedRope) {
  // Head dim 2, one position with cos = 0, sin = 1: rotate-half maps
  // [x1, x2] to [-x2, x1]. q [1, 0] -> [0, 1]; keys [0, 1] -> [-1, 0] and past key [0, 1] (not rotated).
  // Scores: past key: [0, 1].[0, 1] = 1; new key: [0, 1].[-1, 0] = 0. Weights e/(e+1), 1/(e+1).
  Tensor q = f32({1, 1, 1, 2}, {1, 0});
  Tensor k = f32({1, 1, 1, 2}, {0, 1});
  Tensor v = f32({1, 1, 1, 1}, {0});
  Tensor pastK = f32({1, 1, 1, 2}, {0, 1});
  Tensor pastV = f32({1, 1, 1, 1}, {1});
  Tensor cos = f32({1, 2}, {0, 0});
  Tensor sin = f32({1, 2}, {1, 1});
  std::vector<Tensor> results = runAll(
      "attention", {&q, &k, &v, nullptr, &cos, &sin, &pastK, &pastV},
      attrs({{"heads", int64_t{1}}, {"kv_heads", int64_t{1}}, {"scale", 1.0}, {"rope", std::string("half")}}), 3);
  const double e = std::exp(1.0);
  EXPECT_NEAR(valuesOf(results[0])[0], e / (e + 1), 1e-6);
  // present_k is the past key then the rotated new key; present_v appends v.
  EXPECT_EQ(results[1].shape(), (std::vector<int64_t>{1, 1, 2, 2}));
  EXPECT_EQ(valuesOf(results[1]), (std::vector<double>{0, 1, -1, 0}));
  EXPECT_EQ(valuesOf(results[2]), (std::vector<double>{1, 0}));
}

// An attention problem in bhsd terms, with the naive computation to check the op against.
struct AttentionCase {
  int64_t batch = 1, heads = 2, kvHeads = 2, seq = 3, newKeys = 3, past = 0, headDim = 4;
  double scale = 0.5;
  bool causal = false, rope = false;
  bool interleaved = false;  // rope pairs (2i, 2i+1) rather than (i, i + D/2)
  // Additive mask over [B, Hq, S, L] (empty: none) and rope tables [B][S][D] (per batch).
  std::vector<double> mask;
  std::vector<double> cos, sin;
  std::vector<double> q, k, v, pastK, pastV;

  int64_t keys() const { return past + newKeys; }

  void fill(uint32_t seed) {
    q = pseudoRandom(static_cast<size_t>(batch * heads * seq * headDim), seed);
    k = pseudoRandom(static_cast<size_t>(batch * kvHeads * newKeys * headDim), seed + 1);
    v = pseudoRandom(static_cast<size_t>(batch * kvHeads * newKeys * headDim), seed + 2);
    pastK = pseudoRandom(static_cast<size_t>(batch * kvHeads * past * headDim), seed + 3);
    pastV = pseudoRandom(static_cast<size_t>(batch * kvHeads * past * headDim), seed + 4);
    if (rope) {
      // Per-batch angles so that a [B, 1, S, D] table is really used per batch.
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t s = 0; s < seq; ++s)
          for (int64_t d = 0; d < headDim; ++d) {
            const int64_t pair = interleaved ? d / 2 : d % (headDim / 2);
            const double angle = (s + 1 + b * 0.5) * std::pow(10.0, -static_cast<double>(pair) / 2);
            cos.push_back(std::cos(angle));
            sin.push_back(std::sin(angle));
          }
    }
  }

  // Element (b, h, s, d) of a bhsd tensor with `h` heads and `s` positions.
  static double at(const std::vector<double>& x, int64_t h, int64_t s, int64_t d, int64_t bi, int64_t hi,
                   int64_t si, int64_t di) {
    return x[static_cast<size_t>(((bi * h + hi) * s + si) * d + di)];
  }

  std::vector<double> rotated(std::vector<double> x, int64_t b, int64_t s) const {
    if (!rope) return x;
    const int64_t half = headDim / 2;
    std::vector<double> y(x.size());
    for (int64_t d = 0; d < headDim; ++d) {
      const double other = interleaved ? (d % 2 == 0 ? -x[static_cast<size_t>(d + 1)] : x[static_cast<size_t>(d - 1)])
                           : d < half  ? -x[static_cast<size_t>(d + half)]
                                       : x[static_cast<size_t>(d - half)];
      const size_t t = static_cast<size_t>((b * seq + s) * headDim + d);
      y[static_cast<size_t>(d)] = x[static_cast<size_t>(d)] * cos[t] + other * sin[t];
    }
    return y;
  }

  std::vector<double> keyRow(int64_t b, int64_t kvh, int64_t j, bool value) const {
    std::vector<double> row(static_cast<size_t>(headDim));
    for (int64_t d = 0; d < headDim; ++d)
      row[static_cast<size_t>(d)] = j < past ? at(value ? pastV : pastK, kvHeads, past, headDim, b, kvh, j, d)
                                             : at(value ? v : k, kvHeads, newKeys, headDim, b, kvh, j - past, d);
    return value || j < past ? row : rotated(row, b, j - past);
  }

  // out [B, Hq, S, D], present_k and present_v [B, Hkv, L, D].
  std::vector<std::vector<double>> naive() const {
    const int64_t L = keys();
    std::vector<double> out;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < seq; ++i) {
          const int64_t kvh = h / (heads / kvHeads);
          std::vector<double> query(static_cast<size_t>(headDim));
          for (int64_t d = 0; d < headDim; ++d) query[static_cast<size_t>(d)] = at(q, heads, seq, headDim, b, h, i, d);
          query = rotated(query, b, i);
          std::vector<double> scores;
          std::vector<int64_t> attended;
          for (int64_t j = 0; j < L; ++j) {
            if (causal && j > i + L - seq) continue;
            const std::vector<double> key = keyRow(b, kvh, j, false);
            double dot = 0;
            for (int64_t d = 0; d < headDim; ++d) dot += query[static_cast<size_t>(d)] * key[static_cast<size_t>(d)];
            double score = dot * scale;
            if (!mask.empty()) score += mask[static_cast<size_t>(((b * heads + h) * seq + i) * L + j)];
            if (std::isinf(score)) continue;
            scores.push_back(score);
            attended.push_back(j);
          }
          std::vector<double> result(static_cast<size_t>(headDim), 0.0);
          double highest = -1e300, total = 0;
          for (double s : scores) highest = std::max(highest, s);
          for (double s : scores) total += std::exp(s - highest);
          for (size_t n = 0; n < scores.size(); ++n) {
            const std::vector<double> value = keyRow(b, kvh, attended[n], true);
            for (int64_t d = 0; d < headDim; ++d)
              result[static_cast<size_t>(d)] += std::exp(scores[n] - highest) / total * value[static_cast<size_t>(d)];
          }
          out.insert(out.end(), result.begin(), result.end());
        }
    std::vector<double> presentK, presentV;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < kvHeads; ++h)
        for (int64_t j = 0; j < L; ++j) {
          const std::vector<double> key = keyRow(b, h, j, false), value = keyRow(b, h, j, true);
          presentK.insert(presentK.end(), key.begin(), key.end());
          presentV.insert(presentV.end(), value.begin(), value.end());
        }
    return {out, presentK, presentV};
  }
};

// [B, H, S, D] -> [B, S, H*D].
std::vector<double> toBsd(const std::vector<double>& x, int64_t batch, int64_t heads, int64_t seq, int64_t headDim) {
  std::vector<double> y(x.size());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t s = 0; s < seq; ++s)
        for (int64_t d = 0; d < headDim; ++d)
          y[static_cast<size_t>(((b * seq + s) * heads + h) * headDim + d)] =
              x[static_cast<size_t>(((b * heads + h) * seq + s) * headDim + d)];
  return y;
}

void expectNear(const std::vector<double>& actual, const std::vector<double>& expected, double tolerance,
                const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i)
    ASSERT_NEAR(actual[i], expected[i], tolerance) << what << " element " << i;
}

// Runs the op on `c` and compares with the naive computation. The mask, when
// set, is passed as `maskTensor` (any shape that broadcasts to the full one);
// cos/sin as `[B, 1, S, D]` tables unless the batch is 1, then as `[S, D]`.
void checkAttention(const AttentionCase& c, const std::string& qkvLayout, const std::string& outLayout,
                    const Tensor* maskTensor = nullptr, DType dtype = DType::F32, double tolerance = 1e-5) {
  SCOPED_TRACE(qkvLayout + " -> " + outLayout);
  const bool bsd = qkvLayout == "bsd";
  auto layout = [&](const std::vector<double>& x, int64_t heads, int64_t seq) {
    return bsd ? toBsd(x, c.batch, heads, seq, c.headDim) : x;
  };
  auto shape = [&](int64_t heads, int64_t seq) {
    return bsd ? std::vector<int64_t>{c.batch, seq, heads * c.headDim}
               : std::vector<int64_t>{c.batch, heads, seq, c.headDim};
  };
  Tensor q = make(dtype, shape(c.heads, c.seq), layout(c.q, c.heads, c.seq));
  Tensor k = make(dtype, shape(c.kvHeads, c.newKeys), layout(c.k, c.kvHeads, c.newKeys));
  Tensor v = make(dtype, shape(c.kvHeads, c.newKeys), layout(c.v, c.kvHeads, c.newKeys));
  Tensor pastK = make(dtype, {c.batch, c.kvHeads, c.past, c.headDim}, c.pastK);
  Tensor pastV = make(dtype, {c.batch, c.kvHeads, c.past, c.headDim}, c.pastV);
  const std::vector<int64_t> tableShape = !c.rope        ? std::vector<int64_t>{0}
                                         : c.batch == 1 ? std::vector<int64_t>{c.seq, c.headDim}
                                                        : std::vector<int64_t>{c.batch, 1, c.seq, c.headDim};
  Tensor cos = make(dtype, tableShape, c.cos);
  Tensor sin = make(dtype, tableShape, c.sin);
  const bool withPast = c.past > 0;
  std::vector<const Tensor*> inputs = {&q, &k, &v, maskTensor, c.rope ? &cos : nullptr, c.rope ? &sin : nullptr,
                                       withPast ? &pastK : nullptr, withPast ? &pastV : nullptr};
  Attributes a = attrs({{"heads", c.heads},
                        {"kv_heads", c.kvHeads},
                        {"scale", c.scale},
                        {"causal", c.causal},
                        {"rope", std::string(!c.rope ? "none" : c.interleaved ? "interleaved" : "half")},
                        {"qkv_layout", qkvLayout},
                        {"out_layout", outLayout}});
  std::vector<Tensor> results = runAll("attention", inputs, a, 3);
  const std::vector<std::vector<double>> expected = c.naive();
  const std::vector<double> out =
      outLayout == "bsd" ? toBsd(expected[0], c.batch, c.heads, c.seq, c.headDim) : expected[0];
  EXPECT_EQ(results[0].shape(), outLayout == "bsd"
                                    ? (std::vector<int64_t>{c.batch, c.seq, c.heads * c.headDim})
                                    : (std::vector<int64_t>{c.batch, c.heads, c.seq, c.headDim}));
  EXPECT_EQ(results[1].shape(), (std::vector<int64_t>{c.batch, c.kvHeads, c.keys(), c.headDim}));
  expectNear(valuesOf(results[0]), out, tolerance, "out");
  expectNear(valuesOf(results[1]), expected[1], tolerance, "present_k");
  expectNear(valuesOf(results[2]), expected[2], tolerance, "present_v");
  // With one result the output is the same.
  inputs.resize(withPast ? 8 : c.rope ? 6 : 4);
  expectNear(valuesOf(runAll("attention", inputs, a, 1)[0]), out, tolerance, "out (one result)");
}

TEST(AttentionOp, MultiHeadMatchesNaive) {
  AttentionCase c;
  c.batch = 2;
  c.fill(1);
  for (const char* in : {"bhsd", "bsd"})
    for (const char* out : {"bhsd", "bsd"}) checkAttention(c, in, out);
}

TEST(AttentionOp, GroupedQueryCausalWithPastAndRope) {
  AttentionCase c;
  c.batch = 2, c.heads = 4, c.kvHeads = 2, c.seq = 3, c.newKeys = 3, c.past = 2, c.headDim = 4;
  c.causal = true, c.rope = true;
  c.fill(7);
  for (const char* in : {"bhsd", "bsd"})
    for (const char* out : {"bhsd", "bsd"}) checkAttention(c, in, out);
}

// GPT-J's pairing: the rotation turns adjacent dims (2i, 2i+1).
TEST(AttentionOp, InterleavedRopeWithPast) {
  AttentionCase c;
  c.batch = 2, c.heads = 4, c.kvHeads = 2, c.seq = 3, c.newKeys = 3, c.past = 2, c.headDim = 6;
  c.causal = true, c.rope = true, c.interleaved = true;
  c.fill(13);
  for (const char* in : {"bhsd", "bsd"}) checkAttention(c, in, "bsd");
}

TEST(AttentionOp, MultiQueryDecodeStep) {
  // One new token against a cache of 4: causal lets it see every key.
  AttentionCase c;
  c.heads = 3, c.kvHeads = 1, c.seq = 1, c.newKeys = 1, c.past = 4, c.headDim = 6;
  c.causal = true, c.rope = true;
  c.fill(11);
  checkAttention(c, "bsd", "bsd");
  checkAttention(c, "bhsd", "bhsd");
}

TEST(AttentionOp, AdditivePaddingMaskBroadcast) {
  // A [B, 1, 1, L] padding mask: batch 1 hides its first two keys (past and new).
  AttentionCase c;
  c.batch = 2, c.heads = 4, c.kvHeads = 2, c.seq = 2, c.newKeys = 2, c.past = 1;
  c.fill(3);
  const double hidden = -std::numeric_limits<double>::infinity();
  const std::vector<double> padding = {0, 0, 0, hidden, hidden, 0};
  Tensor mask = f32({2, 1, 1, 3}, padding);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 3; ++j) c.mask.push_back(padding[static_cast<size_t>(b * 3 + j)]);
  checkAttention(c, "bhsd", "bsd", &mask);
  // The same with a large finite negative value (as exporters write finfo.min).
  Tensor finite = f32({2, 1, 1, 3}, {0, 0, 0, -1e30, -1e30, 0});
  checkAttention(c, "bhsd", "bhsd", &finite);
  // And with causal on top.
  c.causal = true;
  checkAttention(c, "bsd", "bhsd", &mask);
}

TEST(AttentionOp, BoolMaskAndFullyMaskedRowsGiveZeros) {
  AttentionCase c;
  c.heads = 2, c.kvHeads = 2, c.seq = 3, c.newKeys = 3;
  c.fill(5);
  // [S, L] mask: row 1 attends to nothing.
  const std::vector<double> attend = {1, 0, 1, 0, 0, 0, 1, 1, 1};
  Tensor mask = make(DType::Bool, {3, 3}, attend);
  const double hidden = -std::numeric_limits<double>::infinity();
  for (int64_t h = 0; h < 2; ++h)
    for (double a : attend) c.mask.push_back(a != 0 ? 0.0 : hidden);
  checkAttention(c, "bhsd", "bhsd", &mask);
  // Row 1 of every head is exactly zero.
  Tensor q = f32({1, 2, 3, 4}, c.q), k = f32({1, 2, 3, 4}, c.k), v = f32({1, 2, 3, 4}, c.v);
  const std::vector<double> out = valuesOf(run(
      "attention", {&q, &k, &v, &mask}, attrs({{"heads", int64_t{2}}, {"kv_heads", int64_t{2}}, {"scale", 0.5}})));
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t d = 0; d < 4; ++d) EXPECT_EQ(out[static_cast<size_t>((h * 3 + 1) * 4 + d)], 0.0);
}

TEST(AttentionOp, CausalWithMoreQueriesThanKeys) {
  // S = 3 queries over 2 keys: query 0 sits before every key and gets zeros.
  AttentionCase c;
  c.heads = 1, c.kvHeads = 1, c.seq = 3, c.newKeys = 2, c.headDim = 2;
  c.causal = true;
  c.fill(9);
  checkAttention(c, "bhsd", "bhsd");
  const std::vector<std::vector<double>> expected = c.naive();
  EXPECT_EQ(expected[0][0], 0.0);
  EXPECT_EQ(expected[0][1], 0.0);
}

TEST(AttentionOp, HalfPrecisionInputs) {
  AttentionCase c;
  c.heads = 4, c.kvHeads = 2, c.seq = 3, c.newKeys = 3, c.past = 2, c.headDim = 8;
  c.causal = true, c.rope = true;
  c.fill(13);
  // Round the inputs to f16/bf16 first so the naive computation sees the same values.
  for (DType dtype : {DType::F16, DType::BF16}) {
    AttentionCase rounded = c;
    for (std::vector<double>* x : {&rounded.q, &rounded.k, &rounded.v, &rounded.pastK, &rounded.pastV,
                                   &rounded.cos, &rounded.sin})
      *x = valuesOf(make(dtype, {static_cast<int64_t>(x->size())}, *x));
    checkAttention(rounded, "bsd", "bhsd", nullptr, dtype, dtype == DType::F16 ? 2e-3 : 2e-2);
  }
  // f64 keeps full precision.
  checkAttention(c, "bhsd", "bhsd", nullptr, DType::F64, 1e-12);
}

TEST(AttentionOp, InfersSymbolicShapes) {
  const TensorType q = {DType::F32, {kBatch, 8, kSeq, 16}};
  const TensorType kv = {DType::F32, {kBatch, 2, kSeq, 16}};
  const TensorType past = {DType::F32, {kBatch, 2, kPast, 16}};
  const TensorType cos = {DType::F32, {kSeq, 16}};
  const TensorType mask = {DType::F32, {kBatch, 1, 1, kPast + kSeq}};
  const Attributes gqa = attrs({{"heads", int64_t{8}}, {"kv_heads", int64_t{2}}, {"scale", 0.25},
                                {"causal", true}, {"rope", std::string("half")}});
  EXPECT_EQ(inferred("attention", {&q, &kv, &kv, &mask, &cos, &cos, &past, &past}, gqa, 3),
            "f32[batch, 8, seq, 16], f32[batch, 2, past + seq, 16], f32[batch, 2, past + seq, 16]");
  EXPECT_EQ(inferred("attention", {&q, &kv, &kv, &mask, &cos, &cos}, gqa), "f32[batch, 8, seq, 16]");
  // Without a cache, present_k/v are the new keys and values.
  EXPECT_EQ(inferred("attention", {&q, &kv, &kv}, attrs({{"heads", int64_t{8}}, {"kv_heads", int64_t{2}},
                                                         {"scale", 0.25}}), 3),
            "f32[batch, 8, seq, 16], f32[batch, 2, seq, 16], f32[batch, 2, seq, 16]");

  // bsd: heads split from the last dim; output in either layout.
  const TensorType q2 = {DType::F16, {kBatch, kSeq, 128}};
  const TensorType kv2 = {DType::F16, {kBatch, kSeq, 32}};
  const TensorType past2 = {DType::F16, {kBatch, 2, kPast, 16}};
  Attributes bsd = attrs({{"heads", int64_t{8}}, {"kv_heads", int64_t{2}}, {"scale", 0.25},
                          {"qkv_layout", std::string("bsd")}, {"out_layout", std::string("bsd")}});
  EXPECT_EQ(inferred("attention", {&q2, &kv2, &kv2, nullptr, nullptr, nullptr, &past2, &past2}, bsd, 3),
            "f16[batch, seq, 128], f16[batch, 2, past + seq, 16], f16[batch, 2, past + seq, 16]");
  bsd.set("out_layout", std::string("bhsd"));
  EXPECT_EQ(inferred("attention", {&q2, &kv2, &kv2}, bsd), "f16[batch, 8, seq, 16]");
  // A symbolic width cannot be split, but the bsd output width stays exact.
  const TensorType qw = {DType::F32, {kBatch, kSeq, Dim::symbol("width")}};
  const TensorType kvw = {DType::F32, {kBatch, kSeq, Dim::symbol("kv_width")}};
  bsd.set("out_layout", std::string("bsd"));
  EXPECT_EQ(inferred("attention", {&qw, &kvw, &kvw}, bsd), "f32[batch, seq, 4*kv_width]");
}

TEST(AttentionOp, Errors) {
  const TensorType q = {DType::F32, {1, 4, 3, 16}};
  const TensorType kv = {DType::F32, {1, 2, 3, 16}};
  const Attributes a = attrs({{"heads", int64_t{4}}, {"kv_heads", int64_t{2}}, {"scale", 0.25}});
  auto with = [&](std::initializer_list<std::pair<const char*, AttrValue>> extra) {
    Attributes b = a;
    for (const auto& [name, value] : extra) b.set(name, value);
    return b;
  };
  std::string error;
  error = inferred("attention", {&q, &kv, &kv}, with({{"heads", int64_t{6}}, {"kv_heads", int64_t{4}}}));
  EXPECT_TRUE(contains(error, "heads (6) is not a multiple of kv_heads (4)")) << error;
  error = inferred("attention", {&q, &kv, &kv}, with({{"kv_heads", int64_t{0}}}));
  EXPECT_TRUE(contains(error, "heads and kv_heads must be positive")) << error;
  error = inferred("attention", {&q, &kv, &kv}, with({{"rope_dims", int64_t{4}}}));
  EXPECT_TRUE(contains(error, "rope_dims = 4: an even count of dims, with rope = \"half\" or \"interleaved\"")) << error;
  error = inferred("attention", {&q, &kv, &kv}, with({{"rope_dims", int64_t{3}}, {"rope", std::string("half")}}));
  EXPECT_TRUE(contains(error, "rope_dims = 3")) << error;
  error = inferred("attention", {&q, &kv, &kv}, with({{"window", int64_t{4}}}));
  EXPECT_TRUE(contains(error, "window = 4: a sliding window is a positive count of keys, on a causal mask")) << error;
  error = inferred("attention", {&q, &kv, &kv}, with({{"window", int64_t{-1}}, {"causal", true}}));
  EXPECT_TRUE(contains(error, "window = -1")) << error;
  error = inferred("attention", {&q, &kv, &kv}, with({{"heads", int64_t{2}}}));
  EXPECT_TRUE(contains(error, "q [1, 4, 3, 16] has 4 heads, expected 2")) << error;
  const TensorType narrow = {DType::F32, {1, 2, 3, 8}};
  error = inferred("attention", {&q, &narrow, &kv}, a);
  EXPECT_TRUE(contains(error, "head dims of q and k differ: 16 vs 8")) << error;
  const TensorType shortV = {DType::F32, {1, 2, 2, 16}};
  error = inferred("attention", {&q, &kv, &shortV}, a);
  EXPECT_TRUE(contains(error, "sequence lengths of k and v differ: 3 vs 2")) << error;
  const TensorType odd = {DType::F32, {1, 4, 3, 15}}, oddKv = {DType::F32, {1, 2, 3, 15}};
  const TensorType table = {DType::F32, {3, 15}};
  error = inferred("attention", {&odd, &oddKv, &oddKv, nullptr, &table, &table}, with({{"rope", std::string("half")}}));
  EXPECT_TRUE(contains(error, "rope needs an even count of turned dims, got 15")) << error;
  error = inferred("attention", {&q, &kv, &kv}, with({{"rope", std::string("half")}}));
  EXPECT_TRUE(contains(error, "rope needs both cos and sin, or inv_freq")) << error;
  const TensorType cos = {DType::F32, {3, 16}}, longCos = {DType::F32, {5, 16}};
  error = inferred("attention", {&q, &kv, &kv, nullptr, &cos, &cos}, a);
  EXPECT_TRUE(contains(error, "cos/sin or inv_freq are given but rope = \"none\"")) << error;
  error = inferred("attention", {&q, &kv, &kv, nullptr, &longCos, &cos}, with({{"rope", std::string("half")}}));
  EXPECT_TRUE(contains(error, "cos [5, 16] does not broadcast to [batch, 1, seq, rope dims] = [1, 1, 3, 16]"))
      << error;
  const TensorType mask = {DType::F32, {1, 1, 3, 5}};
  error = inferred("attention", {&q, &kv, &kv, &mask}, a);
  EXPECT_TRUE(contains(error, "mask [1, 1, 3, 5] does not broadcast to the scores "
                              "[batch, heads, seq, past + kv_seq] = [1, 4, 3, 3]"))
      << error;
  const TensorType intMask = {DType::I64, {1, 3}};
  error = inferred("attention", {&q, &kv, &kv, &intMask}, a);
  EXPECT_TRUE(contains(error, "mask must be bool (true = attend) or float")) << error;
  const TensorType past = {DType::F32, {1, 2, 5, 16}};
  error = inferred("attention", {&q, &kv, &kv, nullptr, nullptr, nullptr, &past}, a);
  EXPECT_TRUE(contains(error, "past_k and past_v must be given together")) << error;
  const TensorType pastWrongHeads = {DType::F32, {1, 4, 5, 16}};
  error = inferred("attention", {&q, &kv, &kv, nullptr, nullptr, nullptr, &pastWrongHeads, &past}, a);
  EXPECT_TRUE(contains(error, "past_k [1, 4, 5, 16] has 4 heads, expected 2")) << error;
  error = inferred("attention", {&q, &kv, &kv}, a, 2);
  EXPECT_TRUE(contains(error, "has 1 result (out) or 3 (out, present_k, present_v), got 2")) << error;
  error = inferred("attention", {&q, &kv, &kv}, with({{"qkv_layout", std::string("bshd")}}));
  EXPECT_TRUE(contains(error, "unknown qkv_layout \"bshd\" (expected bhsd, bsd or bsd_packed)")) << error;
  error = inferred("attention", {&q, &kv, &kv}, with({{"qkv_layout", std::string("bsd")}}));
  EXPECT_TRUE(contains(error, "q must have rank 3 ([batch, seq, heads*head_dim]) in the bsd layout")) << error;
  const TensorType q3 = {DType::F32, {1, 3, 30}}, kv3 = {DType::F32, {1, 3, 16}};
  error = inferred("attention", {&q3, &kv3, &kv3}, with({{"qkv_layout", std::string("bsd")}}));
  EXPECT_TRUE(contains(error, "q [1, 3, 30]: last dim 30 does not split into 4 heads")) << error;
  const TensorType q4 = {DType::F32, {1, 3, 64}};
  error = inferred("attention", {&q4, &kv3, &kv3}, with({{"qkv_layout", std::string("bsd")}}));
  EXPECT_TRUE(contains(error, "head dims of q and k differ: 16 vs 8")) << error;
  error = inferred("attention", {&q, &kv, &kv}, attrs({{"kv_heads", int64_t{2}}, {"scale", 0.25}}));
  EXPECT_TRUE(contains(error, "requires attribute 'heads'")) << error;
  const TensorType ints = {DType::I32, {1, 4, 3, 16}};
  error = inferred("attention", {&ints, &ints, &ints}, with({{"kv_heads", int64_t{4}}}));
  EXPECT_TRUE(contains(error, "q must be a float tensor")) << error;
  // Concrete shapes are checked exactly at run time.
  Tensor qt = f32({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor kt = f32({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor maskT = f32({1, 3}, {0, 0, 0});
  error = errorOf("attention", {&qt, &kt, &kt, &maskT}, attrs({{"heads", int64_t{1}}, {"kv_heads", int64_t{1}},
                                                                {"scale", 1.0}}));
  EXPECT_TRUE(contains(error, "attention(f32[1, 1, 2, 2], f32[1, 1, 2, 2], f32[1, 1, 2, 2], f32[1, 3]): mask "
                              "[1, 3] does not broadcast"))
      << error;
}

// ---- attention forms that restate another one: inv_freq instead of cos/sin
// tables, a key-padding mask instead of an additive one, packed q|k|v rows
// instead of three operands. Each must give what the form it replaces gives
// on the same data.

std::vector<Tensor> attention3(const std::vector<const Tensor*>& operands, const Attributes& a) {
  return runAll("attention", operands, a, 3);
}

void expectSameResults(const std::vector<Tensor>& actual, const std::vector<Tensor>& expected,
                       double tolerance = 0.0) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t r = 0; r < actual.size(); ++r) {
    EXPECT_EQ(actual[r].shape(), expected[r].shape()) << "result " << r;
    expectNear(valuesOf(actual[r]), valuesOf(expected[r]), tolerance, cat("result ", r));
  }
}

Attributes attentionAttrs(const AttentionCase& c, std::initializer_list<std::pair<const char*, AttrValue>> extra) {
  Attributes a = attrs({{"heads", c.heads}, {"kv_heads", c.kvHeads}, {"scale", c.scale}, {"causal", c.causal}});
  for (const auto& [name, value] : extra) a.set(name, value);
  return a;
}

// [S, D] tables of cos/sin(position * inv_freq[d mod D/2]) for positions
// first..first+S-1; interleaved: inv_freq[d / 2].
std::vector<double> ropeTable(const std::vector<double>& invFreq, int64_t first, int64_t seq, bool sine,
                              bool interleaved = false) {
  std::vector<double> table;
  const size_t half = invFreq.size();
  for (int64_t s = 0; s < seq; ++s)
    for (size_t d = 0; d < 2 * half; ++d) {
      const double angle = static_cast<double>(first + s) * invFreq[interleaved ? d / 2 : d % half];
      table.push_back(sine ? std::sin(angle) : std::cos(angle));
    }
  return table;
}

TEST(AttentionOp, RopeFromInvFreqMatchesCosSinTables) {
  Tensor invFreq = f32({4}, {1.0, 0.3, 0.05, 0.001});
  const std::vector<double> frequencies = valuesOf(invFreq);  // as rounded to f32
  for (int64_t past : {0, 3})
    for (bool interleaved : {false, true}) {
      SCOPED_TRACE(cat("past ", past, interleaved ? " interleaved" : " half"));
      AttentionCase c;
      c.batch = 2, c.heads = 4, c.kvHeads = 2, c.seq = 3, c.newKeys = 3, c.past = past, c.headDim = 8;
      c.causal = true;
      c.fill(17);
      Tensor q = f32({c.batch, c.heads, c.seq, c.headDim}, c.q);
      Tensor k = f32({c.batch, c.kvHeads, c.seq, c.headDim}, c.k);
      Tensor v = f32({c.batch, c.kvHeads, c.seq, c.headDim}, c.v);
      Tensor pastK = f32({c.batch, c.kvHeads, past, c.headDim}, c.pastK);
      Tensor pastV = f32({c.batch, c.kvHeads, past, c.headDim}, c.pastV);
      // The new tokens sit at positions past .. past + seq - 1.
      Tensor cos = f32({c.seq, c.headDim}, ropeTable(frequencies, past, c.seq, false, interleaved));
      Tensor sin = f32({c.seq, c.headDim}, ropeTable(frequencies, past, c.seq, true, interleaved));
      const Attributes a = attentionAttrs(c, {{"rope", std::string(interleaved ? "interleaved" : "half")}});
      const std::vector<Tensor> tables = attention3({&q, &k, &v, nullptr, &cos, &sin, &pastK, &pastV}, a);
      // Tables rounded to f32 and cos/sin computed in double then used in f32 agree exactly.
      expectSameResults(
          attention3({&q, &k, &v, nullptr, nullptr, nullptr, &pastK, &pastV, &invFreq}, a), tables);
      if (past == 0)
        expectSameResults(attention3({&q, &k, &v, nullptr, nullptr, nullptr, nullptr, nullptr, &invFreq}, a), tables);
    }
}

TEST(AttentionOp, RopeFromInvFreqDecodeStepAndF64) {
  // One new token after 4 cached ones rotates by position 4, in f32 and f64.
  AttentionCase c;
  c.heads = 2, c.kvHeads = 1, c.seq = 1, c.newKeys = 1, c.past = 4, c.headDim = 4;
  c.fill(19);
  Tensor invFreq = f32({2}, {0.7, 0.02});
  const std::vector<double> frequencies = valuesOf(invFreq);
  for (DType dtype : {DType::F32, DType::F64}) {
    Tensor q = make(dtype, {1, 2, 1, 4}, c.q), k = make(dtype, {1, 1, 1, 4}, c.k), v = make(dtype, {1, 1, 1, 4}, c.v);
    Tensor pastK = make(dtype, {1, 1, 4, 4}, c.pastK), pastV = make(dtype, {1, 1, 4, 4}, c.pastV);
    Tensor cos = make(dtype, {1, 4}, ropeTable(frequencies, 4, 1, false));
    Tensor sin = make(dtype, {1, 4}, ropeTable(frequencies, 4, 1, true));
    const Attributes a = attentionAttrs(c, {{"rope", std::string("half")}});
    expectSameResults(attention3({&q, &k, &v, nullptr, nullptr, nullptr, &pastK, &pastV, &invFreq}, a),
                      attention3({&q, &k, &v, nullptr, &cos, &sin, &pastK, &pastV}, a));
  }
  // Position 4 with inv_freq [pi/8]: angle pi/2, so the new key [1, 0] rotates to [0, 1].
  Tensor q = f32({1, 1, 1, 2}, {0, 1}), k = f32({1, 1, 1, 2}, {1, 0}), v = f32({1, 1, 1, 1}, {2});
  Tensor pastK = f32({1, 1, 4, 2}, std::vector<double>(8, 0.0)), pastV = f32({1, 1, 4, 1}, {0, 0, 0, 0});
  Tensor quarter = f32({1}, {std::acos(-1.0) / 8});
  const std::vector<Tensor> results =
      attention3({&q, &k, &v, nullptr, nullptr, nullptr, &pastK, &pastV, &quarter},
                 attrs({{"heads", int64_t{1}}, {"kv_heads", int64_t{1}}, {"scale", 1.0}, {"rope", std::string("half")}}));
  // q [0, 1] rotates to [-1, 0]; the rotated key [0, 1] scores 0 like the past keys.
  EXPECT_NEAR(valuesOf(results[1])[8], 0.0, 1e-7);
  EXPECT_NEAR(valuesOf(results[1])[9], 1.0, 1e-7);
  EXPECT_NEAR(valuesOf(results[0])[0], 2.0 / 5.0, 1e-6);
}

TEST(AttentionOp, KeyPaddingMaskMatchesAdditiveMask) {
  AttentionCase c;
  c.batch = 2, c.heads = 4, c.kvHeads = 2, c.seq = 3, c.newKeys = 3, c.past = 1, c.headDim = 4;
  c.fill(23);
  Tensor q = f32({2, 4, 3, 4}, c.q), k = f32({2, 2, 3, 4}, c.k), v = f32({2, 2, 3, 4}, c.v);
  Tensor pastK = f32({2, 2, 1, 4}, c.pastK), pastV = f32({2, 2, 1, 4}, c.pastV);
  // Batch 1 pads its past key and its last key.
  const std::vector<double> attend = {1, 1, 1, 1, 0, 1, 1, 0};
  const double hidden = -std::numeric_limits<double>::infinity();
  std::vector<double> additive;
  for (double x : attend) additive.push_back(x != 0 ? 0.0 : hidden);
  Tensor scores = f32({2, 1, 1, 4}, additive);
  for (bool causal : {false, true}) {
    SCOPED_TRACE(causal ? "causal" : "not causal");
    c.causal = causal;
    const std::vector<Tensor> expected =
        attention3({&q, &k, &v, &scores, nullptr, nullptr, &pastK, &pastV}, attentionAttrs(c, {}));
    const Attributes keyPadding = attentionAttrs(c, {{"mask_layout", std::string("key_padding")}});
    for (DType dtype : {DType::I64, DType::I32, DType::U8, DType::Bool}) {
      // Any nonzero value attends.
      std::vector<double> values = attend;
      if (dtype != DType::Bool) values[1] = 7;
      Tensor mask = make(dtype, {2, 4}, values);
      expectSameResults(attention3({&q, &k, &v, &mask, nullptr, nullptr, &pastK, &pastV}, keyPadding), expected);
    }
  }
  // A [1, L] mask broadcasts over the batch; a batch row with no key to
  // attend gives zeros, as a bool mask does.
  Tensor none = make(DType::I64, {1, 4}, {0, 0, 0, 0});
  const std::vector<double> out = valuesOf(
      attention3({&q, &k, &v, &none, nullptr, nullptr, &pastK, &pastV},
                 attentionAttrs(c, {{"mask_layout", std::string("key_padding")}}))[0]);
  for (double x : out) EXPECT_EQ(x, 0.0);
}

// q|k|v rows [B, S, (Hq + 2*Hkv)*D] from bsd q [B, S, Hq*D], k and v [B, S, Hkv*D].
std::vector<double> packRows(const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v,
                             int64_t rows, int64_t qWidth, int64_t kvWidth) {
  std::vector<double> packed;
  for (int64_t r = 0; r < rows; ++r) {
    packed.insert(packed.end(), q.begin() + r * qWidth, q.begin() + (r + 1) * qWidth);
    packed.insert(packed.end(), k.begin() + r * kvWidth, k.begin() + (r + 1) * kvWidth);
    packed.insert(packed.end(), v.begin() + r * kvWidth, v.begin() + (r + 1) * kvWidth);
  }
  return packed;
}

TEST(AttentionOp, PackedQkvMatchesSeparateOperands) {
  AttentionCase c;
  c.batch = 2, c.heads = 4, c.kvHeads = 2, c.seq = 3, c.newKeys = 3, c.past = 2, c.headDim = 4;
  c.causal = true, c.rope = true;
  c.fill(29);
  const int64_t B = c.batch, S = c.seq, D = c.headDim, Hq = c.heads, Hkv = c.kvHeads;
  const std::vector<double> qRows = toBsd(c.q, B, Hq, S, D), kRows = toBsd(c.k, B, Hkv, S, D),
                            vRows = toBsd(c.v, B, Hkv, S, D);
  Tensor q = f32({B, S, Hq * D}, qRows), k = f32({B, S, Hkv * D}, kRows), v = f32({B, S, Hkv * D}, vRows);
  Tensor packed = f32({B, S, (Hq + 2 * Hkv) * D}, packRows(qRows, kRows, vRows, B * S, Hq * D, Hkv * D));
  Tensor pastK = f32({B, Hkv, c.past, D}, c.pastK), pastV = f32({B, Hkv, c.past, D}, c.pastV);
  Tensor cos = f32({B, 1, S, D}, c.cos), sin = f32({B, 1, S, D}, c.sin);
  Tensor invFreq = f32({2}, {0.5, 0.01});
  Tensor padding = make(DType::Bool, {B, c.past + S}, {1, 1, 1, 1, 1, 0, 1, 1, 1, 0});
  for (const char* out : {"bsd", "bhsd"}) {
    SCOPED_TRACE(out);
    Attributes separate = attentionAttrs(c, {{"qkv_layout", std::string("bsd")}, {"out_layout", std::string(out)}});
    Attributes packedRows = separate;
    packedRows.set("qkv_layout", std::string("bsd_packed"));
    // Plain, then with a cache, RoPE from tables or from inv_freq, and a key-padding mask.
    expectSameResults(attention3({&packed}, packedRows), attention3({&q, &k, &v}, separate));
    separate.set("rope", std::string("half"));
    packedRows.set("rope", std::string("half"));
    expectSameResults(attention3({&packed, nullptr, nullptr, nullptr, &cos, &sin, &pastK, &pastV}, packedRows),
                      attention3({&q, &k, &v, nullptr, &cos, &sin, &pastK, &pastV}, separate));
    separate.set("mask_layout", std::string("key_padding"));
    packedRows.set("mask_layout", std::string("key_padding"));
    expectSameResults(
        attention3({&packed, nullptr, nullptr, &padding, nullptr, nullptr, &pastK, &pastV, &invFreq}, packedRows),
        attention3({&q, &k, &v, &padding, nullptr, nullptr, &pastK, &pastV, &invFreq}, separate));
  }
  // And against the naive computation, through the bsd layout it restates.
  checkAttention(c, "bsd", "bsd");
}

TEST(AttentionOp, InfersNewForms) {
  const TensorType packed = {DType::F32, {kBatch, kSeq, 192}};
  const TensorType past = {DType::F32, {kBatch, 2, kPast, 16}};
  const TensorType invFreq = {DType::F32, {8}};
  const TensorType padding = {DType::I64, {kBatch, kPast + kSeq}};
  Attributes a = attrs({{"heads", int64_t{8}}, {"kv_heads", int64_t{2}}, {"scale", 0.25},
                        {"qkv_layout", std::string("bsd_packed")}, {"out_layout", std::string("bsd")},
                        {"rope", std::string("half")}, {"mask_layout", std::string("key_padding")}});
  // 192 = (8 + 2*2) * 16: head dim 16.
  EXPECT_EQ(inferred("attention", {&packed, nullptr, nullptr, &padding, nullptr, nullptr, &past, &past, &invFreq}, a, 3),
            "f32[batch, seq, 128], f32[batch, 2, past + seq, 16], f32[batch, 2, past + seq, 16]");
  a.set("out_layout", std::string("bhsd"));
  const TensorType q = {DType::F32, {kBatch, 8, kSeq, 16}}, kv = {DType::F32, {kBatch, 2, kSeq, 16}};
  a.set("qkv_layout", std::string("bhsd"));
  const TensorType bool2 = {DType::Bool, {1, kSeq}};
  EXPECT_EQ(inferred("attention", {&q, &kv, &kv, &bool2, nullptr, nullptr, nullptr, nullptr, &invFreq}, a),
            "f32[batch, 8, seq, 16]");
}

TEST(AttentionOp, NewFormErrors) {
  const TensorType q = {DType::F32, {1, 4, 3, 16}};
  const TensorType kv = {DType::F32, {1, 2, 3, 16}};
  const TensorType cos = {DType::F32, {3, 16}};
  const TensorType invFreq = {DType::F32, {8}}, wideFreq = {DType::F32, {16}};
  const Attributes a = attrs({{"heads", int64_t{4}}, {"kv_heads", int64_t{2}}, {"scale", 0.25}});
  auto with = [&](std::initializer_list<std::pair<const char*, AttrValue>> extra) {
    Attributes b = a;
    for (const auto& [name, value] : extra) b.set(name, value);
    return b;
  };
  const Attributes rope = with({{"rope", std::string("half")}});
  std::string error;
  error = inferred("attention", {&q, &kv, &kv, nullptr, &cos, &cos, nullptr, nullptr, &invFreq}, rope);
  EXPECT_TRUE(contains(error, "rope takes cos and sin or inv_freq, not both")) << error;
  error = inferred("attention", {&q, &kv, &kv, nullptr, nullptr, nullptr, nullptr, nullptr, &wideFreq}, rope);
  EXPECT_TRUE(contains(error, "inv_freq must be [rope dims / 2] = [8], got f32[16]")) << error;
  error = inferred("attention", {&q, &kv, &kv, nullptr, nullptr, nullptr, nullptr, nullptr, &invFreq}, a);
  EXPECT_TRUE(contains(error, "cos/sin or inv_freq are given but rope = \"none\"")) << error;

  const Attributes keyPadding = with({{"mask_layout", std::string("key_padding")}});
  const TensorType floatMask = {DType::F32, {1, 3}}, longMask = {DType::I64, {1, 5}};
  error = inferred("attention", {&q, &kv, &kv, &floatMask}, keyPadding);
  EXPECT_TRUE(contains(error, "a key_padding mask must be bool or integer (nonzero = attend), got f32[1, 3]")) << error;
  error = inferred("attention", {&q, &kv, &kv, &longMask}, keyPadding);
  EXPECT_TRUE(contains(error, "key_padding mask [1, 5] does not broadcast to [batch, past + kv_seq] = [1, 3]"))
      << error;
  error = inferred("attention", {&q, &kv, &kv}, keyPadding);
  EXPECT_TRUE(contains(error, "mask_layout = \"key_padding\" needs a mask")) << error;
  error = inferred("attention", {&q, &kv, &kv}, with({{"mask_layout", std::string("padding")}}));
  EXPECT_TRUE(contains(error, "unknown mask_layout \"padding\" (expected scores or key_padding)")) << error;

  const Attributes packed = with({{"qkv_layout", std::string("bsd_packed")}});
  const TensorType rows = {DType::F32, {1, 3, 128}}, oddRows = {DType::F32, {1, 3, 100}};
  const TensorType kv3 = {DType::F32, {1, 3, 32}};
  error = inferred("attention", {&rows, &kv3, &kv3}, packed);
  EXPECT_TRUE(contains(error, "qkv_layout = \"bsd_packed\" reads k and v from q's rows: k and v must be absent"))
      << error;
  error = inferred("attention", {&oddRows}, packed);
  EXPECT_TRUE(contains(error, "q [1, 3, 100]: last dim 100 does not split into 8 head rows (heads + 2*kv_heads)"))
      << error;
  error = inferred("attention", {&q}, a);
  EXPECT_TRUE(contains(error, "k and v are required unless qkv_layout = \"bsd_packed\"")) << error;
  error = inferred("attention", {&rows}, with({{"qkv_layout", std::string("bsd_packed")},
                                               {"out_layout", std::string("bsd_packed")}}));
  EXPECT_TRUE(contains(error, "unknown out_layout \"bsd_packed\" (expected bhsd or bsd)")) << error;
}

// ---- rms_norm

TEST(RmsNormOp, NormalizesRowsAndScales) {
  // Row [3, 4]: mean square 12.5, rms 3.5355; scale [2, 0.5].
  Tensor x = f32({1, 2}, {3, 4});
  Tensor scale = f32({2}, {2, 0.5});
  const std::vector<double> y = valuesOf(run("rms_norm", {&x, &scale}, attrs({{"epsilon", 0.0}})));
  EXPECT_NEAR(y[0], 3 / std::sqrt(12.5) * 2, 1e-6);
  EXPECT_NEAR(y[1], 4 / std::sqrt(12.5) * 0.5, 1e-6);
  // Epsilon is added to the mean square: rows [1, 1] and [3, 3] with eps 1.
  Tensor rows = f32({2, 2}, {1, 1, 3, 3});
  const std::vector<double> z = valuesOf(run("rms_norm", {&rows}, attrs({{"epsilon", 1.0}})));
  EXPECT_NEAR(z[0], 1 / std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(z[1], 1 / std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(z[2], 3 / std::sqrt(10.0), 1e-6);
  EXPECT_NEAR(z[3], 3 / std::sqrt(10.0), 1e-6);
  // The default epsilon is 1e-5.
  Tensor ones = f32({1, 1}, {1});
  EXPECT_NEAR(valuesOf(run("rms_norm", {&ones}))[0], 1 / std::sqrt(1 + 1e-5), 1e-7);
}

TEST(RmsNormOp, AxisSpansTheTrailingDims) {
  // axis 0 of [2, 2] normalizes all four: mean square 7.5; scale [1, 10] per column.
  Tensor x = f32({2, 2}, {1, 2, 3, 4});
  Tensor scale = f32({2}, {1, 10});
  const std::vector<double> y = valuesOf(run("rms_norm", {&x, &scale}, attrs({{"axis", int64_t{0}}, {"epsilon", 0.0}})));
  const double rms = std::sqrt(7.5);
  const std::vector<double> expected = {1 / rms, 20 / rms, 3 / rms, 40 / rms};
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(y[i], expected[i], 1e-5);
}

TEST(RmsNormOp, HalfPrecision) {
  Tensor x = make(DType::F16, {1, 2}, {3, 4});
  Tensor scale = make(DType::F16, {2}, {1, 1});
  Tensor y = run("rms_norm", {&x, &scale}, attrs({{"epsilon", 0.0}}));
  EXPECT_EQ(y.dtype(), DType::F16);
  // 0.848528 and 1.131371 rounded to f16.
  EXPECT_EQ(valuesOf(y), (std::vector<double>{0.8486328125, 1.1318359375}));
}

TEST(RmsNormOp, InferenceAndErrors) {
  const TensorType x = {DType::F32, {kBatch, kSeq, 64}};
  const TensorType scale = {DType::F32, {64}};
  EXPECT_EQ(inferred("rms_norm", {&x, &scale}), "f32[batch, seq, 64]");
  EXPECT_EQ(inferred("rms_norm", {&x}), "f32[batch, seq, 64]");
  const TensorType wrong = {DType::F32, {32}};
  std::string error = inferred("rms_norm", {&x, &wrong});
  EXPECT_TRUE(contains(error, "scale [32] does not broadcast to the normalized dims [64]")) << error;
  error = inferred("rms_norm", {&x, &scale}, attrs({{"axis", int64_t{3}}}));
  EXPECT_TRUE(contains(error, "axis = 3 is out of range for rank 3")) << error;
  const TensorType ints = {DType::I32, {4}};
  error = inferred("rms_norm", {&ints});
  EXPECT_TRUE(contains(error, "x must be a float tensor")) << error;
  const TensorType half = {DType::F16, {64}};
  error = inferred("rms_norm", {&x, &half});
  EXPECT_TRUE(contains(error, "same dtype")) << error;
}

// ---- relative_position_bias

// T5's buckets, worked by hand from its _relative_position_bucket: 32 buckets
// and max_distance 128 (T5's defaults).
TEST(RelativePositionBias, BucketsAsT5) {
  using relative_position::bucket;
  // Both directions: 16 each, 8 exact; keys after the query in the upper half.
  EXPECT_EQ(bucket(0, 32, 128, true), 0);
  EXPECT_EQ(bucket(-1, 32, 128, true), 1);
  EXPECT_EQ(bucket(1, 32, 128, true), 17);
  EXPECT_EQ(bucket(7, 32, 128, true), 23);
  EXPECT_EQ(bucket(8, 32, 128, true), 24);    // 8 + trunc(log(1) / log(16) * 8)
  EXPECT_EQ(bucket(-20, 32, 128, true), 10);  // 8 + trunc(log(2.5) / log(16) * 8) = 8 + 2
  EXPECT_EQ(bucket(-200, 32, 128, true), 15);
  EXPECT_EQ(bucket(200, 32, 128, true), 31);
  // Keys at or before the query only: 32 buckets, 16 exact; later keys share 0.
  EXPECT_EQ(bucket(5, 32, 128, false), 0);
  EXPECT_EQ(bucket(-5, 32, 128, false), 5);
  EXPECT_EQ(bucket(-16, 32, 128, false), 16);
  EXPECT_EQ(bucket(-40, 32, 128, false), 23);  // 16 + trunc(log(2.5) / log(8) * 16) = 16 + 7
  EXPECT_EQ(bucket(-1000, 32, 128, false), 31);
}

TEST(RelativePositionBias, GathersTheBucketRowPerHead) {
  // 4 buckets (2 per direction, 1 exact) and 2 heads: table[b][h] = 10 b + h.
  Tensor table = f32({4, 2}, {0, 1, 10, 11, 20, 21, 30, 31});
  const Attributes a = attrs({{"bidirectional", true}, {"max_distance", int64_t{4}},
                              {"lengths", std::vector<Dim>{Dim(2), Dim(3)}}});
  Tensor out = run("relative_position_bias", {&table}, a);
  ASSERT_EQ(out.shape(), (std::vector<int64_t>{2, 2, 3}));
  std::vector<double> expected;
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j)
        expected.push_back(static_cast<double>(10 * relative_position::bucket(j - i, 4, 4, true) + h));
  EXPECT_EQ(valuesOf(out), expected);
  EXPECT_EQ(valuesOf(out)[1], 30.0);  // head 0, query 0, key 1: the upper half's first, far bucket 3
  const TensorType symbolic = {DType::F32, {32, 8}};
  const Attributes lengths = attrs({{"max_distance", int64_t{128}}, {"lengths", std::vector<Dim>{kSeq, kSeq}}});
  EXPECT_EQ(inferred("relative_position_bias", {&symbolic}, lengths), "f32[8, seq, seq]");
  const Attributes near = attrs({{"max_distance", int64_t{16}}, {"lengths", std::vector<Dim>{kSeq, kSeq}}});
  EXPECT_TRUE(contains(inferred("relative_position_bias", {&symbolic}, near), "max_distance 16 must exceed the 16"));
  const TensorType few = {DType::F32, {2, 8}};
  const Attributes both = attrs({{"bidirectional", true}, {"max_distance", int64_t{8}},
                                 {"lengths", std::vector<Dim>{kSeq, kSeq}}});
  EXPECT_TRUE(contains(inferred("relative_position_bias", {&few}, both), "too few for both directions"));
}

// ---- gelu, silu, swiglu

TEST(ActivationOps, GeluAndSilu) {
  Tensor x = f32({3}, {1, -1, 2});
  const std::vector<double> gelu = valuesOf(run("gelu", {&x}));
  const std::vector<double> erfForm = {0.8413447460685429, -0.15865525393145707, 1.9544997361036416};
  const std::vector<double> tanhForm = {0.8411919906082768, -0.15880800939172324, 1.954597694087775};
  const std::vector<double> siluValues = {0.7310585786300049, -0.2689414213699951, 1.7615941559557646};
  const std::vector<double> tanh = valuesOf(run("gelu", {&x}, attrs({{"approximate", std::string("tanh")}})));
  const std::vector<double> explicitNone = valuesOf(run("gelu", {&x}, attrs({{"approximate", std::string("none")}})));
  const std::vector<double> silu = valuesOf(run("silu", {&x}));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(gelu[i], erfForm[i], 1e-6);
    EXPECT_NEAR(explicitNone[i], erfForm[i], 1e-6);
    EXPECT_NEAR(tanh[i], tanhForm[i], 1e-6);
    EXPECT_NEAR(silu[i], siluValues[i], 1e-6);
  }
  Tensor x64 = make(DType::F64, {1}, {1});
  EXPECT_DOUBLE_EQ(valuesOf(run("silu", {&x64}))[0], 0.7310585786300049);
  const TensorType symbolic = {DType::BF16, {kBatch, kSeq}};
  EXPECT_EQ(inferred("gelu", {&symbolic}), "bf16[batch, seq]");
  EXPECT_EQ(inferred("silu", {&symbolic}), "bf16[batch, seq]");
  std::string error = inferred("gelu", {&symbolic}, attrs({{"approximate", std::string("fast")}}));
  EXPECT_TRUE(contains(error, "unknown approximate \"fast\" (expected none or tanh)")) << error;
  const TensorType ints = {DType::I64, {2}};
  EXPECT_TRUE(contains(inferred("silu", {&ints}), "x must be a float tensor"));
}

TEST(ActivationOps, Swiglu) {
  Tensor gate = f32({2}, {1, -1});
  Tensor up = f32({2}, {2, 3});
  const std::vector<double> y = valuesOf(run("swiglu", {&gate, &up}));
  EXPECT_NEAR(y[0], 0.7310585786300049 * 2, 1e-6);
  EXPECT_NEAR(y[1], -0.2689414213699951 * 3, 1e-6);
  // Broadcast: gate [2, 1] against up [3].
  Tensor column = f32({2, 1}, {1, -1});
  Tensor row = f32({3}, {1, 2, 3});
  Tensor z = run("swiglu", {&column, &row});
  EXPECT_EQ(z.shape(), (std::vector<int64_t>{2, 3}));
  const std::vector<double> zv = valuesOf(z);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(zv[i], 0.7310585786300049 * static_cast<double>(i + 1), 1e-6);
    EXPECT_NEAR(zv[3 + i], -0.2689414213699951 * static_cast<double>(i + 1), 1e-6);
  }
  const TensorType a = {DType::F32, {kBatch, kSeq, 128}};
  const TensorType b = {DType::F32, {kBatch, kSeq, 64}};
  EXPECT_EQ(inferred("swiglu", {&a, &a}), "f32[batch, seq, 128]");
  std::string error = inferred("swiglu", {&a, &b});
  EXPECT_TRUE(contains(error, "shapes [batch, seq, 128], [batch, seq, 64] do not broadcast")) << error;
  const TensorType half = {DType::F16, {kBatch, kSeq, 128}};
  EXPECT_TRUE(contains(inferred("swiglu", {&a, &half}), "same dtype"));
}

TEST(ActivationOps, SwigluOnPackedGateAndUp) {
  auto silu = [](double x) { return x / (1 + std::exp(-x)); };
  // Two rows of gate | up, gate first.
  Tensor packed = f32({2, 4}, {1, -1, 2, 3, 0.5, 2, -1, 4});
  expectClose(run("swiglu", {&packed}), DType::F32, {2, 2},
              {silu(1) * 2, silu(-1) * 3, silu(0.5) * -1, silu(2) * 4});
  // The same values as the two-operand form on the halves, in bf16 too.
  Tensor packed16 = make(DType::BF16, {1, 1, 4}, {1, -1, 2, 3});
  Tensor gate16 = make(DType::BF16, {1, 1, 2}, {1, -1});
  Tensor up16 = make(DType::BF16, {1, 1, 2}, {2, 3});
  EXPECT_EQ(valuesOf(run("swiglu", {&packed16})), valuesOf(run("swiglu", {&gate16, &up16})));
  Tensor empty = f32({0, 6}, {});
  EXPECT_EQ(run("swiglu", {&empty}).shape(), (std::vector<int64_t>{0, 3}));

  const TensorType a = {DType::F32, {kBatch, kSeq, 256}};
  EXPECT_EQ(inferred("swiglu", {&a}), "f32[batch, seq, 128]");
  const TensorType symbolic = {DType::F16, dims({"batch", "2*seq"})};
  EXPECT_EQ(inferred("swiglu", {&symbolic}), "f16[batch, seq]");
  const TensorType odd = {DType::F32, {kBatch, 7}};
  std::string error = inferred("swiglu", {&odd});
  EXPECT_TRUE(contains(error, "packed gate | up needs an even last dim, got f32[batch, 7]")) << error;
  const TensorType scalar = {DType::F32, {}};
  error = inferred("swiglu", {&scalar});
  EXPECT_TRUE(contains(error, "needs rank >= 1")) << error;
  const TensorType ints = {DType::I32, {4}};
  EXPECT_TRUE(contains(inferred("swiglu", {&ints}), "gate must be a float tensor"));
}

// ---- fused_elementwise

Attributes program(const std::string& text) { return attrs({{"program", text}}); }

TEST(FusedElementwiseOp, ChainWithBroadcastOperands) {
  // tanh(x0 * x1 + x2) with x1 a scalar and x2 a row.
  Tensor x0 = f32({2, 2}, {0.1, 0.2, 0.3, 0.4});
  Tensor x1 = f32({}, {2});
  Tensor x2 = f32({2}, {0, -1});
  Tensor y = run("fused_elementwise", {&x0, &x1, &x2}, program("mul $0 $1; add %0 $2; tanh %1"));
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{2, 2}));
  const std::vector<double> expected = {std::tanh(0.2), std::tanh(-0.6), std::tanh(0.6), std::tanh(-0.2)};
  const std::vector<double> actual = valuesOf(y);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(actual[i], expected[i], 1e-6);
  // Literals, and a value used twice: (x * 0.5 + 1) * (x * 0.5 + 1).
  Tensor x = f32({3}, {0, 2, -4});
  EXPECT_EQ(valuesOf(run("fused_elementwise", {&x}, program("mul $0 0.5; add %0 1; mul %1 %1"))),
            (std::vector<double>{1, 4, 1}));
  // Extra whitespace is accepted; scientific and negative literals parse.
  EXPECT_EQ(valuesOf(run("fused_elementwise", {&x}, program("  sub $0   -1e1 ;max %0 9"))),
            (std::vector<double>{10, 12, 9}));
}

TEST(FusedElementwiseOp, IntegerPrograms) {
  // RoBERTa's positions from padding (pad 1): ids != 1 as i32, then (with the
  // cumsum between) times the mask as i64 plus 1.
  Tensor ids = i64({1, 4}, {5, 7, 1, 1});
  Tensor mask = run("fused_elementwise", {&ids}, program("equal $0 1; not %0; cast_i32 %1"));
  EXPECT_EQ(mask.dtype(), DType::I32);
  EXPECT_EQ(valuesOf(mask), (std::vector<double>{1, 1, 0, 0}));
  Tensor counted = make(DType::I32, {1, 4}, {1, 2, 2, 2});
  Tensor positions = run("fused_elementwise", {&counted, &mask}, program("mul $0 $1; cast_i64 %0; add %1 1"));
  EXPECT_EQ(positions.dtype(), DType::I64);
  EXPECT_EQ(valuesOf(positions), (std::vector<double>{2, 3, 1, 1}));
  // i32 arithmetic wraps at 32 bits, as the i32 ops do; abs, comparisons and
  // logic, a broadcast operand.
  Tensor big = make(DType::I32, {3}, {2147483647, -5, 3});
  EXPECT_EQ(valuesOf(run("fused_elementwise", {&big}, program("add $0 1"))),
            (std::vector<double>{-2147483648.0, -4, 4}));
  Tensor row = make(DType::I32, {1}, {3});
  EXPECT_EQ(valuesOf(run("fused_elementwise", {&big, &row}, program("abs $0; greater %0 $1; less $0 $1; or %1 %2"))),
            (std::vector<double>{1, 1, 0}));
  EXPECT_EQ(valuesOf(run("fused_elementwise", {&big}, program("cast_bool $0; not %0"))),
            (std::vector<double>{0, 0, 0}));
}

TEST(FusedElementwiseOp, EveryOp) {
  Tensor a = f32({1}, {0.5});
  Tensor b = f32({1}, {2});
  auto one = [&](const std::string& text) {
    return valuesOf(run("fused_elementwise", {&a, &b}, program(text)))[0];
  };
  EXPECT_NEAR(one("add $0 $1"), 2.5, 1e-7);
  EXPECT_NEAR(one("sub $0 $1"), -1.5, 1e-7);
  EXPECT_NEAR(one("mul $0 $1"), 1.0, 1e-7);
  EXPECT_NEAR(one("div $0 $1"), 0.25, 1e-7);
  EXPECT_NEAR(one("pow $1 3"), 8.0, 1e-6);
  EXPECT_NEAR(one("max $0 $1"), 2.0, 1e-7);
  EXPECT_NEAR(one("min $0 $1"), 0.5, 1e-7);
  EXPECT_NEAR(one("neg $0"), -0.5, 1e-7);
  EXPECT_NEAR(one("exp $0"), std::exp(0.5), 1e-6);
  EXPECT_NEAR(one("log $1"), std::log(2.0), 1e-6);
  EXPECT_NEAR(one("sqrt $1"), std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(one("reciprocal $1"), 0.5, 1e-7);
  EXPECT_NEAR(one("tanh $0"), std::tanh(0.5), 1e-6);
  EXPECT_NEAR(one("erf $0"), std::erf(0.5), 1e-6);
  EXPECT_NEAR(one("sigmoid $0"), 1 / (1 + std::exp(-0.5)), 1e-6);
  EXPECT_NEAR(one("relu $0"), 0.5, 1e-7);
  EXPECT_NEAR(one("neg $0; relu %0"), 0.0, 1e-7);
  EXPECT_NEAR(one("gelu $1"), 1.9544997361036416, 1e-6);
  EXPECT_NEAR(one("gelu_tanh $1"), 1.954597694087775, 1e-6);
  EXPECT_NEAR(one("silu $1"), 1.7615941559557646, 1e-6);
  // max/min propagate NaN like the max and min ops.
  EXPECT_TRUE(std::isnan(one("log -1; max %0 $1")));
  EXPECT_TRUE(std::isnan(one("log -1; min $0 %0")));
}

TEST(FusedElementwiseOp, ManyElementsAcrossBlocks) {
  // 3 x 700 elements: more than one block, with a row operand broadcast over rows.
  const std::vector<double> xs = pseudoRandom(2100, 21);
  const std::vector<double> bias = pseudoRandom(700, 22);
  Tensor x = f32({3, 700}, xs);
  Tensor b = f32({700}, bias);
  Tensor c = f32({3, 1}, {1, 2, 3});
  const std::vector<double> y =
      valuesOf(run("fused_elementwise", {&x, &b, &c}, program("add $0 $1; mul %0 $2; sigmoid %1")));
  for (size_t i = 0; i < xs.size(); ++i) {
    const double v = (static_cast<float>(xs[i]) + static_cast<float>(bias[i % 700])) * static_cast<double>(i / 700 + 1);
    ASSERT_NEAR(y[i], 1 / (1 + std::exp(-v)), 1e-6) << i;
  }
  // Only a broadcast operand grows the result: [1] against [3, 700].
  Tensor scalar = f32({1}, {2});
  const std::vector<double> z = valuesOf(run("fused_elementwise", {&scalar, &x}, program("mul $0 $1")));
  ASSERT_EQ(z.size(), xs.size());
  for (size_t i = 0; i < xs.size(); ++i) ASSERT_NEAR(z[i], 2 * static_cast<float>(xs[i]), 1e-6);
}

TEST(FusedElementwiseOp, HalfPrecisionRoundsOnce) {
  // (1 + 2^-11) - 1 in f16 compute would be 0; computed in float and rounded once it is 2^-11.
  Tensor x = make(DType::F16, {1}, {1});
  Tensor y = run("fused_elementwise", {&x}, program("add $0 0.00048828125; sub %0 1"));
  EXPECT_EQ(y.dtype(), DType::F16);
  EXPECT_EQ(valuesOf(y)[0], 0.00048828125);
}

TEST(FusedElementwiseOp, InferenceAndErrors) {
  const TensorType x = {DType::F32, {kBatch, kSeq, 64}};
  const TensorType row = {DType::F32, {64}};
  EXPECT_EQ(inferred("fused_elementwise", {&x, &row}, program("add $0 $1; gelu %0")), "f32[batch, seq, 64]");
  auto errorFor = [&](const std::string& text) { return inferred("fused_elementwise", {&x, &row}, program(text)); };
  std::string error = errorFor("mul $0 $1; foo %0");
  EXPECT_TRUE(contains(error, "program instruction 1 (\"foo %0\"): unknown op \"foo\"")) << error;
  error = errorFor("add $0");
  EXPECT_TRUE(contains(error, "program instruction 0 (\"add $0\"): add takes 2 arguments, got 1")) << error;
  error = errorFor("exp $0 $1");
  EXPECT_TRUE(contains(error, "exp takes 1 argument, got 2")) << error;
  error = errorFor("add $0 $2");
  EXPECT_TRUE(contains(error, "\"$2\" names operand 2 of 2")) << error;
  error = errorFor("add $0 %0");
  EXPECT_TRUE(contains(error, "\"%0\" is not the value of an earlier instruction")) << error;
  error = errorFor("add $0 1.5x");
  EXPECT_TRUE(contains(error, "bad argument \"1.5x\" (expected $operand, %instruction or a number)")) << error;
  error = errorFor("add $0 $x");
  EXPECT_TRUE(contains(error, "bad argument \"$x\"")) << error;
  error = errorFor("exp $0;; exp %0");
  EXPECT_TRUE(contains(error, "program instruction 1 (\"\"): is empty")) << error;
  error = errorFor("");
  EXPECT_TRUE(contains(error, "program instruction 0 (\"\"): is empty")) << error;
  // The op and operand types lead the message.
  EXPECT_EQ(errorFor("nope").rfind("fused_elementwise(f32[batch, seq, 64], f32[64]): ", 0), 0u) << errorFor("nope");
  const TensorType half = {DType::F16, {64}};
  error = inferred("fused_elementwise", {&x, &half}, program("add $0 $1"));
  EXPECT_TRUE(contains(error, "operands must share one float dtype, or all be integers or bools; got f32 and f16"))
      << error;
  const TensorType other = {DType::F32, {32}};
  error = inferred("fused_elementwise", {&x, &other}, program("add $0 $1"));
  EXPECT_TRUE(contains(error, "shapes [batch, seq, 64], [32] do not broadcast")) << error;
  // Integer programs: index arithmetic, no float ops, integer literals.
  const TensorType ints = {DType::I32, {4}};
  EXPECT_EQ(inferred("fused_elementwise", {&ints}, program("neg $0; equal %0 2")), "bool[4]");
  error = inferred("fused_elementwise", {&ints}, program("exp $0"));
  EXPECT_TRUE(contains(error, "program instruction 0 (exp) does not take these integer or bool arguments")) << error;
  error = inferred("fused_elementwise", {&ints}, program("add $0 1.5"));
  EXPECT_TRUE(contains(error, "an integer program's literal 1.5 is not an integer")) << error;
  error = inferred("fused_elementwise", {&x}, program("cast_i32 $0"));
  EXPECT_TRUE(contains(error, "program instruction 0 (cast_i32) takes integers or bools, not f32")) << error;
  const TensorType flags = {DType::Bool, {4}};
  error = inferred("fused_elementwise", {&ints, &flags}, program("add $0 $1"));
  EXPECT_TRUE(contains(error, "program instruction 0 (add) does not take these integer or bool arguments")) << error;
  error = inferred("fused_elementwise", {&ints, &x}, program("add $0 $1"));
  EXPECT_TRUE(contains(error, "operands must share one float dtype, or all be integers or bools")) << error;
  error = inferred("fused_elementwise", {&x}, {});
  EXPECT_TRUE(contains(error, "requires attribute 'program'")) << error;
  error = inferred("fused_elementwise", {&x, nullptr}, program("neg $0"));
  EXPECT_TRUE(contains(error, "operand 1 is absent")) << error;
}

}  // namespace
}  // namespace kiln
