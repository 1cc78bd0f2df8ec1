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

#include "absl/status/statusor.h"
#include "engine/numerics/profile.h"

namespace driftscope {

// Row-major C(m×n) = beta·C + op(A)·op(B), beta 0 or 1 (see Context::Gemm).
template <typename T>
using GemmFn = void (*)(bool trans_a, bool trans_b, int m, int n, int k,
                        const T* a, int lda, const T* b, int ldb, T beta, T* c,
                        int ldc);

struct CpuKernelTable {
  const char* isa;   // "x86-64", "x86-64-v3", ...
  const char* simd;  // Eigen::SimdInstructionSetsInUse() of that build
  GemmFn<float> sgemm;
  GemmFn<double> dgemm;
};

// The table for `isa`. kBase is the engine's own build. FailedPrecondition
// when this CPU lacks the level's instructions (the run must not fall back).
absl::StatusOr<const CpuKernelTable*> KernelsFor(Isa isa);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CPU_KERNEL_TABLE_H_
