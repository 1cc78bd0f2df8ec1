// DS_HD and the float operations the deterministic GPU path is written in.
//
// Every kernel of engine/cuda/ keeps its arithmetic in DS_HD functions: nvcc
// compiles them for the GPU (with --fmad=false), the host compiler for the
// cuda-emu backend (with -ffp-contract=off). Each operation below is one
// IEEE-754 binary32 operation rounded to nearest even on both sides: the
// device uses the _rn intrinsics, which nvcc never fuses or approximates; the
// host uses plain operators (no contraction) and std::fma. So the same source
// gives the same bits on any GPU and any x86-64 CPU. Never call libm or CUDA
// math functions (expf, tanhf, __expf, ...) from this code: their bits differ
// between libraries and chips; activations_kernels.h has our own.
// Denormals are kept on both sides (no -ffast-math, no --ftz).
#ifndef DRIFTSCOPE_ENGINE_CUDA_DS_HD_H_
#define DRIFTSCOPE_ENGINE_CUDA_DS_HD_H_

#include <cstdint>

#if defined(__CUDACC__)
#define DS_HD __host__ __device__ inline
#else
#include <cmath>
#include <cstring>
#define DS_HD inline
#endif

namespace driftscope {
namespace dev {

DS_HD float Add(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
DS_HD float Sub(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
DS_HD float Mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
DS_HD float Div(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
// a·b + c rounded once.
DS_HD float Fma(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
DS_HD float Sqrt(float a) {
#ifdef __CUDA_ARCH__
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
DS_HD uint32_t FloatBits(float x) {
#ifdef __CUDA_ARCH__
  return static_cast<uint32_t>(__float_as_uint(x));
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}
DS_HD float BitsFloat(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}
DS_HD bool IsNan(float x) { return x != x; }
// tf.maximum / tf.minimum: a NaN on either side wins.
DS_HD float MaxNan(float a, float b) {
  if (IsNan(a) || IsNan(b)) return IsNan(a) ? a : b;
  return a < b ? b : a;
}
DS_HD float MinNan(float a, float b) {
  if (IsNan(a) || IsNan(b)) return IsNan(a) ? a : b;
  return b < a ? b : a;
}
DS_HD float Infinity() { return BitsFloat(0x7f800000u); }

}  // namespace dev
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_DS_HD_H_
