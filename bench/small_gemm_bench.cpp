// Small-GEMM micro-benchmark on the tiny models' matmul shapes (16 and 32
// rows against weights of 128-704 columns): libxsmm's JIT kernels (the
// small-matrix library the CPU performance issue names), oneDNN's matmul on
// pre-packed weights, and kiln's own path (backends/cpu/gemm.h) with the
// weight as a constant. libxsmm and oneDNN run on one thread and on two
// (libxsmm: the columns halved, one kernel per thread in an OpenMP region;
// oneDNN: its own threading); kiln decides its threads itself (threadsFor:
// under 1 MFLOP on the calling thread). Candidates alternate within each
// round (alternating_rounds.h); a sample is the mean of `calls` back-to-back
// products, and the table gives the median sample in microseconds and GFLOP/s.
//
//   small_gemm_bench [--threads T] [--runs N] [--calls C]
#include <libxsmm.h>
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <dnnl.hpp>

#include "bench/alternating_rounds.h"
#include "backends/cpu/gemm.h"
#include "ir/tensor.h"

namespace {

using kiln::bench::GemmShape;

// Row-major C[M, N] = A[M, K] @ B[K, N] is column-major C^T = B^T A^T:
// libxsmm's m, n, k are N, M, K with B as its first factor.
libxsmm_smmfunction xsmmKernel(int64_t M, int64_t K, int64_t N, int64_t ldb, int64_t ldc) {
  const libxsmm_blasint m = static_cast<libxsmm_blasint>(N), n = static_cast<libxsmm_blasint>(M),
                        k = static_cast<libxsmm_blasint>(K), lda = static_cast<libxsmm_blasint>(ldb),
                        ldbX = static_cast<libxsmm_blasint>(K), ldcX = static_cast<libxsmm_blasint>(ldc);
  const float alpha = 1.f, beta = 0.f;
  const libxsmm_smmfunction kernel = libxsmm_smmdispatch(m, n, k, &lda, &ldbX, &ldcX, &alpha, &beta, nullptr, nullptr);
  if (!kernel) {
    std::fprintf(stderr, "libxsmm has no kernel for %ldx%ldx%ld\n", static_cast<long>(M), static_cast<long>(K),
                 static_cast<long>(N));
    std::exit(1);
  }
  return kernel;
}

dnnl::matmul packedMatmul(const dnnl::engine& eng, const dnnl::memory::desc& a, const dnnl::memory::desc& c,
                          const GemmShape& s, int threads, dnnl::memory::desc* weights) {
  using namespace dnnl;
  omp_set_num_threads(threads);  // oneDNN sizes its thread partition at creation
  memory::desc bAny({s.K, s.N}, memory::data_type::f32, memory::format_tag::any);
  matmul::primitive_desc pd(matmul::desc(a, bAny, c), eng);
  *weights = pd.weights_desc();
  return matmul(pd);
}

void printRow(const GemmShape& s, const std::vector<double>& times) {
  const double gflop = 2.0 * static_cast<double>(s.M * s.K * s.N) * 1e-9;
  std::printf("| %ld | %ldx%ld | %s |", static_cast<long>(s.M), static_cast<long>(s.K), static_cast<long>(s.N),
              s.what);
  for (double ms : times) std::printf(" %.2f (%.0f) |", ms * 1e3, gflop / (ms * 1e-3));
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, runs = 21, calls = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--calls")) calls = std::atoi(argv[i + 1]);
  }
  ::setenv("KILN_NUM_THREADS", std::to_string(threads).c_str(), 1);  // kiln's numThreads()
  libxsmm_init();

  // The tiny models' products (../shared/models: hidden 128; bert-tiny runs
  // 2 x 16 tokens, llama-tiny and gpt2-tiny 16).
  std::vector<GemmShape> shapes;
  for (int64_t M : {16, 32}) {
    shapes.push_back({M, 128, 128, "attn out"});
    shapes.push_back({M, 128, 384, "packed qkv"});
    shapes.push_back({M, 128, 512, "mlp up"});
    shapes.push_back({M, 512, 128, "mlp down"});
    shapes.push_back({M, 128, 704, "gate+up"});
  }

