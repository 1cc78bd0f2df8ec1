// Test hooks for CompareArrays (engine/drift/array_drift.h): which kernel a
// build uses, and the portable kernel on demand, so that tests can check
// that the SIMD and portable code give bit-for-bit the same results. Not part
// of the public interface. Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_INTERNAL_H_
#define DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_INTERNAL_H_

#include "absl/status/statusor.h"
#include "engine/core/ndarray.h"
#include "engine/drift/array_drift.h"

namespace driftscope {
namespace drift_internal {

// "avx2" when CompareArrays runs the AVX2 kernels, else "portable".
const char* KernelName();

// CompareArrays forced onto the portable kernels.
absl::StatusOr<ArrayDrift> CompareArraysPortable(
    const NdArray& a, const NdArray& ref, const DriftOptions& options = {});

}  // namespace drift_internal
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_INTERNAL_H_
