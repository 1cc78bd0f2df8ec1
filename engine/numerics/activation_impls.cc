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

// Array forms of GpuTanh and GpuSigmoid, element for element the same
// operations: the libm calls in one loop, the rest in loops without calls
// and with selects instead of branches, which vectorize.
void GpuTanhFwd(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(in[i]);
  for (int64_t i = 0; i < n; ++i) out[i] = RoundMantissa(out[i], 23 - 11);
}

// FlushDenormal(ClearLastBit(x)) without branches.
inline float ClearLastBitFlushed(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u &= ~1u;
  const uint32_t magnitude = u & 0x7FFFFFFFu;
  // |x| below FLT_MIN (0x00800000): ±0 keeps only the sign.
  const uint32_t denormal = 0u - (magnitude < 0x00800000u);
  u = (u & 0x80000000u & denormal) | (u & ~denormal);
  std::memcpy(&x, &u, 4);
  return x;
}

void GpuSigmoidFwd(const float* in, float* out, int64_t n) {
  // GpuExp(-x): the product rounded to float, then exp2. (−x)·c is written
  // x·(−c), the same number, as the compiler folds the scalar form (the
  // folding only decides the sign of a NaN).
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] * -1.44269504f;
  for (int64_t i = 0; i < n; ++i) out[i] = std::exp2(out[i]);
  for (int64_t i = 0; i < n; ++i) {
    const float b = 1.0f + ClearLastBitFlushed(out[i]);
    // GpuRcp(b): ±0 where |b| > 2^126 (infinity included, NaN not), else
    // 1/b in double, last bit cleared, flushed.
    const float r = ClearLastBitFlushed(static_cast<float>(1.0 / b));
    uint32_t bb, rb;
    std::memcpy(&bb, &b, 4);
    std::memcpy(&rb, &r, 4);
    const uint32_t mag = bb & 0x7FFFFFFFu;
    const uint32_t huge = 0u - (mag > 0x7E800000u && mag <= 0x7F800000u);
    rb = (bb & 0x80000000u & huge) | (rb & ~huge);
    float rcp;
    std::memcpy(&rcp, &rb, 4);
    out[i] = 1.0f * rcp;
  }
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
