// T5's relative position buckets (relative_position_bias): what inference,
// the pass that recognises them and every device's kernel compute, declared
// once.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>

namespace kiln::relative_position {

// The bucket of a key `distance` positions after its query (negative:
// before), out of `buckets`: bidirectional splits them between keys after
// (upper half) and at or before the query; unidirectional counts keys at or
// before it only. Each half gives the first half of its buckets to the exact
// distances and the rest to distances growing logarithmically up to
// maxDistance; farther keys share the last bucket. The arithmetic is T5's,
// in f32 as its exports compute it, so the buckets are the same.
inline int64_t bucket(int64_t distance, int64_t buckets, int64_t maxDistance, bool bidirectional) {
  int64_t base = 0;
  int64_t span = distance;
  if (bidirectional) {
    buckets /= 2;
    if (distance > 0) base = buckets;
    span = std::llabs(distance);
  } else {
    span = std::max<int64_t>(-distance, 0);
  }
  const int64_t maxExact = buckets / 2;
  if (span < maxExact) return base + span;
  const auto logRange = static_cast<float>(std::log(static_cast<double>(maxDistance) / static_cast<double>(maxExact)));
  const float scaled = std::log(static_cast<float>(span) / static_cast<float>(maxExact)) / logRange *
                       static_cast<float>(buckets - maxExact);
  return base + std::min(maxExact + static_cast<int64_t>(scaled), buckets - 1);
}

}  // namespace kiln::relative_position
