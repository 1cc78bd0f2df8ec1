// MSE and MAE with Keras' sum_over_batch_size on the device, in the CPU
// engine's op order (engine/loss/loss.h): per-row mean over the last axis
// (one thread per row, sequential), then ONE thread adds the row means in
// row order and divides by the row count: a fixed order a CPU replays.
#ifndef DRIFTSCOPE_ENGINE_CUDA_LOSS_KERNELS_H_
#define DRIFTSCOPE_ENGINE_CUDA_LOSS_KERNELS_H_

#include "engine/cuda/ds_hd.h"

namespace driftscope {
namespace dev {

enum LossCode : int { kLossMse = 0, kLossMae = 1 };  // = driftscope::LossKind

DS_HD float Abs(float x) { return BitsFloat(FloatBits(x) & 0x7fffffffu); }

struct LossRowsArgs {
  int kind = kLossMse;
  const float* pred = nullptr;
  const float* target = nullptr;
  int64_t rows = 0;
  int dim = 0;
  float* row_means = nullptr;
  DS_HD void operator()(int64_t r) const {
    float s = 0.0f;
    for (int j = 0; j < dim; ++j) {
      const float e = Sub(target[r * dim + j], pred[r * dim + j]);
      s = Add(s, kind == kLossMse ? Mul(e, e) : Abs(e));
    }
    row_means[r] = Div(s, static_cast<float>(dim));
  }
  int64_t size() const { return rows; }
};

// One thread: loss = (Σ_r row_means[r]) / rows.
struct LossTotalArgs {
  const float* row_means = nullptr;
  int64_t rows = 0;
  float* loss = nullptr;
  DS_HD void operator()(int64_t) const {
    float total = 0.0f;
    for (int64_t r = 0; r < rows; ++r) total = Add(total, row_means[r]);
    *loss = rows == 0 ? 0.0f : Div(total, static_cast<float>(rows));
  }
  int64_t size() const { return 1; }
};

// dpred = −(g · ∂|e|ᵖ/∂e), e = target − pred, g = (1/rows)/dim (computed by
// the caller in float, as TF's backward does).
struct LossGradArgs {
  int kind = kLossMse;
  const float* pred = nullptr;
  const float* target = nullptr;
  int64_t n = 0;
  float g = 0.0f;
  float* dpred = nullptr;
  DS_HD void operator()(int64_t i) const {
    const float e = Sub(target[i], pred[i]);
    float de;
    if (kind == kLossMse) {
      de = Mul(g, Mul(e, 2.0f));
    } else {
      const float s =
          IsNan(e) ? e : (e > 0.0f ? 1.0f : (e < 0.0f ? -1.0f : 0.0f));
      de = Mul(g, s);
    }
    dpred[i] = -de;
  }
  int64_t size() const { return n; }
};

}  // namespace dev
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_LOSS_KERNELS_H_
