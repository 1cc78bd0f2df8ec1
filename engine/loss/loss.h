// Losses with Keras' sum_over_batch_size reduction (docs/numerics.md §6).
// pred and target are `rows` × `last_dim`, rows = B·T for sequence outputs,
// B otherwise. Pure functions; sums run in a fixed sequential order.
#ifndef DRIFTSCOPE_ENGINE_LOSS_LOSS_H_
#define DRIFTSCOPE_ENGINE_LOSS_LOSS_H_

#include <cstdint>

#include "engine/job/job_spec.h"

namespace driftscope {

// Keras' two stages: mean over the last axis, then sum over rows / rows.
// With `outputs` > 1 (a model with several Keras outputs kept side by side,
// ModelOutputCount), the last axis holds that many equal parts, each one
// output: the loss is the sum of the parts' losses, in order, as Keras sums
// the losses of a multi-output model. With a timestep mask `keep` (one byte
// per row, 0 = skipped; the model's output_mask()), Keras' apply_mask: kept
// rows weigh total/valid (divide_no_nan: 0 when no row is kept), skipped
// rows 0, so each output's loss is the mean over the kept rows, and 0 when
// none is kept.
template <typename T>
T LossForward(LossKind kind, const T* pred, const T* target, int64_t rows,
              int last_dim, int outputs = 1, const uint8_t* keep = nullptr);

// dpred = ∂loss/∂pred in TF's backward op order (MSE: (1/rows)/last_dim
// times 2·(pred − target); with several outputs, last_dim is a part's; with
// `keep`, (1/rows)·weight instead of 1/rows).
template <typename T>
void LossBackward(LossKind kind, const T* pred, const T* target, int64_t rows,
                  int last_dim, T* dpred, int outputs = 1,
                  const uint8_t* keep = nullptr);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_LOSS_LOSS_H_
