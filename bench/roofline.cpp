// This machine's limits, which `kiln bench --profile --roofline FILE` puts
// each op kind's achieved rate against: the f32 and bf16 GEMM peak (oneDNN's
// matmul on packed weights, whole K, at large square sizes: the fastest
// median over the sizes) and the read bandwidth (a sum over a buffer far
// larger than the caches). Prints one JSON object (docs/performance.md).
//
//   roofline [--threads T] [--runs N] [--read-mib M] [--quick]
//
// --threads: OpenMP threads (default KILN_NUM_THREADS, else 2, kiln's
// default); --read-mib: the read's buffer (default 1024, far beyond the
// caches: memory's bandwidth; a model's weight bytes give what its decode
// can read, from whichever cache holds them); --quick shrinks every size
// (for tests: the figures then say little).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <dnnl.hpp>

namespace {

using dnnl::memory;

struct Figure {
  double rate = 0;  // GFLOP/s or GB/s
  std::string workload;
};

// Median milliseconds of `runs` calls after one untimed one.
double medianMs(int runs, const std::function<void()>& call) {
  call();
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    const auto start = std::chrono::steady_clock::now();
    call();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(ms.size() / 2), ms.end());
  return ms[ms.size() / 2];
}

// `count` values in [-1, 1) of `type` (f32 or bf16) into `mem`.
void fillFactors(memory& mem, memory::data_type type, int64_t count) {
  std::mt19937 random(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t i = 0; i < count; ++i) {
    const float v = uniform(random);
    if (type == memory::data_type::f32) {
      static_cast<float*>(mem.get_data_handle())[i] = v;
    } else {
      uint32_t bits;
      std::memcpy(&bits, &v, sizeof bits);
      static_cast<uint16_t*>(mem.get_data_handle())[i] = static_cast<uint16_t>(bits >> 16);  // truncated: fine for timing
    }
  }
}

// n x n x n products of `type` factors (f32 result), the weight packed in the
// layout oneDNN picks; nullopt where oneDNN has no kernel for the type here.
std::optional<Figure> gemmPeak(memory::data_type type, const std::vector<int64_t>& sizes, int runs) {
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  Figure best;
  for (int64_t n : sizes) {
    const memory::desc a({n, n}, type, memory::format_tag::ab), plainB({n, n}, type, memory::format_tag::ab),
        anyB({n, n}, type, memory::format_tag::any), c({n, n}, memory::data_type::f32, memory::format_tag::ab);
    dnnl::matmul::primitive_desc pd;
    try {
      pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, anyB, c), engine);
    } catch (const dnnl::error&) {
      return std::nullopt;
    }
    // Factors of a model's magnitude: with zeroed ones the bf16 peak read
    // 2350-2470 GFLOP/s here against 1990 with data (AMX's speed depends on
    // the values), so a zeroed peak overstated the limit.
    memory aMem(a, engine), bPlain(plainB, engine), bPacked(pd.weights_desc(), engine), cMem(c, engine);
    fillFactors(aMem, type, n * n);
    fillFactors(bPlain, type, n * n);
    dnnl::reorder(bPlain, bPacked).execute(stream, bPlain, bPacked);
    const dnnl::matmul product(pd);
    const double ms = medianMs(runs, [&] {
      product.execute(stream, {{DNNL_ARG_SRC, aMem}, {DNNL_ARG_WEIGHTS, bPacked}, {DNNL_ARG_DST, cMem}});
      stream.wait();
    });
    const double gflops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / ms / 1e6;
    if (gflops > best.rate)
      best = {gflops, std::to_string(n) + "x" + std::to_string(n) + "x" + std::to_string(n) + " " +
                          pd.impl_info_str()};
  }
  return best;
}

// Independent partial sums a thread keeps: enough adds in flight that the
// loads, not the adds' latency, set the pace (one running sum of blocks of 8
// added at 8 bytes a cycle, under half of what the L3 gives a core).
constexpr int64_t kReadLanes = 64;

// A sum over `bytes` of floats, each thread its contiguous share.
Figure readBandwidth(int64_t bytes, int runs) {
  const int64_t n = bytes / static_cast<int64_t>(sizeof(float));
  std::vector<float> data(static_cast<size_t>(n), 1.0f);
  volatile float sink = 0;
  const double ms = medianMs(runs, [&] {
    float total = 0;
#pragma omp parallel reduction(+ : total)
    {
      float lanes[kReadLanes] = {};
#pragma omp for schedule(static)
      for (int64_t block = 0; block < n / kReadLanes; ++block) {
        const float* p = data.data() + block * kReadLanes;
        for (int64_t i = 0; i < kReadLanes; ++i) lanes[i] += p[i];
      }
      for (float lane : lanes) total += lane;
    }
    sink = total;
  });
  (void)sink;
  return {static_cast<double>(bytes) / ms / 1e6, "sum of " + std::to_string(bytes >> 20) + " MiB"};
}

void printFigure(const char* rateKey, const char* workloadKey, const std::optional<Figure>& figure, bool last) {
  if (figure)
    std::printf("  \"%s\": %.1f,\n  \"%s\": \"%s\"%s\n", rateKey, figure->rate, workloadKey,
                figure->workload.c_str(), last ? "" : ",");
  else
    std::printf("  \"%s\": null%s\n", rateKey, last ? "" : ",");
}

int usage(const char* problem) {
  std::fprintf(stderr, "roofline: %s\nusage: roofline [--threads T] [--runs N] [--read-mib M] [--quick]\n", problem);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const char* env = std::getenv("KILN_NUM_THREADS");
  int threads = env && std::atoi(env) > 0 ? std::atoi(env) : 2, runs = 5, readMib = 0;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      quick = true;
    } else if ((arg == "--threads" || arg == "--runs" || arg == "--read-mib") && i + 1 < argc) {
      const int value = std::atoi(argv[++i]);
      if (value < 1) return usage((arg + " takes an integer >= 1").c_str());
      (arg == "--threads" ? threads : arg == "--runs" ? runs : readMib) = value;
    } else {
      return usage(("unknown argument '" + arg + "'").c_str());
    }
  }
  omp_set_num_threads(threads);
  const std::vector<int64_t> sizes = quick ? std::vector<int64_t>{256} : std::vector<int64_t>{1024, 2048};
  const std::optional<Figure> f32 = gemmPeak(memory::data_type::f32, sizes, runs);
  const std::optional<Figure> bf16 = gemmPeak(memory::data_type::bf16, sizes, runs);
  const int64_t readBytes = readMib > 0 ? int64_t{readMib} << 20 : quick ? int64_t{4} << 20 : int64_t{1} << 30;
  const Figure read = readBandwidth(readBytes, runs);
  std::printf("{\n  \"threads\": %d,\n", threads);
  printFigure("f32_gemm_gflops", "f32_gemm_workload", f32, false);
  printFigure("bf16_gemm_gflops", "bf16_gemm_workload", bf16, false);
  printFigure("read_gbs", "read_workload", read, true);
  std::printf("}\n");
  return f32 ? 0 : usage("oneDNN has no f32 matmul here");
}
