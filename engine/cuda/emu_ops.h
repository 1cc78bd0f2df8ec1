// The cuda-emu backend: DeviceOps on the host, running the deterministic
// path's DS_HD functors in plain loops ("device" memory is host memory).
// It supports only what a CPU can replay: the ordered-fma GEMM (with or
// without TF32 rounding) and ordered sums, never cuBLAS or atomics.
// One thread at a time, like every DeviceOps.
#ifndef DRIFTSCOPE_ENGINE_CUDA_EMU_OPS_H_
#define DRIFTSCOPE_ENGINE_CUDA_EMU_OPS_H_

#include <memory>

#include "engine/cuda/device_ops.h"

namespace driftscope {

// tf32: round GEMM inputs to TF32 (matmul=tf32).
std::unique_ptr<dev::DeviceOps> NewEmulatedDeviceOps(bool tf32);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_EMU_OPS_H_
