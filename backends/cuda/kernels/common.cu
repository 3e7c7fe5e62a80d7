// The prelude of every kiln CUDA program: the scalar functions the kernels
// share, written to match the reference kernels (backends/reference)
// operation for operation, as backends/opencl/kernels/common.cl does for
// OpenCL C. Compiled by NVRTC with -default-device: a function without a
// space qualifier is device code. Kernels are extern "C" so that the runtime
// finds them by their plain names.

// Threads of a block of the row kernels (norms.cu): a multiple of the warp.
#define KILN_BLOCK 256
// Rank of the strided iteration the generated map kernels walk
// (backends/kernel_gen/map_source.h).
#define KILN_MAX_RANK 6

// ---- OpenCL C's names, which the generated kernels' bodies use in both
// dialects (backends/kernel_gen/elementwise_bodies.h). long is 64 bits in
// CUDA on 64-bit Linux, as in OpenCL C. NVRTC has no math.h.
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
#define NAN __int_as_float(0x7fc00000)
#define INFINITY __int_as_float(0x7f800000)
inline long as_long(ulong v) { return (long)v; }
inline ulong as_ulong(long v) { return (ulong)v; }
inline int as_int(uint v) { return (int)v; }
inline uint as_uint(int v) { return (uint)v; }
inline float convert_float(float v) { return v; }
inline float convert_float(long v) { return (float)v; }
inline float convert_float(int v) { return (float)v; }
inline float convert_float(uchar v) { return (float)v; }

// ---- Activations (kernel_helpers.h).
inline float k_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f)); }
inline float k_gelu_tanh(float x) {
  return 0.5f * x * (1.0f + tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
}
inline float k_silu(float x) { return x / (1.0f + expf(-x)); }
inline float k_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
// `x < 0 ? 0 : x` keeps NaN, as the reference relu does.
inline float k_relu(float x) { return x < 0.0f ? 0.0f : x; }

// NaN in either operand gives NaN, as numpy's minimum / maximum.
inline float k_min(float a, float b) { return isnan(a) || isnan(b) ? NAN : (b < a ? b : a); }
inline float k_max(float a, float b) { return isnan(a) || isnan(b) ? NAN : (a < b ? b : a); }

// ---- Integer arithmetic that wraps (signed overflow is undefined in C++).
inline long k_add_long(long a, long b) { return as_long(as_ulong(a) + as_ulong(b)); }
inline long k_sub_long(long a, long b) { return as_long(as_ulong(a) - as_ulong(b)); }
inline long k_mul_long(long a, long b) { return as_long(as_ulong(a) * as_ulong(b)); }
inline int k_add_int(int a, int b) { return as_int(as_uint(a) + as_uint(b)); }
inline int k_sub_int(int a, int b) { return as_int(as_uint(a) - as_uint(b)); }
inline int k_mul_int(int a, int b) { return as_int(as_uint(a) * as_uint(b)); }

// ---- ONNX Cast from float: truncation toward zero, saturating (the
// conversion instructions clamp), NaN to 0.
inline long k_float_to_long(float v) { return isnan(v) ? 0 : (long)__float2ll_rz(v); }
inline int k_float_to_int(float v) { return isnan(v) ? 0 : __float2int_rz(v); }
// Integer narrowing wraps (two's complement), as numpy does.
inline int k_long_to_int(long v) { return as_int((uint)as_ulong(v)); }

// ---- Block reductions: every thread of the block gets the result.

// The sum (or max) of v over the warp, known to every lane.
inline float warpReduce(float v, bool isMax) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = isMax ? fmaxf(v, other) : v + other;
  }
  return v;
}

// The sum (or max) of v over the block (blockDim.x a multiple of 32, at most
// KILN_BLOCK), through `partial` (one float per warp).
inline float blockReduce(float v, bool isMax, float* partial) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warpReduce(v, isMax);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float total = partial[0];
  for (int w = 1; w < warps; ++w) total = isMax ? fmaxf(total, partial[w]) : total + partial[w];
  __syncthreads();  // partial is reused by the next reduction
  return total;
}
