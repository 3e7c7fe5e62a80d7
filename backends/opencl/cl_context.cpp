#include "backends/opencl/cl_context.h"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>

namespace kiln::opencl {
namespace {

std::vector<cl_platform_id> platforms(const ClApi& api, cl_int& error) {
  cl_uint count = 0;
  error = api.clGetPlatformIDs(0, nullptr, &count);
  std::vector<cl_platform_id> ids(count);
  if (error == CL_SUCCESS && count > 0) error = api.clGetPlatformIDs(count, ids.data(), nullptr);
  return error == CL_SUCCESS ? ids : std::vector<cl_platform_id>{};
}

std::optional<cl_device_id> firstDevice(const ClApi& api, std::span<const cl_platform_id> ids,
                                        cl_device_type type) {
  for (cl_platform_id platform : ids) {
    cl_device_id device = nullptr;
    cl_uint count = 0;
    if (api.clGetDeviceIDs(platform, type, 1, &device, &count) == CL_SUCCESS && count > 0) return device;
  }
  return std::nullopt;
}

// A string property of an OpenCL object: `get(size, buffer, &sizeNeeded)`
// is clGetDeviceInfo or clGetPlatformInfo bound to the object and the
// property; "" when the query fails.
template <class Get>
std::string infoString(const Get& get) {
  size_t size = 0;
  if (get(0, nullptr, &size) != CL_SUCCESS || size == 0) return "";
  std::string text(size, '\0');
  get(size, text.data(), nullptr);
  text.resize(std::strlen(text.c_str()));
  return text;
}

std::string deviceString(const ClApi& api, cl_device_id device, cl_device_info what) {
  return infoString([&](size_t size, void* to, size_t* needed) {
    return api.clGetDeviceInfo(device, what, size, to, needed);
  });
}

std::string platformString(const ClApi& api, cl_platform_id platform, cl_platform_info what) {
  return infoString([&](size_t size, void* to, size_t* needed) {
    return api.clGetPlatformInfo(platform, what, size, to, needed);
  });
}

// The name of the platform a device belongs to.
std::string platformName(const ClApi& api, cl_device_id device) {
  cl_platform_id platform = nullptr;
  if (api.clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof platform, &platform, nullptr) != CL_SUCCESS) return "";
  return platformString(api, platform, CL_PLATFORM_NAME);
}

// A scalar device property (cl_uint, cl_ulong, size_t, cl_device_type); 0 when the query fails.
template <class T>
T deviceValue(const ClApi& api, cl_device_id device, cl_device_info what) {
  T value{};
  if (api.clGetDeviceInfo(device, what, sizeof value, &value, nullptr) != CL_SUCCESS) return T{};
  return value;
}

// "gpu", "cpu", "accelerator", or "custom", joined by '+' when several bits are set.
std::string deviceTypeName(cl_device_type type) {
  std::string name;
  for (auto [bit, word] : {std::pair{CL_DEVICE_TYPE_GPU, "gpu"}, std::pair{CL_DEVICE_TYPE_CPU, "cpu"},
                           std::pair{CL_DEVICE_TYPE_ACCELERATOR, "accelerator"},
                           std::pair{CL_DEVICE_TYPE_CUSTOM, "custom"}})
    if (type & bit) name += cat(name.empty() ? "" : "+", word);
  return name.empty() ? "unknown" : name;
}

bool verbose() {
  static const bool set = [] {
    const char* value = std::getenv("KILN_OPENCL_VERBOSE");
    return value && *value && std::string_view(value) != "0";
  }();
  return set;
}

Status noPlatform(const std::string& why) { return Status::error("no OpenCL platform: ", why); }

}  // namespace

void KernelArgs::add(const DeviceAddress& tensor, size_t elementSize) {
  add(tensor.buffer);
  add(static_cast<cl_long>(tensor.offset / elementSize));
}

void KernelArgs::addBytes(const void* data, size_t size) {
  const auto* bytes = static_cast<const std::byte*>(data);
  values_.emplace_back(bytes, bytes + size);
}

