// kiln devices [--json]: every device this build registers, its memory
// space, whether it can be used here, and what it says of itself
// (Device::properties). A device that cannot be used is listed with the
// reason, not an error: the command answers "what is there", not "is all well".
#include <iostream>

#include <nlohmann/json.hpp>

#include "runtime/device.h"
#include "runtime/planning/memory_plan.h"
#include "tools/common/arguments.h"
#include "tools/kiln/commands.h"

namespace kiln::tools {

namespace {

using Json = nlohmann::ordered_json;

void printText(rt::Device& device) {
  std::cout << device.name() << "\n  memory: " << rt::memorySpaceOf(device.name()) << "\n";
  auto properties = device.properties();
  if (!properties) {
    std::cout << "  unavailable: " << properties.status().message() << "\n";
    return;
  }
  std::cout << "  available: yes\n";
  for (const auto& [name, value] : *properties) std::cout << "  " << name << ": " << value << "\n";
}

Json deviceJson(rt::Device& device) {
  Json json = {{"name", std::string(device.name())}, {"memory", rt::memorySpaceOf(device.name())}};
  auto properties = device.properties();
  json["available"] = properties.isOk();
  if (!properties) {
    json["unavailable"] = properties.status().message();
    return json;
  }
  Json fields = Json::object();
  for (const auto& [name, value] : *properties) fields[name] = value;
  json["properties"] = fields;
  return json;
}

}  // namespace

int devicesCommand(const std::vector<std::string>& args) {
  bool json = false;
  ArgumentParser parser("kiln devices [--json]",
                        "Lists every device this build of kiln has, one block each: its name (as\n"
                        "--targets names it), its memory space (as the memory plan names it),\n"
                        "whether it can be used on this machine and what it reports of itself\n"
                        "(ISA and threads; OpenCL platform, device, driver, compute units, memory).\n"
                        "A device that cannot be used says 'unavailable: REASON'; that is not an\n"
                        "error (exit 0).");
  parser.flag("--json", "print the same as one JSON object: {\"devices\": [...]}", &json);
  if (std::optional<int> code = parser.parseOrExitCode(args, "kiln devices")) return *code;

  if (json) {
    Json devices = Json::array();
    for (rt::Device* device : rt::registeredDevices()) devices.push_back(deviceJson(*device));
    std::cout << Json{{"devices", devices}}.dump(2) << "\n";
    return 0;
  }
  bool first = true;
  for (rt::Device* device : rt::registeredDevices()) {
    if (!first) std::cout << "\n";
    first = false;
    printText(*device);
  }
  return 0;
}

}  // namespace kiln::tools
