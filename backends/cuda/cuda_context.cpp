#include "backends/cuda/cuda_context.h"

#include <algorithm>
#include <cstring>
#include <iterator>

namespace kiln::cuda {
namespace {

// What a driver call returned, as an error naming the call.
Status callFailed(const CudaApi& api, CUresult result, const char* what) {
  return Status::error("cuda: ", what, " failed with ", cudaErrorName(api, result));
}

Expected<int> attribute(const CudaApi& api, CUdevice device, int which, const char* what) {
  int value = 0;
  if (const CUresult result = api.cuDeviceGetAttribute(&value, which, device); result != CUDA_SUCCESS)
    return callFailed(api, result, what);
  return value;
}

}  // namespace

Expected<std::shared_ptr<CudaContext>> CudaContext::open() {
  Expected<const CudaApi*> loaded = loadCudaApi();
  if (!loaded) return loaded.status();
  const CudaApi& api = **loaded;
  int count = 0;
  if (const CUresult result = api.cuDeviceGetCount(&count); result != CUDA_SUCCESS)
    return Status::error("no CUDA device: cuDeviceGetCount failed with ", cudaErrorName(api, result));
  if (count == 0) return Status::error("no CUDA device: the driver lists none");
  CUdevice device = 0;
  if (const CUresult result = api.cuDeviceGet(&device, 0); result != CUDA_SUCCESS)
    return callFailed(api, result, "cuDeviceGet");
  Expected<int> unified = attribute(api, device, CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING, "reading unified addressing");
  if (!unified) return unified.status();
  if (!*unified) return Status::error("cuda: device 0 has no unified addressing, which kiln's tensors need");
  CUcontext context = nullptr;
  if (const CUresult result = api.cuDevicePrimaryCtxRetain(&context, device); result != CUDA_SUCCESS)
    return callFailed(api, result, "cuDevicePrimaryCtxRetain");
  std::shared_ptr<CudaContext> made(new CudaContext(api, device, context));

  char name[256] = {};
  Expected<int> major = attribute(api, device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "reading the capability");
  Expected<int> minor = attribute(api, device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "reading the capability");
  Expected<int> sms = attribute(api, device, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "reading the multiprocessors");
  if (!major || !minor || !sms) return !major ? major.status() : !minor ? minor.status() : sms.status();
  KILN_RETURN_IF_ERROR(made->check(api.cuDeviceGetName(name, sizeof(name) - 1, device), "cuDeviceGetName"));
  KILN_RETURN_IF_ERROR(made->check(api.cuDeviceTotalMem(&made->memoryBytes_, device), "cuDeviceTotalMem"));
  KILN_RETURN_IF_ERROR(made->check(api.cuDriverGetVersion(&made->driverVersion_), "cuDriverGetVersion"));
  made->name_ = name;
  made->architecture_ = "sm_" + std::to_string(*major) + std::to_string(*minor);
  made->multiprocessors_ = *sms;
  return made;
}

CudaContext::CudaContext(const CudaApi& api, CUdevice device, CUcontext context)
    : api_(api), device_(device), context_(context) {}

CudaContext::~CudaContext() {
  api_.cuCtxSetCurrent(context_);
  for (auto& [name, module] : modules_) api_.cuModuleUnload(module);
  api_.cuDevicePrimaryCtxRelease(device_);
}

Status CudaContext::check(CUresult result, const char* what) const {
  return result == CUDA_SUCCESS ? Status::ok() : callFailed(api_, result, what);
}

std::vector<std::pair<std::string, std::string>> CudaContext::properties() const {
  // The driver's version is 1000 * major + 10 * minor (13000: 13.0).
  const std::string driver = std::to_string(driverVersion_ / 1000) + "." + std::to_string(driverVersion_ % 1000 / 10);
  return {{"device", name_},
          {"architecture", architecture_},
          {"multiprocessors", std::to_string(multiprocessors_)},
          {"memory_mb", std::to_string(memoryBytes_ / (1024 * 1024))},
          {"driver_version", driver}};
}

Expected<std::shared_ptr<void>> CudaContext::reserve(size_t bytes) {
  KILN_RETURN_IF_ERROR(check(api_.cuCtxSetCurrent(context_), "cuCtxSetCurrent"));
  CUdeviceptr pointer = 0;
  if (const CUresult result = api_.cuMemAlloc(&pointer, bytes == 0 ? 1 : bytes); result != CUDA_SUCCESS)
    return Status::error("cuda: cannot allocate ", bytes, " bytes of device memory: ", cudaErrorName(api_, result));
  {
    std::lock_guard lock(mutex_);
    blocks_.emplace(static_cast<uintptr_t>(pointer), bytes);
  }
  std::shared_ptr<CudaContext> self = shared_from_this();
  return std::shared_ptr<void>(reinterpret_cast<void*>(static_cast<uintptr_t>(pointer)),
                               [self](void* p) { self->release(reinterpret_cast<uintptr_t>(p)); });
}

void CudaContext::release(CUdeviceptr pointer) {
  {
    std::lock_guard lock(mutex_);
    blocks_.erase(static_cast<uintptr_t>(pointer));
  }
  api_.cuCtxSetCurrent(context_);
  api_.cuMemFree(pointer);  // nothing to tell anyone if this fails
}

bool CudaContext::owns(const void* address) const {
  const uintptr_t at = reinterpret_cast<uintptr_t>(address);
  std::lock_guard lock(mutex_);
  auto after = blocks_.upper_bound(at);
  if (after == blocks_.begin()) return false;
  const auto& [start, bytes] = *std::prev(after);
  return at < start + std::max<size_t>(bytes, 1);
}

Status CudaContext::copy(void* to, const void* from, size_t bytes) {
  KILN_RETURN_IF_ERROR(check(api_.cuCtxSetCurrent(context_), "cuCtxSetCurrent"));
  const auto device = [](const void* p) { return static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(p)); };
  const bool fromDevice = owns(from), toDevice = owns(to);
  if (fromDevice && toDevice) {
    KILN_RETURN_IF_ERROR(check(api_.cuMemcpyDtoD(device(to), device(from), bytes), "cuMemcpyDtoD"));
    return synchronize();  // device-to-device copies return before they are done
  }
  if (toDevice) return check(api_.cuMemcpyHtoD(device(to), from, bytes), "cuMemcpyHtoD");
  if (fromDevice) return check(api_.cuMemcpyDtoH(to, device(from), bytes), "cuMemcpyDtoH");
  std::memcpy(to, from, bytes);  // host to host: nothing of the device's
  return Status::ok();
}

