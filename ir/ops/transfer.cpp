// Moving a value between devices: what placement (passes/device_placement.cpp)
// inserts where a value crosses from one device's memory to another's.
#include "ir/op_registry.h"

namespace kiln {
namespace {

// The same tensor in another memory: same dtype, same dims. `from` and `to`
// name the devices; the verifier checks them against the placement.
Status inferTransfer(const InferContext& ctx, std::vector<TensorType>& results) {
  const std::string from = ctx.attrs().getString("from");
  const std::string to = ctx.attrs().getString("to");
  if (from.empty() || to.empty()) return ctx.error("'from' and 'to' must name devices");
  if (from == to) return ctx.error("moves a value from device '", from, "' to itself");
  results.push_back(ctx.type(0));
  return Status::ok();
}

}  // namespace

void registerTransferOps(OpRegistry& registry) {
  registry.add(OpDef{.kind = OpKind::Transfer,
                     .summary = "x copied from device `from`'s memory into device `to`'s",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"from", AttrKind::String, true}, {"to", AttrKind::String, true}},
                     .infer = inferTransfer});
}

}  // namespace kiln
