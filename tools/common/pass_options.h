// The pass-manager flags `kiln compile` and `kiln-opt` share: --passes,
// --no-verify, --print-ir-after, --print-ir-after-all, --disable-pass, and
// device_placement's --targets, --device-profile and --placement,
// latent_attention's --latent-attention and precision_int8_weights'
// --int8-group.
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
  std::optional<std::string> targets;  // --targets opencl,cpu
  std::vector<std::string> deviceProfiles;
  std::string placement = "cost";
  std::optional<std::string> latentAttention;  // --latent-attention MODE
  std::optional<std::string> int8Group;  // --int8-group N|column

  // Adds the flags to `parser`; `pipelineHelp` says what runs without --passes.
  void addTo(ArgumentParser& parser, const std::string& pipelineHelp);
  // The pipeline (`fallback` when --passes is absent) and the options.
  Expected<std::vector<std::string>> pipelineOr(const std::vector<std::string>& fallback) const;
  // The options; an error for an unknown profile or strategy.
  Expected<PassManagerOptions> managerOptions() const;
};

// The pass list for --help: name and summary of each registered pass.
std::string passListHelp();

}  // namespace kiln::tools
