// The CUDA libraries are opened by the device probe, never at start: a
// binary built with CUDA starts without them and runs on hosts without them.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/cuda/device_info.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr const char* kChildVariable = "DRIFTSCOPE_CUDA_LOADING_CHILD";

// The mapped files of this process whose names mention a CUDA library.
std::string MappedCudaLibraries() {
  std::ifstream maps("/proc/self/maps");
  std::string line, found;
  while (std::getline(maps, line)) {
    for (const char* lib : {"libcudart", "libcublas", "libcudnn"}) {
      if (line.find(lib) != std::string::npos) {
        absl::StrAppend(&found, line, "\n");
        break;
      }
    }
  }
  return found;
}

// Runs this test binary with only `test` (a DISABLED_ helper) and `env`
// (VAR=value, may be empty) and returns its output; *status gets the exit.
std::string RunChild(const std::string& test, const std::string& env,
                     int* status) {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "cannot read /proc/self/exe";
  self[n] = '\0';
  const std::string command = absl::StrCat(
      "env ", kChildVariable, "=1 ", env, " '", self, "' --gtest_filter=", test,
      " --gtest_also_run_disabled_tests 2>&1");
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return "popen failed";
  std::string out;
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, got);
  *status = ::pclose(p);
  return out;
}

// Run by StartMapsNoCudaLibrary in a fresh process: nothing has probed yet.
TEST(CudaLoadingTest, DISABLED_ChildStartsWithoutCudaLibraries) {
  if (std::getenv(kChildVariable) == nullptr) GTEST_SKIP() << "a helper";
  EXPECT_THAT(MappedCudaLibraries(), IsEmpty());
  // The probe opens them; cuBLAS (with cuBLASLt, ~60 MiB resident) is not
  // kept open. (cuDNN's libcudnn_graph stays: glibc cannot unload it.)
  const CudaInfo info = ProbeCuda();
  std::printf("probed cuBLAS %d, cuDNN %ld\n", info.cublas_version,
              info.cudnn_version);
  EXPECT_THAT(MappedCudaLibraries(), Not(HasSubstr("libcublas")));
}

TEST(CudaLoadingTest, StartMapsNoCudaLibrary) {
  int status = -1;
  const std::string out = RunChild(
      "CudaLoadingTest.DISABLED_ChildStartsWithoutCudaLibraries", "", &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_THAT(out, HasSubstr("[  PASSED  ] 1 test")) << out;
}

// The coordinator links the same engine: `ldd` must not list the libraries.
TEST(CudaLoadingTest, CoordinatorDoesNotLinkCudaLibraries) {
  const std::string binary =
      absl::StrCat(DRIFTSCOPE_BINARY_DIR, "/server/driftscope-coordinator");
  if (access(binary.c_str(), X_OK) != 0) {
    GTEST_SKIP() << binary << " is not built";
  }
  FILE* p = ::popen(absl::StrCat("ldd '", binary, "' 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, got);
  ASSERT_EQ(::pclose(p), 0) << out;
  EXPECT_THAT(out, HasSubstr("libc.so"));  // ldd did list the libraries
  EXPECT_THAT(out, Not(HasSubstr("libcudart")));
  EXPECT_THAT(out, Not(HasSubstr("libcublas")));
  EXPECT_THAT(out, Not(HasSubstr("libcudnn")));
}

TEST(CudaProbeTest, MissingLibrariesReportNoDeviceWithoutFailing) {
  CudaLibraryNames missing;
  missing.cudart = {"libdriftscope-no-such-cudart.so"};
  missing.cublas = {"libdriftscope-no-such-cublas.so"};
  missing.cudnn = {"libdriftscope-no-such-cudnn.so"};
  const CudaInfo info = ProbeCuda(missing);
#ifdef DRIFTSCOPE_HAVE_CUDA
  EXPECT_TRUE(info.compiled);
  EXPECT_THAT(info.error, HasSubstr("libdriftscope-no-such-cudart.so"));
#else
  EXPECT_FALSE(info.compiled);
  EXPECT_THAT(info.error, HasSubstr("DRIFTSCOPE_CUDA=OFF"));
#endif
  EXPECT_THAT(info.devices, IsEmpty());
  EXPECT_EQ(info.runtime_version, 0);
  EXPECT_EQ(info.cublas_version, 0);
  EXPECT_EQ(info.cudnn_version, 0);
}

// Run by HiddenGpusReportNoDevice with CUDA_VISIBLE_DEVICES empty.
TEST(CudaProbeTest, DISABLED_ChildProbesWithGpusHidden) {
  if (std::getenv(kChildVariable) == nullptr) GTEST_SKIP() << "a helper";
  const CudaInfo info = ProbeCuda();
  EXPECT_THAT(info.devices, IsEmpty());
  EXPECT_THAT(info.error, Not(IsEmpty()));
  std::printf("probe error: %s\n", info.error.c_str());
}

TEST(CudaProbeTest, HiddenGpusReportNoDevice) {
  int status = -1;
  const std::string out =
      RunChild("CudaProbeTest.DISABLED_ChildProbesWithGpusHidden",
               "CUDA_VISIBLE_DEVICES=", &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_THAT(out, HasSubstr("[  PASSED  ] 1 test")) << out;
}

// With a GPU, every device is described (the driver-API path).
TEST(CudaProbeTest, DevicesAreDescribed) {
  const CudaInfo info = ProbeCuda();
  if (info.devices.empty()) GTEST_SKIP() << "no GPU: " << info.error;
  EXPECT_GT(info.runtime_version, 0);
  EXPECT_GT(info.driver_version, 0);
  for (const CudaDeviceInfo& d : info.devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GE(d.compute_major, 3);
    EXPECT_GT(d.sm_count, 0);
    EXPECT_GT(d.memory_bytes, 0);
  }
}

}  // namespace
}  // namespace driftscope
