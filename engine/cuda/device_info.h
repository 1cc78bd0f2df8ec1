// What the CUDA runtime can see: used by the environment probe and by tests
// that need a GPU to decide whether to skip. The CUDA libraries are opened
// (dlopen) only when ProbeCuda runs, never linked into the binaries.
// Safe for concurrent use.
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
  long cudnn_version = 0;   // cudnnGetVersion(); 0 when not found
  std::string error;        // why no device is usable, when none is
  std::vector<CudaDeviceInfo> devices;
};

// Library file names to try in order (dlopen: sonames or paths).
struct CudaLibraryNames {
  std::vector<std::string> cudart, cublas, cudnn;
};

// The build's majors first (libcudart.so.13), then unversioned names, then
// the toolkit's directory. Empty lists in a build without CUDA.
CudaLibraryNames DefaultCudaLibraryNames();

// Never fails: without the libraries, a driver or a GPU, devices is empty
// and error says why. cuBLAS and cuDNN are closed again after their version
// is read; the CUDA runtime stays loaded.
CudaInfo ProbeCuda(const CudaLibraryNames& libraries);
CudaInfo ProbeCuda();  // with DefaultCudaLibraryNames()

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_DEVICE_INFO_H_
