#include "engine/numerics/profile.h"

#include <cmath>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace driftscope {

namespace {

constexpr int kMaxThreads = 256;
constexpr int kMaxSplitK = 64;

struct Preset {
  const char* name;
  const char* knobs;
  const char* what;
};
constexpr Preset kPresets[] = {
    {"ref64", "fp64", "float64 everywhere: the reference"},
    {"fp32", "fp32", "float32, the build's kernels"},
    {"fp32-sse2", "fp32,isa=x86-64", "float32, kernels for SSE2 without FMA"},
    {"fp32-avx2", "fp32,isa=x86-64-v3", "float32, kernels for AVX2+FMA"},
    {"fp32-avx512", "fp32,isa=x86-64-v4", "float32, kernels for AVX-512"},
    {"tf32", "fp32,matmul=tf32", "GEMM inputs rounded to TF32 (Ampere+)"},
    {"bf16", "bf16", "mixed bfloat16, fp32 accumulation and master weights"},
    {"fp16", "fp16", "mixed float16 with loss scaling 1024"},
    {"fp32-nondet", "fp32,nondet=on,threads=2",
     "partial sums combined in scheduling order (GPU atomics)"},
    {"fp32-perturb", "fp32,perturb=0.01",
     "1% of initial weights get their last bit flipped (chaos baseline)"},
};

const char* PrecisionName(Precision p) {
  switch (p) {
    case Precision::kFp64:
      return "fp64";
    case Precision::kFp32:
      return "fp32";
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp16:
      return "fp16";
  }
  return "?";
}

const char* GemmName(const Profile& p) {
  switch (p.gemm) {
    case GemmOrder::kBlocked:
      return "blocked";
    case GemmOrder::kSequential:
      return "sequential";
    case GemmOrder::kPairwise:
      return "pairwise";
    case GemmOrder::kSplitK:
      return "split-k";
  }
  return "?";
}

const char* ActName(ActivationImpl a) {
  switch (a) {
    case ActivationImpl::kDefault:
      return "default";
    case ActivationImpl::kLibm:
      return "libm";
    case ActivationImpl::kFast:
      return "fast";
    case ActivationImpl::kGpu:
      return "gpu";
  }
  return "?";
}

std::string ValidChoices() {
  return absl::StrCat(
      "presets: ", absl::StrJoin(Profile::PresetNames(), ", "),
      "; or fp64|fp32|bf16|fp16 followed by ,key=value knobs: "
      "matmul=exact|tf32, isa=auto|x86-64|x86-64-v3|x86-64-v4|native, "
      "gemm=blocked|sequential|pairwise|split-k=N, act=libm|fast|gpu, "
      "impl=1|2, threads=N, reduce=fixed|threads, nondet=on|off, "
      "perturb=P (0<=P<=1), sr=on|off, loss_scale=S");
}

absl::Status Bad(absl::string_view text, absl::string_view knob,
                 absl::string_view value, absl::string_view valid) {
  return absl::InvalidArgumentError(
      absl::StrCat("profile '", text, "': ", knob, "=", value,
                   " is not valid; valid values: ", valid));
}

absl::StatusOr<bool> OnOff(absl::string_view text, absl::string_view key,
                           absl::string_view v) {
  if (v == "on" || v == "true" || v == "1") return true;
  if (v == "off" || v == "false" || v == "0") return false;
  return Bad(text, key, v, "on, off");
}

absl::Status ApplyKnob(absl::string_view text, absl::string_view key,
                       absl::string_view v, Profile* p) {
  if (key == "matmul") {
    if (v == "exact")
      p->matmul = MatmulInputs::kExact;
    else if (v == "tf32")
      p->matmul = MatmulInputs::kTf32;
    else
      return Bad(text, key, v, "exact, tf32");
  } else if (key == "isa") {
    if (v == "auto")
      p->isa = Isa::kAuto;
    else if (v == "x86-64" || v == "sse2")
      p->isa = Isa::kX86_64;
    else if (v == "x86-64-v3" || v == "v3" || v == "avx2")
      p->isa = Isa::kX86_64_V3;
    else if (v == "x86-64-v4" || v == "v4" || v == "avx512")
      p->isa = Isa::kX86_64_V4;
    else if (v == "native")
      p->isa = Isa::kNative;
    else
      return Bad(text, key, v, "auto, x86-64, x86-64-v3, x86-64-v4, native");
  } else if (key == "gemm") {
    if (v == "blocked") {
      p->gemm = GemmOrder::kBlocked;
    } else if (v == "sequential") {
      p->gemm = GemmOrder::kSequential;
    } else if (v == "pairwise") {
      p->gemm = GemmOrder::kPairwise;
    } else if (absl::StartsWith(v, "split-k=")) {
      int n = 0;
      if (!absl::SimpleAtoi(v.substr(8), &n) || n < 2 || n > kMaxSplitK) {
        return Bad(text, key, v,
                   absl::StrCat("split-k=N with N in [2, ", kMaxSplitK, "]"));
      }
      p->gemm = GemmOrder::kSplitK;
      p->split_k = n;
    } else {
      return Bad(text, key, v, "blocked, sequential, pairwise, split-k=N");
    }
  } else if (key == "act") {
    if (v == "default")
      p->act = ActivationImpl::kDefault;
    else if (v == "libm")
      p->act = ActivationImpl::kLibm;
    else if (v == "fast")
      p->act = ActivationImpl::kFast;
    else if (v == "gpu")
      p->act = ActivationImpl::kGpu;
    else
      return Bad(text, key, v, "default, libm, fast, gpu");
  } else if (key == "impl") {
    if (v == "1")
      p->implementation = 1;
    else if (v == "2")
      p->implementation = 2;
    else if (v == "spec")
      p->implementation = 0;
    else
      return Bad(text, key, v, "spec, 1, 2");
  } else if (key == "threads") {
    int n = 0;
    if (!absl::SimpleAtoi(v, &n) || n < 1 || n > kMaxThreads) {
      return Bad(text, key, v,
                 absl::StrCat("an integer in [1, ", kMaxThreads, "]"));
    }
    p->threads = n;
  } else if (key == "reduce") {
    if (v == "fixed")
      p->thread_reduce = false;
    else if (v == "threads")
      p->thread_reduce = true;
    else
      return Bad(text, key, v, "fixed, threads");
  } else if (key == "nondet") {
    absl::StatusOr<bool> b = OnOff(text, key, v);
    if (!b.ok()) return b.status();
    p->nondet = *b;
  } else if (key == "sr") {
    absl::StatusOr<bool> b = OnOff(text, key, v);
    if (!b.ok()) return b.status();
    p->sr = *b;
  } else if (key == "perturb") {
    double x = 0;
    if (!absl::SimpleAtod(v, &x) || !(x >= 0.0 && x <= 1.0)) {
      return Bad(text, key, v, "a fraction P with 0 <= P <= 1");
    }
    p->perturb = x;
  } else if (key == "loss_scale") {
    double x = 0;
    if (!absl::SimpleAtod(v, &x) || !(x > 0.0 && std::isfinite(x))) {
      return Bad(text, key, v, "a finite number > 0");
    }
    p->loss_scale = x;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "profile '", text, "': unknown knob '", key,
        "'; valid knobs: matmul, isa, gemm, act, impl, threads, reduce, "
        "nondet, perturb, sr, loss_scale"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Profile> ParseKnobs(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  Profile profile;
  if (parts.empty() || parts[0].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile is empty; valid: ", ValidChoices()));
  }
  if (parts[0] == "fp64") {
    profile.precision = Precision::kFp64;
  } else if (parts[0] == "fp32") {
    profile.precision = Precision::kFp32;
  } else if (parts[0] == "bf16") {
    profile.precision = Precision::kBf16;
  } else if (parts[0] == "fp16") {
    profile.precision = Precision::kFp16;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("profile '", text, "': unknown precision or preset '",
                     parts[0], "'; valid: ", ValidChoices()));
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(parts[i], absl::MaxSplits('=', 1));
    absl::Status s = ApplyKnob(text, kv.first, kv.second, &profile);
    if (!s.ok()) return s;
  }
  if (profile.precision == Precision::kFp64 &&
      profile.matmul == MatmulInputs::kTf32) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile '", text,
                     "': matmul=tf32 needs fp32 (TF32 rounds float32 "
                     "GEMM inputs); drop it or use fp32"));
  }
  if (profile.nondet && profile.threads < 2) profile.threads = 2;
  return profile;
}

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAuto:
      return "auto";
    case Isa::kX86_64:
      return "x86-64";
    case Isa::kX86_64_V3:
      return "x86-64-v3";
    case Isa::kX86_64_V4:
      return "x86-64-v4";
    case Isa::kNative:
      return "native";
  }
  return "?";
}

