// ReadKerasFile in a build without HDF5 or libzip (client/CMakeLists.txt):
// says what to install instead of reading.
#include "absl/status/status.h"
#include "client/import/keras_file.h"

namespace driftscope {

absl::StatusOr<KerasFile> ReadKerasFile(const std::string& path) {
  return absl::FailedPreconditionError(
      path +
      ": this driftscope was built without HDF5 and libzip, so it cannot "
      "read Keras files (install libhdf5-dev and libzip-dev, e.g. with "
      "scripts/install-deps.sh, and rebuild)");
}

}  // namespace driftscope
