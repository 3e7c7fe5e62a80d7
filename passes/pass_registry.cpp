#include "passes/pass_registry.h"

#include "passes/attention_fusion.h"
#include "passes/canonicalize.h"
#include "passes/constant_fold.h"
#include "passes/cse.h"
#include "passes/dce.h"
#include "passes/elementwise_fusion.h"
#include "passes/layout.h"
#include "passes/matmul_epilogue_fusion.h"
#include "passes/norm_fusion.h"
#include "passes/precision_bf16.h"
#include "passes/sibling_matmul_merge.h"
#include "passes/swiglu_fusion.h"

namespace kiln {

namespace {

using PassFactory = std::unique_ptr<Pass> (*)();

// The one list of passes.
constexpr PassFactory kPassFactories[] = {
    &createCanonicalize,
    &createDeadCodeElimination,
    &createCommonSubexpressionElimination,
    &createConstantFold,
    &createAttentionFusion,
    &createNormFusion,
    &createSiblingMatmulMerge,
    &createMatmulEpilogueFusion,
    &createSwigluFusion,
    &createLayout,
    &createElementwiseFusion,
    &createPrecisionBf16,
};

}  // namespace

std::vector<std::unique_ptr<Pass>> createAllPasses() {
  std::vector<std::unique_ptr<Pass>> passes;
  for (PassFactory factory : kPassFactories) passes.push_back(factory());
  return passes;
}

Expected<std::unique_ptr<Pass>> createPass(std::string_view name) {
  std::string known;
  for (PassFactory factory : kPassFactories) {
    std::unique_ptr<Pass> pass = factory();
    if (pass->name() == name) return pass;
    known += known.empty() ? "" : ", ";
    known += pass->name();
  }
  return Status::error("unknown pass '", name, "' (known passes: ", known, ")");
}

}  // namespace kiln
