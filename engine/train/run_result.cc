#include "engine/train/run_result.h"

#include "absl/strings/str_cat.h"
#include "engine/core/json_text.h"

namespace driftscope {
namespace {

// CUDA's encoding of driver and runtime versions: 1000 * major + 10 * minor.
std::string CudaVersion(int v) {
  return absl::StrCat(v / 1000, ".", (v % 1000) / 10);
}

// major * 10000 + minor * 100 + patch (cuBLAS; cuDNN 9 uses the same).
std::string Dotted(long v) {
  return absl::StrCat(v / 10000, ".", (v / 100) % 100, ".", v % 100);
}

}  // namespace

void AddDeviceRunEntries(const DeviceRunInfo& d,
                         std::map<std::string, std::string>* env) {
  if (d.backend.empty()) return;
  (*env)["device.backend"] = d.backend;
  if (!d.gpu_name.empty()) (*env)["device.gpu"] = d.gpu_name;
  if (d.compute_major > 0) {
    (*env)["device.compute_capability"] =
        absl::StrCat(d.compute_major, ".", d.compute_minor);
  }
  if (d.driver_version > 0) {
    (*env)["device.driver"] = CudaVersion(d.driver_version);
  }
  if (d.runtime_version > 0) {
    (*env)["device.runtime"] = CudaVersion(d.runtime_version);
  }
  if (d.cublas_version > 0) (*env)["device.cublas"] = Dotted(d.cublas_version);
  if (d.cudnn_version > 0) (*env)["device.cudnn"] = Dotted(d.cudnn_version);
  if (!d.math_mode.empty()) (*env)["device.math_mode"] = d.math_mode;
}

std::string DeviceRunJson(const DeviceRunInfo& d) {
  if (d.backend.empty()) return "null";
  return absl::StrCat(
      "{\"backend\":", JsonQuote(d.backend),
      ",\"gpu_name\":", JsonQuote(d.gpu_name), ",\"compute_capability\":",
      d.compute_major > 0
          ? JsonQuote(absl::StrCat(d.compute_major, ".", d.compute_minor))
          : "null",
      ",\"driver_version\":", d.driver_version,
      ",\"runtime_version\":", d.runtime_version,
      ",\"cublas_version\":", d.cublas_version,
      ",\"cudnn_version\":", d.cudnn_version,
      ",\"math_mode\":", JsonQuote(d.math_mode), "}");
}

}  // namespace driftscope
