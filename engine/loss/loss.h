// Losses with Keras' sum_over_batch_size reduction (docs/numerics.md §6).
// pred and target are `rows` × `last_dim`, rows = B·T for sequence outputs,
// B otherwise. Pure functions; sums run in a fixed sequential order.
#ifndef DRIFTSCOPE_ENGINE_LOSS_LOSS_H_
#define DRIFTSCOPE_ENGINE_LOSS_LOSS_H_

#include <cstdint>

#include "engine/job/job_spec.h"

namespace driftscope {

// Keras' two stages: mean over the last axis, then sum over rows / rows.
template <typename T>
T LossForward(LossKind kind, const T* pred, const T* target, int64_t rows,
              int last_dim);

// dpred = ∂loss/∂pred in TF's backward op order (MSE: (1/rows)/last_dim
// times 2·(pred − target)).
template <typename T>
void LossBackward(LossKind kind, const T* pred, const T* target, int64_t rows,
                  int last_dim, T* dpred);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_LOSS_LOSS_H_
