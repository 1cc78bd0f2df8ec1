#include "engine/numerics/activation_impls.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "engine/cpu/kernel_table.h"
#include "engine/numerics/rounding.h"

namespace driftscope {

namespace {

float ClearLastBit(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u &= ~1u;
  std::memcpy(&x, &u, 4);
  return x;
}

float FlushDenormal(float x) {
  return std::fabs(x) < std::numeric_limits<float>::min()
             ? std::copysign(0.0f, x)
             : x;
}

float GpuRcp(float b) {
  if (std::fabs(b) > 0x1p126f) return std::copysign(0.0f, b);
  return FlushDenormal(ClearLastBit(static_cast<float>(1.0 / b)));
}

void GpuTanhFwd(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = GpuTanh(in[i]);
}
void GpuSigmoidFwd(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = GpuSigmoid(in[i]);
}

}  // namespace

float GpuExp(float x) {
  const float t = x * 1.44269504f;
  return FlushDenormal(ClearLastBit(std::exp2(t)));
}

float GpuSigmoid(float x) { return 1.0f * GpuRcp(1.0f + GpuExp(-x)); }

float GpuTanh(float x) { return RoundMantissa(std::tanh(x), 23 - 11); }

template <typename T>
ActivationKernels<T> ActivationFor(const Context& ctx, Activation a) {
  ActivationKernels<T> k = LibmActivation<T>(a);
  if (a != Activation::kTanh && a != Activation::kSigmoid) return k;
  const bool tanh = a == Activation::kTanh;
  switch (ctx.profile().activations()) {
    case ActivationImpl::kDefault:
    case ActivationImpl::kLibm:
      break;
    case ActivationImpl::kFast:
      if constexpr (std::is_same_v<T, float>) {
        k.forward = tanh ? ctx.kernels().tanh_f32 : ctx.kernels().sigmoid_f32;
      } else {
        k.forward = tanh ? ctx.kernels().tanh_f64 : ctx.kernels().sigmoid_f64;
      }
      break;
    case ActivationImpl::kGpu:
      // CUDA's double-precision functions are accurate: libm stands in.
      if constexpr (std::is_same_v<T, float>) {
        k.forward = tanh ? &GpuTanhFwd : &GpuSigmoidFwd;
      }
      break;
  }
  return k;
}

template ActivationKernels<float> ActivationFor<float>(const Context&,
                                                       Activation);
template ActivationKernels<double> ActivationFor<double>(const Context&,
                                                         Activation);

}  // namespace driftscope
