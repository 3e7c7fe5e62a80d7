// Row-wise normalisations: one block per row of `cols` elements, its threads
// striding the row and reducing by warp shuffles. Sums are in float (the
// reference sums in double). scale and bias are rows of `cols` elements.

// x / sqrt(mean(x^2) + epsilon) * scale (scale may be null: 1).
extern "C" __global__ void rms_norm(const float* x, const float* scale, float* y, long long cols, float epsilon) {
  __shared__ float partial[KILN_BLOCK / 32];
  const float* in = x + blockIdx.x * cols;
  float* out = y + blockIdx.x * cols;
  float squares = 0.0f;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) squares += in[j] * in[j];
  const float inverseRms = rsqrtf(blockReduce(squares, false, partial) / cols + epsilon);
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) out[j] = in[j] * inverseRms * (scale ? scale[j] : 1.0f);
}

// (x + residual - mean) / sqrt(variance + epsilon) * scale + bias, the
// residual's rows (residualRows of them) repeating over x's; residual, bias
// and the statistics results (mean, inverse standard deviation) may be null.
extern "C" __global__ void layer_norm(const float* x, const float* scale, const float* bias, const float* residual,
                                      long long residualRows, float* y, float* meanOut, float* invStdOut,
                                      long long cols, float epsilon) {
  __shared__ float partial[KILN_BLOCK / 32];
  const long long row = blockIdx.x;
  const float* in = x + row * cols;
  const float* added = residual ? residual + row % residualRows * cols : nullptr;
  float* out = y + row * cols;
  float sum = 0.0f;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) sum += added ? in[j] + added[j] : in[j];
  const float mean = blockReduce(sum, false, partial) / cols;
  float squares = 0.0f;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
    const float centred = (added ? in[j] + added[j] : in[j]) - mean;
    squares += centred * centred;
  }
  const float invStd = rsqrtf(blockReduce(squares, false, partial) / cols + epsilon);
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
    const float v = ((added ? in[j] + added[j] : in[j]) - mean) * invStd * scale[j];
    out[j] = bias ? v + bias[j] : v;
  }
  if (threadIdx.x == 0 && meanOut) meanOut[row] = mean;
  if (threadIdx.x == 0 && invStdOut) invStdOut[row] = invStd;
}

// softmax (or with `logarithm` log_softmax) over an axis of `extent`
// elements `inner` apart: exp(x - max) / sum, or x - max - log(sum). Row r
// is the axis at outer index r / inner, inner index r % inner.
extern "C" __global__ void softmax(const float* x, float* y, long long extent, long long inner, int logarithm) {
  __shared__ float partial[KILN_BLOCK / 32];
  const long long row = blockIdx.x;
  const long long base = row / inner * extent * inner + row % inner;
  const float* in = x + base;
  float* out = y + base;
  float highest = -__int_as_float(0x7f800000);  // -infinity (NVRTC has no math.h)
  for (long long j = threadIdx.x; j < extent; j += blockDim.x) highest = fmaxf(highest, in[j * inner]);
  highest = blockReduce(highest, true, partial);
  float sum = 0.0f;
  for (long long j = threadIdx.x; j < extent; j += blockDim.x) sum += expf(in[j * inner] - highest);
  sum = blockReduce(sum, false, partial);
  const float logSum = logf(sum);
  for (long long j = threadIdx.x; j < extent; j += blockDim.x) {
    const float shifted = in[j * inner] - highest;
    out[j * inner] = logarithm ? shifted - logSum : expf(shifted) / sum;
  }
}
