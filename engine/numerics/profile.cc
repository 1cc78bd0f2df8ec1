#include "engine/numerics/profile.h"

#include <cmath>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/match.h"
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
    {"cuda", "fp32,device=cuda",
     "PyTorch on a GPU with TF32 off: cuBLAS fp32 GEMMs, own cell kernels"},
    {"cuda-tf32", "fp32,device=cuda,matmul=tf32",
     "TensorFlow's default on Ampere and newer: cuBLAS with TF32 tensor cores"},
    {"cuda-cudnn", "fp32,device=cuda,matmul=tf32,rnn=cudnn",
     "Keras 3 on a GPU: LSTM/GRU through cuDNN's RNN API, TF32 GEMMs"},
    {"cuda-det", "fp32,device=cuda,gemm=ordered-fma",
     "PyTorch with cudnn.deterministic taken further: own ordered kernels, "
     "no cuBLAS, no atomics; the bits of cuda-det-emu"},
    {"cuda-nondet", "fp32,device=cuda,nondet=on",
     "gradient sums over batch and time with float atomics, as many GPU "
     "kernels do: bits change from run to run"},
    {"cuda-det-emu", "fp32,device=cuda-emu",
     "cuda-det computed on this CPU with the same kernel arithmetic: the bits "
     "any GPU gives under cuda-det"},
};

bool IsGpuPreset(const Preset& p) {
  return absl::StrContains(p.knobs, "device=cuda") &&
         !absl::StrContains(p.knobs, "device=cuda-emu");
}

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
      "perturb=P (0<=P<=1), sr=on|off, loss_scale=S, "
      "device=cpu|cuda|cuda:N|cuda-emu, gemm=cublas|ordered-fma (devices), "
      "rnn=own|cudnn (devices)");
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

// Knobs whose absence means "the default of the device" rather than a value.
struct GivenKnobs {
  bool device_gemm = false;
};

absl::Status ApplyKnob(absl::string_view text, absl::string_view key,
                       absl::string_view v, Profile* p, GivenKnobs* given) {
  if (key == "device") {
    int n = 0;
    if (v == "cpu") {
      p->device = Device::kCpu;
    } else if (v == "cuda") {
      p->device = Device::kCuda;
      p->device_index = 0;
    } else if (v == "cuda-emu") {
      p->device = Device::kCudaEmu;
    } else if (absl::StartsWith(v, "cuda:") &&
               absl::SimpleAtoi(v.substr(5), &n) && n >= 0 && n < 64) {
      p->device = Device::kCuda;
      p->device_index = n;
    } else {
      return Bad(text, key, v, "cpu, cuda, cuda:N (0 <= N < 64), cuda-emu");
    }
  } else if (key == "rnn") {
    if (v == "own")
      p->rnn = DeviceRnn::kOwn;
    else if (v == "cudnn")
      p->rnn = DeviceRnn::kCudnn;
    else
      return Bad(text, key, v, "own, cudnn");
  } else if (key == "gemm" && (v == "cublas" || v == "ordered-fma")) {
    p->device_gemm =
        v == "cublas" ? DeviceGemm::kCublas : DeviceGemm::kOrderedFma;
    given->device_gemm = true;
  } else if (key == "matmul") {
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
      return Bad(text, key, v,
                 "blocked, sequential, pairwise, split-k=N (CPU); cublas, "
                 "ordered-fma (device=cuda)");
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
        "nondet, perturb, sr, loss_scale, device, rnn"));
  }
  return absl::OkStatus();
}

absl::Status Refuse(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("profile '", text, "': ", why));
}

