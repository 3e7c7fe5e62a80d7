// The pass-manager flags `kiln compile` and `kiln-opt` share: --passes,
// --no-verify, --print-ir-after, --print-ir-after-all, --disable-pass.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "passes/pass_manager.h"
#include "tools/common/arguments.h"

namespace kiln::tools {

struct PassFlags {
  std::optional<std::string> pipeline;  // --passes
  bool noVerify = false;
  std::vector<std::string> printIrAfter;
  bool printIrAfterAll = false;
  std::vector<std::string> disabledPasses;

  // Adds the flags to `parser`; `pipelineHelp` says what runs without --passes.
  void addTo(ArgumentParser& parser, const std::string& pipelineHelp);
  // The pipeline (`fallback` when --passes is absent) and the options.
  Expected<std::vector<std::string>> pipelineOr(const std::vector<std::string>& fallback) const;
  PassManagerOptions managerOptions() const;
};

// The pass list for --help: name and summary of each registered pass.
std::string passListHelp();

}  // namespace kiln::tools
