#include "tools/kiln/bench_profile.h"

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "ir/op_registry.h"
#include "passes/cost_model.h"
#include "tools/common/format.h"

namespace kiln::tools {

namespace {

// An op kind's totals over a run.
struct KindFigures {
  double ms = 0;
  int ops = 0;
  double flops = 0, bytes = 0;
  double flopLimitMs = 0, byteLimitMs = 0;  // time at the limits, of the ops each bounds
};

bool readsBf16(const Graph& graph, const Op& op) {
  return std::any_of(op.operands.begin(), op.operands.end(),
                     [&](ValueId id) { return id != kNoValue && graph.value(id).type.dtype == DType::BF16; });
}

// The op's figures added to its kind's; its limit time is its FLOPs at the
// GEMM peak of its precision or its bytes at the read bandwidth, the longer.
void addOp(const Graph& graph, const Op& op, double ms, const CostModel& model, const Roofline* roofline,
           KindFigures& kind) {
  const OpCost cost = opCost(graph, op, model);
  kind.ms += ms;
  ++kind.ops;
  kind.flops += cost.flops;
  kind.bytes += cost.bytes;
  if (!roofline) return;
  const double peak = readsBf16(graph, op) && roofline->bf16Gflops ? *roofline->bf16Gflops : roofline->f32Gflops;
  const double flopMs = cost.flops / peak / 1e6, byteMs = cost.bytes / roofline->readGbs / 1e6;
  (flopMs >= byteMs ? kind.flopLimitMs : kind.byteLimitMs) += std::max(flopMs, byteMs);
}

}  // namespace

Expected<Roofline> loadRoofline(const std::string& path) {
  std::ifstream file(path);
  if (!file) return Status::error("--roofline: cannot read '", path, "' (write it with build/bench/roofline > FILE)");
  try {
    const nlohmann::json json = nlohmann::json::parse(file);
    Roofline roofline;
    roofline.f32Gflops = json.at("f32_gemm_gflops").get<double>();
    roofline.readGbs = json.at("read_gbs").get<double>();
    if (json.contains("bf16_gemm_gflops") && !json["bf16_gemm_gflops"].is_null())
      roofline.bf16Gflops = json["bf16_gemm_gflops"].get<double>();
    if (roofline.f32Gflops <= 0 || roofline.readGbs <= 0 || (roofline.bf16Gflops && *roofline.bf16Gflops <= 0))
      return Status::error("--roofline: '", path, "' has a rate that is not positive");
    return roofline;
  } catch (const nlohmann::json::exception& e) {
    return Status::error("--roofline: '", path, "' is not bench/roofline's JSON: ", e.what());
  }
}

SymbolBindings bindingsOf(const Graph& graph, const std::vector<Tensor>& inputs) {
  SymbolBindings bindings;
  for (size_t i = 0; i < graph.inputs().size() && i < inputs.size(); ++i) {
    const Shape& shape = graph.value(graph.inputs()[i]).type.shape;
    for (size_t d = 0; d < shape.size() && d < inputs[i].shape().size(); ++d)
      if (std::optional<std::string> symbol = shape[d].plainSymbol()) bindings[*symbol] = inputs[i].shape()[d];
  }
  return bindings;
}

void printProfile(const Graph& graph, const std::vector<int64_t>& opNanos, int64_t iters, double totalMs,
                  const SymbolBindings& bindings, const Roofline* roofline) {
  CostModel model;
  model.bindings = bindings;
  std::map<std::string, KindFigures> byKind;
  double kernelsMs = 0;
  for (size_t i = 0; i < opNanos.size(); ++i) {
    const double ms = static_cast<double>(opNanos[i]) / 1e6 / static_cast<double>(iters);
    const Op& op = graph.ops()[i];
    addOp(graph, op, ms, model, roofline, byKind[std::string(op.def->name)]);
    kernelsMs += ms;
  }
  std::vector<std::pair<std::string, KindFigures>> rows(byKind.begin(), byKind.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  const double runMs = totalMs / static_cast<double>(iters);
  std::cerr << "op kind            ops   ms/run   share of run   GFLOP/s      GB/s"
            << (roofline ? "  of limit  bound" : "") << "\n";
  for (const auto& [kind, f] : rows) {
    const double seconds = f.ms / 1e3;
    std::cerr << kind << std::string(kind.size() < 18 ? 18 - kind.size() : 1, ' ') << std::setw(4) << f.ops
              << std::setw(9) << fixed(f.ms, 3) << std::setw(9) << fixed(100 * f.ms / runMs, 3) << "%"
              << std::setw(14) << fixed(seconds > 0 ? f.flops / seconds / 1e9 : 0, 1) << std::setw(10)
              << fixed(seconds > 0 ? f.bytes / seconds / 1e9 : 0, 1);
    if (roofline)
      std::cerr << std::setw(9) << fixed(f.ms > 0 ? 100 * (f.flopLimitMs + f.byteLimitMs) / f.ms : 0, 1) << "%  "
                << (f.flopLimitMs >= f.byteLimitMs ? "flops" : "bytes");
    std::cerr << "\n";
  }
  std::cerr << "outside kernels        " << std::setw(9) << fixed(runMs - kernelsMs, 3) << std::setw(9)
            << fixed(100 * (runMs - kernelsMs) / runMs, 3) << "%\n";
  if (roofline)
    std::cerr << "limits: f32 GEMM " << fixed(roofline->f32Gflops, 1) << " GFLOP/s, bf16 GEMM "
              << (roofline->bf16Gflops ? fixed(*roofline->bf16Gflops, 1) + " GFLOP/s" : std::string("none"))
              << ", read " << fixed(roofline->readGbs, 1) << " GB/s\n";
}

}  // namespace kiln::tools
