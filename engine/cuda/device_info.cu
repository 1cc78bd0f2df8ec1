#include <cublas_v2.h>
#include <cuda_runtime.h>
#ifdef DRIFTSCOPE_HAVE_CUDNN
#include <cudnn.h>
#endif

#include "engine/cuda/device_info.h"

namespace driftscope {

CudaInfo ProbeCuda() {
  CudaInfo info;
  info.compiled = true;
  cudaRuntimeGetVersion(&info.runtime_version);
  cudaDriverGetVersion(&info.driver_version);
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS) {
    info.cublas_version = major * 10000 + minor * 100 + patch;
  }
#ifdef DRIFTSCOPE_HAVE_CUDNN
  info.cudnn_version = static_cast<long>(cudnnGetVersion());
#endif
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    info.error = cudaGetErrorString(err);
    return info;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    CudaDeviceInfo d;
    d.name = prop.name;
    d.compute_major = prop.major;
    d.compute_minor = prop.minor;
    d.sm_count = prop.multiProcessorCount;
    d.memory_bytes = static_cast<long long>(prop.totalGlobalMem);
    info.devices.push_back(d);
  }
  if (count == 0) info.error = "no CUDA device";
  return info;
}

}  // namespace driftscope
