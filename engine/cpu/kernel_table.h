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

#include <cstdint>

#include "absl/status/statusor.h"
#include "engine/numerics/profile.h"

namespace driftscope {

// Row-major C(m×n) = beta·C + op(A)·op(B), beta 0 or 1 (see Context::Gemm).
template <typename T>
using GemmFn = void (*)(bool trans_a, bool trans_b, int m, int n, int k,
                        const T* a, int lda, const T* b, int ldb, T beta, T* c,
                        int ldc);

// out[i] = f(in[i]) over n values; in == out allowed.
template <typename T>
using MapFn = void (*)(const T* in, T* out, int64_t n);

struct CpuKernelTable {
  const char* isa;   // "x86-64", "x86-64-v3", ...
  const char* simd;  // Eigen::SimdInstructionSetsInUse() of that build
  GemmFn<float> sgemm;
  GemmFn<double> dgemm;
  // Eigen's vectorized tanh and logistic (what TensorFlow's CPU kernels
  // run); their bits depend on the level (e.g. FMA in the rational
  // approximation of tanh).
  MapFn<float> tanh_f32, sigmoid_f32;
  MapFn<double> tanh_f64, sigmoid_f64;
};

// The table for `isa`; kAuto resolves to the best level this CPU has.
// FailedPrecondition when this CPU lacks the level's instructions (a run
// must not silently fall back).
absl::StatusOr<const CpuKernelTable*> KernelsFor(Isa isa);
// The level kAuto resolves to on this CPU (other levels are returned as is).
Isa ResolveIsa(Isa isa);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CPU_KERNEL_TABLE_H_