Expected<std::shared_ptr<ClContext>> ClContext::open() {
  Expected<const ClApi*> loaded = loadClApi();
  if (!loaded) return noPlatform(loaded.status().message());
  const ClApi& api = **loaded;
  cl_int error = CL_SUCCESS;
  const std::vector<cl_platform_id> ids = platforms(api, error);
  if (ids.empty())
    return noPlatform(error == CL_SUCCESS ? std::string("the OpenCL loader lists none")
                                          : "clGetPlatformIDs failed with " + clErrorName(error));
  std::optional<cl_device_id> device = firstDevice(api, ids, CL_DEVICE_TYPE_GPU);
  if (!device) device = firstDevice(api, ids, CL_DEVICE_TYPE_ALL);
  if (!device) return noPlatform(std::to_string(ids.size()) + " platform(s) but no device");
  cl_context context = api.clCreateContext(nullptr, 1, &*device, nullptr, nullptr, &error);
  if (!context) return noPlatform("clCreateContext failed with " + clErrorName(error));
  cl_command_queue queue = api.clCreateCommandQueue(context, *device, 0, &error);
  if (!queue) {
    api.clReleaseContext(context);
    return noPlatform("clCreateCommandQueue failed with " + clErrorName(error));
  }
  return std::shared_ptr<ClContext>(new ClContext(api, *device, context, queue));
}

ClContext::ClContext(const ClApi& api, cl_device_id device, cl_context context, cl_command_queue queue)
    : api_(api), device_(device), context_(context), queue_(queue) {
  deviceName_ = deviceString(api, device, CL_DEVICE_NAME);
  deviceKey_ = cat(platformName(api, device), " / ", deviceName_, " / ", deviceString(api, device, CL_DRIVER_VERSION));
  api.clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof(size_t), &maxWorkGroupSize_, nullptr);
}

std::vector<std::pair<std::string, std::string>> ClContext::properties() const {
  const auto platform = deviceValue<cl_platform_id>(api_, device_, CL_DEVICE_PLATFORM);
  const auto memoryBytes = deviceValue<cl_ulong>(api_, device_, CL_DEVICE_GLOBAL_MEM_SIZE);
  return {{"platform", platformString(api_, platform, CL_PLATFORM_NAME)},
          {"platform_vendor", platformString(api_, platform, CL_PLATFORM_VENDOR)},
          {"platform_version", platformString(api_, platform, CL_PLATFORM_VERSION)},
          {"device", deviceName_},
          {"type", deviceTypeName(deviceValue<cl_device_type>(api_, device_, CL_DEVICE_TYPE))},
          {"driver_version", deviceString(api_, device_, CL_DRIVER_VERSION)},
          {"compute_units", std::to_string(deviceValue<cl_uint>(api_, device_, CL_DEVICE_MAX_COMPUTE_UNITS))},
          {"memory_mb", std::to_string(memoryBytes / (1024 * 1024))},
          {"max_work_group_size", std::to_string(maxWorkGroupSize_)}};
}

ClContext::~ClContext() {
  api_.clFinish(queue_);
  for (auto& [source, program] : programs_) {
    for (auto& [name, kernel] : program.kernels) api_.clReleaseKernel(kernel);
    api_.clReleaseProgram(program.program);
  }
  api_.clReleaseCommandQueue(queue_);
  api_.clReleaseContext(context_);
}

Expected<std::shared_ptr<void>> ClContext::reserve(size_t bytes) {
  void* base = DeviceMemory::reserveAddresses(bytes);
  if (!base) return Status::error("opencl: cannot reserve ", bytes, " bytes of address space");
  cl_int error = CL_SUCCESS;
  cl_mem buffer = api_.clCreateBuffer(context_, CL_MEM_READ_WRITE, std::max<size_t>(bytes, 1), nullptr, &error);
  if (!buffer) {
    DeviceMemory::releaseAddresses(base, bytes);
    return Status::error("opencl: cannot allocate ", bytes, " bytes on ", deviceName_, ": ", clErrorName(error));
  }
  memory_.add(base, bytes, buffer);
  // The block keeps the context alive: it is released through it.
  return std::shared_ptr<void>(base, [self = shared_from_this(), bytes, buffer](void* p) {
    self->memory_.remove(p);
    DeviceMemory::releaseAddresses(p, bytes);
    self->api_.clReleaseMemObject(buffer);  // freed once the queued commands using it are done
  });
}

