#include "runtime/device.h"

#include "backends/cpu/cpu_device.h"

namespace kiln::rt {

Device* findDevice(std::string_view name) {
  // Stateless, so one instance of each serves every thread.
  static cpu::CpuDevice cpu;
  if (name == cpu.name()) return &cpu;
  return nullptr;
}

}  // namespace kiln::rt
