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

// One output's loss: columns [col0, col0 + width) of rows of `stride`.
template <typename T>
T OutputLoss(LossKind kind, const T* pred, const T* target, int64_t rows,
             int stride, int col0, int width) {
  const T dim = static_cast<T>(width);
  T total = T(0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = pred + r * stride + col0;
    const T* y = target + r * stride + col0;
    T row = T(0);
    for (int j = 0; j < width; ++j) {
      const T e = y[j] - p[j];
      row += kind == LossKind::kMse ? e * e : std::fabs(e);
    }
    total += row / dim;
  }
  return rows == 0 ? T(0) : total / static_cast<T>(rows);
}

}  // namespace

template <typename T>
T LossForward(LossKind kind, const T* pred, const T* target, int64_t rows,
              int last_dim, int outputs) {
  const int width = last_dim / outputs;
  T total = OutputLoss(kind, pred, target, rows, last_dim, 0, width);
  for (int o = 1; o < outputs; ++o) {
    total += OutputLoss(kind, pred, target, rows, last_dim, o * width, width);
  }
  return total;
}

template <typename T>
void LossBackward(LossKind kind, const T* pred, const T* target, int64_t rows,
                  int last_dim, T* dpred, int outputs) {
  // divide_no_nan's gradient: 0 when there are no rows. Each output's
  // loss divides by its own width.
  const T g_row = rows == 0 ? T(0) : T(1) / static_cast<T>(rows);
  const T g = g_row / static_cast<T>(last_dim / outputs);
  const int64_t n = rows * last_dim;
  for (int64_t i = 0; i < n; ++i) {
    const T e = target[i] - pred[i];
    const T de = kind == LossKind::kMse ? g * (e * T(2)) : g * Sign(e);
    dpred[i] = -de;
  }
}

template float LossForward<float>(LossKind, const float*, const float*, int64_t,
                                  int, int);
template double LossForward<double>(LossKind, const double*, const double*,
                                    int64_t, int, int);
template void LossBackward<float>(LossKind, const float*, const float*, int64_t,
                                  int, float*, int);
template void LossBackward<double>(LossKind, const double*, const double*,
                                   int64_t, int, double*, int);

}  // namespace driftscope
