// How the CPU kernels split an op across threads: evenly, and only when the
// work is large enough to pay for the fork.
#pragma once

#include <algorithm>
#include <cstdint>

#include "backends/cpu/kernels.h"

namespace kiln::cpu {

// Below this much work (elements times a per-element cost) an op runs on one
// thread. An OpenMP fork/join costs a few microseconds when the other core
// is free, as much as a small op itself (the tiny models' 16x128
// activations), and up to a scheduler slice (milliseconds) when it is not:
// on this shared 2-core machine, threading the bench models' ops (at most
// ~100 us each on one thread) made whole runs slower under load. So only
// ops of a few hundred microseconds or more split: from about 2M elements
// of arithmetic, 512K of exp/erf/tanh, 16 MiB of copies.
inline constexpr int64_t kParallelWork = int64_t{1} << 25;

// The threads an op of this much work over `count` items splits across:
// numThreads() when the work is large enough, at most count / align.
inline int64_t threadsForWork(int64_t count, int64_t work, int64_t align) {
  return work < kParallelWork ? 1 : std::max<int64_t>(1, std::min<int64_t>(numThreads(), count / align));
}

// fn(part, begin, end) for `parts` even parts of [0, count), one thread
// each; split points are multiples of `align` (but the last).
template <class Fn>
void parallelParts(int64_t count, int64_t parts, int64_t align, Fn fn) {
  if (parts <= 1) {
    fn(int64_t{0}, int64_t{0}, count);
    return;
  }
  auto boundary = [&](int64_t t) { return t == parts ? count : count * t / parts / align * align; };
#pragma omp parallel for num_threads(static_cast<int>(parts)) schedule(static)
  for (int64_t t = 0; t < parts; ++t) fn(t, boundary(t), boundary(t + 1));
}

// fn(begin, end) over [0, count), split evenly across the threads when the
// work is large enough.
template <class Fn>
void parallelFor(int64_t count, int64_t work, int64_t align, Fn fn) {
  parallelParts(count, threadsForWork(count, work, align), align,
                [&](int64_t, int64_t begin, int64_t end) { fn(begin, end); });
}

}  // namespace kiln::cpu
