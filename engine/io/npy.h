// NumPy .npy files (format versions 1.0-3.0): float32/float64, little endian,
// C order. Anything else is rejected with a message saying what was found
// and what to do. Pure functions.
#ifndef DRIFTSCOPE_ENGINE_IO_NPY_H_
#define DRIFTSCOPE_ENGINE_IO_NPY_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/core/ndarray.h"

namespace driftscope {

absl::StatusOr<NdArray> ParseNpy(absl::string_view bytes);
std::string SerializeNpy(const NdArray& array);  // format 1.0

// NotFound for a missing file; InvalidArgument (with the path) for bad
// content.
absl::StatusOr<NdArray> ReadNpy(const std::string& path);
// ReadNpy that also takes little-endian int32 and int64 files (token ids),
// converted to float64 (exact below 2^53); float files read as ReadNpy
// reads them.
absl::StatusOr<NdArray> ReadNpyIntegers(const std::string& path);
// Writes to path + ".tmp" then renames, so readers never see half a file.
absl::Status WriteNpy(const std::string& path, const NdArray& array);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_IO_NPY_H_
