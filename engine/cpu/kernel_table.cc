#include "engine/cpu/kernel_table.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

extern "C" {
const driftscope::CpuKernelTable* driftscope_cpu_kernels_x86_64();
const driftscope::CpuKernelTable* driftscope_cpu_kernels_x86_64_v3();
const driftscope::CpuKernelTable* driftscope_cpu_kernels_x86_64_v4();
const driftscope::CpuKernelTable* driftscope_cpu_kernels_native();
}

namespace driftscope {

namespace {

bool CpuHas(Isa isa, std::string* missing) {
  __builtin_cpu_init();
  auto need = [&](bool have, const char* flag) {
    if (!have && missing->empty()) *missing = flag;
    return have;
  };
  switch (isa) {
    case Isa::kAuto:
    case Isa::kX86_64:
    case Isa::kNative:  // built for the build machine: see the README
      return true;
    case Isa::kX86_64_V3:
      return need(__builtin_cpu_supports("avx2"), "avx2") &&
             need(__builtin_cpu_supports("fma"), "fma") &&
             need(__builtin_cpu_supports("bmi2"), "bmi2");
    case Isa::kX86_64_V4:
      return CpuHas(Isa::kX86_64_V3, missing) &&
             need(__builtin_cpu_supports("avx512f"), "avx512f") &&
             need(__builtin_cpu_supports("avx512bw"), "avx512bw") &&
             need(__builtin_cpu_supports("avx512dq"), "avx512dq") &&
             need(__builtin_cpu_supports("avx512vl"), "avx512vl");
  }
  return false;
}

}  // namespace

Isa ResolveIsa(Isa isa) {
  if (isa != Isa::kAuto) return isa;
  std::string ignored;
  if (CpuHas(Isa::kX86_64_V4, &ignored)) return Isa::kX86_64_V4;
  ignored.clear();
  if (CpuHas(Isa::kX86_64_V3, &ignored)) return Isa::kX86_64_V3;
  return Isa::kX86_64;
}

absl::StatusOr<const CpuKernelTable*> KernelsFor(Isa isa) {
  isa = ResolveIsa(isa);
  std::string missing;
  if (!CpuHas(isa, &missing)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "profile asks for isa=", IsaName(isa), " but this CPU lacks ", missing,
        "; choose a level it has (isa=auto picks the best one)"));
  }
  switch (isa) {
    case Isa::kAuto:
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
