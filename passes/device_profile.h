// What the compiler knows of a device it places ops on: which ops and dtypes
// it runs, how fast it computes and moves bytes, its per-op launch cost, its
// memory, and its link to the host. A profile is JSON (docs/placement.md);
// kiln ships profiles for the CPU, PoCL and an NPU-like device (profiles/,
// built into the compiler), and `kiln calibrate` measures one.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ir/dtype.h"
#include "ir/graph.h"
#include "ir/op_kind.h"
#include "ir/status.h"

namespace kiln {

struct HostLink {
  double bytesPerSecond = 10e9;  // each way
  double latencySeconds = 10e-6;  // per transfer
};

struct DeviceProfile {
  std::string name;    // the profile's own name: "pocl", "npu-like"
  std::string device;  // the runtime device that runs its ops: "opencl", "cpu"
  std::string summary;
  bool defaultForDevice = false;  // the shipped profile a target of `device` gets unless told otherwise
  std::set<OpKind> ops;     // the ops it runs
  std::set<DType> dtypes;   // every operand and result of a placed op has one of these
  std::set<OpKind> floatOnly;  // ops it runs on float operands only (OpenCL's div: integer
                               // division by zero must fail, which a kernel cannot; its
                               // fused_elementwise: integer programs run on the host)
  bool staticShapesOnly = false;  // no symbolic dims on a placed op
  double matmulFlopsPerSecond = 100e9;  // matmul and attention
  double vectorFlopsPerSecond = 10e9;   // every other op
  double bytesPerSecond = 20e9;         // memory bandwidth
  double launchSeconds = 1e-6;          // per op
  uint64_t memoryBytes = 0;             // capacity; 0: unbounded (the host's)
  HostLink hostLink;                    // unused for the host itself

  // Whether an op may be placed here: its kind, every operand's and result's
  // dtype, and static dims where required; the reason when not.
  std::optional<std::string> refusal(const Graph& graph, const Op& op) const;
};

Expected<DeviceProfile> parseDeviceProfile(std::string_view json, std::string_view source);
std::string printDeviceProfile(const DeviceProfile& profile);

// A shipped profile by name ("cpu", "pocl", "npu-like"), or the profile in
// the JSON file at `nameOrPath`.
Expected<DeviceProfile> loadDeviceProfile(const std::string& nameOrPath);
// The shipped profile marked the default for `device`.
Expected<DeviceProfile> defaultDeviceProfile(std::string_view device);
// The shipped profiles' names.
std::vector<std::string> builtinProfileNames();

}  // namespace kiln
