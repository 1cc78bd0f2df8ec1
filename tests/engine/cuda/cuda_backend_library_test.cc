// The CUDA backend library is built whenever nvcc is found; without a GPU it
// still loads (only runtime calls fail) and exposes its one entry, and
// opening a device reports why it cannot instead of crashing.
#include <dlfcn.h>

#include <string>

#include "engine/cuda/cuda_backend_loader.h"
#include "engine/cuda/device_ops.h"
#include "engine/numerics/profile.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

#ifdef DRIFTSCOPE_HAVE_CUDA
TEST(CudaBackendLibraryTest, LoadsAndExposesItsEntryWithoutAGpu) {
  absl::StatusOr<CudaBackendLibrary> lib = LoadCudaBackendLibrary();
  ASSERT_TRUE(lib.ok()) << lib.status();
  EXPECT_THAT(lib->path, HasSubstr("libdriftscope_cuda_backend.so"));
  ASSERT_NE(lib->open, nullptr);
  // Only the entry is exported: every other symbol is hidden.
  void* handle = dlopen(lib->path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(handle, nullptr);
  EXPECT_NE(dlsym(handle, DRIFTSCOPE_CUDA_BACKEND_ENTRY), nullptr);
  EXPECT_EQ(dlsym(handle, "_ZN10driftscope3dev3ExpEf"), nullptr);
  dlclose(handle);
}

TEST(CudaBackendLibraryTest, RefusesAnEngineOfAnotherAbi) {
  absl::StatusOr<CudaBackendLibrary> lib = LoadCudaBackendLibrary();
  ASSERT_TRUE(lib.ok()) << lib.status();
  dev::DeviceConfig config;
  dev::DeviceOps* ops = nullptr;
  char error[256] = {};
  const int code = lib->open(dev::kDeviceOpsAbiVersion + 1, &config, &ops,
                             error, sizeof(error));
  EXPECT_EQ(code, static_cast<int>(dev::OpStatus::kUnsupported));
  EXPECT_EQ(ops, nullptr);
  EXPECT_THAT(std::string(error), HasSubstr("rebuild them together"));
}

TEST(CudaBackendLibraryTest, OpeningADeviceGivesTheReasonOrAWorkingTable) {
  const Profile cuda = *Profile::Parse("cuda");
  absl::StatusOr<std::unique_ptr<dev::DeviceOps>> ops = OpenCudaBackend(cuda);
  if (ops.ok()) {
    // A GPU host: the table says what it is.
    EXPECT_STREQ((*ops)->description().backend, "cuda");
    EXPECT_GT((*ops)->description().compute_major, 0);
    return;
  }
  EXPECT_EQ(ops.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(ops.status().message(), HasSubstr("no CUDA device: cuda:0: "));
  // A device index beyond any host's is refused the same way.
  const Profile far = *Profile::Parse("fp32,device=cuda:63");
  EXPECT_EQ(OpenCudaBackend(far).status().code(),
            absl::StatusCode::kFailedPrecondition);
}
#else
TEST(CudaBackendLibraryTest, ABuildWithoutNvccHasNoLibraryAndSaysSo) {
  absl::StatusOr<CudaBackendLibrary> lib = LoadCudaBackendLibrary();
  if (lib.ok()) GTEST_SKIP() << "a backend library was found at " << lib->path;
  EXPECT_EQ(lib.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(lib.status().message(), HasSubstr("no CUDA device"));
}
#endif

}  // namespace
}  // namespace driftscope
