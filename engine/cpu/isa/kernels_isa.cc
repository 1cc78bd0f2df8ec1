// The kernels of one ISA level; compiled once per level into its own shared
// object (engine/CMakeLists.txt) with -fvisibility=hidden. Only the entry
// point named by DRIFTSCOPE_KERNEL_ENTRY and its _features companion are
// exported.
#include "engine/cpu/eigen_gemm.h"
#include "engine/cpu/kernel_table.h"
#include "engine/cpu/ordered_gemm.h"

#ifndef DRIFTSCOPE_KERNEL_ENTRY
#error "DRIFTSCOPE_KERNEL_ENTRY must name this level's entry point"
#endif
#ifndef DRIFTSCOPE_KERNEL_ISA
#error "DRIFTSCOPE_KERNEL_ISA must name this level"
#endif

namespace {

template <typename T>
size_t PackB(int m, int n, int k, const T* b, int ldb, T* out) {
  if (out != nullptr) {
    driftscope::cpu_internal::EigenPackB<T>(m, n, k, b, ldb, out);
  }
  return driftscope::cpu_internal::EigenPackedSize<T>(m, n, k);
}
template <typename T>
void GemmPackedB(int m, int n, int k, const T* a, int lda, const T* packed_b,
                 T beta, T* c, int ldc) {
  driftscope::cpu_internal::EigenGemmPackedB<T>(m, n, k, a, lda, packed_b, beta,
                                                c, ldc);
}

template <typename T>
void Tanh(const T* in, T* out, int64_t n) {
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(out, n) =
      Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(in, n).tanh();
}
template <typename T>
void Sigmoid(const T* in, T* out, int64_t n) {
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(out, n) =
      Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(in, n).logistic();
}

template <typename T>
void Blocking(int m, int n, int k, int64_t* kc, int64_t* mc, int64_t* nc) {
  const driftscope::cpu_internal::EigenBlocking<T> b(m, n, k);
  *kc = b.kc;
  *mc = b.mc;
  *nc = b.nc;
}

// This shared object's Eigen (hidden, its own cache-size state) blocks with
// the fixed sizes of kernel_table.h, set before the first product.
bool UseFixedCacheSizes() {
  Eigen::setCpuCacheSizes(driftscope::kEigenL1CacheBytes,
                          driftscope::kEigenL2CacheBytes,
                          driftscope::kEigenL3CacheBytes);
  return true;
}

}  // namespace

extern "C" __attribute__((visibility("default")))
const driftscope::CpuKernelTable*
DRIFTSCOPE_KERNEL_ENTRY() {
  static const bool sized = UseFixedCacheSizes();
  (void)sized;
  static const driftscope::CpuKernelTable table = {
      DRIFTSCOPE_KERNEL_ISA,
      Eigen::SimdInstructionSetsInUse(),
      &driftscope::cpu_internal::EigenBlockedGemm<float>,
      &driftscope::cpu_internal::EigenBlockedGemm<double>,
      &driftscope::cpu_internal::EigenGemm<float>,
      &driftscope::cpu_internal::EigenGemm<double>,
      &PackB<float>,
      &GemmPackedB<float>,
      &PackB<double>,
      &GemmPackedB<double>,
      &driftscope::cpu_internal::OrderedGemm<float>,
      &driftscope::cpu_internal::OrderedGemm<double>,
      &Tanh<float>,
      &Sigmoid<float>,
      &Tanh<double>,
      &Sigmoid<double>,
      &Blocking<float>,
      &Blocking<double>};
  return &table;
}

// The instruction-set features this level was compiled for, from the
// compiler's own macros (for -march=native: the build host's), so that the
// caller can check them against the CPU before calling anything compiled
// with them. Returns a string literal: no instruction of the level runs.
#define DRIFTSCOPE_CAT_(a, b) a##b
#define DRIFTSCOPE_CAT(a, b) DRIFTSCOPE_CAT_(a, b)
extern "C" __attribute__((visibility("default"))) const char* DRIFTSCOPE_CAT(
    DRIFTSCOPE_KERNEL_ENTRY, _features)() {
  return ""
#ifdef __SSE3__
         " sse3"
#endif
#ifdef __SSSE3__
         " ssse3"
#endif
#ifdef __SSE4_1__
         " sse4.1"
#endif
#ifdef __SSE4_2__
         " sse4.2"
#endif
#ifdef __POPCNT__
         " popcnt"
#endif
#ifdef __AES__
         " aes"
#endif
#ifdef __PCLMUL__
         " pclmul"
#endif
#ifdef __AVX__
         " avx"
#endif
#ifdef __F16C__
         " f16c"
#endif
#ifdef __AVX2__
         " avx2"
#endif
#ifdef __FMA__
         " fma"
#endif
#ifdef __BMI__
         " bmi"
#endif
#ifdef __BMI2__
         " bmi2"
#endif
#ifdef __GFNI__
         " gfni"
#endif
#ifdef __VAES__
         " vaes"
#endif
#ifdef __VPCLMULQDQ__
         " vpclmulqdq"
#endif
#ifdef __AVX512F__
         " avx512f"
#endif
#ifdef __AVX512CD__
         " avx512cd"
#endif
#ifdef __AVX512BW__
         " avx512bw"
#endif
#ifdef __AVX512DQ__
         " avx512dq"
#endif
#ifdef __AVX512VL__
         " avx512vl"
#endif
#ifdef __AVX512IFMA__
         " avx512ifma"
#endif
#ifdef __AVX512VBMI__
         " avx512vbmi"
#endif
#ifdef __AVX512VBMI2__
         " avx512vbmi2"
#endif
#ifdef __AVX512VNNI__
         " avx512vnni"
#endif
#ifdef __AVX512BITALG__
         " avx512bitalg"
#endif
#ifdef __AVX512VPOPCNTDQ__
         " avx512vpopcntdq"
#endif
#ifdef __AVX512BF16__
         " avx512bf16"
#endif
      ;
}
