#include "tools/kiln/compile_report.h"

#include <cmath>
#include <cstdio>

#include "ir/op_registry.h"
#include "tools/common/format.h"

namespace kiln::tools {

namespace {

std::string jsonString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// Six significant digits; JSON has no NaN or infinity, so those are null.
std::string jsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

std::string padded(std::string text, size_t width, bool right = false) {
  if (text.size() >= width) return text + " ";
  const std::string pad(width - text.size(), ' ');
  return right ? pad + text + " " : text + pad + " ";
}

std::string costJson(const GraphCost& cost) {
  return cat("{\"bytes\": ", jsonNumber(cost.bytes), ", \"flops\": ", jsonNumber(cost.flops),
             ", \"seconds\": ", jsonNumber(cost.seconds),
             ", \"ops_with_unknown_dims\": ", cost.opsWithUnknownDims, "}");
}

void collectSymbols(const Dim& dim, const CostModel& model, SymbolBindings& symbols) {
  for (const std::string& symbol : dim.symbols()) symbols[symbol] = model.symbolValue(symbol);
}

std::string placementFiguresJson(const PlacementFigures& figures) {
  std::string ops;
  for (const auto& [device, count] : figures.opsByDevice)
    ops += cat(ops.empty() ? "" : ", ", jsonString(device), ": ", count);
  return cat("{\"ops_by_device\": {", ops, "}, \"transitions\": ", figures.transitions,
             ", \"transfer_bytes\": ", jsonNumber(figures.transferBytes), ", \"upload_bytes\": ",
             jsonNumber(figures.uploadBytes), ", \"modelled_ms\": ", jsonNumber(figures.modelledSeconds * 1e3), "}");
}

// The chosen placement's figures with pass_ms and the baselines beside them.
std::string placementJson(const PlacementReport& report) {
  std::string json = placementFiguresJson(report.chosen);
  json.pop_back();
  const char* strategy = report.strategy == PlacementStrategy::Cost     ? "cost"
                         : report.strategy == PlacementStrategy::Greedy ? "greedy"
                                                                        : "naive";
  return cat(json, ", \"strategy\": \"", strategy, "\", \"pass_ms\": ", jsonNumber(report.passMs),
             ", \"baselines\": {\"naive\": ", placementFiguresJson(report.naive),
             ", \"greedy\": ", placementFiguresJson(report.greedy), "}}");
}

std::string latentJson(const LatentAttentionReport& report) {
  std::string skipped;
  for (const std::string& why : report.skipped) skipped += cat(skipped.empty() ? "" : ", ", jsonString(why));
  return cat("{\"kv_bytes_per_token_before\": ", report.kvBytesPerTokenBefore,
             ", \"kv_bytes_per_token_after\": ", report.kvBytesPerTokenAfter, ", \"rank\": ", report.rank,
             ", \"rope_dims\": ", report.ropeDims, ", \"calibrated\": ", report.calibrated ? "true" : "false",
             ", \"layers\": ", report.layers, ", \"skipped\": [", skipped, "]}");
}

std::string placementLine(const PlacementFigures& figures) {
  std::string ops;
  for (const auto& [device, count] : figures.opsByDevice) ops += cat(ops.empty() ? "" : ", ", device, " ", count);
  return cat(figures.transitions, " transitions, ", jsonNumber(figures.transferBytes), " bytes moved, ",
             jsonNumber(figures.modelledSeconds * 1e3), " ms modelled (", ops, ")");
}


}  // namespace

void CompileReport::describeFinalGraph(const Graph& graph) {
  irOpsFinal = static_cast<int64_t>(graph.ops().size());
  opsByKind.clear();
  for (const Op& op : graph.ops()) ++opsByKind[std::string(op.def->name)];
  symbols.clear();
  for (const Value& value : graph.values())
    for (const Dim& dim : value.type.shape) collectSymbols(dim, costModel, symbols);
}

void CompileReport::describePlan(const rt::MemoryPlan& plan) {
  Memory m;
  m.peakBytes = plan.peakBytes;
  m.naiveBytes = plan.naiveBytes;
  m.lowerBoundBytes = plan.lowerBoundBytes;
  m.buffers = plan.buffers;
  for (const rt::RegisterPlan& r : plan.registers)
    m.registers += r.kind == rt::RegisterPlan::Arena || r.kind == rt::RegisterPlan::View;
  m.bounds = plan.bounds;
  memory = m;
}

double CompileReport::fusionGainRatio() const {
  if (!record.unfusedCost || !record.fusedCost || record.fusedCost->seconds <= 0) return 0;
  return record.unfusedCost->seconds / record.fusedCost->seconds;
}

std::string CompileReport::toJson() const {
  std::string json = "{\n";
  json += cat("  \"model\": ", jsonString(model), ",\n");
  json += cat("  \"precision\": ", jsonString(precision), ",\n");
  json += cat("  \"onnx_nodes\": ", onnx.nodes, ",\n");
  json += cat("  \"onnx_nonconstant_nodes\": ", onnx.nonConstantNodes, ",\n");
  json += cat("  \"ir_ops_initial\": ", irOpsInitial, ",\n");
  json += cat("  \"ir_ops_final\": ", irOpsFinal, ",\n");
  json += "  \"ops_by_kind\": {";
  bool first = true;
  for (const auto& [kind, count] : opsByKind) {
    json += cat(first ? "" : ", ", jsonString(kind), ": ", count);
    first = false;
  }
  json += "},\n";
  json += cat("  \"pipeline\": ", jsonString(pipeline), ",\n");
  json += "  \"passes\": [";
  for (size_t i = 0; i < record.passes.size(); ++i) {
    const PassRecord& pass = record.passes[i];
    json += cat(i ? ",\n" : "\n", "    {\"name\": ", jsonString(pass.name),
                ", \"ms\": ", jsonNumber(pass.ms), ", \"verify_ms\": ", jsonNumber(pass.verifyMs),
                ", \"ops_before\": ", pass.opsBefore, ", \"ops_after\": ", pass.opsAfter,
                ", \"changed\": ", pass.changed ? "true" : "false",
                ", \"skipped\": ", pass.skipped ? "true" : "false", ", \"stats\": {");
    const auto& counters = pass.statistics.all();
    for (size_t k = 0; k < counters.size(); ++k)
      json += cat(k ? ", " : "", jsonString(counters[k].first), ": ", counters[k].second);
    json += "}}";
  }
  json += record.passes.empty() ? "],\n" : "\n  ],\n";
  json += cat("  \"pipeline_ms\": ", jsonNumber(record.totalMs), ",\n");
  json += cat("  \"import_ms\": ", jsonNumber(importMs), ",\n");
  json += cat("  \"write_ms\": ", jsonNumber(writeMs), ",\n");
  json += cat("  \"compile_ms\": ", jsonNumber(compileMs), ",\n");
  json += cat("  \"weights\": {\"mode\": ", jsonString(weightsMode), ", \"embedded_count\": ", weights.embeddedWeights,
              ", \"embedded_bytes\": ", weights.embeddedBytes, ", \"referenced_count\": ", weights.referencedWeights,
              ", \"referenced_bytes\": ", weights.referencedBytes, ", \"unaligned_count\": ", weights.unalignedWeights,
              ", \"unaligned_bytes\": ", weights.unalignedBytes, ", \"files\": [");
  for (size_t i = 0; i < weights.referencedFiles.size(); ++i)
    json += cat(i ? ", " : "", jsonString(weights.referencedFiles[i]));
  json += "]},\n";
  json += cat("  \"fusion_gain_ratio\": ", jsonNumber(fusionGainRatio()), ",\n");
  if (memory) {
    json += cat("  \"memory\": {\"peak_bytes\": ", memory->peakBytes, ", \"naive_bytes\": ", memory->naiveBytes,
                ", \"lower_bound_bytes\": ", memory->lowerBoundBytes, ", \"buffers\": ", memory->buffers,
                ", \"registers\": ", memory->registers, ", \"bounds\": {");
    first = true;
    for (const auto& [symbol, value] : memory->bounds) {
      json += cat(first ? "" : ", ", jsonString(symbol), ": ", value);
      first = false;
    }
    json += "}},\n";
  } else {
    json += "  \"memory\": null,\n";
  }
  json += cat("  \"placement\": ", placement ? placementJson(*placement) : std::string("null"), ",\n");
  json += cat("  \"latent_attention\": ", latent ? latentJson(*latent) : std::string("null"), ",\n");
  json += "  \"cost_model\": {\n";
  json += cat("    \"bytes_per_second\": ", jsonNumber(costModel.bytesPerSecond), ",\n");
  json += cat("    \"flops_per_second\": ", jsonNumber(costModel.flopsPerSecond), ",\n");
  json += "    \"symbols\": {";
  first = true;
  for (const auto& [symbol, value] : symbols) {
    json += cat(first ? "" : ", ", jsonString(symbol), ": ", value);
    first = false;
  }
  json += "},\n";
  json += cat("    \"unknown_dim\": ", costModel.unknownDim, ",\n");
  json += cat("    \"unfused\": ",
              record.unfusedCost ? costJson(*record.unfusedCost) : std::string("null"), ",\n");
  json += cat("    \"fused\": ",
              record.fusedCost ? costJson(*record.fusedCost) : std::string("null"), "\n");
  json += "  }\n}\n";
  return json;
}

std::string CompileReport::toTable() const {
  std::string text = cat("compile report for ", model, " (precision ", precision, ")\n");
  auto row = [&](const std::string& label, const std::string& value) {
    text += "  " + padded(label, 22) + value + "\n";
  };
  row("onnx nodes", cat(onnx.nodes, " (", onnx.nonConstantNodes, " not Constant)"));
  std::string ops = cat(irOpsInitial, " imported -> ", irOpsFinal, " final");
  if (onnx.nonConstantNodes > 0)
    ops += cat(" (", fixed(100.0 * (1.0 - static_cast<double>(irOpsFinal) /
                                              static_cast<double>(onnx.nonConstantNodes)), 1),
               "% below the non-Constant ONNX nodes)");
  row("ir ops", ops);
  row("compile", cat(fixed(compileMs, 1), " ms (import ", fixed(importMs, 1), ", passes ",
                     fixed(record.totalMs, 1), ", write ", fixed(writeMs, 1), ")"));
  if (record.unfusedCost && record.fusedCost) {
    std::string bound;
    for (const auto& [symbol, value] : symbols) bound += cat(bound.empty() ? "" : ", ", symbol, "=", value);
    row("fusion gain ratio",
        cat(fixed(fusionGainRatio(), 3), " (cost ", jsonNumber(record.unfusedCost->seconds * 1e3),
            " ms unfused -> ", jsonNumber(record.fusedCost->seconds * 1e3), " ms fused",
            bound.empty() ? "" : "; ", bound, ")"));
  }

  if (memory) {
    std::string bounds;
    for (const auto& [symbol, value] : memory->bounds) bounds += cat(bounds.empty() ? "" : ", ", symbol, "=", value);
    const auto ratio = [](size_t a, size_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0; };
    row("memory", cat("peak ", memory->peakBytes, " bytes (", fixed(100 * ratio(memory->peakBytes, memory->naiveBytes), 1),
                      "% of naive ", memory->naiveBytes, ", ", fixed(ratio(memory->peakBytes, memory->lowerBoundBytes), 3),
                      "x the lower bound ", memory->lowerBoundBytes, "); ", memory->buffers, " buffers for ",
                      memory->registers, " registers", bounds.empty() ? "" : "; at ", bounds));
  } else {
    row("memory", "not planned: " + notPlanned);
  }
  std::string weightRow = cat(weightsMode, ": ", weights.embeddedWeights, " embedded (", weights.embeddedBytes,
                              " bytes), ", weights.referencedWeights, " referenced (", weights.referencedBytes, " bytes");
  if (!weights.referencedFiles.empty())
    weightRow += cat(" in ", weights.referencedFiles.size(), weights.referencedFiles.size() == 1 ? " file" : " files");
  if (weights.unalignedWeights > 0)
    weightRow += cat("; ", weights.unalignedWeights, " unaligned, ", weights.unalignedBytes, " bytes read at load");
  row("weights", weightRow + ")");
  if (placement) {
    row("placement", placementLine(placement->chosen));
    row("  naive", placementLine(placement->naive));
    row("  greedy", placementLine(placement->greedy));
  }

  if (latent)
    row("latent attention", cat(latent->layers, " layers, KV ", latent->kvBytesPerTokenBefore, " -> ",
                                latent->kvBytesPerTokenAfter, " bytes per token (rank ", latent->rank, ", rope dims ",
                                latent->ropeDims, latent->calibrated ? ", calibrated)" : ")"));
  text += "\n  " + padded("pass", 24) + padded("ms", 9, true) + padded("verify", 9, true) +
          padded("ops", 14, true) + " stats\n";
  for (const PassRecord& pass : record.passes) {
    std::string counters;
    for (const auto& [counter, value] : pass.statistics.all())
      if (value != 0) counters += cat(counters.empty() ? "" : " ", counter, "=", value);
    const std::string change = pass.skipped ? "skipped" : pass.changed ? "" : "unchanged";
    text += "  " + padded(pass.name, 24) + padded(fixed(pass.ms, 3), 9, true) +
            padded(fixed(pass.verifyMs, 3), 9, true) +
            padded(cat(pass.opsBefore, " -> ", pass.opsAfter), 14, true) + " " + change +
            (change.empty() || counters.empty() ? "" : " ") + counters + "\n";
  }

  text += "\n  ops by kind:";
  for (const auto& [kind, count] : opsByKind) text += cat(" ", kind, " ", count, ",");
  if (!opsByKind.empty()) text.pop_back();
  text += "\n";
  return text;
}

}  // namespace kiln::tools
