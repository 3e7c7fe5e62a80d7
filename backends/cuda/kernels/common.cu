// The prelude of every kiln CUDA program: the scalar functions the kernels
// share, written to match the reference kernels (backends/reference)
// operation for operation, as backends/opencl/kernels/common.cl does for
// OpenCL C. Compiled by NVRTC with -default-device: a function without a
// space qualifier is device code. Kernels are extern "C" so that the runtime
// finds them by their plain names.

// Threads of a block of the row kernels (norms.cu): a multiple of the warp.
#define KILN_BLOCK 256

// ---- Activations (kernel_helpers.h).
inline float k_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f)); }
inline float k_gelu_tanh(float x) {
  return 0.5f * x * (1.0f + tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
}
inline float k_silu(float x) { return x / (1.0f + expf(-x)); }
inline float k_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
// `x < 0 ? 0 : x` keeps NaN, as the reference relu does.
inline float k_relu(float x) { return x < 0.0f ? 0.0f : x; }

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
