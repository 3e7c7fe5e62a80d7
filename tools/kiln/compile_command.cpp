// kiln compile MODEL.onnx -o OUT.kiln [--input-shape NAME=DIMS]...
#include <iostream>

#include "frontend/onnx/onnx_importer.h"
#include "ir/verifier.h"
#include "passes/pass_pipeline.h"
#include "runtime/artifact.h"
#include "tools/common/arguments.h"
#include "tools/kiln/input_shapes.h"
#include "tools/kiln/commands.h"

namespace kiln::tools {

namespace {

// The passes `kiln compile` runs, in order.
const std::vector<std::string> kCompilePipeline = {"dce"};

}  // namespace

int compileCommand(const std::vector<std::string>& args) {
  std::string modelPath, outputPath;
  std::vector<std::string> shapeSpecs;
  ArgumentParser parser(
      "kiln compile MODEL.onnx -o OUT.kiln [--input-shape NAME=DIMS]...",
      "Imports an ONNX model, runs the compile passes (dce), verifies the graph and\n"
      "writes one .kiln artifact. Dims the model leaves symbolic stay symbolic unless\n"
      "--input-shape fixes them.");
  parser.positional("MODEL.onnx", "the ONNX model (external data next to it is read too)",
                    &modelPath);
  parser.option("--output", "OUT.kiln", "the artifact to write (required)", &outputPath, {"-o"});
  parser.repeated("--input-shape", "NAME=DIMS",
                  "the shape of input NAME, dims separated by 'x' (1x128), or by ','\n"
                  "when a symbol contains an x (1,max_len): an integer fixes the\n"
                  "model's dim everywhere, a symbol name keeps it symbolic",
                  &shapeSpecs);
  if (Status parsed = parser.parse(args); !parsed) {
    std::cerr << "kiln compile: " << parsed.message()
              << "\n(run 'kiln compile --help' for usage)\n";
    return 1;
  }
  if (parser.helpRequested()) {
    std::cout << parser.help();
    return 0;
  }
  if (outputPath.empty()) {
    std::cerr << "kiln compile: missing -o OUT.kiln\n";
    return 1;
  }

  auto fail = [&](const Status& status) {
    std::cerr << "kiln compile: " << status.message() << "\n";
    return 1;
  };
  Expected<std::map<std::string, std::vector<Dim>>> shapes = parseInputShapes(shapeSpecs);
  if (!shapes) return fail(shapes.status());
  OnnxImportOptions options;
  options.inputShapes = *shapes;
  Expected<Graph> graph = importOnnxFile(modelPath, options);
  if (!graph) return fail(graph.status());
  if (Status valid = verifyGraph(*graph); !valid)
    return fail(valid.withContext(cat(modelPath, ": the imported graph is invalid: ")));
  Expected<std::vector<PassRunReport>> reports = runPasses(*graph, kCompilePipeline);
  if (!reports) return fail(reports.status());
  if (Status written = rt::writeArtifact(*graph, outputPath); !written) return fail(written);

  std::cout << "compiled " << modelPath << " -> " << outputPath << ": " << graph->ops().size()
            << " ops, " << graph->weights().size() << " weights";
  for (const PassRunReport& report : *reports)
    for (const auto& [counter, value] : report.statistics.all())
      if (value != 0) std::cout << "; " << report.name << " " << counter << " " << value;
  std::cout << "\n";
  return 0;
}

}  // namespace kiln::tools
