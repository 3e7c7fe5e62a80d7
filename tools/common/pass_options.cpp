#include "tools/common/pass_options.h"

#include <algorithm>

#include "passes/pass_registry.h"

namespace kiln::tools {

void PassFlags::addTo(ArgumentParser& parser, const std::string& pipelineHelp) {
  parser.option("--passes", "LIST",
                "the pipeline: pass names separated by ',' (canonicalize,cse,dce;\n"
                "empty: no passes); " + pipelineHelp,
                &pipeline);
  parser.flag("--no-verify", "do not run the verifier after each pass", &noVerify);
  parser.repeated("--print-ir-after", "NAME",
                  "print the IR to stderr after each run of pass NAME\n(repeatable)",
                  &printIrAfter);
  parser.flag("--print-ir-after-all", "print the IR to stderr after every pass",
              &printIrAfterAll);
  parser.repeated("--disable-pass", "NAME", "skip pass NAME wherever the pipeline has it\n(repeatable)", &disabledPasses);
}

Expected<std::vector<std::string>> PassFlags::pipelineOr(
    const std::vector<std::string>& fallback) const {
  if (!pipeline) return fallback;
  Expected<std::vector<std::string>> names = parsePipeline(*pipeline);
  if (!names) return names.status().withContext("--passes: ");
  return names;
}

PassManagerOptions PassFlags::managerOptions() const {
  PassManagerOptions options;
  options.verifyEachPass = !noVerify;
  options.printIrAfter = printIrAfter;
  options.printIrAfterAll = printIrAfterAll;
  options.disabledPasses = disabledPasses;
  return options;
}

std::string passListHelp() {
  std::string text = "\npasses:\n";
  for (const auto& pass : createAllPasses()) {
    std::string name = "  " + std::string(pass->name());
    name.resize(std::max<size_t>(name.size() + 1, 28), ' ');
    text += name + std::string(pass->summary()) + "\n";
  }
  return text;
}

}  // namespace kiln::tools
