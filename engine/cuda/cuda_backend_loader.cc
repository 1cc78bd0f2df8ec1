#include "engine/cuda/cuda_backend_loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace driftscope {
namespace {

constexpr char kLibraryName[] = "libdriftscope_cuda_backend.so";

std::string ExecutableDir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

std::mutex& LoaderMutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}

absl::Status NoDevice(absl::string_view why) {
  return absl::FailedPreconditionError(absl::StrCat("no CUDA device: ", why));
}

}  // namespace

std::vector<std::string> CudaBackendCandidates() {
  std::vector<std::string> names;
  if (const char* env = std::getenv("DRIFTSCOPE_CUDA_BACKEND");
      env != nullptr && *env != '\0') {
    names.push_back(env);
  }
  const std::string dir = ExecutableDir();
  if (!dir.empty()) {
    names.push_back(absl::StrCat(dir, "/", kLibraryName));
    names.push_back(absl::StrCat(dir, "/../lib/", kLibraryName));
  }
#ifdef DRIFTSCOPE_CUDA_BACKEND_PATH
  names.push_back(DRIFTSCOPE_CUDA_BACKEND_PATH);
#endif
  names.push_back(kLibraryName);
  return names;
}

absl::StatusOr<CudaBackendLibrary> LoadCudaBackendLibrary() {
  std::lock_guard<std::mutex> lock(LoaderMutex());
  static CudaBackendLibrary* loaded = nullptr;
  if (loaded != nullptr) return *loaded;
  std::vector<std::string> errors;
  for (const std::string& name : CudaBackendCandidates()) {
    void* handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* e = dlerror();
      errors.push_back(e != nullptr ? e : name);
      continue;
    }
    void* entry = dlsym(handle, DRIFTSCOPE_CUDA_BACKEND_ENTRY);
    if (entry == nullptr) {
      errors.push_back(
          absl::StrCat(name, ": no symbol ", DRIFTSCOPE_CUDA_BACKEND_ENTRY));
      dlclose(handle);
      continue;
    }
    // Kept open for the life of the process: tables it made may outlive
    // any one caller.
    loaded = new CudaBackendLibrary{
        name, reinterpret_cast<DriftscopeCudaBackendOpenFn>(entry)};
    return *loaded;
  }
  return NoDevice(absl::StrCat(
      "the CUDA backend library could not be loaded (a build without nvcc "
      "has none; set DRIFTSCOPE_CUDA_BACKEND to its path): ",
      absl::StrJoin(errors, "; ")));
}

absl::StatusOr<std::unique_ptr<dev::DeviceOps>> OpenCudaBackend(
    const Profile& profile) {
  if (profile.device != Device::kCuda) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile '", profile.ToString(),
                     "' does not name a CUDA device (device=cuda:N)"));
  }
  absl::StatusOr<CudaBackendLibrary> lib = LoadCudaBackendLibrary();
  if (!lib.ok()) return lib.status();
  dev::DeviceConfig config;
  config.device_index = profile.device_index;
  config.cublas = profile.device_gemm == DeviceGemm::kCublas;
  config.tf32 = profile.matmul == MatmulInputs::kTf32;
  config.atomics = profile.nondet;
  dev::DeviceOps* ops = nullptr;
  char error[1024] = {};
  const int code = lib->open(dev::kDeviceOpsAbiVersion, &config, &ops, error,
                             static_cast<int>(sizeof(error)));
  if (code == static_cast<int>(dev::OpStatus::kOk) && ops != nullptr) {
    return std::unique_ptr<dev::DeviceOps>(ops);
  }
  if (code == static_cast<int>(dev::OpStatus::kOutOfMemory)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cuda:", profile.device_index, ": ", error));
  }
  return NoDevice(absl::StrCat("cuda:", profile.device_index, ": ", error));
}

absl::Status CheckCudaDevice(const Profile& profile) {
  static std::mutex* mu = new std::mutex;
  static auto* checked = new std::map<int, absl::Status>;
  {
    std::lock_guard<std::mutex> lock(*mu);
    auto it = checked->find(profile.device_index);
    if (it != checked->end()) return it->second;
  }
  absl::Status s = OpenCudaBackend(profile).status();
  std::lock_guard<std::mutex> lock(*mu);
  checked->emplace(profile.device_index, s);
  return s;
}

}  // namespace driftscope
