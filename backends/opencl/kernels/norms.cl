// Row-wise normalisations: one work-group per row of `cols` elements, its
// items striding the row and reducing through local memory. Sums are in
// float (the reference sums in double). The local size is a power of two,
// at most KILN_GROUP.
#define KILN_GROUP 256

// Where element j of the normalized dims lies in a broadcast scale or bias:
// j itself when `contiguous`, else by its strides.
typedef struct { long dims[KILN_MAX_RANK]; long strides[KILN_MAX_RANK]; long contiguous; } Walk;

inline long walkOffset(const Walk* walk, long j) {
  if (walk->contiguous) return j;
  long at = 0;
  for (int d = KILN_MAX_RANK - 1; d >= 0; --d) {
    at += (j % walk->dims[d]) * walk->strides[d];
    j /= walk->dims[d];
  }
  return at;
}

// The sum (or max) of v over the work-group, known to every item.
inline float groupReduce(float v, bool isMax, __local float* partial) {
  const int lid = get_local_id(0);
  partial[lid] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = get_local_size(0) / 2; s > 0; s >>= 1) {
    if (lid < s) partial[lid] = isMax ? fmax(partial[lid], partial[lid + s]) : partial[lid] + partial[lid + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float total = partial[0];
  barrier(CLK_LOCAL_MEM_FENCE);  // partial is reused by the next reduction
  return total;
}

// x / sqrt(mean(x^2) + epsilon) * scale
__kernel void rms_norm(__global const float* x, long xOffset, __global const float* scale, long scaleOffset,
                       __global float* y, long yOffset, long cols, float epsilon, int hasScale, Walk scaleWalk) {
  __local float partial[KILN_GROUP];
  const long row = get_group_id(0);
  const __global float* in = x + xOffset + row * cols;
  __global float* out = y + yOffset + row * cols;
  float squares = 0.0f;
  for (long j = get_local_id(0); j < cols; j += get_local_size(0)) squares += in[j] * in[j];
  const float inverseRms = 1.0f / sqrt(groupReduce(squares, false, partial) / cols + epsilon);
  for (long j = get_local_id(0); j < cols; j += get_local_size(0)) {
    const float s = hasScale ? scale[scaleOffset + walkOffset(&scaleWalk, j)] : 1.0f;
    out[j] = in[j] * inverseRms * s;
  }
}

// Element j of row `in`, plus the residual's row when there is one.
inline float withResidual(const __global float* in, const __global float* added, long j) {
  return added ? in[j] + added[j] : in[j];
}

// (x + residual - mean) / sqrt(variance + epsilon) * scale + bias, the
// residual's rows (residualRows of them) repeating over x's; mean and
// inverse standard deviation per row into the optional statistics results.
__kernel void layer_norm(__global const float* x, long xOffset, __global const float* scale, long scaleOffset,
                         __global const float* bias, long biasOffset, __global const float* residual,
                         long residualOffset, __global float* y, long yOffset, __global float* meanOut,
                         long meanOffset, __global float* invStdOut, long invStdOffset, long cols, float epsilon,
                         int hasBias, long residualRows, Walk scaleWalk, Walk biasWalk) {
  __local float partial[KILN_GROUP];
  const long row = get_group_id(0);
  const __global float* in = x + xOffset + row * cols;
  const __global float* added = residual ? residual + residualOffset + row % residualRows * cols : 0;
  __global float* out = y + yOffset + row * cols;
  float sum = 0.0f;
  for (long j = get_local_id(0); j < cols; j += get_local_size(0)) sum += withResidual(in, added, j);
  const float mean = groupReduce(sum, false, partial) / cols;
  float squares = 0.0f;
  for (long j = get_local_id(0); j < cols; j += get_local_size(0)) {
    const float centred = withResidual(in, added, j) - mean;
    squares += centred * centred;
  }
  const float invStd = 1.0f / sqrt(groupReduce(squares, false, partial) / cols + epsilon);
  for (long j = get_local_id(0); j < cols; j += get_local_size(0)) {
    float v = (withResidual(in, added, j) - mean) * invStd * scale[scaleOffset + walkOffset(&scaleWalk, j)];
    if (hasBias) v += bias[biasOffset + walkOffset(&biasWalk, j)];
    out[j] = v;
  }
  if (get_local_id(0) == 0 && meanOut) meanOut[meanOffset + row] = mean;
  if (get_local_id(0) == 0 && invStdOut) invStdOut[invStdOffset + row] = invStd;
}

// softmax (or with `logarithm` log_softmax) over an axis of `extent`
// elements `inner` apart: exp(x - max) / sum, or x - max - log(sum). Row r
// is the axis at outer index r / inner, inner index r % inner.
__kernel void softmax(__global const float* x, long xOffset, __global float* y, long yOffset, long extent,
                      long inner, int logarithm) {
  __local float partial[KILN_GROUP];
  const long row = get_group_id(0);
  const long base = row / inner * extent * inner + row % inner;
  const __global float* in = x + xOffset + base;
  __global float* out = y + yOffset + base;
  float highest = -INFINITY;
  for (long j = get_local_id(0); j < extent; j += get_local_size(0)) highest = fmax(highest, in[j * inner]);
  highest = groupReduce(highest, true, partial);
  float sum = 0.0f;
  for (long j = get_local_id(0); j < extent; j += get_local_size(0)) sum += exp(in[j * inner] - highest);
  sum = groupReduce(sum, false, partial);
  const float logSum = log(sum);
  for (long j = get_local_id(0); j < extent; j += get_local_size(0)) {
    const float shifted = in[j * inner] - highest;
    out[j * inner] = logarithm ? shifted - logSum : exp(shifted) / sum;
  }
}

// reduce_sum, reduce_mean (mode 0, 1: the sum, divided by the count) and
// reduce_max (mode 2) over any axes: one work-group per output element,
// `kept` walking the output index to its first input element and `reduced`
// walking the reduced elements from there (neither contiguous).
__kernel void reduce(__global const float* x, long xOffset, __global float* y, long yOffset, long count, int mode,
                     Walk kept, Walk reduced) {
  __local float partial[KILN_GROUP];
  const long row = get_group_id(0);
  const __global float* in = x + xOffset + walkOffset(&kept, row);
  float acc = mode == 2 ? -INFINITY : 0.0f;
  for (long j = get_local_id(0); j < count; j += get_local_size(0)) {
    const float v = in[walkOffset(&reduced, j)];
    acc = mode == 2 ? fmax(acc, v) : acc + v;
  }
  const float total = groupReduce(acc, mode == 2, partial);
  if (get_local_id(0) == 0) y[yOffset + row] = mode == 1 && count > 0 ? total / count : total;
}
