// CpuKernelTable: the CPU kernels compiled for one instruction-set level.
//
// Each level (x86-64, x86-64-v3, x86-64-v4, native) is the same source,
// engine/cpu/isa/kernels_isa.cc, compiled with its own -march into its own
// shared object with hidden visibility, so the linker can never merge the
// template instantiations of two levels (the classic ODR trap of compiling
// one template under different -m flags). Only the entry points below are
// exported. Safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_CPU_KERNEL_TABLE_H_
#define DRIFTSCOPE_ENGINE_CPU_KERNEL_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/numerics/profile.h"

namespace driftscope {

// Row-major C(m×n) = beta·C + op(A)·op(B), beta 0 or 1 (see Context::Gemm).
template <typename T>
using GemmFn = void (*)(bool trans_a, bool trans_b, int m, int n, int k,
                        const T* a, int lda, const T* b, int ldb, T beta, T* c,
                        int ldc);

// Eigen's blocked product with a B (k×n, row-major, stride ldb) packed once
// for products C(m×n) = beta·C + A(m×k)·B with A row-major, non-transposed:
// the same bits as GemmFn on the same shapes. PackFn writes the packed B to
// `out` (64-byte aligned) and returns how many elements it needs; with out
// null it only returns that count.
template <typename T>
using PackFn = size_t (*)(int m, int n, int k, const T* b, int ldb, T* out);
template <typename T>
using PackedGemmFn = void (*)(int m, int n, int k, const T* a, int lda,
                              const T* packed_b, T beta, T* c, int ldc);

// Row-major C(m×n) = beta·C + op(A)·op(B) summed in a fixed order per
// element: left to right (sequential) or numpy's pairwise cascade. The bits
// are those of the scalar definition at every level (ordered_gemm.h).
template <typename T>
using OrderedGemmFn = void (*)(bool pairwise, bool trans_a, bool trans_b, int m,
                               int n, int k, const T* a, int lda, const T* b,
                               int ldb, T beta, T* c, int ldc);

// out[i] = f(in[i]) over n values; in == out allowed.
template <typename T>
using MapFn = void (*)(const T* in, T* out, int64_t n);

// The cache sizes every level's Eigen sizes its GEMM blocks from, instead
// of the ones CPUID reports: the blocks decide the order of the partial sums
// over the depth and which rows and columns go through which micro-kernel,
// so with the CPU's own sizes two CPUs of the same level could give
// different bits. These are what Eigen reads on the development VM's Zen 5
// core, so its results did not change.
inline constexpr std::ptrdiff_t kEigenL1CacheBytes = std::ptrdiff_t{48} << 10;
inline constexpr std::ptrdiff_t kEigenL2CacheBytes = std::ptrdiff_t{1} << 20;
inline constexpr std::ptrdiff_t kEigenL3CacheBytes = std::ptrdiff_t{384} << 20;

// The block sizes a level's GEMM uses for C(m×n) += A(m×k)·B(k×n): depth
// kc, and the rows mc and columns nc of Eigen's (transposed) lhs and rhs.
using BlockingFn = void (*)(int m, int n, int k, int64_t* kc, int64_t* mc,
                            int64_t* nc);

struct CpuKernelTable {
  const char* isa;   // "x86-64", "x86-64-v3", ...
  const char* simd;  // Eigen::SimdInstructionSetsInUse() of that build
  // Eigen's blocked product (eigen_gemm.h: EigenBlockedGemm).
  GemmFn<float> sgemm;
  GemmFn<double> dgemm;
  // Eigen's product expression itself, whose bits sgemm/dgemm reproduce;
  // kept so that tests can hold them to it at every level.
  GemmFn<float> sgemm_reference;
  GemmFn<double> dgemm_reference;
  PackFn<float> spack_b;
  PackedGemmFn<float> sgemm_packed_b;
  PackFn<double> dpack_b;
  PackedGemmFn<double> dgemm_packed_b;
  OrderedGemmFn<float> sgemm_ordered;
  OrderedGemmFn<double> dgemm_ordered;
  // Eigen's vectorized tanh and logistic (what TensorFlow's CPU kernels
  // run); their bits depend on the level (e.g. FMA in the rational
  // approximation of tanh).
  MapFn<float> tanh_f32, sigmoid_f32;
  MapFn<double> tanh_f64, sigmoid_f64;
  // The float and double blocking of sgemm/dgemm (for tests).
  BlockingFn sblocking, dblocking;
};

// The table for `isa`; kAuto resolves to the best level this CPU has.
// FailedPrecondition when this CPU lacks the level's instructions (a run
// must not silently fall back); for kNative, when it lacks any feature of
// the build host (an image moved to an older host), naming them.
absl::StatusOr<const CpuKernelTable*> KernelsFor(Isa isa);
// The level kAuto resolves to on this CPU (other levels are returned as is).
Isa ResolveIsa(Isa isa);

// The features (space-separated, e.g. "avx2 fma avx512f") that `isa`'s
// kernels were compiled for; for kNative those of the build host.
std::string IsaBuildFeatures(Isa isa);

// The features named in `features` (space-separated) that `cpu_has` says the
// CPU lacks, in their order. Names this build cannot check are ignored.
std::vector<std::string> MissingCpuFeatures(
    absl::string_view features,
    const std::function<bool(absl::string_view)>& cpu_has);

// Whether this CPU has the feature `name` ("avx2", "avx512f", ...); false
// for a name this build cannot check.
bool CpuHasFeature(absl::string_view name);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CPU_KERNEL_TABLE_H_
