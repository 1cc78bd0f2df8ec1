// Rounding of float32 values to narrower formats, round to nearest even, as
// the hardware does: TF32 (10-bit mantissa, Ampere tensor-core inputs),
// bfloat16 (7-bit mantissa) and IEEE binary16 (10-bit mantissa, 5-bit
// exponent: overflow to ±inf, gradual underflow). The result is returned as
// the float32 value of the rounded number. NaN and ±inf pass through. Pure;
// inline because GEMM input rounding calls them per element.
#ifndef DRIFTSCOPE_ENGINE_NUMERICS_ROUNDING_H_
#define DRIFTSCOPE_ENGINE_NUMERICS_ROUNDING_H_

#include <cstdint>
#include <cstring>

namespace driftscope {

namespace rounding_internal {
inline uint32_t Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
inline float FromBits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
}  // namespace rounding_internal

// Keeps the top (23 − drop) mantissa bits, round to nearest even; a carry
// into the exponent is the correct rounding, including to infinity.
inline float RoundMantissa(float x, int drop) {
  using namespace rounding_internal;
  uint32_t u = Bits(x);
  if ((u & 0x7F800000u) == 0x7F800000u) return x;  // inf, nan
  const uint32_t lsb = (u >> drop) & 1u;
  u += ((1u << (drop - 1)) - 1u) + lsb;
  u &= ~((1u << drop) - 1u);
  return FromBits(u);
}

inline float RoundToTf32(float x) { return RoundMantissa(x, 13); }
inline float RoundToBf16(float x) { return RoundMantissa(x, 16); }

inline float RoundToFp16(float x) {
  using namespace rounding_internal;
  const uint32_t u = Bits(x);
  const uint32_t sign = u & 0x80000000u;
  const uint32_t a = u ^ sign;
  if (a >= 0x7F800000u) return x;                             // inf, nan
  if (a >= 0x477FF000u) return FromBits(sign | 0x7F800000u);  // ≥ 65520
  if (a < 0x38800000u) {
    // Below 2^-14, binary16 is subnormal with quantum 2^-24: adding 0.5
    // puts that quantum at float32's last mantissa bit, so the float add
    // rounds to nearest even there; subtracting 0.5 again is exact.
    const float shifted = FromBits(a) + 0.5f;
    return FromBits(sign | Bits(shifted - 0.5f));
  }
  return FromBits(sign | Bits(RoundMantissa(FromBits(a), 13)));
}

// Stochastic rounding of a double to one of its two float neighbours, up
// with probability (x − down)/(up − down); `u` is uniform in [0, 1).
float StochasticRoundToFloat(double x, float u);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_NUMERICS_ROUNDING_H_
