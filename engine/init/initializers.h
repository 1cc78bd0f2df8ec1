// Keras weight initializers (docs/numerics.md §4), seeded by Philox streams.
//
// Initial values are always drawn in float32, Keras' default floatx, and an
// fp64 run widens them exactly: ref64 and fp32 runs of one job start from the
// same weights, so their drift is numerics only. Pure functions.
#ifndef DRIFTSCOPE_ENGINE_INIT_INITIALIZERS_H_
#define DRIFTSCOPE_ENGINE_INIT_INITIALIZERS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "engine/job/job_spec.h"

namespace driftscope {

// Fills out[0 .. prod(shape)) with the initializer's values for a tensor of
// Keras shape `shape`, drawing from the TF-stateless stream (seed, stream):
// glorot_uniform: limit = sqrt(3·(1/max(1,(fan_in+fan_out)/2))) in double,
//   L = float32(limit), w = u·(L − (−L)) + (−L) in float32;
// orthogonal: N(0,1) float32 draws of the flat (max,min) shape, Householder
//   QR in double, Q·diag(sign(diag R)), transposed when rows < cols, times
//   gain, rounded to float32 once;
// zeros / ones: no draws; random_uniform / random_normal: TF's formulas.
absl::Status InitializeTensor(const InitializerSpec& init,
                              const std::vector<int64_t>& shape, uint64_t seed,
                              uint64_t stream, float* out);

// All weights of layer `layer_index` in Keras get_weights() order, as the
// layer's Keras constructor would build them (LSTM unit_forget_bias =
// [init(U), ones(U), init(2U)]; GRU reset_after bias (2,3U)). `shapes` are
// Layer::weights() shapes; out receives their concatenation.
absl::Status InitializeLayer(const LayerSpec& spec,
                             const std::vector<std::vector<int64_t>>& shapes,
                             uint64_t seed, int layer_index,
                             std::vector<float>* out);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_INIT_INITIALIZERS_H_