// The combinations of the device knobs with each other and with the CPU
// knobs; resolves the device's default GEMM.
absl::Status CheckDeviceKnobs(absl::string_view text, const GivenKnobs& given,
                              Profile* p) {
  if (!p->on_device()) {
    if (given.device_gemm) {
      return Refuse(text, absl::StrCat("gemm=", DeviceGemmName(p->device_gemm),
                                       " is a GPU GEMM and needs device=cuda "
                                       "(or cuda-emu for ordered-fma)"));
    }
    if (p->rnn == DeviceRnn::kCudnn) {
      return Refuse(text,
                    "rnn=cudnn runs cuDNN on a GPU and needs device=cuda; "
                    "drop it or add device=cuda");
    }
    return absl::OkStatus();
  }
  const char* dev = p->device == Device::kCuda ? "cuda" : "cuda-emu";
  if (p->precision != Precision::kFp32) {
    return Refuse(text, absl::StrCat("device=", dev,
                                     " runs fp32 only (fp64, bf16 and fp16 "
                                     "on the GPU are not built yet); use "
                                     "fp32"));
  }
  if (p->isa != Isa::kAuto) {
    return Refuse(text, absl::StrCat("isa= picks CPU kernels and has no "
                                     "meaning with device=",
                                     dev, "; drop it"));
  }
  if (p->gemm != GemmOrder::kBlocked) {
    return Refuse(text, absl::StrCat("gemm=", GemmName(*p),
                                     " is a CPU GEMM order; with device=", dev,
                                     " use gemm=cublas or gemm=ordered-fma"));
  }
  if (p->act != ActivationImpl::kDefault) {
    return Refuse(text, absl::StrCat("act= picks CPU activations; device=", dev,
                                     " uses its own exp/tanh/sigmoid; drop "
                                     "it"));
  }
  if (p->threads != 1 || p->thread_reduce) {
    return Refuse(text, absl::StrCat("threads= and reduce= are CPU knobs; "
                                     "drop them with device=",
                                     dev));
  }
  if (p->sr || p->loss_scale > 0) {
    return Refuse(text, absl::StrCat("sr= and loss_scale= are not built for "
                                     "device=",
                                     dev, "; drop them"));
  }
  if (p->device == Device::kCudaEmu) {
    if (!given.device_gemm) p->device_gemm = DeviceGemm::kOrderedFma;
    if (p->device_gemm != DeviceGemm::kOrderedFma) {
      return Refuse(text,
                    "device=cuda-emu computes only the deterministic GPU "
                    "path: gemm=cublas cannot be replayed on a CPU; use "
                    "gemm=ordered-fma (the default) or device=cuda");
    }
    if (p->rnn == DeviceRnn::kCudnn) {
      return Refuse(text,
                    "device=cuda-emu cannot run cuDNN (rnn=cudnn); use "
                    "rnn=own or device=cuda");
    }
    if (p->nondet) {
      return Refuse(text,
                    "device=cuda-emu is the deterministic GPU path; "
                    "nondet=on needs device=cuda");
    }
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
  GivenKnobs given;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(parts[i], absl::MaxSplits('=', 1));
    absl::Status s = ApplyKnob(text, kv.first, kv.second, &profile, &given);
    if (!s.ok()) return s;
  }
  if (absl::Status s = CheckDeviceKnobs(text, given, &profile); !s.ok()) {
    return s;
  }
  if (profile.precision == Precision::kFp64 &&
      profile.matmul == MatmulInputs::kTf32) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile '", text,
                     "': matmul=tf32 needs fp32 (TF32 rounds float32 "
                     "GEMM inputs); drop it or use fp32"));
  }
  if (profile.nondet && profile.threads < 2 && !profile.on_device()) {
    profile.threads = 2;
  }
  return profile;
}

}  // namespace

const char* DeviceGemmName(DeviceGemm g) {
  return g == DeviceGemm::kCublas ? "cublas" : "ordered-fma";
}

std::vector<std::string> Profile::GpuPresetNames() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) {
    if (IsGpuPreset(p)) names.push_back(p.name);
  }
  return names;
}

std::string Profile::PresetDescription(absl::string_view preset) {
  for (const Preset& p : kPresets) {
    if (preset == p.name) return p.what;
  }
  return "";
}

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

namespace {

// Device profiles: precision, device, then only the knobs a device takes,
// each when it differs from the device's default.
std::string DeviceProfileString(const Profile& p) {
  std::string s = PrecisionName(p.precision);
  if (p.device == Device::kCuda) {
    absl::StrAppend(&s, ",device=cuda:", p.device_index);
  } else {
    absl::StrAppend(&s, ",device=cuda-emu");
  }
  if (p.matmul == MatmulInputs::kTf32) absl::StrAppend(&s, ",matmul=tf32");
  const DeviceGemm default_gemm =
      p.device == Device::kCuda ? DeviceGemm::kCublas : DeviceGemm::kOrderedFma;
  if (p.device_gemm != default_gemm) {
    absl::StrAppend(&s, ",gemm=", DeviceGemmName(p.device_gemm));
  }
  if (p.rnn == DeviceRnn::kCudnn) absl::StrAppend(&s, ",rnn=cudnn");
  if (p.implementation != 0) absl::StrAppend(&s, ",impl=", p.implementation);
  if (p.nondet) absl::StrAppend(&s, ",nondet=on");
  if (p.perturb > 0)
    absl::StrAppend(&s, ",perturb=", absl::StrFormat("%.17g", p.perturb));
  return s;
}

}  // namespace

std::string Profile::ToString() const {
  if (on_device()) return DeviceProfileString(*this);
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
