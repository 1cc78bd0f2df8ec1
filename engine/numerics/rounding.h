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
// Branch-free (selects instead of early returns) so that loops over arrays
// vectorize.
inline float RoundMantissa(float x, int drop) {
  using namespace rounding_internal;
  const uint32_t u = Bits(x);
  const uint32_t lsb = (u >> drop) & 1u;
  const uint32_t r =
      (u + ((1u << (drop - 1)) - 1u) + lsb) & ~((1u << drop) - 1u);
  return (u & 0x7F800000u) == 0x7F800000u ? x : FromBits(r);  // inf, nan
}

inline float RoundToTf32(float x) { return RoundMantissa(x, 13); }
inline float RoundToBf16(float x) { return RoundMantissa(x, 16); }

// Every case is computed and one chosen with bit masks (a form the
// compiler vectorizes; with selects it keeps the float add of the
// subnormal case behind a branch); for all 2^32 inputs the same results as
// the case-by-case definition.
inline float RoundToFp16(float x) {
  using namespace rounding_internal;
  const uint32_t u = Bits(x);
  const uint32_t sign = u & 0x80000000u;
  const uint32_t a = u ^ sign;
  // Normal binary16: 10 mantissa bits kept, round to nearest even.
  const uint32_t normal = (a + 0xFFFu + ((a >> 13) & 1u)) & ~0x1FFFu;
  // Below 2^-14, binary16 is subnormal with quantum 2^-24: adding 0.5 puts
  // that quantum at float32's last mantissa bit, so the float add rounds to
  // nearest even there; subtracting 0.5 again is exact.
  const uint32_t subnormal = Bits((FromBits(a) + 0.5f) - 0.5f);
  const uint32_t is_subnormal = 0u - (a < 0x38800000u);
  const uint32_t is_overflow = 0u - (a >= 0x477FF000u);  // ≥ 65520: inf
  const uint32_t is_inf_nan = 0u - (a >= 0x7F800000u);   // as they are
  uint32_t r = (subnormal & is_subnormal) | (normal & ~is_subnormal);
  r = (0x7F800000u & is_overflow) | (r & ~is_overflow);
  return FromBits((u & is_inf_nan) | ((sign | r) & ~is_inf_nan));
}

// Stochastic rounding of a double to one of its two float neighbours, up
// with probability (x − down)/(up − down); `u` is uniform in [0, 1).
float StochasticRoundToFloat(double x, float u);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_NUMERICS_ROUNDING_H_
