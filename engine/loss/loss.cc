// MSE and MAE with Keras' sum_over_batch_size (docs/numerics.md §6), in the
// op order TF runs forward and backward: per-row mean over the last axis
// (sum, then divide by last_dim), sum of the row means, divide_no_nan by
// rows; backward 1/rows → /last_dim → Square/Abs grad → negate (the
// subtraction is y_true − y_pred). Sums are sequential in T; TF's Eigen
// reductions use packet order, so fp32 sums can differ from TF by an ulp.
#include "engine/loss/loss.h"

#include <cmath>

namespace driftscope {
namespace {

template <typename T>
T Sign(T x) {  // tf.sign: NaN stays NaN, ±0 gives 0
  if (std::isnan(x)) return x;
  return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
}

// Keras' apply_mask weight of a kept row: total / valid (divide_no_nan).
template <typename T>
T KeptRowWeight(const uint8_t* keep, int64_t rows) {
  int64_t valid = 0;
  for (int64_t r = 0; r < rows; ++r) valid += keep[r] != 0 ? 1 : 0;
  return valid == 0 ? T(0) : static_cast<T>(rows) / static_cast<T>(valid);
}

// One output's loss: columns [col0, col0 + width) of rows of `stride`,
// rows weighted by the timestep mask `keep` when there is one.
template <typename T>
T OutputLoss(LossKind kind, const T* pred, const T* target, int64_t rows,
             int stride, int col0, int width, const uint8_t* keep) {
  const T dim = static_cast<T>(width);
  const T weight = keep == nullptr ? T(1) : KeptRowWeight<T>(keep, rows);
  T total = T(0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = pred + r * stride + col0;
    const T* y = target + r * stride + col0;
    T row = T(0);
    for (int j = 0; j < width; ++j) {
      const T e = y[j] - p[j];
      row += kind == LossKind::kMse ? e * e : std::fabs(e);
    }
    if (keep == nullptr) {
      total += row / dim;
    } else {
      total += (row / dim) * (keep[r] != 0 ? weight : T(0));
    }
  }
  return rows == 0 ? T(0) : total / static_cast<T>(rows);
}

}  // namespace

template <typename T>
T LossForward(LossKind kind, const T* pred, const T* target, int64_t rows,
              int last_dim, int outputs, const uint8_t* keep) {
  const int width = last_dim / outputs;
  T total = OutputLoss(kind, pred, target, rows, last_dim, 0, width, keep);
  for (int o = 1; o < outputs; ++o) {
    total +=
        OutputLoss(kind, pred, target, rows, last_dim, o * width, width, keep);
  }
  return total;
}

template <typename T>
void LossBackward(LossKind kind, const T* pred, const T* target, int64_t rows,
                  int last_dim, T* dpred, int outputs, const uint8_t* keep) {
  // divide_no_nan's gradient: 0 when there are no rows. Each output's
  // loss divides by its own width.
  const T g_row = rows == 0 ? T(0) : T(1) / static_cast<T>(rows);
  const T width = static_cast<T>(last_dim / outputs);
  const T weight = keep == nullptr ? T(1) : KeptRowWeight<T>(keep, rows);
  for (int64_t r = 0; r < rows; ++r) {
    T g = g_row / width;
    if (keep != nullptr) {
      g = (g_row * (keep[r] != 0 ? weight : T(0))) / width;
    }
    for (int j = 0; j < last_dim; ++j) {
      const int64_t i = r * last_dim + j;
      const T e = target[i] - pred[i];
      const T de = kind == LossKind::kMse ? g * (e * T(2)) : g * Sign(e);
      dpred[i] = -de;
    }
  }
}

template float LossForward<float>(LossKind, const float*, const float*, int64_t,
                                  int, int, const uint8_t*);
template double LossForward<double>(LossKind, const double*, const double*,
                                    int64_t, int, int, const uint8_t*);
template void LossBackward<float>(LossKind, const float*, const float*, int64_t,
                                  int, float*, int, const uint8_t*);
template void LossBackward<double>(LossKind, const double*, const double*,
                                   int64_t, int, double*, int, const uint8_t*);

}  // namespace driftscope
