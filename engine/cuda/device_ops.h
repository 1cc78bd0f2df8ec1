// DeviceOps: the table of device operations one host-side trainer
// (device_trainer.h) drives. Two implementations: the CUDA backend (a shared
// library, cuda_backend.cu, loaded with dlopen) and the host emulation of the
// deterministic path (emu_ops.cc, always built into the engine). Both run the
// same DS_HD functors of the *_kernels.h headers: the emulation in loops,
// the CUDA backend one thread per index.
//
// The table crosses a dlopen boundary, so it speaks only plain types:
// pointers, integers, the POD argument structs, and OpStatus codes with the
// message in last_error(). Pointers given to the ops are device pointers from
// Alloc (host memory for the emulation). Ops are queued in order; an error of
// an earlier op may surface at a later call, at the latest at Finish().
// One thread at a time; the caller owns the table (delete it to release the
// device context's resources).
#ifndef DRIFTSCOPE_ENGINE_CUDA_DEVICE_OPS_H_
#define DRIFTSCOPE_ENGINE_CUDA_DEVICE_OPS_H_

#include <cstddef>
#include <cstdint>

#include "engine/cuda/clip_kernels.h"
#include "engine/cuda/dense_kernels.h"
#include "engine/cuda/gemm_kernels.h"
#include "engine/cuda/gru_kernels.h"
#include "engine/cuda/loss_kernels.h"
#include "engine/cuda/lstm_kernels.h"
#include "engine/cuda/optimizer_kernels.h"
#include "engine/cuda/sequence_kernels.h"
#include "engine/cuda/simple_rnn_kernels.h"

namespace driftscope {
namespace dev {

// Bump when anything below changes layout: the loader refuses a library
// built against another version.
constexpr int kDeviceOpsAbiVersion = 1;

enum class OpStatus : int {
  kOk = 0,
  kOutOfMemory = 1,  // last_error() says how many bytes were asked for
  kDeviceError = 2,  // last_error() has the CUDA/cuBLAS error text
  kUnsupported = 3,  // the backend cannot do what was asked
};

// What the backend computes with; chosen once when the table is opened.
struct DeviceConfig {
  int device_index = 0;
  bool cublas = true;    // false: the ordered-fma GEMM
  bool tf32 = false;     // TF32 inputs (cuBLAS tensor-op math, or rounding)
  bool atomics = false;  // gradient sums over batch/time with atomics
};

// What really ran, for the run record. Fixed-size text so that the struct
// crosses the library boundary as plain memory.
struct DeviceDescription {
  char backend[16] = {};  // "cuda" or "cuda-emu"
  char gpu_name[128] = {};
  int compute_major = 0, compute_minor = 0;
  int driver_version = 0, runtime_version = 0;  // CUDA's encoding: 13000
  int cublas_version = 0;   // major*10000 + minor*100 + patch
  long cudnn_version = 0;   // cudnnGetVersion(); 0 when not loaded
  char math_mode[96] = {};  // e.g. "cublas CUBLAS_PEDANTIC_MATH"
};

// Which GEMMs reduce over batch and time (weight gradients): the ones
// atomics may split under DeviceConfig::atomics.
enum class GemmRole : int { kForward = 0, kWeightGrad = 1 };

class DeviceOps {
 public:
  virtual ~DeviceOps() = default;

  virtual const DeviceDescription& description() const = 0;
  // The message of the last failed op ("" after success).
  virtual const char* last_error() const = 0;

  // Memory; Alloc gives kOutOfMemory with the size in last_error().
  virtual OpStatus Alloc(size_t bytes, void** out) = 0;
  virtual void Free(void* p) = 0;
  virtual OpStatus Upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual OpStatus Download(void* host_dst, const void* src, size_t bytes) = 0;
  virtual OpStatus Zero(void* dst, size_t bytes) = 0;
  virtual OpStatus Copy(void* dst, const void* src, size_t bytes) = 0;
  // Waits for the queued work; reports an error any of it hit.
  virtual OpStatus Finish() = 0;

  // C = op(A)·op(B) (GemmArgs; tf32 and the order follow DeviceConfig).
  virtual OpStatus Gemm(const GemmArgs& args, GemmRole role) = 0;

  virtual OpStatus Run(const GatherRowsArgs& args) = 0;
  virtual OpStatus Run(const TimeMajorArgs& args) = 0;
  virtual OpStatus Run(const AddBiasArgs& args) = 0;
  // Under DeviceConfig::atomics the CUDA backend adds with atomics.
  virtual OpStatus Run(const BiasGradArgs& args) = 0;
  virtual OpStatus Run(const LstmForwardArgs& args) = 0;
  virtual OpStatus Run(const LstmBackwardArgs& args) = 0;
  virtual OpStatus Run(const GruForwardArgs& args) = 0;
  virtual OpStatus Run(const GruBackwardArgs& args) = 0;
  virtual OpStatus Run(const SimpleRnnForwardArgs& args) = 0;
  virtual OpStatus Run(const SimpleRnnBackwardArgs& args) = 0;
  virtual OpStatus Run(const DenseForwardArgs& args) = 0;
  virtual OpStatus Run(const DenseBackwardArgs& args) = 0;
  virtual OpStatus Run(const LossRowsArgs& args) = 0;
  virtual OpStatus Run(const LossTotalArgs& args) = 0;
  virtual OpStatus Run(const LossGradArgs& args) = 0;
  virtual OpStatus Run(const SquaresArgs& args) = 0;
  virtual OpStatus Run(const ClipFactorArgs& args) = 0;
  virtual OpStatus Run(const ClipApplyArgs& args) = 0;
  virtual OpStatus Run(const AdamArgs& args) = 0;
  virtual OpStatus Run(const SgdArgs& args) = 0;
  virtual OpStatus Run(const RmspropArgs& args) = 0;
};

}  // namespace dev
}  // namespace driftscope

// The one symbol of the CUDA backend library. Opens device
// config->device_index and returns a new table in *out (kOk), or an error
// code with the reason in `error` (NUL-terminated, at most error_size
// bytes). abi_version must be kDeviceOpsAbiVersion.
extern "C" {
typedef int (*DriftscopeCudaBackendOpenFn)(
    int abi_version, const driftscope::dev::DeviceConfig* config,
    driftscope::dev::DeviceOps** out, char* error, int error_size);
}
#define DRIFTSCOPE_CUDA_BACKEND_ENTRY "driftscope_cuda_backend_open"

#endif  // DRIFTSCOPE_ENGINE_CUDA_DEVICE_OPS_H_
