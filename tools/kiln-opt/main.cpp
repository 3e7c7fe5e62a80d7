// kiln-opt: text IR in, passes, text IR out. The driver of the lit tests.
#include <exception>
#include <new>
#include <iostream>
#include <string>
#include <vector>

#include "ir/text.h"
#include "ir/verifier.h"
#include "passes/pass_pipeline.h"
#include "passes/pass_registry.h"
#include "tools/common/arguments.h"
#include "tools/common/files.h"

namespace kiln::tools {
namespace {

std::string passList() {
  std::string text = "\npasses:\n";
  for (const auto& pass : createAllPasses()) {
    std::string name = "  " + std::string(pass->name());
    name.resize(std::max<size_t>(name.size() + 1, 28), ' ');
    text += name + std::string(pass->summary()) + "\n";
  }
  return text;
}

int runKilnOpt(const std::vector<std::string>& args) {
  std::string path;
  std::vector<std::string> passNames;
  bool showStatistics = false;
  ArgumentParser parser("kiln-opt FILE.kir [--pass=NAME]... [--stats]",
                        "Parses text IR, verifies it, runs the named passes in order (verifying\n"
                        "after each) and prints the resulting IR to stdout.");
  parser.positional("FILE.kir", "text IR to read; '-' reads stdin", &path);
  parser.repeated("--pass", "NAME", "run pass NAME (repeatable; in the order given)", &passNames);
  parser.flag("--stats", "print each pass's statistics to stderr", &showStatistics);
  if (Status parsed = parser.parse(args); !parsed) {
    std::cerr << "kiln-opt: " << parsed.message() << "\n(run 'kiln-opt --help' for usage)\n";
    return 1;
  }
  if (parser.helpRequested()) {
    std::cout << parser.help() << passList();
    return 0;
  }

  Expected<std::string> text = readFile(path);
  if (!text) {
    std::cerr << "kiln-opt: " << text.status().message() << "\n";
    return 1;
  }
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
  Expected<std::vector<PassRunReport>> reports = runPasses(*graph, passNames);
  if (!reports) {
    std::cerr << "kiln-opt: " << reports.status().message() << "\n";
    return 1;
  }
  if (showStatistics) {
    for (const PassRunReport& report : *reports) {
      std::cerr << "pass " << report.name << (report.changed ? " (changed)" : " (unchanged)");
      for (const auto& [counter, value] : report.statistics.all())
        std::cerr << " " << counter << "=" << value;
      std::cerr << "\n";
    }
  }
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
