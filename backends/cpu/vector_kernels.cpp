#include "backends/cpu/vector_kernels.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "backends/cpu/kernels.h"
#include "backends/cpu/parallel.h"
#include "backends/reference/kernel_helpers.h"

namespace kiln::cpu {

namespace {

using ops::product;
using ops::wrapAxis;
using vec::VectorArg;
using vec::VectorInstruction;
using vec::VectorOp;
using vec::VectorStream;

using VectorKernel = std::optional<Status> (*)(const KernelContext& ctx, Isa isa);

// Per-element costs for that estimate: per 4 bytes copied, per f32 element
// of arithmetic (norms, add), per element of an exp, erf or tanh.
constexpr int64_t kCopyCost = 8;
constexpr int64_t kArithmeticCost = 16;
constexpr int64_t kTranscendentalCost = 64;
// layer_norm: three passes over a row, the last in double (0.7-1.1 ns an
// element on one thread: all-MiniLM-L6-v2's 4096 x 384 took 1.8 ms), so it
// splits from 256K elements: bert-bench's 4 x 128 x 768 (290 us on one
// thread) took 2.6 ms of its bf16 run in 9 norms, 1.5 ms split.
constexpr int64_t kLayerNormCost = 128;

// Floats of the rows a norm with a residual adds and then normalises at a
// time (16 KiB: in L1 between the two).
constexpr int64_t kNormBlockFloats = 4096;

bool isF32(const Tensor* t) { return !t || t->dtype() == DType::F32; }

bool allF32(const KernelContext& ctx) {
  for (const Tensor* t : ctx.inputs)
    if (!isF32(t)) return false;
  for (const Tensor* t : ctx.outputs)
    if (!isF32(t)) return false;
  return true;
}

// A per-column operand of a norm (scale, bias) as a full row of `cols`
// floats: its own data when it has that many elements, a row filled with
// its value when it has one; nullopt for a broadcast pattern between those.
std::optional<const float*> normRow(const Tensor* t, int64_t cols, std::vector<float>& filled) {
  if (!t) return nullptr;
  if (t->numElements() == cols) return t->data<float>();
  if (t->numElements() != 1) return std::nullopt;
  filled.assign(static_cast<size_t>(cols), t->data<float>()[0]);
  return filled.data();
}

// The norms' rows: dims [axis, rank) of x.
struct NormShape {
  int64_t rows = 0, cols = 0;
};

NormShape normShape(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const int64_t axis = wrapAxis(ctx.attrs.getInt("axis", -1), x.rank());
  const std::vector<int64_t> normalized(x.shape().begin() + axis, x.shape().end());
  NormShape s;
  s.cols = product(normalized);
  s.rows = s.cols == 0 ? 0 : x.numElements() / s.cols;
  return s;
}

std::optional<Status> rmsNorm(const KernelContext& ctx, Isa isa) {
  if (!allF32(ctx)) return std::nullopt;
  const NormShape shape = normShape(ctx);
  std::vector<float> filledScale;
  const std::optional<const float*> scale = normRow(ctx.input(1), shape.cols, filledScale);
  if (!scale) return std::nullopt;
  vec::NormRows rows;
  rows.x = ctx.input(0)->data<float>();
  rows.scale = *scale;
  rows.y = ctx.outputs[0]->data<float>();
  rows.cols = shape.cols;
  rows.epsilon = ctx.attrs.getFloat("epsilon", 1e-5);
  const vec::IsaKernels& kernels = vec::kernelsFor(isa);
  parallelFor(shape.rows, shape.rows * shape.cols * kArithmeticCost, 1,
              [&](int64_t begin, int64_t end) { kernels.rmsNorm(rows, begin, end); });
  return Status::ok();
}

std::optional<Status> layerNorm(const KernelContext& ctx, Isa isa) {
  if (!allF32(ctx)) return std::nullopt;
  const NormShape shape = normShape(ctx);
  std::vector<float> filledScale, filledBias;
  const std::optional<const float*> scale = normRow(ctx.input(1), shape.cols, filledScale);
  const std::optional<const float*> bias = normRow(ctx.input(2), shape.cols, filledBias);
  if (!scale || !bias) return std::nullopt;
  vec::NormRows rows;
  rows.x = ctx.input(0)->data<float>();
  rows.scale = *scale;
  rows.bias = *bias;
  rows.y = ctx.outputs[0]->data<float>();
  rows.mean = ctx.outputs.size() > 1 ? ctx.outputs[1]->data<float>() : nullptr;
  rows.invStd = ctx.outputs.size() > 2 ? ctx.outputs[2]->data<float>() : nullptr;
  rows.cols = shape.cols;
  rows.epsilon = ctx.attrs.getFloat("epsilon", 1e-5);
  const vec::IsaKernels& kernels = vec::kernelsFor(isa);
  // A residual is added into y first (its rows repeating over x's), which
  // is then normalised in place, a few rows at a time so they stay in the
  // L1 cache between the two.
  const Tensor* residual = ctx.input(3);
  const float* added = residual ? residual->data<float>() : nullptr;
  const int64_t addedRows = residual && shape.cols > 0 ? residual->numElements() / shape.cols : 0;
  const int64_t step = std::max<int64_t>(1, kNormBlockFloats / std::max<int64_t>(1, shape.cols));
  parallelFor(shape.rows, shape.rows * shape.cols * kLayerNormCost, 1, [&](int64_t begin, int64_t end) {
    if (!added) return kernels.layerNorm(rows, begin, end);
    vec::NormRows part = rows;
    part.x = rows.y;
    for (int64_t first = begin; first < end; first += step) {
      const int64_t last = std::min(end, first + step);
      for (int64_t r = first; r < last; ++r) {
        const float* x = rows.x + r * shape.cols;
        const float* a = added + r % addedRows * shape.cols;
        float* y = rows.y + r * shape.cols;
        for (int64_t j = 0; j < shape.cols; ++j) y[j] = x[j] + a[j];
      }
      kernels.layerNorm(part, first, last);
    }
  });
  return Status::ok();
}

// reduce_sum of f32 over one axis (mean pooling's sum over tokens), summed
// in double like the reference: out[o][i] = sum over k of x[o][k][i].
std::optional<Status> reduceSum(const KernelContext& ctx, Isa) {
  const Tensor& x = *ctx.input(0);
  const Tensor* axes = ctx.input(1);
  if (x.dtype() != DType::F32 || !axes || axes->numElements() != 1 || x.rank() == 0) return std::nullopt;
  const int64_t axis = wrapAxis(static_cast<int64_t>(axes->elementAsDouble(0)), x.rank());
  const ops::AxisSplit split = ops::splitAtAxis(x.shape(), axis);
  const float* in = x.data<float>();
  float* out = ctx.outputs[0]->data<float>();
  parallelFor(split.outer, split.outer * split.extent * split.inner * kArithmeticCost, 1,
              [&](int64_t begin, int64_t end) {
                std::vector<double> sums(static_cast<size_t>(split.inner));
                for (int64_t o = begin; o < end; ++o) {
                  std::fill(sums.begin(), sums.end(), 0.0);
                  for (int64_t k = 0; k < split.extent; ++k) {
                    const float* row = in + (o * split.extent + k) * split.inner;
                    for (int64_t i = 0; i < split.inner; ++i) sums[static_cast<size_t>(i)] += row[i];
                  }
                  for (int64_t i = 0; i < split.inner; ++i)
                    out[o * split.inner + i] = static_cast<float>(sums[static_cast<size_t>(i)]);
                }
              });
  return Status::ok();
}

std::optional<Status> softmax(const KernelContext& ctx, Isa isa) {
  if (!allF32(ctx)) return std::nullopt;
  const Tensor& x = *ctx.input(0);
  if (x.rank() == 0 || wrapAxis(ctx.attrs.getInt("axis", -1), x.rank()) != static_cast<int64_t>(x.rank()) - 1)
    return std::nullopt;
  const int64_t cols = x.shape().back();
  const int64_t rows = cols == 0 ? 0 : x.numElements() / cols;
  const float* in = x.data<float>();
  float* out = ctx.outputs[0]->data<float>();
  const vec::IsaKernels& kernels = vec::kernelsFor(isa);
  parallelFor(rows, rows * cols * kTranscendentalCost, 1,
              [&](int64_t begin, int64_t end) { kernels.softmax(in, out, cols, begin, end); });
  return Status::ok();
}

// ---- Vector programs: fused_elementwise, and the elementwise ops as
// ---- one- or two-instruction programs.

// How an operand of shape `operand` broadcasts over `out`: its dims other
// than 1 must be one run [lo, hi) of out's dims (ignoring out's own 1s),
// which covers same shapes, rows repeated over leading dims, per-row
// columns and scalars. nullopt for anything else (e.g. [b, 1, d] over
// [b, s, d]).
struct Broadcast {
  size_t lo = 0, hi = 0;  // lo == hi: a single value
  VectorStream stream;
};

std::optional<Broadcast> describeBroadcast(const Tensor& operand, const std::vector<int64_t>& out) {
  const std::vector<int64_t>& shape = operand.shape();
  if (shape.size() > out.size()) return std::nullopt;
  const size_t pad = out.size() - shape.size();
  Broadcast b;
  bool started = false, gap = false;
  for (size_t d = 0; d < out.size(); ++d) {
    const int64_t dim = d < pad ? 1 : shape[d - pad];
    if (out[d] == 1) continue;
    if (dim == out[d]) {
      if (gap) return std::nullopt;
      if (!started) b.lo = d;
      started = true;
      b.hi = d + 1;
    } else if (dim == 1) {
      gap = started;
    } else {
      return std::nullopt;
    }
  }
  b.stream.data = operand.data<float>();
  if (!started) {
    b.stream.kind = VectorStream::Kind::PerRow;
    return b;
  }
  b.stream.period = product(std::span(out).subspan(b.lo, b.hi - b.lo));
  b.stream.repeat = product(std::span(out).subspan(b.hi));
  b.stream.kind = b.stream.repeat == 1 ? VectorStream::Kind::Contiguous : VectorStream::Kind::PerRow;
  return b;
}

// Runs `code` over the operands of ctx. The result is cut into rows (its
// dims from some k on) such that each operand is contiguous along a row or
// constant over it.
std::optional<Status> runProgram(const KernelContext& ctx, Isa isa, const VectorInstruction* code, int length,
                                 int64_t cost) {
  if (!allF32(ctx) || ctx.inputs.size() > static_cast<size_t>(vec::kMaxStreams)) return std::nullopt;
  Tensor& y = *ctx.outputs[0];
  const std::vector<int64_t>& out = y.shape();
  VectorStream streams[vec::kMaxStreams];
  size_t rowStart = 0;
  for (size_t k = 0; k < ctx.inputs.size(); ++k) {
    if (!ctx.inputs[k]) return std::nullopt;
    const std::optional<Broadcast> b = describeBroadcast(*ctx.inputs[k], out);
    if (!b) return std::nullopt;
    streams[k] = b->stream;
    if (b->lo != b->hi)
      rowStart = std::max(rowStart, b->stream.kind == VectorStream::Kind::Contiguous ? b->lo : b->hi);
  }
  const int64_t n = y.numElements();
  if (n == 0) return Status::ok();
  vec::VectorProgram program;
  program.code = code;
  program.length = length;
  program.streams = streams;
  program.numStreams = static_cast<int>(ctx.inputs.size());
  program.out = y.data<float>();
  program.rowLength = product(std::span(out).subspan(rowStart));
  const vec::IsaKernels& kernels = vec::kernelsFor(isa);
  parallelFor(n, n * cost * length, 16, [&](int64_t begin, int64_t end) { kernels.program(program, begin, end); });
  return Status::ok();
}

VectorArg streamArg(uint8_t index) { return {VectorArg::Kind::Stream, index, 0.0f}; }
VectorArg valueArg(uint8_t index) { return {VectorArg::Kind::Value, index, 0.0f}; }

// Ops costing several instructions an element (the threading threshold).
bool isExpensive(VectorOp op) {
  switch (op) {
    case VectorOp::Add: case VectorOp::Sub: case VectorOp::Mul: case VectorOp::Div: case VectorOp::Max:
    case VectorOp::Min: case VectorOp::Neg: case VectorOp::Sqrt: case VectorOp::Reciprocal: case VectorOp::Relu:
      return false;
    default:
      return true;
  }
}

std::optional<Status> unaryProgram(const KernelContext& ctx, Isa isa, VectorOp op) {
  const VectorInstruction code[] = {{op, 1, {streamArg(0), {}}}};
  return runProgram(ctx, isa, code, 1, isExpensive(op) ? kTranscendentalCost : kArithmeticCost);
}

template <VectorOp kOp>
std::optional<Status> binary(const KernelContext& ctx, Isa isa) {
  const VectorInstruction code[] = {{kOp, 2, {streamArg(0), streamArg(1)}}};
  return runProgram(ctx, isa, code, 1, kArithmeticCost);
}

std::optional<Status> gelu(const KernelContext& ctx, Isa isa) {
  const bool tanh = ctx.attrs.getString("approximate", "none") == "tanh";
  return unaryProgram(ctx, isa, tanh ? VectorOp::GeluTanh : VectorOp::Gelu);
}

std::optional<Status> silu(const KernelContext& ctx, Isa isa) { return unaryProgram(ctx, isa, VectorOp::Silu); }

// swiglu(gate, up) as silu($0) * $1; swiglu(x) on rows of packed gate | up.
std::optional<Status> swiglu(const KernelContext& ctx, Isa isa) {
  if (ctx.inputs.size() == 2) {
    const VectorInstruction code[] = {{VectorOp::Silu, 1, {streamArg(0), {}}},
                                      {VectorOp::Mul, 2, {valueArg(0), streamArg(1)}}};
    return runProgram(ctx, isa, code, 2, kTranscendentalCost);
  }
  if (!allF32(ctx)) return std::nullopt;
  const Tensor& y = *ctx.outputs[0];
  if (y.numElements() == 0) return Status::ok();
  const int64_t half = y.shape().back();
  const int64_t rows = y.numElements() / half;
  const float* in = ctx.input(0)->data<float>();
  float* out = y.data<float>();
  const vec::IsaKernels& kernels = vec::kernelsFor(isa);
  parallelFor(rows, rows * half * kTranscendentalCost, 1,
              [&](int64_t begin, int64_t end) { kernels.swigluPacked(in, out, half, begin, end); });
  return Status::ok();
}

// fused_elementwise's program, which inference has validated, as vector
// instructions; nullopt for what does not fit the vector program's limits.
std::optional<int> vectorProgram(const std::vector<ProgramInstruction>& program, VectorInstruction* code) {
  if (program.size() > static_cast<size_t>(vec::kMaxInstructions)) return std::nullopt;
  for (size_t i = 0; i < program.size(); ++i) {
    const ProgramInstruction& instruction = program[i];
    if (isIndexOp(instruction.op)) return std::nullopt;
    VectorInstruction& ins = code[i];
    ins.op = instruction.op;
    ins.arity = static_cast<uint8_t>(instruction.args.size());
    for (size_t k = 0; k < instruction.args.size(); ++k) {
      const ProgramArg& arg = instruction.args[k];
      if (arg.index > 255) return std::nullopt;
      const uint8_t index = static_cast<uint8_t>(arg.index);
      switch (arg.kind) {
        case ProgramArg::Kind::Operand: ins.args[k] = streamArg(index); break;
        case ProgramArg::Kind::Value: ins.args[k] = valueArg(index); break;
        // As the reference reads it: a double, then rounded to float.
        case ProgramArg::Kind::Literal: ins.args[k] = {VectorArg::Kind::Literal, 0, static_cast<float>(arg.literal)};
      }
    }
  }
  return static_cast<int>(program.size());
}

std::optional<Status> fusedElementwise(const KernelContext& ctx, Isa isa) {
  VectorInstruction code[vec::kMaxInstructions];
  const ElementwiseProgram* program = ctx.attrs.getProgram("program");
  if (!program) return std::nullopt;
  const std::optional<int> length = vectorProgram(program->instructions, code);
  if (!length) return std::nullopt;
  bool transcendental = false;
  for (int i = 0; i < *length; ++i) transcendental = transcendental || isExpensive(code[i].op);
  return runProgram(ctx, isa, code, *length, transcendental ? kTranscendentalCost : kArithmeticCost);
}

// ---- Data movement: whole rows with memcpy, any dtype.

auto* bytesOf(const Tensor& t) { return static_cast<uint8_t*>(t.data()); }

std::optional<Status> gather(const KernelContext& ctx, Isa) {
  const Tensor& data = *ctx.input(0);
  const Tensor& indices = *ctx.input(1);
  if (indices.dtype() != DType::I64 && indices.dtype() != DType::I32) return std::nullopt;
  const int64_t axis = wrapAxis(ctx.attrs.getInt("axis"), data.rank());
  const ops::AxisSplit split = ops::splitAtAxis(data.shape(), axis);
  const int64_t count = indices.numElements();
  auto indexAt = [&](int64_t i) -> int64_t {
    return indices.dtype() == DType::I64 ? indices.data<int64_t>()[i] : indices.data<int32_t>()[i];
  };
  for (int64_t i = 0; i < count; ++i) {
    const int64_t index = indexAt(i);
    if (index < -split.extent || index >= split.extent)
      return Status::error(ctx.def.name, ": index ", index, " is out of range for axis ", axis, " of size ",
                           split.extent, " (data ", shapeStr(data.shape()), ")");
  }
  const size_t block = static_cast<size_t>(split.inner) * dtypeSize(data.dtype());
  if (block == 0) return Status::ok();
  const uint8_t* src = bytesOf(data);
  uint8_t* dst = bytesOf(*ctx.outputs[0]);
  const int64_t copies = split.outer * count;
  parallelFor(copies, copies * static_cast<int64_t>(block) / 4 * kCopyCost, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t o = c / count, index = indexAt(c % count);
      const int64_t row = index < 0 ? index + split.extent : index;
      std::memcpy(dst + static_cast<size_t>(c) * block, src + static_cast<size_t>(o * split.extent + row) * block,
                  block);
    }
  });
  return Status::ok();
}