Status CudaContext::loadModule(const std::string& name, const std::vector<uint8_t>& image) {
  KILN_RETURN_IF_ERROR(check(api_.cuCtxSetCurrent(context_), "cuCtxSetCurrent"));
  CUmodule module = nullptr;
  if (const CUresult result = api_.cuModuleLoadData(&module, image.data()); result != CUDA_SUCCESS)
    return Status::error("cuda: the driver cannot load program '", name, "': ", cudaErrorName(api_, result));
  std::lock_guard lock(mutex_);
  auto [at, added] = modules_.emplace(name, module);
  if (!added) {
    std::erase_if(functions_, [&](const auto& entry) { return entry.first.first == name; });
    api_.cuModuleUnload(at->second);
    at->second = module;
  }
  return Status::ok();
}

Expected<CUfunction> CudaContext::function(const std::string& program, const char* kernel) {
  std::lock_guard lock(mutex_);
  auto known = functions_.find({program, kernel});
  if (known != functions_.end()) return known->second;
  auto module = modules_.find(program);
  if (module == modules_.end())
    return Status::error("cuda: no code for kernel ", kernel, ": the artifact carries no CUDA program '", program,
                         "' (compile it with --targets cuda)");
  CUfunction found = nullptr;
  if (const CUresult result = api_.cuModuleGetFunction(&found, module->second, kernel); result != CUDA_SUCCESS)
    return Status::error("cuda: program '", program, "' has no kernel ", kernel, ": ", cudaErrorName(api_, result));
  functions_.emplace(std::make_pair(program, std::string(kernel)), found);
  return found;
}

Status CudaContext::launch(const std::string& program, const char* kernel, unsigned grid, unsigned block,
                           std::span<void* const> arguments) {
  KILN_RETURN_IF_ERROR(check(api_.cuCtxSetCurrent(context_), "cuCtxSetCurrent"));
  Expected<CUfunction> function = this->function(program, kernel);
  if (!function) return function.status();
  std::vector<void*> parameters(arguments.begin(), arguments.end());
  const CUresult result =
      api_.cuLaunchKernel(*function, grid, 1, 1, block, 1, 1, 0, nullptr, parameters.data(), nullptr);
  if (result != CUDA_SUCCESS)
    return Status::error("cuda: launching ", kernel, " on ", grid, " x ", block, " threads: ",
                         cudaErrorName(api_, result));
  return Status::ok();
}

Status CudaContext::synchronize() {
  KILN_RETURN_IF_ERROR(check(api_.cuCtxSetCurrent(context_), "cuCtxSetCurrent"));
  return check(api_.cuCtxSynchronize(), "cuCtxSynchronize");
}

}  // namespace kiln::cuda
