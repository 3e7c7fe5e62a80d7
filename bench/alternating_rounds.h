// What the GEMM micro-benchmarks share: a product's shape, and the median
// time of candidates run in alternating rounds, so that a busy machine slows
// them alike.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace kiln::bench {

struct GemmShape {
  int64_t M, K, N;
  const char* what;
};

// The median milliseconds per call of each candidate over `runs` rounds;
// each round times `calls` back-to-back calls of every candidate in turn,
// after `calls` untimed ones each (first touch, library initialisation,
// kernel generation, packing).
inline std::vector<double> medianMs(int runs, int calls, const std::vector<std::function<void()>>& candidates) {
  for (const auto& run : candidates)
    for (int i = 0; i < calls; ++i) run();
  std::vector<std::vector<double>> ms(candidates.size());
  for (int r = 0; r < runs; ++r)
    for (size_t c = 0; c < candidates.size(); ++c) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < calls; ++i) candidates[c]();
      ms[c].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
                      calls);
    }
  std::vector<double> medians;
  for (std::vector<double>& m : ms) {
    std::nth_element(m.begin(), m.begin() + static_cast<ptrdiff_t>(m.size() / 2), m.end());
    medians.push_back(m[m.size() / 2]);
  }
  return medians;
}

}  // namespace kiln::bench