// slice's per-axis starts with unit steps, from its operands or its
// (resolved) dim-list attributes; nullopt for other steps or unresolved dims.
std::optional<std::vector<int64_t>> sliceStarts(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  std::vector<int64_t> starts, axes, steps;
  if (ctx.inputs.size() > 1) {
    if (!ctx.input(1)) return std::nullopt;
    starts = ctx.input(1)->toInts();
    if (ctx.input(3)) axes = ctx.input(3)->toInts();
    if (ctx.input(4)) steps = ctx.input(4)->toInts();
  } else {
    const std::optional<std::vector<Dim>> dims = ctx.attrs.getDims("starts");
    if (!dims) return std::nullopt;
    for (const Dim& d : *dims) {
      if (!d.isConstant()) return std::nullopt;
      starts.push_back(*d.constant());
    }
    axes = ctx.attrs.getInts("axes");
    steps = ctx.attrs.getInts("steps");
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (axes.size() != starts.size()) return std::nullopt;
  for (int64_t step : steps)
    if (step != 1) return std::nullopt;
  std::vector<int64_t> first(x.rank(), 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    const auto axis = static_cast<size_t>(wrapAxis(axes[i], x.rank()));
    if (axis >= x.rank()) return std::nullopt;
    const int64_t dim = x.shape()[axis];
    const int64_t start = starts[i] < 0 ? starts[i] + dim : starts[i];
    first[axis] = std::clamp<int64_t>(start, 0, dim);
  }
  return first;
}

std::optional<Status> slice(const KernelContext& ctx, Isa) {
  const Tensor& x = *ctx.input(0);
  Tensor& y = *ctx.outputs[0];
  const std::optional<std::vector<int64_t>> first = sliceStarts(ctx);
  if (!first || y.rank() != x.rank()) return std::nullopt;
  const std::vector<int64_t>& in = x.shape();
  const std::vector<int64_t>& out = y.shape();
  for (size_t d = 0; d < in.size(); ++d)
    if ((*first)[d] + out[d] > in[d]) return std::nullopt;
  if (y.numElements() == 0) return Status::ok();
  // Rows: the dims after the last one that is cut are whole, so each row of
  // out's dims from that one on is one contiguous run of x.
  size_t cut = 0;
  for (size_t d = 0; d < in.size(); ++d)
    if (out[d] != in[d]) cut = d;
  const std::vector<int64_t> strides = rowMajorStrides(in);
  const size_t elementSize = dtypeSize(x.dtype());
  const size_t block = static_cast<size_t>(product(std::span(out).subspan(cut))) * elementSize;
  const int64_t rows = product(std::span(out).first(cut));
  const uint8_t* src = bytesOf(x);
  uint8_t* dst = bytesOf(y);
  parallelFor(rows, y.numElements() * static_cast<int64_t>(elementSize) / 4 * kCopyCost, 1,
              [&](int64_t begin, int64_t end) {
                for (int64_t r = begin; r < end; ++r) {
                  int64_t offset = 0, rest = r;
                  for (size_t d = cut; d-- > 0;) {
                    offset += ((*first)[d] + rest % out[d]) * strides[d];
                    rest /= out[d];
                  }
                  offset += (*first)[cut] * strides[cut];
                  std::memcpy(dst + static_cast<size_t>(r) * block, src + static_cast<size_t>(offset) * elementSize,
                              block);
                }
              });
  return Status::ok();
}

// split and concat move, per index of the dims before the axis, one run of
// bytes per part.
std::optional<Status> split(const KernelContext& ctx, Isa) {
  const Tensor& x = *ctx.input(0);
  const int64_t axis = wrapAxis(ctx.attrs.getInt("axis"), x.rank());
  const ops::AxisSplit in = ops::splitAtAxis(x.shape(), axis);
  const size_t elementSize = dtypeSize(x.dtype());
  const size_t row = static_cast<size_t>(in.extent * in.inner) * elementSize;
  const uint8_t* src = bytesOf(x);
  parallelFor(in.outer, x.numElements() * static_cast<int64_t>(elementSize) / 4 * kCopyCost, 1,
              [&](int64_t begin, int64_t end) {
                for (int64_t o = begin; o < end; ++o) {
                  size_t offset = 0;
                  for (Tensor* part : ctx.outputs) {
                    const size_t block =
                        static_cast<size_t>(part->shape()[static_cast<size_t>(axis)] * in.inner) * elementSize;
                    if (block) std::memcpy(bytesOf(*part) + static_cast<size_t>(o) * block,
                                           src + static_cast<size_t>(o) * row + offset, block);
                    offset += block;
                  }
                }
              });
  return Status::ok();
}

std::optional<Status> concat(const KernelContext& ctx, Isa) {
  Tensor& y = *ctx.outputs[0];
  const int64_t axis = wrapAxis(ctx.attrs.getInt("axis"), y.rank());
  const ops::AxisSplit out = ops::splitAtAxis(y.shape(), axis);
  const size_t elementSize = dtypeSize(y.dtype());
  const size_t row = static_cast<size_t>(out.extent * out.inner) * elementSize;
  uint8_t* dst = bytesOf(y);
  parallelFor(out.outer, y.numElements() * static_cast<int64_t>(elementSize) / 4 * kCopyCost, 1,
              [&](int64_t begin, int64_t end) {
                for (int64_t o = begin; o < end; ++o) {
                  size_t offset = 0;
                  for (const Tensor* part : ctx.inputs) {
                    const size_t block =
                        static_cast<size_t>(part->shape()[static_cast<size_t>(axis)] * out.inner) * elementSize;
                    if (block) std::memcpy(dst + static_cast<size_t>(o) * row + offset,
                                           bytesOf(*part) + static_cast<size_t>(o) * block, block);
                    offset += block;
                  }
                }
              });
  return Status::ok();
}

template <VectorKernel kKernel>
std::optional<Status> withActiveIsa(const KernelContext& ctx) {
  return kKernel(ctx, activeIsa());
}

struct Entry {
  OpKind op;
  VectorKernel kernel;
  FastKernel active;
};

template <VectorKernel kKernel>
constexpr Entry entry(OpKind op) {
  return {op, kKernel, &withActiveIsa<kKernel>};
}

constexpr Entry kEntries[] = {
    entry<&rmsNorm>(OpKind::RmsNorm),
    entry<&layerNorm>(OpKind::LayerNorm),
    entry<&softmax>(OpKind::Softmax),
    entry<&reduceSum>(OpKind::ReduceSum),
    entry<&gelu>(OpKind::Gelu),
    entry<&silu>(OpKind::Silu),
    entry<&swiglu>(OpKind::Swiglu),
    entry<&fusedElementwise>(OpKind::FusedElementwise),
    entry<&binary<VectorOp::Add>>(OpKind::Add),
    entry<&binary<VectorOp::Sub>>(OpKind::Sub),
    entry<&binary<VectorOp::Mul>>(OpKind::Mul),
    entry<&binary<VectorOp::Div>>(OpKind::Div),
    entry<&gather>(OpKind::Gather),
    entry<&slice>(OpKind::Slice),
    entry<&split>(OpKind::Split),
    entry<&concat>(OpKind::Concat),
};

}  // namespace

std::vector<OpKind> vectorKernelOps() {
  std::vector<OpKind> names;
  for (const Entry& e : kEntries) names.push_back(e.op);
  return names;
}

std::optional<Status> runVectorKernel(OpKind op, const KernelContext& ctx, Isa isa) {
  for (const Entry& e : kEntries)
    if (e.op == op) return e.kernel(ctx, isa);
  return std::nullopt;
}

void applyUnary(VectorOp op, const float* x, float* y, int64_t n, Isa isa) {
  const VectorStream stream{VectorStream::Kind::Contiguous, x, n, 1};
  const VectorInstruction code[] = {{op, 1, {streamArg(0), {}}}};
  vec::VectorProgram program;
  program.code = code;
  program.length = 1;
  program.streams = &stream;
  program.numStreams = 1;
  program.out = y;
  program.rowLength = n;
  if (n > 0) vec::kernelsFor(isa).program(program, 0, n);
}

void addVectorKernels(KernelTable& table) {
  for (const Entry& e : kEntries) table[static_cast<size_t>(e.op)] = e.active;
}

}  // namespace kiln::cpu
