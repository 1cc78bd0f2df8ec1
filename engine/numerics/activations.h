// Elementwise activation functions and their derivatives, as kernels over
// plain arrays.
//
// Every function is reached through an ActivationKernels table of function
// pointers, so that a later "activations" profile knob (libm vs fast
// approximations vs GPU-style intrinsics, DESIGN §6) can hand the layers a
// different table without touching the layer math. The table returned here
// is the "libm" implementation: sigmoid = 1/(1+exp(−x)) and tanh = std::tanh,
// evaluated in T. Derivatives are expressed in terms of the activation's
// OUTPUT y, as TensorFlow's SigmoidGrad/TanhGrad kernels do
// (docs/numerics.md §9). Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_NUMERICS_ACTIVATIONS_H_
#define DRIFTSCOPE_ENGINE_NUMERICS_ACTIVATIONS_H_

#include <cstdint>

#include "engine/job/job_spec.h"

namespace driftscope {

template <typename T>
struct ActivationKernels {
  // out[i] = act(in[i]); in == out is allowed.
  void (*forward)(const T* in, T* out, int64_t n);
  // dz[i] = dy[i] · act'(x) where y = act(x) is given, not x:
  //   tanh: dy·(1 − y²); sigmoid: dy·y·(1 − y); relu: y > 0 ? dy : 0;
  //   linear: dy; hard_sigmoid: dy·slope where 0 < y < 1, else 0 (slope 0.2
  //   for Keras 2, 1/6 for Keras 3, the latter applied as dy/6 like TF's
  //   gradient of relu6(x+3)/6). At the clip points themselves (y exactly 0
  //   or 1) the derivative is taken as 0, a measure-zero choice.
  // dz may alias dy.
  void (*backward)(const T* y, const T* dy, T* dz, int64_t n);
};

// The libm kernels for `a`. T is float or double.
template <typename T>
ActivationKernels<T> LibmActivation(Activation a);

// Keras name of the activation ("tanh", "hard_sigmoid", ...); hard sigmoid
// variants are told apart as "hard_sigmoid(keras2)" / "hard_sigmoid(keras3)".
const char* ActivationName(Activation a);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_NUMERICS_ACTIVATIONS_H_
