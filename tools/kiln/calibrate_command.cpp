// kiln calibrate --device NAME -o PROFILE.json [--name NAME] [--iters N] [--quick]:
// measures a device profile's figures (tools/kiln/calibration.h) and writes
// the profile, which `kiln compile --device-profile FILE` takes.
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>

#include "passes/device_profile.h"
#include "runtime/device.h"
#include "tools/common/arguments.h"
#include "tools/kiln/calibration.h"
#include "tools/kiln/commands.h"

namespace kiln::tools {

namespace {

Expected<rt::Device*> usableDevice(const std::string& name) {
  rt::Device* device = rt::findDevice(name);
  if (!device) {
    std::string known;
    for (rt::Device* d : rt::registeredDevices()) known += cat(known.empty() ? "" : ", ", d->name());
    return Status::error("--device: unknown device '", name, "' (known devices: ", known, ")");
  }
  auto properties = device->properties();
  if (!properties) return Status::error("device '", name, "' is unavailable: ", properties.status().message());
  return device;
}

// Three significant digits: the runs do not agree on more.
double rounded(double value) {
  if (value <= 0) return 0;
  const double scale = std::pow(10.0, 2 - std::floor(std::log10(value)));
  return std::round(value * scale) / scale;
}

// The dtypes the device's kernels take. The Device interface does not say,
// so this is the backends' word: OpenCL kernels exist for f32 data and i64,
// i32, bool indices and masks; the CPU (and any other device) runs them all.
std::set<DType> dtypesOf(const rt::Device& device) {
  if (device.name() == "opencl") return {DType::F32, DType::I64, DType::I32, DType::Bool};
  return {std::begin(kAllDTypes), std::end(kAllDTypes)};
}

DeviceProfile profileOf(rt::Device& device, const Calibration& c, const std::string& name, bool quick) {
  DeviceProfile profile;
  profile.name = name;
  profile.device = std::string(device.name());
  profile.summary = cat("measured by kiln calibrate on device '", device.name(), "'",
                        quick ? " with --quick (small sizes: the figures say little)" : "");
  for (size_t i = 0; i < kNumOpKinds; ++i)
    if (device.supports(opDef(static_cast<OpKind>(i)))) profile.ops.insert(static_cast<OpKind>(i));
  profile.dtypes = dtypesOf(device);
  profile.staticShapesOnly = false;
  profile.matmulFlopsPerSecond = rounded(c.matmulGflops.median) * 1e9;
  profile.vectorFlopsPerSecond = rounded(c.vectorGflops.median) * 1e9;
  profile.bytesPerSecond = rounded(c.bandwidthGbs.median) * 1e9;
  profile.launchSeconds = rounded(c.launchUs.median) * 1e-6;
  profile.memoryBytes = static_cast<uint64_t>(c.memoryMb) * 1024 * 1024;
  profile.hostLink.bytesPerSecond = rounded(c.linkBandwidthGbs.median) * 1e9;
  profile.hostLink.latencySeconds = rounded(c.linkLatencyUs.median) * 1e-6;
  return profile;
}

Status writeProfile(const DeviceProfile& profile, const std::string& path) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return Status::error("-o: cannot open '", path, "': ", std::strerror(errno));
  file << printDeviceProfile(profile);
  file.close();
  if (!file) return Status::error("-o: cannot write '", path, "'");
  return Status::ok();
}

void printTable(const Calibration& c, int runs) {
  std::cout << "figure                   median        min        max   measured on (" << runs << " runs)\n";
  const auto row = [](const char* figure, const Measurement& m) {
    std::cout << std::left << std::setw(20) << figure << std::right << std::fixed << std::setprecision(3)
              << std::setw(11) << m.median << std::setw(11) << m.min << std::setw(11) << m.max << "   "
              << m.workload << "\n";
  };
  row("matmul_gflops", c.matmulGflops);
  row("vector_gflops", c.vectorGflops);
  row("bandwidth_gbs", c.bandwidthGbs);
  row("launch_us", c.launchUs);
  row("link bandwidth_gbs", c.linkBandwidthGbs);
  row("link latency_us", c.linkLatencyUs);
  std::cout << std::left << std::setw(20) << "memory_mb" << std::right << std::setw(11) << std::setprecision(0)
            << c.memoryMb << "   the device's memory_mb property (0: the host, unbounded)\n";
}

}  // namespace

int calibrateCommand(const std::vector<std::string>& args) {
  std::string deviceName, output, profileName, itersText = "5";
  bool quick = false;
  ArgumentParser parser(
      "kiln calibrate --device NAME -o PROFILE.json [--name PROFILE_NAME] [--iters N] [--quick]",
      "Measures a device profile (docs/placement.md) on this machine by micro-benchmarks\n"
      "run through the device interface: an f32 matmul (matmul_gflops), gelu on data in\n"
      "cache (vector_gflops, the cost model's FLOPs), a large add (bandwidth_gbs, the cost\n"
      "model's bytes), a one-element add (launch_us), 64 MB and 4-byte transfers each way\n"
      "(host_link; 0 for the host). Each figure is the median of N runs. Writes the\n"
      "profile (ops: every op the device supports; memory_mb: the device's) and prints\n"
      "a table of the figures with their min and max.");
  parser.option("--device", "NAME", "the device to measure (see 'kiln devices'); required", &deviceName);
  parser.option("--output", "PROFILE.json", "the profile to write; required", &output, {"-o"});
  parser.option("--name", "PROFILE_NAME", "the profile's name (default: the device's)", &profileName);
  parser.option("--iters", "N", "timed runs of each benchmark (default 5)", &itersText);
  parser.flag("--quick", "small sizes, for tests: fast, the figures say little", &quick);
  if (std::optional<int> code = parser.parseOrExitCode(args, "kiln calibrate")) return *code;

  auto fail = [](const Status& error) {
    std::cerr << "kiln calibrate: " << error.message() << "\n";
    return 1;
  };
  if (deviceName.empty()) return fail(Status::error("--device is required"));
  if (output.empty()) return fail(Status::error("-o is required"));
  Expected<int64_t> runs = parseCount("--iters", itersText, 1);
  if (!runs) return fail(runs.status());
  Expected<rt::Device*> device = usableDevice(deviceName);
  if (!device) return fail(device.status());
  Expected<Calibration> calibration = calibrate(**device, static_cast<int>(*runs), quick);
  if (!calibration) return fail(calibration.status());
  const std::string name = profileName.empty() ? deviceName : profileName;
  if (Status written = writeProfile(profileOf(**device, *calibration, name, quick), output); !written)
    return fail(written);
  printTable(*calibration, static_cast<int>(*runs));
  std::cout << "wrote profile '" << name << "' for device '" << deviceName << "' to " << output << "\n";
  return 0;
}

}  // namespace kiln::tools
