#include "engine/cpu/kernel_table.h"

#include <cpuid.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

extern "C" {
const driftscope::CpuKernelTable* driftscope_cpu_kernels_x86_64();
const driftscope::CpuKernelTable* driftscope_cpu_kernels_x86_64_v3();
const driftscope::CpuKernelTable* driftscope_cpu_kernels_x86_64_v4();
const driftscope::CpuKernelTable* driftscope_cpu_kernels_native();
const char* driftscope_cpu_kernels_x86_64_features();
const char* driftscope_cpu_kernels_x86_64_v3_features();
const char* driftscope_cpu_kernels_x86_64_v4_features();
const char* driftscope_cpu_kernels_native_features();
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
    case Isa::kNative: {  // built for the build machine: check its features
      const std::vector<std::string> lacking =
          MissingCpuFeatures(IsaBuildFeatures(Isa::kNative), CpuHasFeature);
      *missing = absl::StrJoin(lacking, " ");
      return lacking.empty();
    }
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

bool CpuHasFeature(absl::string_view name) {
  __builtin_cpu_init();
  // __builtin_cpu_supports takes only a literal, hence the table.
#define DRIFTSCOPE_FEATURE(f) \
  if (name == f) return __builtin_cpu_supports(f);
  DRIFTSCOPE_FEATURE("sse3")
  DRIFTSCOPE_FEATURE("ssse3")
  DRIFTSCOPE_FEATURE("sse4.1")
  DRIFTSCOPE_FEATURE("sse4.2")
  DRIFTSCOPE_FEATURE("popcnt")
  DRIFTSCOPE_FEATURE("aes")
  DRIFTSCOPE_FEATURE("pclmul")
  DRIFTSCOPE_FEATURE("avx")
#ifdef __clang__
  // clang 14's builtin knows neither f16c nor vaes: their CPUID bits, counted
  // only where AVX is usable (as GCC's builtin decides).
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (name == "f16c") {
    return __builtin_cpu_supports("avx") &&
           __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  }
  if (name == "vaes") {
    return __builtin_cpu_supports("avx") &&
           __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) &&
           (ecx & bit_VAES) != 0;
  }
#else
  DRIFTSCOPE_FEATURE("f16c")
#endif
  DRIFTSCOPE_FEATURE("avx2")
  DRIFTSCOPE_FEATURE("fma")
  DRIFTSCOPE_FEATURE("bmi")
  DRIFTSCOPE_FEATURE("bmi2")
  DRIFTSCOPE_FEATURE("gfni")
#ifndef __clang__
  DRIFTSCOPE_FEATURE("vaes")
#endif
  DRIFTSCOPE_FEATURE("vpclmulqdq")
  DRIFTSCOPE_FEATURE("avx512f")
  DRIFTSCOPE_FEATURE("avx512cd")
  DRIFTSCOPE_FEATURE("avx512bw")
  DRIFTSCOPE_FEATURE("avx512dq")
  DRIFTSCOPE_FEATURE("avx512vl")
  DRIFTSCOPE_FEATURE("avx512ifma")
  DRIFTSCOPE_FEATURE("avx512vbmi")
  DRIFTSCOPE_FEATURE("avx512vbmi2")
  DRIFTSCOPE_FEATURE("avx512vnni")
  DRIFTSCOPE_FEATURE("avx512bitalg")
  DRIFTSCOPE_FEATURE("avx512vpopcntdq")
  DRIFTSCOPE_FEATURE("avx512bf16")
#undef DRIFTSCOPE_FEATURE
  return false;
}

std::vector<std::string> MissingCpuFeatures(
    absl::string_view features,
    const std::function<bool(absl::string_view)>& cpu_has) {
  static const char* const kCheckable[] = {
      "sse3",       "ssse3",        "sse4.1",
      "sse4.2",     "popcnt",       "aes",
      "pclmul",     "avx",          "f16c",
      "avx2",       "fma",          "bmi",
      "bmi2",       "gfni",         "vaes",
      "vpclmulqdq", "avx512f",      "avx512cd",
      "avx512bw",   "avx512dq",     "avx512vl",
      "avx512ifma", "avx512vbmi",   "avx512vbmi2",
      "avx512vnni", "avx512bitalg", "avx512vpopcntdq",
      "avx512bf16"};
  std::vector<std::string> missing;
  for (absl::string_view f :
       absl::StrSplit(features, ' ', absl::SkipWhitespace())) {
    bool checkable = false;
    for (const char* c : kCheckable) checkable = checkable || f == c;
    if (checkable && !cpu_has(f)) missing.emplace_back(f);
  }
  return missing;
}

std::string IsaBuildFeatures(Isa isa) {
  switch (ResolveIsa(isa)) {
    case Isa::kAuto:
    case Isa::kX86_64:
      return driftscope_cpu_kernels_x86_64_features();
    case Isa::kX86_64_V3:
      return driftscope_cpu_kernels_x86_64_v3_features();
    case Isa::kX86_64_V4:
      return driftscope_cpu_kernels_x86_64_v4_features();
    case Isa::kNative:
      return driftscope_cpu_kernels_native_features();
  }
  return "";
}

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
    if (isa == Isa::kNative) {
      return absl::FailedPreconditionError(absl::StrCat(
          "profile asks for isa=native, whose kernels were compiled for the "
          "build host's CPU, but this CPU lacks ",
          missing,
          "; choose isa=auto (the best level this CPU has) or rebuild "
          "driftscope on this host"));
    }
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