Status ClContext::buildLogError(cl_program program, cl_int error) {
  size_t size = 0;
  api_.clGetProgramBuildInfo(program, device_, CL_PROGRAM_BUILD_LOG, 0, nullptr, &size);
  std::string log(size, '\0');
  api_.clGetProgramBuildInfo(program, device_, CL_PROGRAM_BUILD_LOG, size, log.data(), nullptr);
  api_.clReleaseProgram(program);
  return Status::error("opencl: building a kernel program failed with ", clErrorName(error), ":\n", log.c_str());
}

Expected<cl_program> ClContext::build(const std::string& source) {
  const char* text = source.c_str();
  const size_t length = source.size();
  cl_int error = CL_SUCCESS;
  cl_program program = api_.clCreateProgramWithSource(context_, 1, &text, &length, &error);
  if (!program) return Status::error("opencl: clCreateProgramWithSource failed with ", clErrorName(error));
  ++sourceBuilds_;
  error = api_.clBuildProgram(program, 1, &device_, kBuildOptions, nullptr, nullptr);
  if (error != CL_SUCCESS) return buildLogError(program, error);
  return program;
}

Expected<cl_program> ClContext::buildFromBinary(std::span<const uint8_t> binary) {
  const unsigned char* bytes = binary.data();
  const size_t length = binary.size();
  cl_int status = CL_SUCCESS, error = CL_SUCCESS;
  cl_program program = api_.clCreateProgramWithBinary(context_, 1, &device_, &length, &bytes, &status, &error);
  if (!program) return Status::error("opencl: clCreateProgramWithBinary failed with ", clErrorName(error));
  error = api_.clBuildProgram(program, 1, &device_, kBuildOptions, nullptr, nullptr);
  if (error != CL_SUCCESS) return buildLogError(program, error);
  ++binaryBuilds_;
  return program;
}

Expected<ClContext::Program*> ClContext::programOf(const std::string& source, bool& built) {
  auto at = programs_.find(source);
  built = at == programs_.end();
  if (built) {
    Expected<cl_program> made = build(source);
    if (!made) return made.status();
    at = programs_.emplace(source, Program{*made, {}}).first;
  }
  return &at->second;
}

Expected<cl_kernel> ClContext::kernel(const std::string& source, const char* name) {
  std::lock_guard lock(programsMutex_);
  bool built = false;
  Expected<Program*> found = programOf(source, built);
  if (!found) return found.status();
  if (built) {
    ++firstUseBuilds_;
    if (verbose()) std::cerr << "kiln: opencl: built the program of kernel '" << name << "' at first use\n";
  }
  Program& program = **found;
  if (auto found = program.kernels.find(name); found != program.kernels.end()) return found->second;
  cl_int error = CL_SUCCESS;
  cl_kernel kernel = api_.clCreateKernel(program.program, name, &error);
  if (!kernel) return Status::error("opencl: no kernel '", name, "': ", clErrorName(error));
  program.kernels.emplace(name, kernel);
  return kernel;
}

Expected<std::vector<uint8_t>> ClContext::programBinary(const std::string& source) {
  std::lock_guard lock(programsMutex_);
  bool built = false;
  Expected<Program*> found = programOf(source, built);
  if (!found) return found.status();
  const cl_program program = (*found)->program;
  size_t size = 0;
  cl_int error = api_.clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, nullptr);
  if (error != CL_SUCCESS) return Status::error("opencl: no program binary size: ", clErrorName(error));
  std::vector<uint8_t> binary(size);
  unsigned char* into = binary.data();
  error = api_.clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof into, &into, nullptr);
  if (error != CL_SUCCESS) return Status::error("opencl: no program binary: ", clErrorName(error));
  return binary;
}

