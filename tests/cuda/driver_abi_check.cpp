// Compiles only where the driver API's declarations in
// backends/cuda/cuda_api.h match the toolkit's cuda.h, and NVRTC's in
// backends/cuda/nvrtc_api.h its nvrtc.h: each driver entry point's
// exported symbol is the one cuda.h maps its name to (cuMemAlloc ->
// cuMemAlloc_v2), its signature is cuda.h's up to the names of types (an
// enum is an int, a pointer to a driver struct is any such pointer), and the
// attribute numbers are cuda.h's. Built with everything else (no test to
// run): a mismatch fails the build.
#include "backends/cuda/cuda_api.h"
#include "backends/cuda/nvrtc_api.h"

// After kiln's headers, so its own declarations read no cuda.h macro.
#include <cuda.h>
#include <nvrtc.h>

#include <string_view>
#include <type_traits>

namespace kiln::cuda {
namespace {

template <class T>
struct Erased {
  using type = std::conditional_t<std::is_enum_v<T>, int, T>;
};
template <class T>
struct Erased<T*> {
  using type = std::conditional_t<std::is_class_v<std::remove_cv_t<T>>, void*, typename Erased<T>::type*>;
};
template <class T>
struct ErasedFunction;
template <class R, class... A>
struct ErasedFunction<R (*)(A...)> {
  using type = typename Erased<R>::type (*)(typename Erased<A>::type...);
};
template <class F>
using ErasedFunctionT = typename ErasedFunction<F>::type;

#define KILN_STRING_OF(x) #x
#define KILN_EXPANDED_STRING(x) KILN_STRING_OF(x)
// `member` expands through cuda.h's macros to the versioned entry point.
#define KILN_CHECK_ENTRY(member, symbol, result, parameters)                                       \
  static_assert(std::string_view(KILN_EXPANDED_STRING(member)) == symbol,                         \
                "cuda.h maps " #member " to another symbol than " symbol);                         \
  static_assert(std::is_same_v<ErasedFunctionT<decltype(&::member)>, ErasedFunctionT<result(*) parameters>>, \
                symbol " has another signature in cuda.h");
KILN_CUDA_FUNCTIONS(KILN_CHECK_ENTRY)

#define KILN_CHECK_NVRTC(name, result, parameters)                                                   \
  static_assert(std::is_same_v<ErasedFunctionT<decltype(&::name)>, ErasedFunctionT<result(*) parameters>>, \
                #name " has another signature in nvrtc.h");
KILN_NVRTC_FUNCTIONS(KILN_CHECK_NVRTC)
static_assert(NVRTC_SUCCESS == static_cast<int>(::NVRTC_SUCCESS));

static_assert(sizeof(CUdeviceptr) == sizeof(::CUdeviceptr));
static_assert(CUDA_SUCCESS == static_cast<int>(::CUDA_SUCCESS));
static_assert(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT == ::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
static_assert(CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING == ::CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING);
static_assert(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR == ::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
static_assert(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR == ::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);

}  // namespace
}  // namespace kiln::cuda
