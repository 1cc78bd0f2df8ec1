// ProbeCuda for builds without the CUDA backend.
#ifndef DRIFTSCOPE_HAVE_CUDA
#include "engine/cuda/device_info.h"

namespace driftscope {

CudaInfo ProbeCuda() {
  CudaInfo info;
  info.error = "built without CUDA (DRIFTSCOPE_CUDA=OFF)";
  return info;
}

}  // namespace driftscope
#endif
