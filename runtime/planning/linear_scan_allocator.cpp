#include "runtime/planning/linear_scan_allocator.h"

#include <algorithm>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <queue>
#include <utility>

namespace kiln::rt {
namespace {

size_t alignUp(size_t bytes, size_t alignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}

// Free ranges of the arena below its current top, keyed by offset; adjacent
// ranges are always merged, so a freed range grows back into its neighbours.
class FreeList {
 public:
  // The smallest free range that holds `bytes` (the lowest such on a tie),
  // carved from its low end; nullopt when none does.
  std::optional<size_t> takeBestFit(size_t bytes) {
    auto best = ranges_.end();
    for (auto it = ranges_.begin(); it != ranges_.end(); ++it)
      if (it->second >= bytes && (best == ranges_.end() || it->second < best->second)) best = it;
    if (best == ranges_.end()) return std::nullopt;
    const size_t offset = best->first, size = best->second;
    ranges_.erase(best);
    if (size > bytes) ranges_.emplace(offset + bytes, size - bytes);
    return offset;
  }

  // The range that reaches `top`, removed from the list: the arena can grow
  // from its start instead of from the top.
  std::optional<size_t> takeRangeEndingAt(size_t top) {
    if (ranges_.empty()) return std::nullopt;
    auto last = std::prev(ranges_.end());
    if (last->first + last->second != top) return std::nullopt;
    const size_t offset = last->first;
    ranges_.erase(last);
    return offset;
  }

  void release(size_t offset, size_t size) {
    auto next = ranges_.lower_bound(offset);
    if (next != ranges_.end() && offset + size == next->first) {
      size += next->second;
      next = ranges_.erase(next);
    }
    if (next != ranges_.begin()) {
      auto previous = std::prev(next);
      if (previous->first + previous->second == offset) {
        previous->second += size;
        return;
      }
    }
    ranges_.emplace(offset, size);
  }

 private:
  std::map<size_t, size_t> ranges_;
};

struct Block {
  size_t offset = 0, size = 0;
};

// Placement::ByStart: the linear scan.
std::vector<Block> placeByStart(const std::vector<LiveInterval>& intervals, const std::vector<int32_t>& reuse,
                                size_t alignment) {
  const size_t count = intervals.size();
  std::vector<size_t> order(count);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (intervals[a].start != intervals[b].start) return intervals[a].start < intervals[b].start;
    return intervals[a].bytes > intervals[b].bytes;
  });

  std::vector<Block> block(count);
  std::vector<bool> handedOver(count, false);  // its block now belongs to its in-place successor
  using Ending = std::pair<int64_t, size_t>;  // (end, interval)
  std::priority_queue<Ending, std::vector<Ending>, std::greater<>> live;
  FreeList freeList;
  size_t top = 0;

  for (size_t i : order) {
    const LiveInterval& interval = intervals[i];
    while (!live.empty() && live.top().first < interval.start) {
      const size_t done = live.top().second;
      live.pop();
      if (!handedOver[done]) freeList.release(block[done].offset, block[done].size);
    }
    const size_t bytes = alignUp(interval.bytes, alignment);
    if (bytes == 0) continue;

    const int32_t target = reuse[i];
    if (target >= 0 && block[static_cast<size_t>(target)].size >= bytes) {
      block[i] = block[static_cast<size_t>(target)];
      handedOver[static_cast<size_t>(target)] = true;
    } else if (std::optional<size_t> hole = freeList.takeBestFit(bytes)) {
      block[i] = {*hole, bytes};
    } else {
      // Nothing free is large enough: grow the arena, from the free range at
      // its top when there is one.
      const size_t offset = freeList.takeRangeEndingAt(top).value_or(top);
      block[i] = {offset, bytes};
      top = offset + bytes;
    }
    live.emplace(std::max(interval.end, interval.start), i);
  }
  return block;
}

// Placement::BySize: in-place chains, largest first, into the smallest gap
// left by the chains already placed that live at the same time.
std::vector<Block> placeBySize(const std::vector<LiveInterval>& intervals, const std::vector<int32_t>& reuse,
                               size_t alignment) {
  const size_t count = intervals.size();
  struct Chain {
    int64_t start = 0, end = 0;
    size_t size = 0, offset = 0;
  };
  std::vector<Chain> chains;
  std::vector<int32_t> chainOf(count, -1);
  std::vector<size_t> byStart(count);
  std::iota(byStart.begin(), byStart.end(), size_t{0});
  std::stable_sort(byStart.begin(), byStart.end(),
                   [&](size_t a, size_t b) { return intervals[a].start < intervals[b].start; });
  for (size_t i : byStart) {
    const size_t bytes = alignUp(intervals[i].bytes, alignment);
    if (bytes == 0) continue;
    const int64_t end = std::max(intervals[i].end, intervals[i].start);
    const int32_t target = reuse[i];
    const int32_t joined = target >= 0 ? chainOf[static_cast<size_t>(target)] : -1;
    if (joined >= 0 && chains[static_cast<size_t>(joined)].size >= bytes) {
      chainOf[i] = joined;
      chains[static_cast<size_t>(joined)].end = std::max(chains[static_cast<size_t>(joined)].end, end);
    } else {
      chainOf[i] = static_cast<int32_t>(chains.size());
      chains.push_back({intervals[i].start, end, bytes});
    }
  }

  std::vector<size_t> order(chains.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (chains[a].size != chains[b].size) return chains[a].size > chains[b].size;
    return chains[a].end - chains[a].start > chains[b].end - chains[b].start;
  });
  std::vector<size_t> placed;
  std::vector<std::pair<size_t, size_t>> taken;  // (offset, size) of placed chains live at the same time
  for (size_t c : order) {
    Chain& chain = chains[c];
    taken.clear();
    for (size_t other : placed)
      if (chains[other].start <= chain.end && chain.start <= chains[other].end)
        taken.emplace_back(chains[other].offset, chains[other].size);
    std::sort(taken.begin(), taken.end());
    size_t cursor = 0;  // the lowest offset above every range seen so far
    std::optional<size_t> best;
    size_t bestGap = 0;
    for (const auto& [offset, size] : taken) {
      if (offset >= cursor + chain.size && (!best || offset - cursor < bestGap)) {
        best = cursor;
        bestGap = offset - cursor;
      }
      cursor = std::max(cursor, offset + size);
    }
    chain.offset = best.value_or(cursor);
    placed.push_back(c);
  }

  std::vector<Block> block(count);
  for (size_t i = 0; i < count; ++i)
    if (chainOf[i] >= 0) {
      const Chain& chain = chains[static_cast<size_t>(chainOf[i])];
      block[i] = {chain.offset, chain.size};
    }
  return block;
}

