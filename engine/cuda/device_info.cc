// The GPU part of the environment probe. The CUDA libraries are opened with
// dlopen when the probe runs, never linked: a binary built with CUDA starts
// without mapping ~600 MB of cuBLAS/cuDNN and runs on hosts without them.
// Only the toolkit headers are used here, for types and version numbers.
#include "engine/cuda/device_info.h"

#include <cublas_api.h>
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#ifdef DRIFTSCOPE_HAVE_CUDNN
#include <cudnn_version.h>
#endif

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace driftscope {
namespace {

// Opens the first library of `names` that loads; empty `error` on success.
void* OpenFirst(const std::vector<std::string>& names, std::string* error) {
  std::vector<std::string> errors;
  for (const std::string& name : names) {
    if (void* handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      return handle;
    }
    const char* e = dlerror();
    errors.push_back(e != nullptr ? e : name);
  }
  *error = absl::StrJoin(errors, "; ");
  return nullptr;
}

// dlsym typed as `Fn`, the type of the header's declaration.
template <typename Fn>
Fn* Symbol(void* handle, const char* name) {
  return reinterpret_cast<Fn*>(dlsym(handle, name));
}

// The soname of the build's major version first, then the unversioned name,
// then the toolkit's own directory (hosts where it is not in the ld cache).
std::vector<std::string> Candidates(absl::string_view stem, int major,
                                    absl::string_view dir) {
  std::vector<std::string> names;
  if (major > 0) names.push_back(absl::StrCat(stem, ".so.", major));
  names.push_back(absl::StrCat(stem, ".so"));
  if (!dir.empty() && major > 0) {
    names.push_back(absl::StrCat(dir, "/", stem, ".so.", major));
  }
  return names;
}

int CublasVersion(void* cublas) {
  auto* get = Symbol<decltype(cublasGetProperty)>(cublas, "cublasGetProperty");
  int major = 0, minor = 0, patch = 0;
  if (get != nullptr && get(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      get(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      get(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS) {
    return major * 10000 + minor * 100 + patch;
  }
  return 0;
}

long CudnnVersion(void* cudnn) {
  // size_t cudnnGetVersion(void), stable since cuDNN 1.
  auto* get = Symbol<size_t()>(cudnn, "cudnnGetVersion");
  return get != nullptr ? static_cast<long>(get()) : 0;
}

// Name, compute capability, SMs and memory through the driver API, whose
// calls take no versioned structs (cudaDeviceProp changes between majors).
void DescribeDevices(int count, CudaInfo* info) {
  std::string error;
  void* driver = OpenFirst({"libcuda.so.1", "libcuda.so"}, &error);
  if (driver == nullptr) {
    info->error = absl::StrCat("CUDA driver library not found: ", error);
    return;
  }
  auto* init = Symbol<decltype(cuInit)>(driver, "cuInit");
  auto* get = Symbol<decltype(cuDeviceGet)>(driver, "cuDeviceGet");
  auto* name = Symbol<decltype(cuDeviceGetName)>(driver, "cuDeviceGetName");
  auto* attribute =
      Symbol<decltype(cuDeviceGetAttribute)>(driver, "cuDeviceGetAttribute");
  auto* memory =
      Symbol<decltype(cuDeviceTotalMem_v2)>(driver, "cuDeviceTotalMem_v2");
  if (init == nullptr || get == nullptr || name == nullptr ||
      attribute == nullptr || memory == nullptr || init(0) != CUDA_SUCCESS) {
    info->error = "CUDA driver library lacks the device queries";
    return;
  }
  for (int i = 0; i < count; ++i) {
    CUdevice device;
    char buffer[256] = {};
    CudaDeviceInfo d;
    size_t bytes = 0;
    if (get(&device, i) != CUDA_SUCCESS ||
        name(buffer, sizeof(buffer) - 1, device) != CUDA_SUCCESS ||
        attribute(&d.compute_major,
                  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                  device) != CUDA_SUCCESS ||
        attribute(&d.compute_minor,
                  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                  device) != CUDA_SUCCESS ||
        attribute(&d.sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                  device) != CUDA_SUCCESS ||
        memory(&bytes, device) != CUDA_SUCCESS) {
      continue;
    }
    d.name = buffer;
    d.memory_bytes = static_cast<long long>(bytes);
    info->devices.push_back(d);
  }
  if (info->devices.empty()) {
    info->error = "no CUDA device answered the driver's queries";
  }
}

}  // namespace

CudaLibraryNames DefaultCudaLibraryNames() {
  CudaLibraryNames names;
  names.cudart = Candidates("libcudart", CUDART_VERSION / 1000,
                            DRIFTSCOPE_CUDA_LIBRARY_DIR);
  names.cublas =
      Candidates("libcublas", CUBLAS_VER_MAJOR, DRIFTSCOPE_CUDA_LIBRARY_DIR);
#ifdef DRIFTSCOPE_HAVE_CUDNN
  names.cudnn = Candidates("libcudnn", CUDNN_MAJOR, DRIFTSCOPE_CUDNN_DIR);
#else
  names.cudnn = Candidates("libcudnn", 0, "");
#endif
  return names;
}

CudaInfo ProbeCuda(const CudaLibraryNames& libraries) {
  CudaInfo info;
  info.compiled = true;
  // cuBLAS and cuDNN only report versions: closed again at once so that
  // their hundreds of MB do not stay mapped in a long-running daemon.
  std::string error;
  if (void* cublas = OpenFirst(libraries.cublas, &error)) {
    info.cublas_version = CublasVersion(cublas);
    dlclose(cublas);
  }
  if (void* cudnn = OpenFirst(libraries.cudnn, &error)) {
    info.cudnn_version = CudnnVersion(cudnn);
    dlclose(cudnn);
  }
  // The runtime stays loaded: once initialized it owns driver state.
  void* cudart = OpenFirst(libraries.cudart, &error);
  if (cudart == nullptr) {
    info.error = absl::StrCat("CUDA runtime library not found: ", error);
    return info;
  }
  auto* runtime_version =
      Symbol<decltype(cudaRuntimeGetVersion)>(cudart, "cudaRuntimeGetVersion");
  auto* driver_version =
      Symbol<decltype(cudaDriverGetVersion)>(cudart, "cudaDriverGetVersion");
  auto* device_count =
      Symbol<decltype(cudaGetDeviceCount)>(cudart, "cudaGetDeviceCount");
  auto* error_string =
      Symbol<decltype(cudaGetErrorString)>(cudart, "cudaGetErrorString");
  if (runtime_version == nullptr || driver_version == nullptr ||
      device_count == nullptr || error_string == nullptr) {
    info.error = "CUDA runtime library lacks cudaGetDeviceCount";
    return info;
  }
  runtime_version(&info.runtime_version);
  driver_version(&info.driver_version);
  int count = 0;
  cudaError_t err = device_count(&count);
  if (err != cudaSuccess) {
    info.error = error_string(err);
    return info;
  }
  if (count == 0) {
    info.error = "no CUDA device";
    return info;
  }
  DescribeDevices(count, &info);
  return info;
}

CudaInfo ProbeCuda() { return ProbeCuda(DefaultCudaLibraryNames()); }

}  // namespace driftscope
