#include <cuda_runtime.h>

#include "engine/cuda/device_info.h"

namespace driftscope {

CudaInfo ProbeCuda() {
  CudaInfo info;
  info.compiled = true;
  cudaRuntimeGetVersion(&info.runtime_version);
  cudaDriverGetVersion(&info.driver_version);
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
