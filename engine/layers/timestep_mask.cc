#include "engine/layers/timestep_mask.h"

#include <cstring>

namespace driftscope {

bool ModelHasTimestepMask(const ModelSpec& model) {
  return model.mask_value.has_value() || EmbeddingMasksZero(model);
}

bool EmbeddingMasksZero(const ModelSpec& model) {
  return !model.layers.empty() &&
         model.layers.front().kind == LayerKind::kEmbedding &&
         model.layers.front().mask_zero;
}

template <typename T>
void ComputeTimestepMask(const ModelSpec& model, const T* x, int batch,
                         uint8_t* keep) {
  const int steps = model.timesteps, dim = model.features;
  if (EmbeddingMasksZero(model)) {  // Embedding: ops.not_equal(ids, 0)
    for (int64_t r = 0; r < int64_t{batch} * steps; ++r)
      keep[r] = x[r * dim] != T(0) ? 1 : 0;
    return;
  }
  const T mask_value = static_cast<T>(*model.mask_value);
  for (int64_t r = 0; r < int64_t{batch} * steps; ++r) {
    const T* row = x + r * dim;
    uint8_t any = 0;
    for (int d = 0; d < dim; ++d) any |= row[d] != mask_value ? 1 : 0;
    keep[r] = any;
  }
}

template <typename T>
void ApplyMasking(const T* x, const uint8_t* keep, int batch, int steps,
                  int dim, T* y) {
  for (int64_t r = 0; r < int64_t{batch} * steps; ++r) {
    if (keep[r] != 0) {
      if (y != x) std::memcpy(y + r * dim, x + r * dim, sizeof(T) * dim);
    } else {
      for (int d = 0; d < dim; ++d) y[r * dim + d] = T(0);
    }
  }
}

template void ComputeTimestepMask<float>(const ModelSpec&, const float*, int,
                                         uint8_t*);
template void ComputeTimestepMask<double>(const ModelSpec&, const double*, int,
                                          uint8_t*);
template void ApplyMasking<float>(const float*, const uint8_t*, int, int, int,
                                  float*);
template void ApplyMasking<double>(const double*, const uint8_t*, int, int, int,
                                   double*);

}  // namespace driftscope
