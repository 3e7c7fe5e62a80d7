// Every pass kiln has, looked up by name.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "passes/device_placement.h"
#include "passes/latent_attention.h"
#include "passes/pass.h"
#include "passes/precision_int8_weights.h"

namespace kiln {

// What the passes that take options are given (the tools' flags set them);
// the others ignore it.
struct PassOptions {
  PlacementOptions placement;  // device_placement
  LatentAttentionOptions latent;  // latent_attention
  Int8WeightOptions int8Weights;  // precision_int8_weights
};

// One fresh instance of each pass, in registry order.
std::vector<std::unique_ptr<Pass>> createAllPasses(const PassOptions& options = {});
// The pass with this name, or an error that lists the known names.
Expected<std::unique_ptr<Pass>> createPass(std::string_view name, const PassOptions& options = {});

}  // namespace kiln
