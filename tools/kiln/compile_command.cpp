// kiln compile MODEL.onnx -o OUT.kiln [--input-shape NAME=DIMS]... [--max-shape SYM=N]...
//              [--report FILE] [--precision f32|bf16|int8-weights]
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <regex>

#include "compiler/artifact_writer.h"
#include "compiler/compiler.h"
#include "frontend/onnx/onnx_importer.h"
#include "ir/verifier.h"
#include "passes/pass_manager.h"
#include "tools/common/arguments.h"
#include "tools/common/pass_options.h"
#include "tools/kiln/input_shapes.h"
#include "tools/kiln/commands.h"
#include "tools/kiln/compile_report.h"
#include "tools/kiln/latent_calibration.h"

namespace kiln::tools {

namespace {

double millisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

Status writeReport(const CompileReport& report, const std::string& path) {
  if (path == "-") {
    std::cout << report.toTable();
    return Status::ok();
  }
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return Status::error("--report: cannot open '", path, "': ", std::strerror(errno));
  file << report.toJson();
  file.close();
  if (!file) return Status::error("--report: cannot write '", path, "'");
  return Status::ok();
}

// --cuda-arch's list: each an architecture NVRTC compiles cubins for.
Expected<std::vector<std::string>> parseCudaArchitectures(const std::string& list) {
  static const std::regex architecture("sm_[0-9]{2,3}a?");
  std::vector<std::string> architectures;
  for (size_t start = 0;;) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, comma - start);
    if (!std::regex_match(item, architecture))
      return Status::error("--cuda-arch: '", item, "' is not a CUDA architecture like sm_90");
    architectures.push_back(item);
    if (comma == list.size()) return architectures;
    start = comma + 1;
  }
}

}  // namespace

