#include "passes/pass_registry.h"

#include "passes/attention_fusion.h"
#include "passes/canonicalize.h"
#include "passes/constant_fold.h"
#include "passes/cse.h"
#include "passes/dce.h"
#include "passes/elementwise_fusion.h"
#include "passes/latent_attention.h"
#include "passes/layout.h"
#include "passes/matmul_epilogue_fusion.h"
#include "passes/norm_fusion.h"
#include "passes/precision_bf16.h"
#include "passes/regroup_projections.h"
#include "passes/relative_position_fusion.h"
#include "passes/sibling_matmul_merge.h"
#include "passes/sink_transposes.h"
#include "passes/swiglu_fusion.h"
#include "passes/unfold_heads.h"

namespace kiln {

namespace {

using PassFactory = std::unique_ptr<Pass> (*)(const PassOptions&);

// A pass that takes no options.
template <std::unique_ptr<Pass> (*create)()>
std::unique_ptr<Pass> plain(const PassOptions&) {
  return create();
}

std::unique_ptr<Pass> placement(const PassOptions& options) { return createDevicePlacement(options.placement); }
std::unique_ptr<Pass> latentAttention(const PassOptions& options) { return createLatentAttention(options.latent); }
std::unique_ptr<Pass> int8Weights(const PassOptions& options) { return createPrecisionInt8Weights(options.int8Weights); }

// The one list of passes.
constexpr PassFactory kPassFactories[] = {
    &plain<createCanonicalize>,
    &plain<createDeadCodeElimination>,
    &plain<createCommonSubexpressionElimination>,
    &plain<createConstantFold>,
    &plain<createRelativePositionFusion>,
    &plain<createUnfoldHeads>,
    &plain<createAttentionFusion>,
    &plain<createSinkTransposes>,
    &latentAttention,
    &plain<createNormFusion>,
    &plain<createRegroupProjections>,
    &plain<createSiblingMatmulMerge>,
    &plain<createMatmulEpilogueFusion>,
    &plain<createSwigluFusion>,
    &plain<createLayout>,
    &plain<createElementwiseFusion>,
    &plain<createPrecisionBf16>,
    &int8Weights,
    &placement,
};

}  // namespace

std::vector<std::unique_ptr<Pass>> createAllPasses(const PassOptions& options) {
  std::vector<std::unique_ptr<Pass>> passes;
  for (PassFactory factory : kPassFactories) passes.push_back(factory(options));
  return passes;
}

Expected<std::unique_ptr<Pass>> createPass(std::string_view name, const PassOptions& options) {
  std::string known;
  for (PassFactory factory : kPassFactories) {
    std::unique_ptr<Pass> pass = factory(options);
    if (pass->name() == name) return pass;
    known += known.empty() ? "" : ", ";
    known += pass->name();
  }
  return Status::error("unknown pass '", name, "' (known passes: ", known, ")");
}

}  // namespace kiln