  using namespace dnnl;
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  const kiln::OpDef& matmulDef = kiln::opDef(kiln::OpKind::Matmul);
  const kiln::Attributes noAttributes;

  std::printf("threads %d, median of %d rounds of %d products, us (GFLOP/s)\n\n", threads, runs, calls);
  std::printf("| M | K x N | use | libxsmm 1 thread | libxsmm %d threads | oneDNN packed 1 thread | "
              "oneDNN packed %d threads | kiln |\n", threads, threads);
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const GemmShape& s : shapes) {
    kiln::Tensor a = kiln::Tensor::allocate(kiln::DType::F32, {s.M, s.K});
    kiln::Tensor b = kiln::Tensor::allocate(kiln::DType::F32, {s.K, s.N});
    kiln::Tensor c = kiln::Tensor::allocate(kiln::DType::F32, {s.M, s.N});
    float* A = a.data<float>();
    float* B = b.data<float>();
    float* C = c.data<float>();
    for (int64_t i = 0; i < a.numElements(); ++i) A[i] = dist(rng);
    for (int64_t i = 0; i < b.numElements(); ++i) B[i] = dist(rng);

    const libxsmm_smmfunction whole = xsmmKernel(s.M, s.K, s.N, s.N, s.N);
    const int64_t half = s.N / threads;  // every shape's N divides by the threads asked for here
    const libxsmm_smmfunction part = xsmmKernel(s.M, s.K, half, s.N, s.N);

    memory::desc aDesc({s.M, s.K}, memory::data_type::f32, memory::format_tag::ab);
    memory::desc cDesc({s.M, s.N}, memory::data_type::f32, memory::format_tag::ab);
    memory::desc bPlain({s.K, s.N}, memory::data_type::f32, memory::format_tag::ab);
    memory::desc packedDesc1, packedDescT;
    matmul one = packedMatmul(eng, aDesc, cDesc, s, 1, &packedDesc1);
    matmul many = packedMatmul(eng, aDesc, cDesc, s, threads, &packedDescT);
    omp_set_num_threads(threads);
    memory aMem(aDesc, eng, A), bMem(bPlain, eng, B), cMem(cDesc, eng, C);
    memory packed1(packedDesc1, eng), packedT(packedDescT, eng);
    reorder(bMem, packed1).execute(strm, bMem, packed1);
    reorder(bMem, packedT).execute(strm, bMem, packedT);
    strm.wait();

    kiln::cpu::Gemm gemm;
    const kiln::Tensor* inputs[] = {&a, &b};
    kiln::Tensor* outputs[] = {&c};
    const kiln::KernelContext context{matmulDef, noAttributes, inputs, outputs};

    const std::vector<double> ms = kiln::bench::medianMs(runs, calls, {
        [&] { whole(B, A, C); },
        [&] {
#pragma omp parallel num_threads(threads)
          {
            const int64_t n0 = half * omp_get_thread_num();
            part(B + n0, A, C + n0);
          }
        },
        [&] {
          one.execute(strm, {{DNNL_ARG_SRC, aMem}, {DNNL_ARG_WEIGHTS, packed1}, {DNNL_ARG_DST, cMem}});
          strm.wait();
        },
        [&] {
          many.execute(strm, {{DNNL_ARG_SRC, aMem}, {DNNL_ARG_WEIGHTS, packedT}, {DNNL_ARG_DST, cMem}});
          strm.wait();
        },
        [&] {
          std::optional<kiln::Status> status = gemm.runMatmul(context, true);
          if (!status || !status->isOk()) {
            std::fprintf(stderr, "kiln matmul failed on %s\n", s.what);
            std::exit(1);
          }
        },
    });
    printRow(s, ms);
  }
  libxsmm_finalize();
  return 0;
}
