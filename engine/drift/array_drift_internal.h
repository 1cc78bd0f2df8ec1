// Test hooks for CompareArrays (engine/drift/array_drift.h): which kernels a
// build and CPU can run, and CompareArrays forced onto one of them, so that
// tests can check that every kernel gives bit-for-bit the same results. Not
// part of the public interface. Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_INTERNAL_H_
#define DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_INTERNAL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/core/ndarray.h"
#include "engine/drift/array_drift.h"

namespace driftscope {
namespace drift_internal {

// The kernel CompareArrays runs: "avx512", "avx2" or "portable".
const char* KernelName();

// The kernels this build can run on this CPU, best first; "portable" is
// always last.
std::vector<std::string> KernelNames();

// CompareArrays on the named kernel; InvalidArgument when this build or CPU
// cannot run it.
absl::StatusOr<ArrayDrift> CompareArraysWithKernel(const NdArray& a,
                                                   const NdArray& ref,
                                                   const DriftOptions& options,
                                                   absl::string_view kernel);

// CompareArrays forced onto the portable kernels.
absl::StatusOr<ArrayDrift> CompareArraysPortable(
    const NdArray& a, const NdArray& ref, const DriftOptions& options = {});

}  // namespace drift_internal
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_INTERNAL_H_
