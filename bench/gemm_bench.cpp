// GEMM micro-benchmark on the llama-bench matmul shapes (prefill M = 128 and
// a decode step M = 1): the candidate libraries (oneDNN matmul with plain and
// pre-packed weights, OpenBLAS, BLIS) and kiln's own matmul path
// (backends/cpu/gemm.h: packed weights, K-chunked f32 accumulation, our
// single-row kernel at M = 1) with f32 and with bf16 weights. The OpenMP
// candidates run in alternating rounds so that a busy machine slows them
// alike; OpenBLAS runs its rounds first and alone, since its pthreads spin
// for a while after each call and would take a core from whatever runs next.
// Prints a markdown table of median milliseconds and GFLOP/s.
//
//   gemm_bench [--threads T] [--runs N]
#include <blis.h>
#include <cblas.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <dnnl.hpp>

#include "bench/alternating_rounds.h"
#include "backends/cpu/gemm.h"
#include "ir/tensor.h"

// OpenBLAS's own thread control (its cblas.h and BLIS's share a name).
extern "C" void openblas_set_num_threads(int threads);

namespace {

using kiln::bench::GemmShape;
using kiln::bench::medianMs;

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
  ::setenv("KILN_NUM_THREADS", std::to_string(threads).c_str(), 1);  // kiln's numThreads()

  std::vector<GemmShape> shapes;
  for (int64_t M : {128, 1}) {
    shapes.push_back({M, 1024, 1536, "packed qkv"});
    shapes.push_back({M, 1024, 1024, "attn out"});
    shapes.push_back({M, 1024, 5632, "gate+up"});
    shapes.push_back({M, 2816, 1024, "down"});
    shapes.push_back({M, 1024, 8192, "lm head"});
  }

  using namespace dnnl;
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  const kiln::OpDef& matmulDef = kiln::opDef(kiln::OpKind::Matmul);
  const kiln::Attributes noAttributes;

  std::printf("threads %d, median of %d alternating rounds, ms (GFLOP/s)\n\n", threads, runs);
  std::printf("| M | K x N | use | oneDNN plain | oneDNN packed | OpenBLAS | BLIS | kiln f32 | kiln bf16 |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const GemmShape& s : shapes) {
    kiln::Tensor a = kiln::Tensor::allocate(kiln::DType::F32, {s.M, s.K});
    kiln::Tensor b = kiln::Tensor::allocate(kiln::DType::F32, {s.K, s.N});
    kiln::Tensor bBf16 = kiln::Tensor::allocate(kiln::DType::BF16, {s.K, s.N});
    kiln::Tensor c = kiln::Tensor::allocate(kiln::DType::F32, {s.M, s.N});
    float* A = a.data<float>();
    float* B = b.data<float>();
    float* C = c.data<float>();
    for (int64_t i = 0; i < a.numElements(); ++i) A[i] = dist(rng);
    for (int64_t i = 0; i < b.numElements(); ++i) {
      B[i] = dist(rng);
      bBf16.data<kiln::BFloat16>()[i] = kiln::BFloat16{kiln::floatToBFloat16(B[i])};
    }
    const double gflop = 2.0 * static_cast<double>(s.M * s.K * s.N) * 1e-9;

    memory::desc aDesc({s.M, s.K}, memory::data_type::f32, memory::format_tag::ab);
    memory::desc bPlain({s.K, s.N}, memory::data_type::f32, memory::format_tag::ab);
    memory::desc bAny({s.K, s.N}, memory::data_type::f32, memory::format_tag::any);
    memory::desc cDesc({s.M, s.N}, memory::data_type::f32, memory::format_tag::ab);
    memory aMem(aDesc, eng, A), bMem(bPlain, eng, B), cMem(cDesc, eng, C);
    matmul plain(matmul::primitive_desc(matmul::desc(aDesc, bPlain, cDesc), eng));
    matmul::primitive_desc packedPd(matmul::desc(aDesc, bAny, cDesc), eng);
    memory bPacked(packedPd.weights_desc(), eng);
    reorder(bMem, bPacked).execute(strm, bMem, bPacked);  // once, as at load time
    strm.wait();
    matmul packed(packedPd);

    // kiln's path with b as a constant weight: packed on the warm-up call.
    kiln::cpu::Gemm gemm;
    auto kilnMatmul = [&](const kiln::Tensor& weight) {
      const kiln::Tensor* inputs[] = {&a, &weight};
      kiln::Tensor* outputs[] = {&c};
      std::optional<kiln::Status> status =
          gemm.runMatmul(kiln::KernelContext{matmulDef, noAttributes, inputs, outputs}, true);
      if (!status || !status->isOk()) {
        std::fprintf(stderr, "kiln matmul failed on %s\n", s.what);
        std::exit(1);
      }
    };

    const double openblas = medianMs(runs, 1, {[&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(s.M), static_cast<int>(s.N),
                  static_cast<int>(s.K), 1.f, A, static_cast<int>(s.K), B, static_cast<int>(s.N), 0.f, C,
                  static_cast<int>(s.N));
    }})[0];
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // OpenBLAS's threads go to sleep
    std::vector<double> ms = medianMs(runs, 1, {
        [&] {
          plain.execute(strm, {{DNNL_ARG_SRC, aMem}, {DNNL_ARG_WEIGHTS, bMem}, {DNNL_ARG_DST, cMem}});
          strm.wait();
        },
        [&] {
          packed.execute(strm, {{DNNL_ARG_SRC, aMem}, {DNNL_ARG_WEIGHTS, bPacked}, {DNNL_ARG_DST, cMem}});
          strm.wait();
        },
        [&] {
          float one = 1.f, zero = 0.f;
          bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, s.M, s.N, s.K, &one, A, s.K, 1, B, s.N, 1, &zero, C,
                    s.N, 1);
        },
        [&] { kilnMatmul(b); },
        [&] { kilnMatmul(bBf16); },
    });
    ms.insert(ms.begin() + 2, openblas);

    std::printf("| %lld | %lldx%lld | %s |", static_cast<long long>(s.M), static_cast<long long>(s.K),
                static_cast<long long>(s.N), s.what);
    for (double m : ms) std::printf(" %.3f (%.0f) |", m, gflop / (m * 1e-3));
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}
