// f32 sgemm micro-benchmark: the llama-bench matmul shapes, timed with each
// candidate library (oneDNN matmul with plain and pre-packed weights,
// OpenBLAS, BLIS) at a fixed thread count. Prints a markdown table of median
// milliseconds and GFLOP/s.
//
//   gemm_bench [--threads T] [--runs N]
#include <blis.h>
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <dnnl.hpp>

// OpenBLAS's own thread control (its cblas.h and BLIS's share a name).
extern "C" void openblas_set_num_threads(int threads);

namespace {

double medianMs(int runs, const std::function<void()>& fn) {
  fn();  // warm-up: first-touch, library initialisation, kernel generation
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

struct Shape { int64_t M, K, N; const char* what; };

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, runs = 21;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
  }
  omp_set_num_threads(threads);  // oneDNN (this build) and BLIS use OpenMP
  openblas_set_num_threads(threads);
  bli_thread_set_num_threads(threads);

  std::vector<Shape> shapes;
  for (int64_t M : {128, 1}) {
    shapes.push_back({M, 1024, 1536, "packed qkv"});
    shapes.push_back({M, 1024, 1024, "attn out"});
    shapes.push_back({M, 1024, 5632, "gate|up"});
    shapes.push_back({M, 2816, 1024, "down"});
    shapes.push_back({M, 1024, 8192, "lm head"});
  }

  using namespace dnnl;
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);

  std::printf("threads %d, median of %d runs, ms (GFLOP/s)\n\n", threads, runs);
  std::printf("| M | K x N | use | oneDNN plain | oneDNN packed | OpenBLAS | BLIS |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const Shape& s : shapes) {
    std::vector<float> A(s.M * s.K), B(s.K * s.N), C(s.M * s.N);
    for (float& v : A) v = dist(rng);
    for (float& v : B) v = dist(rng);
    const double gflop = 2.0 * s.M * s.K * s.N * 1e-9;

    memory::desc aDesc({s.M, s.K}, memory::data_type::f32, memory::format_tag::ab);
    memory::desc bPlain({s.K, s.N}, memory::data_type::f32, memory::format_tag::ab);
    memory::desc bAny({s.K, s.N}, memory::data_type::f32, memory::format_tag::any);
    memory::desc cDesc({s.M, s.N}, memory::data_type::f32, memory::format_tag::ab);
    memory aMem(aDesc, eng, A.data()), bMem(bPlain, eng, B.data()), cMem(cDesc, eng, C.data());

    matmul plain(matmul::primitive_desc(matmul::desc(aDesc, bPlain, cDesc), eng));
    const double dnnlPlain = medianMs(runs, [&] {
      plain.execute(strm, {{DNNL_ARG_SRC, aMem}, {DNNL_ARG_WEIGHTS, bMem}, {DNNL_ARG_DST, cMem}});
      strm.wait();
    });

    matmul::primitive_desc packedPd(matmul::desc(aDesc, bAny, cDesc), eng);
    memory bPacked(packedPd.weights_desc(), eng);
    reorder(bMem, bPacked).execute(strm, bMem, bPacked);  // once, as at load time
    strm.wait();
    matmul packed(packedPd);
    const double dnnlPacked = medianMs(runs, [&] {
      packed.execute(strm, {{DNNL_ARG_SRC, aMem}, {DNNL_ARG_WEIGHTS, bPacked}, {DNNL_ARG_DST, cMem}});
      strm.wait();
    });

    const double openblas = medianMs(runs, [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.M, s.N, s.K, 1.f, A.data(), s.K,
                  B.data(), s.N, 0.f, C.data(), s.N);
    });

    const double blis = medianMs(runs, [&] {
      float one = 1.f, zero = 0.f;
      bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, s.M, s.N, s.K, &one, A.data(), s.K, 1, B.data(),
                s.N, 1, &zero, C.data(), s.N, 1);
    });

    auto cell = [&](double ms) {
      static char buf[64];
      std::snprintf(buf, sizeof buf, "%.3f (%.0f)", ms, gflop / (ms * 1e-3));
      return std::string(buf);
    };
    std::printf("| %lld | %lldx%lld | %s | %s | %s | %s | %s |\n", (long long)s.M, (long long)s.K,
                (long long)s.N, s.what, cell(dnnlPlain).c_str(), cell(dnnlPacked).c_str(),
                cell(openblas).c_str(), cell(blis).c_str());
    std::fflush(stdout);
  }
  return 0;
}
