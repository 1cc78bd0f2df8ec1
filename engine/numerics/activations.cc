#include "engine/numerics/activations.h"

#include <cmath>

namespace driftscope {
namespace {

template <typename T>
void TanhFwd(const T* in, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(in[i]);
}
template <typename T>
void TanhBwd(const T* y, const T* dy, T* dz, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dz[i] = dy[i] * (T(1) - y[i] * y[i]);
}

template <typename T>
void SigmoidFwd(const T* in, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = T(1) / (T(1) + std::exp(-in[i]));
}
template <typename T>
void SigmoidBwd(const T* y, const T* dy, T* dz, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dz[i] = (dy[i] * y[i]) * (T(1) - y[i]);
}

// Keras 2 backend.hard_sigmoid: multiply by 0.2, add 0.5, clip (three
// roundings, the constants rounded to T first, as TF does).
template <typename T>
void HardSigmoid2Fwd(const T* in, T* out, int64_t n) {
  const T slope = T(0.2), shift = T(0.5);
  for (int64_t i = 0; i < n; ++i) {
    T v = in[i] * slope + shift;
    v = v < T(0) ? T(0) : v;
    out[i] = v > T(1) ? T(1) : v;
  }
}
template <typename T>
void HardSigmoid2Bwd(const T* y, const T* dy, T* dz, int64_t n) {
  const T slope = T(0.2);
  for (int64_t i = 0; i < n; ++i)
    dz[i] = (y[i] > T(0) && y[i] < T(1)) ? dy[i] * slope : T(0);
}

// Keras 3: relu6(x + 3) / 6.
template <typename T>
void HardSigmoid3Fwd(const T* in, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T v = in[i] + T(3);
    v = v < T(0) ? T(0) : v;
    v = v > T(6) ? T(6) : v;
    out[i] = v / T(6);
  }
}
template <typename T>
void HardSigmoid3Bwd(const T* y, const T* dy, T* dz, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    dz[i] = (y[i] > T(0) && y[i] < T(1)) ? dy[i] / T(6) : T(0);
}

template <typename T>
void ReluFwd(const T* in, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] > T(0) ? in[i] : T(0);
}
template <typename T>
void ReluBwd(const T* y, const T* dy, T* dz, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dz[i] = y[i] > T(0) ? dy[i] : T(0);
}

template <typename T>
void LinearFwd(const T* in, T* out, int64_t n) {
  if (in == out) return;
  for (int64_t i = 0; i < n; ++i) out[i] = in[i];
}
template <typename T>
void LinearBwd(const T* /*y*/, const T* dy, T* dz, int64_t n) {
  if (dy == dz) return;
  for (int64_t i = 0; i < n; ++i) dz[i] = dy[i];
}

}  // namespace

template <typename T>
ActivationKernels<T> LibmActivation(Activation a) {
  switch (a) {
    case Activation::kTanh:
      return {&TanhFwd<T>, &TanhBwd<T>};
    case Activation::kSigmoid:
      return {&SigmoidFwd<T>, &SigmoidBwd<T>};
    case Activation::kHardSigmoidKeras2:
      return {&HardSigmoid2Fwd<T>, &HardSigmoid2Bwd<T>};
    case Activation::kHardSigmoidKeras3:
      return {&HardSigmoid3Fwd<T>, &HardSigmoid3Bwd<T>};
    case Activation::kRelu:
      return {&ReluFwd<T>, &ReluBwd<T>};
    case Activation::kLinear:
      break;
  }
  return {&LinearFwd<T>, &LinearBwd<T>};
}

template ActivationKernels<float> LibmActivation<float>(Activation);
template ActivationKernels<double> LibmActivation<double>(Activation);

const char* ActivationName(Activation a) {
  switch (a) {
    case Activation::kTanh:
      return "tanh";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kHardSigmoidKeras2:
      return "hard_sigmoid(keras2)";
    case Activation::kHardSigmoidKeras3:
      return "hard_sigmoid(keras3)";
    case Activation::kRelu:
      return "relu";
    case Activation::kLinear:
      break;
  }
  return "linear";
}

}  // namespace driftscope
