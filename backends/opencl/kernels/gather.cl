// gather along an axis, data seen as [outer, extent, inner] and the result
// as [outer, count, inner]. T is the element word (uchar ... ulong), INDEX
// the index type (long or int); both defined before this file. An index out
// of [-extent, extent) writes nothing and sets *outOfRange.
__kernel void gather(__global const T* data, long dataOffset, __global const INDEX* indices, long indicesOffset,
                     __global T* out, long outOffset, __global int* outOfRange, long extent, long count,
                     long inner) {
  const long i = get_global_id(0);
  const long n = get_global_id(1);
  const long o = get_global_id(2);
  if (i >= inner) return;
  long index = indices[indicesOffset + n];
  if (index < -extent || index >= extent) {
    *outOfRange = 1;
    return;
  }
  if (index < 0) index += extent;
  out[outOffset + (o * count + n) * inner + i] = data[dataOffset + (o * extent + index) * inner + i];
}
