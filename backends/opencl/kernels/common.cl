// The prelude of every kiln OpenCL program: the scalar functions the
// kernels share, written to match the reference kernels
// (backends/reference) operation for operation. Each tensor reaches a
// kernel as (__global T* buffer, long offset in elements). bool is uchar
// (0 or 1), as C++ stores it.

// Rank of the strided iteration the element-wise kernels walk.
#define KILN_MAX_RANK 6

// ---- Activations (kernel_helpers.h).
inline float k_gelu(float x) { return 0.5f * x * (1.0f + erf(x * 0.70710678118654752440f)); }
inline float k_gelu_tanh(float x) {
  return 0.5f * x * (1.0f + tanh(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
}
inline float k_silu(float x) { return x / (1.0f + exp(-x)); }
inline float k_sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }
// `x < 0 ? 0 : x` keeps NaN, as the reference relu does.
inline float k_relu(float x) { return x < 0.0f ? 0.0f : x; }
// NaN in either operand gives NaN, as numpy's minimum / maximum.
inline float k_min(float a, float b) { return isnan(a) || isnan(b) ? NAN : (b < a ? b : a); }
inline float k_max(float a, float b) { return isnan(a) || isnan(b) ? NAN : (a < b ? b : a); }

// The activations of matmul's epilogue, by the enum ir/activation.h numbers.
inline float k_activate(int activation, float v) {
  switch (activation) {
    case 1: return k_relu(v);
    case 2: return k_gelu(v);
    case 3: return k_gelu_tanh(v);
    case 4: return k_silu(v);
    case 5: return tanh(v);
    default: return v;
  }
}

// ---- Integer arithmetic that wraps (signed overflow is undefined in C).
inline long k_add_long(long a, long b) { return as_long(as_ulong(a) + as_ulong(b)); }
inline long k_sub_long(long a, long b) { return as_long(as_ulong(a) - as_ulong(b)); }
inline long k_mul_long(long a, long b) { return as_long(as_ulong(a) * as_ulong(b)); }
inline int k_add_int(int a, int b) { return as_int(as_uint(a) + as_uint(b)); }
inline int k_sub_int(int a, int b) { return as_int(as_uint(a) - as_uint(b)); }
inline int k_mul_int(int a, int b) { return as_int(as_uint(a) * as_uint(b)); }

// ---- ONNX Cast from float: truncation toward zero, saturating, NaN to 0.
inline long k_float_to_long(float v) { return isnan(v) ? 0 : convert_long_sat_rtz(v); }
inline int k_float_to_int(float v) { return isnan(v) ? 0 : convert_int_sat_rtz(v); }
// Integer narrowing wraps (two's complement), as numpy does.
inline int k_long_to_int(long v) { return as_int((uint)as_ulong(v)); }
