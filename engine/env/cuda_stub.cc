// ProbeCuda for builds without the CUDA backend.
#ifndef DRIFTSCOPE_HAVE_CUDA
#include "engine/cuda/device_info.h"

namespace driftscope {

CudaLibraryNames DefaultCudaLibraryNames() { return {}; }

CudaInfo ProbeCuda(const CudaLibraryNames&) {
  CudaInfo info;
  info.error = "built without CUDA (DRIFTSCOPE_CUDA=OFF)";
  return info;
}

CudaInfo ProbeCuda() { return ProbeCuda(CudaLibraryNames()); }

}  // namespace driftscope
#endif
