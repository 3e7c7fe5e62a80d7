#include "tools/kiln/calibration.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <optional>

#include "ir/builder.h"
#include "passes/cost_model.h"

namespace kiln::tools {
namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Measurement summarize(std::vector<double> values, std::string workload) {
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  const double median = values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
  return {median, values.front(), values.back(), std::move(workload)};
}

Attributes transferAttrs(std::string_view from, std::string_view to) {
  Attributes attrs;
  attrs.set("from", std::string(from));
  attrs.set("to", std::string(to));
  return attrs;
}

// Values that are neither zero nor denormal, cheap to make for 16M elements.
Tensor hostTensor(const std::vector<int64_t>& shape) {
  Tensor tensor = Tensor::allocateUninitialized(DType::F32, shape);
  float* data = tensor.data<float>();
  for (int64_t i = 0; i < tensor.numElements(); ++i) data[i] = static_cast<float>(i % 17) * 0.125f - 1.0625f;
  return tensor;
}

// Runs ops and transfers on one device, its operands in its own memory.
class DeviceBench {
 public:
  explicit DeviceBench(rt::Device& device)
      : device_(device),
        isHost_(device.hasMemory("host")),
        toDevice_(transferAttrs(kHostDevice, device.name())),
        toHost_(transferAttrs(device.name(), kHostDevice)) {}

  bool isHost() const { return isHost_; }
  rt::Device& device() { return device_; }

  Status upload(const Tensor& host, Tensor& onDevice) { return transfer(toDevice_, host, onDevice); }
  Status download(const Tensor& onDevice, Tensor& host) { return transfer(toHost_, onDevice, host); }

  // A tensor in the device's memory holding `host`'s values.
  Expected<Tensor> deviceCopy(const Tensor& host) {
    if (isHost_) return host;
    Expected<Tensor> onDevice = device_.allocate(host.dtype(), host.shape());
    if (!onDevice) return onDevice;
    KILN_RETURN_IF_ERROR(upload(host, *onDevice));
    return onDevice;
  }

  // Returns once every op queued on the device has finished: reading 4 bytes
  // back waits for them (the host device runs each op as it is called).
  Status finish() {
    if (isHost_) return Status::ok();
    if (!fence_) {
      Expected<Tensor> fence = deviceCopy(hostTensor({1}));
      if (!fence) return fence.status();
      fence_ = *fence;
    }
    return download(*fence_, fenceHost_);
  }

 private:
  // The device that is not the host runs a transfer (only it reads its memory).
  Status transfer(const Attributes& attrs, const Tensor& from, Tensor& to) {
    const Tensor* inputs[] = {&from};
    Tensor* outputs[] = {&to};
    return device_.run(opDef(OpKind::Transfer), attrs, inputs, outputs, nullptr);
  }

