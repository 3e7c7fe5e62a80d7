#include "tools/common/pass_options.h"

#include <algorithm>
#include <cstdlib>

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
  parser.option("--targets", "LIST",
                "devices to place ops on, in order of preference (opencl,cpu);\n"
                "`kiln compile` then ends its pipeline with device_placement", &targets);
  parser.repeated("--device-profile", "NAME|FILE",
                  "the profile of one target device: a shipped one (cpu, pocl,\n"
                  "npu-like, h100) or a JSON file (kiln calibrate); default: cpu\n"
                  "for cpu, pocl for opencl, h100 for cuda (repeatable)", &deviceProfiles);
  parser.option("--placement", "STRATEGY", "cost (default), greedy or naive (docs/placement.md)", &placement);
  parser.option("--latent-attention", "MODE",
                "rewrite attention into latent attention (docs/latent-attention.md):\n"
                "exact keeps every output; `kiln compile` then runs latent_attention\n"
                "after attention fusion", &latentAttention);
  parser.option("--int8-group", "N|column",
                "rows of a matmul weight that share a scale in precision_int8_weights\n"
                "(--precision int8-weights): N, or column for one scale per output\n"
                "column (the default)", &int8Group);
}

Expected<std::vector<std::string>> PassFlags::pipelineOr(
    const std::vector<std::string>& fallback) const {
  if (!pipeline) return fallback;
  Expected<std::vector<std::string>> names = parsePipeline(*pipeline);
  if (!names) return names.status().withContext("--passes: ");
  return names;
}

namespace {

// "opencl, cpu" -> {"opencl", "cpu"}; an empty or repeated name is an error.
Expected<std::vector<std::string>> splitTargets(const std::string& text) {
  std::vector<std::string> names;
  size_t start = 0;
  for (;;) {
    const size_t end = std::min(text.find(',', start), text.size());
    std::string name = text.substr(start, end - start);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    if (name.empty()) return Status::error("--targets '", text, "': an empty device name");
    if (std::find(names.begin(), names.end(), name) != names.end())
      return Status::error("--targets '", text, "' names '", name, "' twice");
    names.push_back(std::move(name));
    if (end == text.size()) return names;
    start = end + 1;
  }
}

// The profile of each target: the --device-profile for its device, else the
// shipped default for it.
Expected<std::vector<DeviceProfile>> targetProfiles(const std::string& targets,
                                                    const std::vector<std::string>& profileFlags) {
  std::vector<DeviceProfile> given;
  for (const std::string& flag : profileFlags) {
    Expected<DeviceProfile> profile = loadDeviceProfile(flag);
    if (!profile) return profile.status().withContext("--device-profile: ");
    given.push_back(std::move(*profile));
  }
  Expected<std::vector<std::string>> devices = splitTargets(targets);
  if (!devices) return devices.status();
  std::vector<DeviceProfile> profiles;
  for (const std::string& device : *devices) {
    auto it = std::find_if(given.begin(), given.end(), [&](const DeviceProfile& p) { return p.device == device; });
    if (it != given.end()) {
      profiles.push_back(*it);
      continue;
    }
    Expected<DeviceProfile> fallback = defaultDeviceProfile(device);
    if (!fallback) return fallback.status().withContext("--targets: ");
    profiles.push_back(std::move(*fallback));
  }
  for (const DeviceProfile& profile : given)
    if (std::none_of(profiles.begin(), profiles.end(), [&](const DeviceProfile& p) { return p.name == profile.name; }))
      return Status::error("--device-profile '", profile.name, "' is for device '", profile.device,
                           "', which --targets does not name");
  return profiles;
}

}  // namespace

Expected<PassManagerOptions> PassFlags::managerOptions() const {
  PassManagerOptions options;
  if (targets) {
    Expected<std::vector<DeviceProfile>> profiles = targetProfiles(*targets, deviceProfiles);
    if (!profiles) return profiles.status();
    options.passOptions.placement.targets = std::move(*profiles);
  }
  std::optional<PlacementStrategy> strategy = parsePlacementStrategy(placement);
  if (!strategy) return Status::error("--placement '", placement, "' is not cost, greedy or naive");
  options.passOptions.placement.strategy = *strategy;
  if (latentAttention) {
    Expected<LatentMode> mode = parseLatentMode(*latentAttention);
    if (!mode) return mode.status();
    options.passOptions.latent.mode = *mode;
  }
  if (int8Group && *int8Group != "column") {
    char* end = nullptr;
    const long long group = std::strtoll(int8Group->c_str(), &end, 10);
    if (int8Group->empty() || *end != '\0' || group < 1)
      return Status::error("--int8-group '", *int8Group, "' is not a positive number of rows or 'column'");
    options.passOptions.int8Weights.group = group;
  }
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
