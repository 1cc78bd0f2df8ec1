// The kernels of one ISA level; compiled once per level into its own shared
// object (engine/CMakeLists.txt) with -fvisibility=hidden. Only the entry
// point named by DRIFTSCOPE_KERNEL_ENTRY is exported.
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