  rt::Device& device_;
  const bool isHost_;
  const Attributes toDevice_, toHost_;
  std::optional<Tensor> fence_;
  Tensor fenceHost_ = Tensor::allocate(DType::F32, {1});
};

// A graph of one op of `kind` on f32 inputs of the given shapes.
Expected<Graph> oneOpGraph(OpKind kind, const std::vector<std::vector<int64_t>>& shapes) {
  Graph graph;
  std::vector<ValueId> inputs;
  for (const std::vector<int64_t>& shape : shapes)
    inputs.push_back(graph.addInput("", TensorType{DType::F32, Shape(shape.begin(), shape.end())}));
  Expected<ValueId> result = Builder(graph).create1(kind, inputs);
  if (!result) return result.status();
  graph.setOutputs({*result});
  return graph;
}

// "matmul f32[512, 1024], f32[1024, 1024]"
std::string describe(const Graph& graph, const Op& op) {
  std::string text = cat(opName(op.kind()), " ");
  for (size_t i = 0; i < op.operands.size(); ++i)
    text += cat(i ? ", " : "", graph.value(op.operands[i]).type.str());
  return text;
}

// Seconds per launch of the graph's one op, one figure per run: `launches`
// launches, then finish(). One untimed launch first (it builds kernels and
// touches pages).
Expected<std::vector<double>> timeOp(DeviceBench& bench, const Graph& graph, int launches, int runs) {
  const Op& op = graph.ops().front();
  std::vector<Tensor> operands, results;
  for (ValueId id : op.operands) {
    Expected<Tensor> operand = bench.deviceCopy(hostTensor(*graph.value(id).type.staticDims()));
    if (!operand) return operand.status();
    operands.push_back(*operand);
  }
  for (ValueId id : op.results) {
    Expected<Tensor> result = bench.device().allocate(DType::F32, *graph.value(id).type.staticDims());
    if (!result) return result.status();
    results.push_back(*result);
  }
  std::vector<const Tensor*> inputs;
  std::vector<Tensor*> outputs;
  for (const Tensor& t : operands) inputs.push_back(&t);
  for (Tensor& t : results) outputs.push_back(&t);
  auto launch = [&] { return bench.device().run(*op.def, op.attrs, inputs, outputs, nullptr); };
  KILN_RETURN_IF_ERROR(launch());
  KILN_RETURN_IF_ERROR(bench.finish());
  std::vector<double> seconds;
  for (int run = 0; run < runs; ++run) {
    const Clock::time_point start = Clock::now();
    for (int i = 0; i < launches; ++i) KILN_RETURN_IF_ERROR(launch());
    KILN_RETURN_IF_ERROR(bench.finish());
    seconds.push_back(secondsSince(start) / launches);
  }
  return seconds;
}

// One op of `kind` timed; each run's figure is `rate(its cost, seconds per launch)`.
Expected<Measurement> measureOp(DeviceBench& bench, OpKind kind, const std::vector<std::vector<int64_t>>& shapes,
                                int launches, int runs, const std::function<double(OpCost, double)>& rate) {
  Expected<Graph> graph = oneOpGraph(kind, shapes);
  if (!graph) return graph.status();
  const Op& op = graph->ops().front();
  Expected<std::vector<double>> seconds = timeOp(bench, *graph, launches, runs);
  if (!seconds) return seconds.status().withContext(cat(opName(kind), ": "));
  const OpCost cost = opCost(*graph, op, CostModel{});
  std::vector<double> rates;
  for (double s : *seconds) rates.push_back(rate(cost, s));
  return summarize(rates, describe(*graph, op));
}

// GB/s of copying `bytes` to the device and back, both ways counted.
Expected<Measurement> measureLinkBandwidth(DeviceBench& bench, int64_t bytes, int runs) {
  const std::vector<int64_t> shape = {bytes / 4};
  Tensor host = hostTensor(shape), back = Tensor::allocateUninitialized(DType::F32, shape);
  Expected<Tensor> onDevice = bench.device().allocate(DType::F32, shape);
  if (!onDevice) return onDevice.status();
  std::vector<double> rates;
  for (int run = -1; run < runs; ++run) {  // run -1: untimed, touches every page
    const Clock::time_point start = Clock::now();
    KILN_RETURN_IF_ERROR(bench.upload(host, *onDevice));
    KILN_RETURN_IF_ERROR(bench.download(*onDevice, back));
    if (run >= 0) rates.push_back(2.0 * static_cast<double>(bytes) / secondsSince(start) / 1e9);
  }
  return summarize(rates, cat("transfer f32", shapeStr(shape), " each way"));
}

// Microseconds per 4-byte transfer, `transfers` each way per run.
Expected<Measurement> measureLinkLatency(DeviceBench& bench, int transfers, int runs) {
  Tensor host = hostTensor({1});
  Expected<Tensor> onDevice = bench.deviceCopy(host);
  if (!onDevice) return onDevice.status();
  std::vector<double> micros;
  for (int run = 0; run < runs; ++run) {
    const Clock::time_point start = Clock::now();
    for (int i = 0; i < transfers; ++i) {
      KILN_RETURN_IF_ERROR(bench.upload(host, *onDevice));
      KILN_RETURN_IF_ERROR(bench.download(*onDevice, host));
    }
    micros.push_back(secondsSince(start) / (2.0 * transfers) * 1e6);
  }
  return summarize(micros, "transfer f32[1] each way");
}

// The device's "memory_mb" property; 0 (unbounded) for the host or a device that does not say.
Expected<double> memoryMb(DeviceBench& bench) {
  if (bench.isHost()) return 0.0;
  auto properties = bench.device().properties();
  if (!properties) return properties.status();
  for (const auto& [name, value] : *properties)
    if (name == "memory_mb") return std::strtod(value.c_str(), nullptr);
  return 0.0;
}

Status take(Expected<Measurement> measured, Measurement& into) {
  if (!measured) return measured.status();
  into = std::move(*measured);
  return Status::ok();
}

Status measureCompute(DeviceBench& bench, int runs, bool quick, Calibration& c) {
  const auto gflops = [](OpCost cost, double seconds) { return cost.flops / seconds / 1e9; };
  const auto gbs = [](OpCost cost, double seconds) { return cost.bytes / seconds / 1e9; };
  const auto micros = [](OpCost, double seconds) { return seconds * 1e6; };
  // A matmul large enough to be compute bound, an elementwise op whose data
  // stays in the caches, an add whose data does not, an add of one element.
  const int64_t m = quick ? 64 : 512, k = quick ? 128 : 1024;
  const int64_t inCache = quick ? 1 << 12 : 1 << 20, streamed = quick ? 1 << 14 : 1 << 23;
  KILN_RETURN_IF_ERROR(take(measureOp(bench, OpKind::Matmul, {{m, k}, {k, k}}, 1, runs, gflops), c.matmulGflops));
  KILN_RETURN_IF_ERROR(take(measureOp(bench, OpKind::Gelu, {{inCache}}, 10, runs, gflops), c.vectorGflops));
  KILN_RETURN_IF_ERROR(
      take(measureOp(bench, OpKind::Add, {{streamed}, {streamed}}, 2, runs, gbs), c.bandwidthGbs));
  return take(measureOp(bench, OpKind::Add, {{1}, {1}}, quick ? 20 : 200, runs, micros), c.launchUs);
}

Status measureLink(DeviceBench& bench, int runs, bool quick, Calibration& c) {
  if (bench.isHost()) {
    c.linkBandwidthGbs.workload = c.linkLatencyUs.workload = "none: the host's own memory";
    return Status::ok();
  }
  KILN_RETURN_IF_ERROR(take(measureLinkBandwidth(bench, quick ? 1 << 20 : 64 << 20, runs), c.linkBandwidthGbs));
  return take(measureLinkLatency(bench, quick ? 10 : 100, runs), c.linkLatencyUs);
}

}  // namespace

Expected<Calibration> calibrate(rt::Device& device, int runs, bool quick) {
  DeviceBench bench(device);
  Calibration calibration;
  KILN_RETURN_IF_ERROR(measureCompute(bench, runs, quick, calibration));
  KILN_RETURN_IF_ERROR(measureLink(bench, runs, quick, calibration));
  Expected<double> memory = memoryMb(bench);
  if (!memory) return memory.status();
  calibration.memoryMb = *memory;
  return calibration;
}

}  // namespace kiln::tools