Expected<bool> ClContext::addProgram(const std::string& source, std::span<const uint8_t> binary) {
  std::lock_guard lock(programsMutex_);
  if (programs_.count(source)) return true;
  bool fromBinary = !binary.empty();
  Expected<cl_program> made = fromBinary ? buildFromBinary(binary) : build(source);
  if (!made && fromBinary) {
    fromBinary = false;
    made = build(source);
  }
  if (!made) return made.status();
  programs_.emplace(source, Program{*made, {}});
  return fromBinary || binary.empty();
}

Status ClContext::launch(cl_kernel kernel, const KernelArgs& args, std::span<const size_t> global,
                         const size_t* local) {
  std::lock_guard lock(launchMutex_);
  const auto& values = args.values();
  for (size_t i = 0; i < values.size(); ++i) {
    const cl_int error = api_.clSetKernelArg(kernel, static_cast<cl_uint>(i), values[i].size(), values[i].data());
    if (error != CL_SUCCESS) return Status::error("opencl: argument ", i, " of a kernel: ", clErrorName(error));
  }
  const cl_int error = api_.clEnqueueNDRangeKernel(queue_, kernel, static_cast<cl_uint>(global.size()), nullptr,
                                                   global.data(), local, 0, nullptr, nullptr);
  if (error != CL_SUCCESS) return Status::error("opencl: launching a kernel failed with ", clErrorName(error));
  return Status::ok();
}

Status ClContext::write(const DeviceAddress& to, const void* from, size_t bytes) {
  // Asynchronous: the bytes are staged now (the caller's host memory may
  // change as soon as this returns: the executor reuses a slot after its
  // last read) and written in queue order, so the host goes on while the
  // device works through what was queued before. The stage is freed when
  // the write completes.
  using Stage = std::vector<std::byte>;
  auto stage = std::make_unique<Stage>(static_cast<const std::byte*>(from), static_cast<const std::byte*>(from) + bytes);
  cl_event written = nullptr;
  cl_int error = api_.clEnqueueWriteBuffer(queue_, to.buffer, CL_FALSE, to.offset, bytes, stage->data(), 0, nullptr,
                                           &written);
  if (error != CL_SUCCESS) return Status::error("opencl: writing ", bytes, " bytes failed with ", clErrorName(error));
  auto freeStage = [](cl_event, cl_int, void* staged) { delete static_cast<Stage*>(staged); };
  error = api_.clSetEventCallback(written, CL_COMPLETE, freeStage, stage.get());
  if (error == CL_SUCCESS) stage.release();  // the callback owns it now
  else api_.clWaitForEvents(1, &written);     // no callback: the stage must outlive the write here
  api_.clReleaseEvent(written);
  return Status::ok();
}

Status ClContext::finish() {
  const cl_int error = api_.clFinish(queue_);
  if (error != CL_SUCCESS) return Status::error("opencl: waiting for the queue failed with ", clErrorName(error));
  return Status::ok();
}

Status ClContext::read(void* to, const DeviceAddress& from, size_t bytes) {
  const cl_int error = api_.clEnqueueReadBuffer(queue_, from.buffer, CL_TRUE, from.offset, bytes, to, 0, nullptr,
                                                nullptr);
  if (error != CL_SUCCESS) return Status::error("opencl: reading ", bytes, " bytes failed with ", clErrorName(error));
  return Status::ok();
}

Status ClContext::copy(const DeviceAddress& to, const DeviceAddress& from, size_t bytes) {
  const cl_int error = api_.clEnqueueCopyBuffer(queue_, from.buffer, to.buffer, from.offset, to.offset, bytes, 0,
                                                nullptr, nullptr);
  if (error != CL_SUCCESS) return Status::error("opencl: copying ", bytes, " bytes failed with ", clErrorName(error));
  return Status::ok();
}

Status ClContext::fill(const DeviceAddress& to, uint8_t byte, size_t bytes) {
  const cl_int error = api_.clEnqueueFillBuffer(queue_, to.buffer, &byte, 1, to.offset, bytes, 0, nullptr, nullptr);
  if (error != CL_SUCCESS) return Status::error("opencl: filling ", bytes, " bytes failed with ", clErrorName(error));
  return Status::ok();
}

}  // namespace kiln::opencl
