// device_placement: puts every op on one of the target devices and inserts
// `transfer` ops where a value crosses between them (docs/placement.md).
// Three strategies:
//   cost   (the default) minimises the modelled time of the whole program,
//          transfers included: an exact minimum cut for two devices;
//   greedy Forge-UGC's rule: each op on the first target that supports it,
//          then short runs on an accelerator merged back into their
//          neighbours' device;
//   naive  each op on the first target that supports it.
// Every strategy respects each profile's ops, dtypes, static-shape rule and
// memory capacity. Graph inputs, weights and outputs live on the host; a
// weight used on another device is uploaded once (a transfer of the weight).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "passes/cost_model.h"
#include "passes/device_profile.h"
#include "passes/pass.h"

namespace kiln {

enum class PlacementStrategy { Cost, Greedy, Naive };
std::optional<PlacementStrategy> parsePlacementStrategy(std::string_view name);

// A placement's figures (the compile report's `placement`). A transition is
// a value read on a device other than its own, once per value and reading
// device (graph outputs read on the host; weights are uploads, not counted).
struct PlacementFigures {
  std::map<std::string, int64_t> opsByDevice;
  int64_t transitions = 0;
  double transferBytes = 0;  // per run, at the cost model's dims
  double uploadBytes = 0;    // weights copied to devices, once
  double modelledSeconds = 0;
};

struct PlacementReport {
  PlacementStrategy strategy = PlacementStrategy::Cost;
  PlacementFigures chosen;
  PlacementFigures naive, greedy;  // the baselines, on the same graph
  double passMs = 0;
};

struct PlacementOptions {
  // The devices to place on, in order of preference (the first is where
  // naive and greedy try first). None, or the host alone: the pass does
  // nothing.
  std::vector<DeviceProfile> targets;
  PlacementStrategy strategy = PlacementStrategy::Cost;
  CostModel model;  // the dims the costs are taken at
  // Filled when set: the figures of the placement made.
  std::shared_ptr<PlacementReport> report;
};

std::unique_ptr<Pass> createDevicePlacement(PlacementOptions options = {});

}  // namespace kiln