std::vector<std::string> Profile::PresetNames() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.push_back(p.name);
  return names;
}

std::string Profile::PresetKnobs(absl::string_view preset) {
  for (const Preset& p : kPresets) {
    if (preset == p.name) return p.knobs;
  }
  return "";
}

std::string Profile::ToString() const {
  std::string s = PrecisionName(precision);
  if (matmul == MatmulInputs::kTf32) absl::StrAppend(&s, ",matmul=tf32");
  if (isa != Isa::kAuto) absl::StrAppend(&s, ",isa=", IsaName(isa));
  if (gemm == GemmOrder::kSplitK) {
    absl::StrAppend(&s, ",gemm=split-k=", split_k);
  } else if (gemm != GemmOrder::kBlocked) {
    absl::StrAppend(&s, ",gemm=", GemmName(*this));
  }
  if (act != ActivationImpl::kDefault) {
    absl::StrAppend(&s, ",act=", ActName(act));
  }
  if (implementation != 0) absl::StrAppend(&s, ",impl=", implementation);
  absl::StrAppend(&s, ",threads=", threads);
  if (thread_reduce) absl::StrAppend(&s, ",reduce=threads");
  if (nondet) absl::StrAppend(&s, ",nondet=on");
  if (perturb > 0)
    absl::StrAppend(&s, ",perturb=", absl::StrFormat("%.17g", perturb));
  if (sr) absl::StrAppend(&s, ",sr=on");
  if (loss_scale > 0) {
    absl::StrAppend(&s, ",loss_scale=", absl::StrFormat("%.17g", loss_scale));
  }
  return s;
}

absl::StatusOr<Profile> Profile::Parse(absl::string_view text) {
  for (const Preset& p : kPresets) {
    if (text == p.name) {
      absl::StatusOr<Profile> parsed = ParseKnobs(p.knobs);
      if (parsed.ok()) parsed->preset = p.name;
      return parsed;
    }
  }
  return ParseKnobs(text);
}

}  // namespace driftscope
