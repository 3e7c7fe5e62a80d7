// Micro-benchmarks that measure a device profile's rates (passes/
// device_profile.h) through the Device interface alone, so they work for any
// registered device: ops run on operands in the device's memory, and a
// device that is not the host is waited for by reading 4 bytes back (a
// device-to-host transfer waits for every op queued before it). Each rate is
// counted the way the placement cost model counts it (opCost of the same
// op), so a profile and the model agree on what a FLOP and a byte are.
#pragma once

#include <string>
#include <vector>

#include "ir/status.h"
#include "runtime/device.h"

namespace kiln::tools {

// One figure over the timed runs, and what it was measured on
// ("matmul f32[512, 1024], f32[1024, 1024]").
struct Measurement {
  double median = 0, min = 0, max = 0;
  std::string workload;
};

struct Calibration {
  Measurement matmulGflops;    // f32 matmul
  Measurement vectorGflops;    // gelu, the cost model's FLOPs for it
  Measurement bandwidthGbs;    // a large add: the cost model's bytes for it
  Measurement launchUs;        // an add of one element, per launch
  Measurement linkBandwidthGbs;  // 64 MB each way; zero for the host
  Measurement linkLatencyUs;     // 4 bytes each way; zero for the host
  double memoryMb = 0;           // the device's "memory_mb" property; zero for the host
};

// `runs` timed runs of each benchmark after one untimed one; `quick` shrinks
// every size (for tests: the figures then say little).
Expected<Calibration> calibrate(rt::Device& device, int runs, bool quick);

}  // namespace kiln::tools
