#include "engine/optim/clip.h"

#include <cmath>
#include <cstdint>

namespace driftscope {
namespace {

// tf.maximum / tf.minimum propagate NaN from either operand.
template <typename T>
T MaxNan(T a, T b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) ? a : b;
  return a < b ? b : a;
}
template <typename T>
T MinNan(T a, T b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) ? a : b;
  return b < a ? b : a;
}

template <typename T>
T SumOfSquares(const T* g, int64_t n) {
  T s = T(0);
  for (int64_t i = 0; i < n; ++i) s += g[i] * g[i];
  return s;
}

}  // namespace

template <typename T>
void ClipByNormPerVariable(const std::vector<VariableSlice>& variables,
                           double clipnorm, T* grads) {
  const T c = static_cast<T>(clipnorm);
  for (const VariableSlice& v : variables) {
    T* g = grads + v.offset;
    const T l2sum = SumOfSquares(g, v.size);
    // TF's two-tap where: sqrt only of a positive sum; 0 and NaN pass as is.
    const T l2norm = l2sum > T(0) ? std::sqrt(l2sum) : l2sum;
    const T denom = MaxNan(l2norm, c);
    for (int64_t i = 0; i < v.size; ++i) g[i] = (g[i] * c) / denom;
  }
}

template <typename T>
void ClipByGlobalNorm(const std::vector<VariableSlice>& variables,
                      double global_clipnorm, T* grads) {
  T total = T(0);
  for (const VariableSlice& v : variables) {
    total += SumOfSquares(grads + v.offset, v.size);
  }
  const T norm = std::sqrt(total);
  const T inv_c = static_cast<T>(1.0 / global_clipnorm);
  T scale = static_cast<T>(global_clipnorm) * MinNan(T(1) / norm, inv_c);
  scale = scale + (norm - norm);
  for (const VariableSlice& v : variables) {
    T* g = grads + v.offset;
    for (int64_t i = 0; i < v.size; ++i) g[i] = g[i] * scale;
  }
}

template <typename T>
void ClipByValue(const std::vector<VariableSlice>& variables, double clipvalue,
                 T* grads) {
  const T hi = static_cast<T>(clipvalue);
  const T lo = static_cast<T>(-clipvalue);
  for (const VariableSlice& v : variables) {
    T* g = grads + v.offset;
    // clip_by_value is maximum(minimum(g, hi), lo).
    for (int64_t i = 0; i < v.size; ++i) g[i] = MaxNan(MinNan(g[i], hi), lo);
  }
}

template void ClipByNormPerVariable<float>(const std::vector<VariableSlice>&,
                                           double, float*);
template void ClipByNormPerVariable<double>(const std::vector<VariableSlice>&,
                                            double, double*);
template void ClipByGlobalNorm<float>(const std::vector<VariableSlice>&, double,
                                      float*);
template void ClipByGlobalNorm<double>(const std::vector<VariableSlice>&,
                                       double, double*);
template void ClipByValue<float>(const std::vector<VariableSlice>&, double,
                                 float*);
template void ClipByValue<double>(const std::vector<VariableSlice>&, double,
                                  double*);

}  // namespace driftscope
