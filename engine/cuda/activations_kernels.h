// The activations of the device path, from IEEE operations only (ds_hd.h),
// so that a GPU and a CPU give the same bits.
//
// Exp(x): x = n·ln2 + r with n = round(x/ln2) (by the 1.5·2²³ trick) and r
// from a two-constant Cody-Waite reduction (ln2_hi has 16 significant bits,
// so n·ln2_hi is exact for |n| ≤ 150); exp(r) − 1 on |r| ≤ ln2/2 by its
// Taylor series to r⁸ in Horner form with fma (truncation below 2e-10
// relative); then 1 + that, scaled by 2ⁿ in two exact-or-once-rounded steps
// so that subnormal results round once. Tanh(x) = e/(e + 2) with
// e = expm1(2|x|) from the same reduction (expm1 = 2ⁿ·p + (2ⁿ − 1)), sign
// restored; 1 for |x| > 9.1. Sigmoid(x) = 1/(1 + Exp(−x)).
// Measured error against float64 over 2·10⁶ inputs spread over the whole
// useful range (tests/engine/cuda/activations_kernels_test.cc): Exp ≤ 1 ulp,
// Tanh ≤ 2 ulp, Sigmoid ≤ 2 ulp. Derivatives take the activation's output y,
// as the CPU engine and TF's *Grad kernels do.
#ifndef DRIFTSCOPE_ENGINE_CUDA_ACTIVATIONS_KERNELS_H_
#define DRIFTSCOPE_ENGINE_CUDA_ACTIVATIONS_KERNELS_H_

#include "engine/cuda/ds_hd.h"

namespace driftscope {
namespace dev {

// The values of driftscope::Activation (job_spec.h), which this header does
// not include so that nvcc never parses absl; the backend static_asserts
// that they agree.
enum ActCode : int {
  kActTanh = 0,
  kActSigmoid = 1,
  kActHardSigmoidKeras2 = 2,
  kActHardSigmoidKeras3 = 3,
  kActRelu = 4,
  kActLinear = 5,
};

// 2^n as a float for -126 <= n <= 127.
DS_HD float Pow2(int n) {
  return BitsFloat(static_cast<uint32_t>(n + 127) << 23);
}

// exp(r) − 1 for |r| <= ln2/2 (plus rounding slack).
DS_HD float Expm1Reduced(float r) {
  float q = 2.48015873e-05f;       // 1/8!
  q = Fma(q, r, 1.98412698e-04f);  // 1/7!
  q = Fma(q, r, 1.38888889e-03f);  // 1/6!
  q = Fma(q, r, 8.33333333e-03f);  // 1/5!
  q = Fma(q, r, 4.16666667e-02f);  // 1/4!
  q = Fma(q, r, 1.66666667e-01f);  // 1/3!
  q = Fma(q, r, 0.5f);
  return Fma(q, Mul(r, r), r);
}

// n and r with x = n·ln2 + r, |r| <= ~ln2/2; |x| <= 104.
DS_HD void ReduceLn2(float x, float* n, float* r) {
  const float kMagic = 12582912.0f;  // 1.5·2²³: adding it rounds to integer
  const float t = Add(Mul(x, 1.44269502f), kMagic);
  *n = Sub(t, kMagic);
  const float kLn2Hi = 0.693145752f;     // 0x3f317200: 16 significant bits
  const float kLn2Lo = 1.42860677e-06f;  // ln2 − kLn2Hi
  float rr = Fma(-*n, kLn2Hi, x);
  *r = Fma(-*n, kLn2Lo, rr);
}

DS_HD float Exp(float x) {
  if (IsNan(x)) return x;
  if (x > 88.7228394f) return Infinity();
  if (x < -103.972084f) return 0.0f;
  float n, r;
  ReduceLn2(x, &n, &r);
  const float e = Add(1.0f, Expm1Reduced(r));
  const int k = static_cast<int>(n);
  // Two steps: the first is exact (the result stays normal), the second
  // rounds once, also into the subnormal range.
  if (k > 64) return Mul(Mul(e, Pow2(64)), Pow2(k - 64));
  if (k < -64) return Mul(Mul(e, Pow2(k + 64)), Pow2(-64));
  return Mul(e, Pow2(k));
}

// tanh(x) for x >= 0.
DS_HD float TanhPositive(float x) {
  if (x > 9.1f) return 1.0f;
  float n, r;
  ReduceLn2(Add(x, x), &n, &r);
  const float p = Expm1Reduced(r);
  const int k = static_cast<int>(n);
  const float scale = Pow2(k);
  // expm1(2x) = 2^k·(1 + p) − 1 = 2^k·p + (2^k − 1); the product is exact.
  const float e = k == 0 ? p : Add(Mul(p, scale), Sub(scale, 1.0f));
  return Div(e, Add(e, 2.0f));
}

DS_HD float Tanh(float x) {
  if (IsNan(x)) return x;
  return x < 0.0f ? -TanhPositive(-x) : TanhPositive(x);
}

DS_HD float Sigmoid(float x) {
  if (IsNan(x)) return x;
  return Div(1.0f, Add(1.0f, Exp(-x)));
}

DS_HD float Clamp01(float v) {
  if (IsNan(v)) return v;
  return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
}

DS_HD float ActForward(int act, float x) {
  switch (act) {
    case kActTanh:
      return Tanh(x);
    case kActSigmoid:
      return Sigmoid(x);
    case kActHardSigmoidKeras2:
      return Clamp01(Add(Mul(0.2f, x), 0.5f));
    case kActHardSigmoidKeras3: {
      // relu6(x + 3) / 6
      float v = Add(x, 3.0f);
      if (!IsNan(v)) v = v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
      return Div(v, 6.0f);
    }
    case kActRelu:
      return IsNan(x) ? x : (x > 0.0f ? x : 0.0f);
    default:
      return x;
  }
}

// dy·a'(x) given y = a(x).
DS_HD float ActBackward(int act, float y, float dy) {
  switch (act) {
    case kActTanh:
      return Mul(dy, Sub(1.0f, Mul(y, y)));
    case kActSigmoid:
      return Mul(dy, Mul(y, Sub(1.0f, y)));
    case kActHardSigmoidKeras2:
      return (y > 0.0f && y < 1.0f) ? Mul(dy, 0.2f) : 0.0f;
    case kActHardSigmoidKeras3:
      return (y > 0.0f && y < 1.0f) ? Div(dy, 6.0f) : 0.0f;
    case kActRelu:
      return y > 0.0f ? dy : 0.0f;
    default:
      return dy;
  }
}

}  // namespace dev
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_ACTIVATIONS_KERNELS_H_