int compileCommand(const std::vector<std::string>& args) {
  std::string modelPath, outputPath, reportPath, precision = "f32", weightsMode = "embed", calibrationDir;
  std::string cudaArchitectures;
  std::vector<std::string> shapeSpecs, maxShapeSpecs;
  PassFlags passFlags;
  ArgumentParser parser(
      "kiln compile MODEL.onnx -o OUT.kiln [--input-shape NAME=DIMS]... [--max-shape SYM=N]...\n"
      "                    [--passes=LIST] [--precision f32|bf16|int8-weights] [--weights embed|reference]\n"
      "                    [--report FILE.json|-] [pass manager options]",
      "Imports an ONNX model, runs the pass pipeline (the default one unless --passes\n"
      "gives another), verifying the graph after each pass, plans its memory and\n"
      "writes one .kiln artifact holding the planned program. Dims the model leaves\n"
      "symbolic stay symbolic unless --input-shape fixes them; the memory plan is\n"
      "made for each symbol at its --max-shape bound.");
  parser.positional("MODEL.onnx", "the ONNX model (external data next to it is read too)",
                    &modelPath);
  parser.option("--output", "OUT.kiln", "the artifact to write (required)", &outputPath, {"-o"});
  parser.repeated("--input-shape", "NAME=DIMS",
                  "the shape of input NAME, dims separated by 'x' (1x128), or by ','\n"
                  "when a symbol contains an x (1,max_len): an integer fixes the\n"
                  "model's dim everywhere, a symbol name keeps it symbolic",
                  &shapeSpecs);
  parser.repeated("--max-shape", "SYM=N",
                  "plan memory for symbol SYM up to N (e.g. seq=4096); default 1\n"
                  "for a symbol named like 'batch', 2048 for the others. Runs past\n"
                  "a bound still work: the runtime plans again for them",
                  &maxShapeSpecs);
  passFlags.addTo(parser, "default (see docs/passes.md):\n" + joinPipeline(defaultPipeline()));
  parser.option("--precision", "f32|bf16|int8-weights",
                "f32 (the default) keeps every weight f32; bf16 appends the pass\n"
                "precision_bf16 to the pipeline: matmul weights become bf16 (f32\n"
                "accumulation), attention, norms, softmax and embeddings stay f32;\n"
                "int8-weights appends precision_int8_weights: matmul weights become\n"
                "int8 with f32 scales (--int8-group), the rest stays f32",
                &precision);
  parser.option("--weights", "embed|reference",
                "embed (the default) copies the weights into the artifact; reference\n"
                "records where each is in the ONNX file (or its external data) and\n"
                "copies only those passes made, so compiling never rewrites them; the\n"
                "artifact then needs those files, unchanged, at their absolute paths.\n"
                "reference skips sibling_matmul_merge, whose merged weights would be\n"
                "copies (docs/artifact.md)",
                &weightsMode);
  parser.option("--calibration-dir", "DIR",
                "data for --latent-attention's compressing modes: each subdirectory\n"
                "of DIR is a data set (input_K.pb); without it they use the weights\n"
                "alone (docs/latent-attention.md)",
                &calibrationDir);
  parser.option("--cuda-arch", "LIST",
                "the GPU architectures the CUDA device's kernels are compiled for,\n"
                "comma-separated (default sm_80,sm_90); the newest also gets PTX,\n"
                "which a later GPU's driver compiles at load (docs/artifact.md)",
                &cudaArchitectures);
  parser.option("--report", "FILE.json",
                "write the compile report (op counts, per-pass times and\n"
                "statistics, fusion gain, memory plan) as JSON to FILE.json, or as a table\n"
                "to stdout with '-' (docs/report.md)",
                &reportPath);
  if (std::optional<int> exitCode = parser.parseOrExitCode(args, "kiln compile", passListHelp()))
    return *exitCode;
  if (outputPath.empty()) {
    std::cerr << "kiln compile: missing -o OUT.kiln\n";
    return 1;
  }

  auto fail = [&](const Status& status) {
    std::cerr << "kiln compile: " << status.message() << "\n";
    return 1;
  };
  const auto compileStart = std::chrono::steady_clock::now();
  Expected<std::map<std::string, std::vector<Dim>>> shapes = parseInputShapes(shapeSpecs);
  if (!shapes) return fail(shapes.status());
  Expected<SymbolBindings> maxShapes = parseMaxShapes(maxShapeSpecs);
  if (!maxShapes) return fail(maxShapes.status());
  CompileOptions compileOptions;
  if (passFlags.pipeline) {
    Expected<std::vector<std::string>> pipeline = passFlags.pipelineOr({});
    if (!pipeline) return fail(pipeline.status());
    compileOptions.pipeline = std::move(*pipeline);
  }
  if (precision == "bf16") compileOptions.precision = Precision::BF16;
  else if (precision == "int8-weights") compileOptions.precision = Precision::Int8Weights;
  else if (precision != "f32")
    return fail(Status::error("--precision '", precision, "' is not f32, bf16 or int8-weights"));
  if (weightsMode == "reference") compileOptions.weights = WeightStorage::Reference;
  else if (weightsMode != "embed")
    return fail(Status::error("--weights '", weightsMode, "' is not embed or reference"));
  compileOptions.maxShapes = std::move(*maxShapes);
  if (!cudaArchitectures.empty()) {
    Expected<std::vector<std::string>> architectures = parseCudaArchitectures(cudaArchitectures);
    if (!architectures) return fail(architectures.status());
    compileOptions.architectures["cuda"] = std::move(*architectures);
  }
  compileOptions.source = modelPath;
  CompileReport report;
  report.precision = precision;
  report.weightsMode = weightsMode;
  Expected<PassManagerOptions> managerOptions = passFlags.managerOptions();
  if (!managerOptions) return fail(managerOptions.status());
  compileOptions.passes = std::move(*managerOptions);
  auto placementReport = std::make_shared<PlacementReport>();
  compileOptions.passes.passOptions.placement.report = placementReport;
  const bool latent = compileOptions.passes.passOptions.latent.mode.has_value();
  if (!calibrationDir.empty()) {
    if (!latent) return fail(Status::error("--calibration-dir is for --latent-attention's compressing modes"));
    Expected<Calibrate> calibrate = calibrationFromDir(calibrationDir);
    if (!calibrate) return fail(calibrate.status());
    compileOptions.passes.passOptions.latent.calibrate = std::move(*calibrate);
  }
  auto latentReport = std::make_shared<LatentAttentionReport>();
  compileOptions.passes.passOptions.latent.report = latentReport;
  compileOptions.passes.costModel = &report.costModel;
  compileOptions.passes.irPrintOptions.maxInlineWeightElements = 16;
  Expected<Compiler> compiler = Compiler::create(std::move(compileOptions));
  if (!compiler) return fail(compiler.status());

  OnnxImportOptions options;
  options.inputShapes = *shapes;
  // The mapped model and external-data files, which the imported weights
  // view: kept until the artifact is written, which records where those
  // weights are in them.
  std::vector<MappedFile> weightFiles;
  Expected<Graph> graph = importOnnxFile(modelPath, options, &report.onnx, &weightFiles);
  if (!graph) return fail(graph.status());
  if (Status valid = verifyGraph(*graph); !valid)
    return fail(valid.withContext(cat(modelPath, ": the imported graph is invalid: ")));
  report.importMs = millisecondsSince(compileStart);
  report.irOpsInitial = static_cast<int64_t>(graph->ops().size());

  Expected<CompileResult> compiled = compiler->compile(std::move(*graph));
  if (!compiled) return fail(compiled.status());
  report.record = std::move(compiled->record);
  if (!placementReport->chosen.opsByDevice.empty()) report.placement = *placementReport;  // it placed
  if (latent) {
    report.latent = *latentReport;
    for (const std::string& skipped : latentReport->skipped)
      std::cerr << "kiln compile: --latent-attention left an attention op as it was: " << skipped << "\n";
  }
  if (compiled->plan) {
    report.describePlan(*compiled->plan);
  } else {
    report.notPlanned = compiled->notPlanned;
    std::cerr << "kiln compile: warning: no memory plan; the runtime allocates each result as it runs: "
              << compiled->notPlanned << "\n";
  }

  const auto writeStart = std::chrono::steady_clock::now();
  std::vector<WeightSource> sources;
  for (const MappedFile& file : weightFiles)
    sources.push_back({{file.path(), file.size(), file.mtimeNs()}, file.bytes().data()});
  if (Status written = writeArtifact(*compiled, outputPath, sources, &report.weights); !written)
    return fail(written);
  report.writeMs = millisecondsSince(writeStart);
  report.compileMs = millisecondsSince(compileStart);

  const Graph& compiledGraph = compiled->graph;
  std::cout << "compiled " << modelPath << " -> " << outputPath << ": " << compiledGraph.ops().size()
            << " ops, " << compiledGraph.weights().size() << " weights";
  if (compiled->plan) std::cout << ", arena " << compiled->plan->peakBytes << " bytes";
  std::cout << "\n";
  if (!reportPath.empty()) {
    report.model = modelPath;
    report.pipeline = joinPipeline(compiled->pipeline);
    report.describeFinalGraph(compiledGraph);
    if (Status written = writeReport(report, reportPath); !written) return fail(written);
  }
  return 0;
}

}  // namespace kiln::tools
