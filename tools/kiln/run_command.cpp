// kiln run ARTIFACT [--input-dir DIR] [--output-dir DIR] [--check] [--atol X]
#include <charconv>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "frontend/onnx/tensor_proto.h"
#include "runtime/artifact.h"
#include "runtime/executor.h"
#include "tools/common/arguments.h"
#include "tools/common/output_comparison.h"
#include "tools/kiln/input_shapes.h"
#include "tools/kiln/model_inputs.h"
#include "tools/kiln/commands.h"

namespace kiln::tools {

namespace {

namespace fs = std::filesystem;

std::string scientific(double value) {
  std::ostringstream out;
  out << std::scientific << std::setprecision(3) << value;
  return out.str();
}

// Prints one line per output; returns whether all are within atol.
Expected<bool> checkOutputs(const Graph& graph, const std::vector<Tensor>& outputs,
                            const std::string& dir, double atol) {
  bool allPass = true;
  for (size_t k = 0; k < outputs.size(); ++k) {
    std::string path = dataFile(dir, "output", k);
    if (!fs::exists(path))
      return Status::error(path, ": not found; --check needs a reference for each of the ",
                           outputs.size(), " output(s)");
    Expected<Tensor> expected = readTensorProtoFile(path);
    if (!expected) return expected.status();
    const Tensor& got = outputs[k];
    std::cout << "output " << k << " '" << graph.value(graph.outputs()[k]).name << "' "
              << got.type().str() << ": ";
    if (got.dtype() != expected->dtype() || got.shape() != expected->shape()) {
      std::cout << "FAIL (the reference is " << expected->type().str() << ")\n";
      allPass = false;
      continue;
    }
    double diff = maxAbsDifference(got, *expected);
    bool pass = diff <= atol;
    allPass = allPass && pass;
    std::cout << "max abs diff " << scientific(diff) << (pass ? " PASS" : " FAIL") << " (atol "
              << scientific(atol) << ")";
    // For f32 outputs (logits, hidden states) also the divergence of the
    // distributions they give: what a lower precision costs a sampler.
    if (got.dtype() == DType::F32 && got.numElements() > 0) {
      const SoftmaxDivergence kl = softmaxKlDivergence(*expected, got);
      std::cout << "; softmax KL(ref||kiln) mean " << scientific(kl.mean) << " max "
                << scientific(kl.max) << " nats (" << kl.rows << (kl.rows == 1 ? " row)" : " rows)");
    }
    std::cout << "\n";
  }
  return allPass;
}

void printSummary(const Graph& graph, const std::vector<Tensor>& outputs) {
  for (size_t k = 0; k < outputs.size(); ++k) {
    const Tensor& t = outputs[k];
    std::cout << "output " << k << " '" << graph.value(graph.outputs()[k]).name << "' "
              << t.type().str();
    if (t.numElements() > 0) {
      double low = INFINITY, high = -INFINITY, sum = 0.0;
      for (int64_t i = 0; i < t.numElements(); ++i) {
        double v = t.elementAsDouble(i);
        low = std::min(low, v);
        high = std::max(high, v);
        sum += v;
      }
      std::cout << ": min " << low << ", max " << high << ", mean "
                << sum / static_cast<double>(t.numElements());
    }
    std::cout << "\n";
  }
}

Expected<double> parseTolerance(const std::string& text) {
  double value = 0.0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || !(value >= 0.0))
    return Status::error("--atol '", text, "' is not a non-negative number");
  return value;
}

Expected<uint64_t> parseSeed(const std::string& text) {
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size())
    return Status::error("--seed '", text, "' is not a non-negative integer");
  return value;
}

}  // namespace

