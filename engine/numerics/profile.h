// Profile: the numerics knobs of one environment (DESIGN §6).
//
// A Profile is a plain value. Parse() turns a preset name ("ref64", "tf32",
// ...) or a knob string ("fp32,isa=x86-64-v3,gemm=split-k=4,threads=2") into
// one; ToString() gives the canonical knob string that is reported as "the
// profile that actually ran" (Parse(ToString()) == the same profile). Each
// knob mirrors a real cause of drift. Thread-compatible.
#ifndef DRIFTSCOPE_ENGINE_NUMERICS_PROFILE_H_
#define DRIFTSCOPE_ENGINE_NUMERICS_PROFILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace driftscope {

// Storage and master-weight precision is fp64 for kFp64 and fp32 otherwise;
// bf16/fp16 are mixed precision: GEMM inputs and layer activations rounded to
// the low type, fp32 accumulation and master weights (fp16 with loss scaling).
enum class Precision { kFp64, kFp32, kBf16, kFp16 };
// GEMM input rounding on top of the precision: TF32 rounds inputs to a 10-bit
// mantissa (round to nearest even), as Ampere tensor cores do.
enum class MatmulInputs { kExact, kTf32 };
// Which compiled CPU kernels (blocked GEMM, fast activations) run: each level
// is compiled into its own shared object. kAuto takes the best level this CPU
// has (x86-64-v4, else x86-64-v3, else x86-64), as BLAS libraries dispatch;
// the level that ran is what gets reported.
enum class Isa { kAuto, kX86_64, kX86_64_V3, kX86_64_V4, kNative };
// Reduction order of every GEMM's inner (k) dimension.
enum class GemmOrder { kBlocked, kSequential, kPairwise, kSplitK };
// libm: std::exp/std::tanh in T. fast: Eigen's vectorized approximations,
// the functions TensorFlow's CPU kernels use (compiled per ISA level).
// gpu: an emulation of CUDA fast intrinsics (__expf, __fdividef, tanh.approx).
// kDefault is libm for fp64 and fast for the float32-based precisions.
enum class ActivationImpl { kDefault, kLibm, kFast, kGpu };
// Where the run computes. kCuda trains on GPU `device_index` through the CUDA
// backend library (engine/cuda/, loaded on demand); kCudaEmu runs the
// deterministic GPU path (gemm=ordered-fma) on the host with the very same
// kernel arithmetic, and gives the bits cuda-det gives on any GPU.
enum class Device { kCpu, kCuda, kCudaEmu };
// GEMMs on a device: cuBLAS (fp32 pedantic, or TF32 tensor-op math with
// matmul=tf32), or our own kernel where one thread sums one output in
// increasing k with fmaf, which a CPU can replay bit for bit.
enum class DeviceGemm { kCublas, kOrderedFma };
// LSTM/GRU on a device: our own cell kernels, or cuDNN's RNN API (Keras'
// GPU path; only the layers Keras would send to cuDNN).
enum class DeviceRnn { kOwn, kCudnn };

struct Profile {
  // The preset this profile came from, or "" for a custom knob string.
  std::string preset;
  Precision precision = Precision::kFp32;
  MatmulInputs matmul = MatmulInputs::kExact;
  Isa isa = Isa::kAuto;
  GemmOrder gemm = GemmOrder::kBlocked;
  int split_k = 0;  // chunks of k when gemm == kSplitK (≥ 2)
  ActivationImpl act = ActivationImpl::kDefault;
  int implementation = 0;  // 0: as the spec says; 1 or 2: forced on all RNNs
  // Worker threads for one run. Bits never depend on it, unless
  // thread_reduce is set: then GEMMs split k into `threads` partial sums.
  int threads = 1;
  bool thread_reduce = false;
  // Partial sums combined in scheduling order: differs from run to run, like
  // float atomics on a GPU.
  bool nondet = false;
  // Flip the last mantissa bit of a seeded fraction of the initial weights.
  double perturb = 0.0;
  // Seeded stochastic rounding of GEMM outputs (Monte Carlo arithmetic).
  bool sr = false;
  // Loss scale for fp16 (dynamic scaling is not modelled): gradients are
  // computed on loss·scale and unscaled before the optimizer.
  double loss_scale = 0.0;  // 0 = default (1024 for fp16, 1 otherwise)
  // The device knobs (device=cpu|cuda|cuda:N|cuda-emu, gemm=cublas|
  // ordered-fma, rnn=own|cudnn). On a device, nondet=on makes the gradient
  // reductions over batch and time float atomics, as real GPU kernels do.
  Device device = Device::kCpu;
  int device_index = 0;  // N of cuda:N
  DeviceGemm device_gemm = DeviceGemm::kCublas;
  DeviceRnn rnn = DeviceRnn::kOwn;

  // Canonical knob string, e.g. "fp32,threads=1".
  std::string ToString() const;
  // Accepts a preset or "PRECISION[,key=value...]"; unknown keys or values
  // give InvalidArgument listing the valid ones.
  static absl::StatusOr<Profile> Parse(absl::string_view text);
  static std::vector<std::string> PresetNames();
  // The knob string of a preset ("tf32" -> "fp32,matmul=tf32"), or "".
  static std::string PresetKnobs(absl::string_view preset);

  // Presets that need a GPU (cuda, cuda-tf32, ...); a subset of
  // PresetNames().
  static std::vector<std::string> GpuPresetNames();
  // The one-line "what it mirrors" of a preset, or "".
  static std::string PresetDescription(absl::string_view preset);

  bool on_device() const { return device != Device::kCpu; }
  // Whether runs of this profile are expected to be bit-reproducible.
  bool deterministic() const { return !nondet; }
  // act with kDefault resolved for this precision.
  ActivationImpl activations() const {
    if (act != ActivationImpl::kDefault) return act;
    return precision == Precision::kFp64 ? ActivationImpl::kLibm
                                         : ActivationImpl::kFast;
  }
  double effective_loss_scale() const {
    return loss_scale > 0 ? loss_scale
                          : (precision == Precision::kFp16 ? 1024.0 : 1.0);
  }

  friend bool operator==(const Profile& a, const Profile& b) {
    return a.ToString() == b.ToString();
  }
  friend bool operator!=(const Profile& a, const Profile& b) {
    return !(a == b);
  }
};

const char* IsaName(Isa isa);              // "auto", "x86-64", "x86-64-v3", ...
const char* DeviceGemmName(DeviceGemm g);  // "cublas", "ordered-fma"

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_NUMERICS_PROFILE_H_
