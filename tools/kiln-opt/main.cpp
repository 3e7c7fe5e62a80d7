// kiln-opt: text IR in, passes, text IR out. The driver of the lit tests.
#include <exception>
#include <new>
#include <iomanip>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "compiler/compiler.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "tools/common/arguments.h"
#include "tools/common/files.h"
#include "tools/common/pass_options.h"

namespace kiln::tools {
namespace {

// One line per pass: the --stats line format lit tests match.
void printStatistics(const PipelineRecord& record, std::ostream& out) {
  for (const PassRecord& pass : record.passes) {
    out << "pass " << pass.name;
    if (pass.skipped) {
      out << " (skipped)\n";
      continue;
    }
    out << (pass.changed ? " (changed)" : " (unchanged)");
    for (const auto& [counter, value] : pass.statistics.all()) out << " " << counter << "=" << value;
    out << " | ops " << pass.opsBefore << " -> " << pass.opsAfter << " | " << std::fixed
        << std::setprecision(3) << pass.ms << " ms\n";
  }
  const int64_t opsBefore = record.passes.empty() ? 0 : record.passes.front().opsBefore;
  const int64_t opsAfter = record.passes.empty() ? 0 : record.passes.back().opsAfter;
  out << "total: " << record.passes.size() << " passes | ops " << opsBefore << " -> " << opsAfter
      << " | " << record.totalMs << " ms (with verification)\n";
}

int runKilnOpt(const std::vector<std::string>& args) {
  std::string path;
  std::vector<std::string> passNames;
  bool showStatistics = false;
  PassFlags passFlags;
  ArgumentParser parser("kiln-opt FILE.kir [--pass=NAME]... [--passes=LIST] [--stats]",
                        "Parses text IR, verifies it, runs the passes in order (verifying after\n"
                        "each) and prints the resulting IR to stdout.");
  parser.positional("FILE.kir", "text IR to read; '-' reads stdin", &path);
  parser.repeated("--pass", "NAME", "run pass NAME (repeatable; in the order given)", &passNames);
  passFlags.addTo(parser, "not with --pass");
  parser.flag("--stats", "print one line per pass to stderr: its statistics, op\ncounts and time",
              &showStatistics);
  if (std::optional<int> exitCode = parser.parseOrExitCode(args, "kiln-opt", passListHelp()))
    return *exitCode;
  auto fail = [](const Status& status) {
    std::cerr << "kiln-opt: " << status.message() << "\n";
    return 1;
  };
  if (passFlags.pipeline && !passNames.empty())
    return fail(Status::error("give the passes with --pass or with --passes, not both"));
  Expected<std::vector<std::string>> pipeline = passFlags.pipelineOr(passNames);
  if (!pipeline) return fail(pipeline.status());
  CompileOptions options;
  options.pipeline = std::move(*pipeline);
  Expected<PassManagerOptions> managerOptions = passFlags.managerOptions();
  if (!managerOptions) return fail(managerOptions.status());
  options.passes = std::move(*managerOptions);
  Expected<Compiler> compiler = Compiler::create(std::move(options));
  if (!compiler) return fail(compiler.status());

  Expected<std::string> text = readFile(path);
  if (!text) return fail(text.status());
  const std::string source = path == "-" ? "<stdin>" : path;
  Expected<Graph> graph = parseGraph(*text);
  if (!graph) {
    std::cerr << source << ":" << graph.status().message() << "\n";
    return 1;
  }
  if (Status valid = verifyGraph(*graph); !valid) {
    std::cerr << source << ": " << valid.message() << "\n";
    return 1;
  }
  Expected<PipelineRecord> record = compiler->runPasses(*graph);
  if (!record) return fail(record.status());
  if (showStatistics) printStatistics(*record, std::cerr);
  std::cout << printGraph(*graph);
  return 0;
}

}  // namespace
}  // namespace kiln::tools

int main(int argc, char** argv) {
  try {
    return kiln::tools::runKilnOpt(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::bad_alloc&) {
    std::cerr << "kiln-opt: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << "kiln-opt: internal error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "kiln-opt: internal error\n";
  }
  return 1;
}