size_t arenaSize(const std::vector<Block>& blocks) {
  size_t top = 0;
  for (const Block& block : blocks) top = std::max(top, block.offset + block.size);
  return top;
}

}  // namespace

std::vector<int32_t> validReuses(const std::vector<LiveInterval>& intervals) {
  const auto count = static_cast<int32_t>(intervals.size());
  std::vector<int32_t> reuse(intervals.size(), -1);
  std::vector<bool> claimed(intervals.size(), false);
  for (int32_t i = 0; i < count; ++i) {
    const int32_t target = intervals[static_cast<size_t>(i)].reuse;
    if (target < 0 || target >= count || target == i || claimed[static_cast<size_t>(target)]) continue;
    const LiveInterval& from = intervals[static_cast<size_t>(target)];
    // A target alive only at the claimant's first step is written by the
    // same step: there is no last read to hand its slot over at.
    if (from.end != intervals[static_cast<size_t>(i)].start || from.start >= from.end) continue;
    claimed[static_cast<size_t>(target)] = true;
    reuse[static_cast<size_t>(i)] = target;
  }
  return reuse;
}

LinearScanAllocator::LinearScanAllocator(size_t alignment, Placement placement)
    : alignment_(std::max<size_t>(alignment, 1)), placement_(placement) {}

std::vector<Assignment> LinearScanAllocator::allocate(const std::vector<LiveInterval>& intervals,
                                                      size_t* peakBytes) const {
  const std::vector<int32_t> reuse = validReuses(intervals);
  std::vector<Block> block;
  switch (placement_) {
    case Placement::ByStart: block = placeByStart(intervals, reuse, alignment_); break;
    case Placement::BySize: block = placeBySize(intervals, reuse, alignment_); break;
    case Placement::Smaller: {
      block = placeByStart(intervals, reuse, alignment_);
      std::vector<Block> bySize = placeBySize(intervals, reuse, alignment_);
      if (arenaSize(bySize) < arenaSize(block)) block = std::move(bySize);
      break;
    }
  }

  // Buffers: the distinct offsets of intervals that hold memory.
  const size_t count = intervals.size();
  std::map<size_t, int32_t> bufferAt;
  for (size_t i = 0; i < count; ++i)
    if (block[i].size > 0) bufferAt.emplace(block[i].offset, 0);
  int32_t next = 0;
  for (auto& [offset, buffer] : bufferAt) buffer = next++;

  std::vector<Assignment> assignments(count);
  for (size_t i = 0; i < count; ++i)
    if (block[i].size > 0) assignments[i] = {block[i].offset, bufferAt.at(block[i].offset)};
  if (peakBytes) *peakBytes = arenaSize(block);
  return assignments;
}

size_t liveBytesLowerBound(const std::vector<LiveInterval>& intervals) {
  // Changes of the live byte count, keyed by step: +bytes at start, -bytes
  // after the end. An in-place pair shares one slot at the hand-over step,
  // so the smaller of the two is taken off there.
  std::map<int64_t, int64_t> delta;
  for (const LiveInterval& interval : intervals) {
    const auto bytes = static_cast<int64_t>(interval.bytes);
    delta[interval.start] += bytes;
    delta[std::max(interval.end, interval.start) + 1] -= bytes;
  }
  const std::vector<int32_t> reuse = validReuses(intervals);
  for (size_t i = 0; i < intervals.size(); ++i) {
    if (reuse[i] < 0) continue;
    const auto shared = static_cast<int64_t>(
        std::min(intervals[i].bytes, intervals[static_cast<size_t>(reuse[i])].bytes));
    delta[intervals[i].start] -= shared;
    delta[intervals[i].start + 1] += shared;
  }
  int64_t live = 0, most = 0;
  for (const auto& [step, change] : delta) {
    live += change;
    most = std::max(most, live);
  }
  return static_cast<size_t>(most);
}

}  // namespace kiln::rt
