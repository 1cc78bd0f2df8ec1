// Loading the CUDA backend library (libdriftscope_cuda_backend.so, built from
// engine/cuda/*.cu whenever nvcc is found) with dlopen, only when a
// device=cuda profile runs: CPU-only hosts and start-up never map CUDA.
// Safe for concurrent use (the library handle and the device checks are
// cached under a mutex).
#ifndef DRIFTSCOPE_ENGINE_CUDA_CUDA_BACKEND_LOADER_H_
#define DRIFTSCOPE_ENGINE_CUDA_CUDA_BACKEND_LOADER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/cuda/device_ops.h"
#include "engine/numerics/profile.h"

namespace driftscope {

// Where the library is looked for, in order: $DRIFTSCOPE_CUDA_BACKEND (a
// path), next to the running executable, the build tree's copy, then the
// plain file name (the loader's search path).
std::vector<std::string> CudaBackendCandidates();

struct CudaBackendLibrary {
  std::string path;  // the candidate that loaded
  DriftscopeCudaBackendOpenFn open = nullptr;
};

// dlopens the first candidate that loads and finds its entry; the result is
// cached for the process. FailedPrecondition ("no CUDA device: the CUDA
// backend library could not be loaded: ...") listing every try.
absl::StatusOr<CudaBackendLibrary> LoadCudaBackendLibrary();

// A new ops table for the profile's device, GEMM, TF32 and atomics knobs.
// FailedPrecondition "no CUDA device: <reason>" without the library, a
// driver or a GPU (or with a bad device index); ResourceExhausted when the
// device has no memory left for the context.
absl::StatusOr<std::unique_ptr<dev::DeviceOps>> OpenCudaBackend(
    const Profile& profile);

// Whether OpenCudaBackend can succeed for the profile's device (checked once
// per device index and process; the answer is cached).
absl::Status CheckCudaDevice(const Profile& profile);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_CUDA_BACKEND_LOADER_H_
