// What the CUDA runtime can see: used by the environment probe and by tests
// that need a GPU to decide whether to skip. Safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_CUDA_DEVICE_INFO_H_
#define DRIFTSCOPE_ENGINE_CUDA_DEVICE_INFO_H_

#include <string>
#include <vector>

namespace driftscope {

struct CudaDeviceInfo {
  std::string name;
  int compute_major = 0, compute_minor = 0;
  int sm_count = 0;
  long long memory_bytes = 0;
};

struct CudaInfo {
  bool compiled = false;    // this build has the CUDA backend
  int runtime_version = 0;  // cudaRuntimeGetVersion, 0 if unknown
  int driver_version = 0;   // cudaDriverGetVersion, 0 without a driver
  int cublas_version = 0;   // cublasGetProperty: major*10000+minor*100+patch
  long cudnn_version = 0;   // cudnnGetVersion(); 0 when not linked
  std::string error;        // why no device is usable, when none is
  std::vector<CudaDeviceInfo> devices;
};

// Never fails: without a driver or GPU, devices is empty and error says why.
CudaInfo ProbeCuda();

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_DEVICE_INFO_H_
