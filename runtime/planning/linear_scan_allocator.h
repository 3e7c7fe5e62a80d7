// The buffer allocator of the memory planner: a standalone module over
// (start, end, bytes) intervals that knows nothing of graphs. It gives each
// interval an offset in one arena so that intervals live at the same time
// never overlap in memory, keeping the arena's size (the peak) close to the
// most bytes ever live at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kiln::rt {

// One value's lifetime in schedule steps, both ends inclusive: it is written
// at `start` and last read at `end`.
struct LiveInterval {
  int64_t start = 0, end = 0;
  size_t bytes = 0;
  // The interval whose slot this one may take over in place: it must end
  // where this one starts (the op that reads it last writes this one), or
  // the request is ignored. -1: none.
  int32_t reuse = -1;
};

struct Assignment {
  size_t offset = 0;
  // Intervals placed at the same offset share a buffer; buffers are numbered
  // by increasing offset. -1 for an interval of zero bytes (it has no memory).
  int32_t buffer = -1;
};

// How intervals are placed. The plan is made ahead of time, so both ways
// can be tried and the smaller arena kept (the default). The scan by start
// is the classic linear scan; placing the largest first, with hindsight, is
// the one that reaches the lower bound on the transformer graphs measured
// in docs/planning.md, where the scan leaves holes that small long-lived
// buffers split.
enum class Placement {
  // Intervals by start (the larger first at one step): each frees the slots
  // of those that ended before it, then takes over its in-place target's
  // slot, or the smallest free range that fits (free neighbours coalesce),
  // or grows the arena.
  ByStart,
  // An interval and the in-place successors that fit its slot form a chain;
  // chains, largest first, each take the smallest gap between the chains
  // already placed that live at the same time, or the offset above them all.
  BySize,
  // Both; the placement with the smaller arena (ByStart on a tie).
  Smaller,
};

class LinearScanAllocator {
 public:
  explicit LinearScanAllocator(size_t alignment = 64, Placement placement = Placement::Smaller);

  // Offsets such that no two intervals live at the same time ([start, end]
  // inclusive overlap) overlap in memory, except an interval and the one it
  // takes over in place. Every offset is a multiple of the alignment and
  // each interval holds its bytes rounded up to it. *peakBytes (optional)
  // gets the arena size: the end of the highest interval.
  std::vector<Assignment> allocate(const std::vector<LiveInterval>& intervals,
                                   size_t* peakBytes) const;

 private:
  size_t alignment_;
  Placement placement_;
};

// The most bytes live at one step (each interval's own bytes, unaligned): no
// placement can use less memory. An in-place pair counts once, as the larger
// of the two, at the step where one hands its slot to the other.
size_t liveBytesLowerBound(const std::vector<LiveInterval>& intervals);

// The in-place requests that can be honoured: for each interval, the id of
// the interval it may take over (-1 when none). A request is valid when the
// target ends exactly where the claimant starts, lives longer than that one
// step, and no earlier valid claimant took it already.
std::vector<int32_t> validReuses(const std::vector<LiveInterval>& intervals);

}  // namespace kiln::rt
