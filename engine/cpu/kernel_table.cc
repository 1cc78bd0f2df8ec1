#include "engine/cpu/kernel_table.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/cpu/eigen_gemm.h"

extern "C" {
const driftscope::CpuKernelTable* driftscope_cpu_kernels_x86_64();
const driftscope::CpuKernelTable* driftscope_cpu_kernels_x86_64_v3();
const driftscope::CpuKernelTable* driftscope_cpu_kernels_x86_64_v4();
const driftscope::CpuKernelTable* driftscope_cpu_kernels_native();
}

namespace driftscope {

namespace {

void BaseSgemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda,
               const float* b, int ldb, float beta, float* c, int ldc) {
  cpu_internal::EigenGemm<float>(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
}
void BaseDgemm(bool ta, bool tb, int m, int n, int k, const double* a, int lda,
               const double* b, int ldb, double beta, double* c, int ldc) {
  cpu_internal::EigenGemm<double>(ta, tb, m, n, k, a, lda, b, ldb, beta, c,
                                  ldc);
}

bool CpuHas(Isa isa, std::string* missing) {
  __builtin_cpu_init();
  auto need = [&](bool have, const char* flag) {
    if (!have && missing->empty()) *missing = flag;
    return have;
  };
  switch (isa) {
    case Isa::kBase:
    case Isa::kX86_64:
    case Isa::kNative:  // built for the build machine: see the README
      return true;
    case Isa::kX86_64_V3:
      return need(__builtin_cpu_supports("avx2"), "avx2") &&
             need(__builtin_cpu_supports("fma"), "fma") &&
             need(__builtin_cpu_supports("bmi2"), "bmi2");
    case Isa::kX86_64_V4:
      return need(__builtin_cpu_supports("avx2"), "avx2") &&
             need(__builtin_cpu_supports("fma"), "fma") &&
             need(__builtin_cpu_supports("avx512f"), "avx512f") &&
             need(__builtin_cpu_supports("avx512bw"), "avx512bw") &&
             need(__builtin_cpu_supports("avx512dq"), "avx512dq") &&
             need(__builtin_cpu_supports("avx512vl"), "avx512vl");
  }
  return false;
}

}  // namespace

absl::StatusOr<const CpuKernelTable*> KernelsFor(Isa isa) {
  std::string missing;
  if (!CpuHas(isa, &missing)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "profile asks for isa=", IsaName(isa), " but this CPU lacks ", missing,
        "; choose a lower level (isa=x86-64 or x86-64-v3)"));
  }
  static const CpuKernelTable base = {"base", Eigen::SimdInstructionSetsInUse(),
                                      &BaseSgemm, &BaseDgemm};
  switch (isa) {
    case Isa::kBase:
      return &base;
    case Isa::kX86_64:
      return driftscope_cpu_kernels_x86_64();
    case Isa::kX86_64_V3:
      return driftscope_cpu_kernels_x86_64_v3();
    case Isa::kX86_64_V4:
      return driftscope_cpu_kernels_x86_64_v4();
    case Isa::kNative:
      return driftscope_cpu_kernels_native();
  }
  return absl::InternalError("unknown isa");
}

}  // namespace driftscope