int runCommand(const std::vector<std::string>& args) {
  std::string artifactPath, inputDir, outputDir, atolText = "1e-4", seedText = "0";
  std::vector<std::string> shapeSpecs;
  bool check = false;
  ArgumentParser parser(
      "kiln run ARTIFACT.kiln [--input-dir DIR] [--output-dir DIR] [--check] [--atol X]",
      "Runs a compiled artifact on the CPU. Inputs are input_K.pb (ONNX TensorProto,\n"
      "K in graph input order) from --input-dir, or random: floats in [-1, 1), integers\n"
      "0 or 1 (all 1 for inputs named like 'mask'), symbolic dims 1 when named like\n"
      "'batch' and 8 otherwise.");
  parser.positional("ARTIFACT.kiln", "the artifact from 'kiln compile'", &artifactPath);
  parser.option("--input-dir", "DIR", "read inputs from DIR/input_K.pb", &inputDir);
  parser.option("--output-dir", "DIR", "write outputs to DIR/output_K.pb (DIR is created)",
                &outputDir);
  parser.flag("--check",
              "compare each output with --input-dir's output_K.pb: print the max abs\n"
              "difference and PASS/FAIL (exit 1 when any fails) and, for f32 outputs,\n"
              "KL(reference || kiln) of their softmax over the last axis, in nats,\n"
              "mean and max over rows (docs/cli.md)",
              &check);
  parser.option("--atol", "X", "absolute tolerance of --check (default 1e-4)", &atolText);
  parser.repeated("--input-shape", "NAME=DIMS",
                  "shape of random input NAME, integer dims (e.g. input_ids=2x16);\n"
                  "symbols it binds apply to the other random inputs too",
                  &shapeSpecs);
  parser.option("--seed", "N", "seed of the random inputs (default 0)", &seedText);
  if (std::optional<int> exitCode = parser.parseOrExitCode(args, "kiln run")) return *exitCode;

  auto fail = [&](const Status& status) {
    std::cerr << "kiln run: " << status.message() << "\n";
    return 1;
  };
  if (check && inputDir.empty()) return fail(Status::error("--check needs --input-dir"));
  if (!inputDir.empty() && !shapeSpecs.empty())
    return fail(Status::error("--input-shape applies to random inputs; not with --input-dir"));
  Expected<double> atol = parseTolerance(atolText);
  if (!atol) return fail(atol.status());
  Expected<uint64_t> seed = parseSeed(seedText);
  if (!seed) return fail(seed.status());
  Expected<std::map<std::string, std::vector<Dim>>> shapes = parseInputShapes(shapeSpecs);
  if (!shapes) return fail(shapes.status());

  Expected<rt::Artifact> artifact = rt::loadArtifact(artifactPath);
  if (!artifact) return fail(artifact.status());
  const Graph& graph = artifact->graph;
  Expected<std::unique_ptr<rt::Executor>> executor = rt::createExecutor(*artifact);
  if (!executor) return fail(executor.status());

  Expected<std::vector<Tensor>> inputs =
      inputDir.empty() ? randomInputs(graph, *shapes, *seed) : readInputs(graph, inputDir);
  if (!inputs) return fail(inputs.status());
  Expected<std::vector<Tensor>> outputs = (*executor)->run(*inputs);
  if (!outputs) return fail(outputs.status());

  if (!outputDir.empty()) {
    std::error_code error;
    fs::create_directories(outputDir, error);
    if (error) return fail(Status::error(outputDir, ": cannot create: ", error.message()));
    for (size_t k = 0; k < outputs->size(); ++k) {
      Status written = writeTensorProtoFile((*outputs)[k], graph.value(graph.outputs()[k]).name,
                                            dataFile(outputDir, "output", k));
      if (!written) return fail(written);
    }
  }
  if (!check) {
    printSummary(graph, *outputs);
    return 0;
  }
  Expected<bool> passed = checkOutputs(graph, *outputs, inputDir, *atol);
  if (!passed) return fail(passed.status());
  if (*passed) return 0;
  return fail(Status::error("outputs differ from the references in ", inputDir, " by more than ",
                            "atol ", scientific(*atol)));
}

}  // namespace kiln::tools
