#include "backends/cuda/nvrtc_api.h"

#include <dlfcn.h>

#include <memory>

namespace kiln::cuda {
namespace {

// The toolkit's development link first, then its versioned names, newest first.
constexpr const char* kLibraries[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"};

Expected<NvrtcApi> openNvrtc() {
  void* library = nullptr;
  std::string errors;
  for (const char* name : kLibraries) {
    if ((library = ::dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    errors += cat(errors.empty() ? "" : "; ", ::dlerror());
  }
  if (!library) return Status::error("no NVRTC: cannot load libnvrtc.so (", errors, ")");
  NvrtcApi api;
#define KILN_NVRTC_LOAD(name, result, parameters)                               \
  api.name = reinterpret_cast<result(*) parameters>(::dlsym(library, #name)); \
  if (!api.name) return Status::error("no NVRTC: libnvrtc has no entry point " #name);
  KILN_NVRTC_FUNCTIONS(KILN_NVRTC_LOAD)
#undef KILN_NVRTC_LOAD
  int major = 0, minor = 0;
  if (api.nvrtcVersion(&major, &minor) != NVRTC_SUCCESS) return Status::error("no NVRTC: nvrtcVersion failed");
  api.version = cat(major, ".", minor);
  return api;
}

std::string programLog(const NvrtcApi& nvrtc, nvrtcProgram program) {
  size_t bytes = 0;
  if (nvrtc.nvrtcGetProgramLogSize(program, &bytes) != NVRTC_SUCCESS || bytes <= 1) return "";
  std::string log(bytes, '\0');
  if (nvrtc.nvrtcGetProgramLog(program, log.data()) != NVRTC_SUCCESS) return "";
  log.resize(bytes - 1);  // the terminating NUL
  return log;
}

}  // namespace

Expected<const NvrtcApi*> loadNvrtc() {
  static const Expected<NvrtcApi> api = openNvrtc();
  if (!api) return api.status();
  return &api.value();
}

Expected<std::vector<uint8_t>> compileCuda(const NvrtcApi& nvrtc, const std::string& source, const std::string& name,
                                           const std::string& architecture) {
  nvrtcProgram program = nullptr;
  if (const nvrtcResult result = nvrtc.nvrtcCreateProgram(&program, source.c_str(), name.c_str(), 0, nullptr, nullptr);
      result != NVRTC_SUCCESS)
    return Status::error("nvrtc: cannot create program ", name, ": ", nvrtc.nvrtcGetErrorString(result));
  const auto destroy = [&nvrtc](nvrtcProgram* p) { nvrtc.nvrtcDestroyProgram(p); };
  std::unique_ptr<nvrtcProgram, decltype(destroy)> owned(&program, destroy);
  const std::string target = "--gpu-architecture=" + architecture;
  // -default-device: every function without a space qualifier is device code.
  const char* options[] = {target.c_str(), "--std=c++17", "-default-device"};
  if (const nvrtcResult result = nvrtc.nvrtcCompileProgram(program, 3, options); result != NVRTC_SUCCESS)
    return Status::error("nvrtc: ", name, " for ", architecture, ": ", nvrtc.nvrtcGetErrorString(result), "\n",
                         programLog(nvrtc, program));
  const bool ptx = architecture.rfind("compute_", 0) == 0;
  size_t bytes = 0;
  const nvrtcResult sized = ptx ? nvrtc.nvrtcGetPTXSize(program, &bytes) : nvrtc.nvrtcGetCUBINSize(program, &bytes);
  if (sized != NVRTC_SUCCESS) return Status::error("nvrtc: ", name, ": no code: ", nvrtc.nvrtcGetErrorString(sized));
  std::vector<uint8_t> code(bytes);
  char* at = reinterpret_cast<char*>(code.data());
  const nvrtcResult got = ptx ? nvrtc.nvrtcGetPTX(program, at) : nvrtc.nvrtcGetCUBIN(program, at);
  if (got != NVRTC_SUCCESS) return Status::error("nvrtc: ", name, ": no code: ", nvrtc.nvrtcGetErrorString(got));
  return code;
}

}  // namespace kiln::cuda
