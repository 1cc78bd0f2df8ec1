// Keras 3 gradient clipping (docs/numerics.md §7.2), applied in place to the
// gradients of all variables before an optimizer update. Pure functions.
//
// Every sum of squares runs sequentially over the elements of a variable in
// T (TF accumulates float32 norms in float32 too, but with Eigen's packet
// order, so fp32 norms can differ from TF's by an ulp or so); global norms
// add the per-variable sums in variable order.
#ifndef DRIFTSCOPE_ENGINE_OPTIM_CLIP_H_
#define DRIFTSCOPE_ENGINE_OPTIM_CLIP_H_

#include <vector>

#include "engine/optim/optimizer.h"

namespace driftscope {

// tf.clip_by_norm on each variable: g <- (g·c) / max(‖g‖₂, c). Applied even
// when ‖g‖₂ ≤ c (so g can move by an ulp); an all-zero gradient stays zero
// and a NaN norm makes the variable's gradient NaN, as in TF.
template <typename T>
void ClipByNormPerVariable(const std::vector<VariableSlice>& variables,
                           double clipnorm, T* grads);

// Keras clip_by_global_norm: n = sqrt(Σ_vars Σ g²),
// scale = c·min(1/n, 1/c) + (n − n), g <- g·scale. 1/c is evaluated in
// double and then rounded to T; an Inf or NaN norm turns every gradient NaN.
template <typename T>
void ClipByGlobalNorm(const std::vector<VariableSlice>& variables,
                      double global_clipnorm, T* grads);

// tf.clip_by_value(g, −v, v) elementwise; NaN stays NaN.
template <typename T>
void ClipByValue(const std::vector<VariableSlice>& variables, double clipvalue,
                 T* grads);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_OPTIM_CLIP_H_
