// Rounding of float32 values to narrower formats, round to nearest even, as
// the hardware does: TF32 (10-bit mantissa, Ampere tensor-core inputs),
// bfloat16 (7-bit mantissa) and IEEE binary16 (10-bit mantissa, 5-bit
// exponent: overflow to ±inf, gradual underflow). The result is returned as
// the float32 value of the rounded number. NaN and ±inf pass through. Pure.
#ifndef DRIFTSCOPE_ENGINE_NUMERICS_ROUNDING_H_
#define DRIFTSCOPE_ENGINE_NUMERICS_ROUNDING_H_

#include <cstdint>

namespace driftscope {

float RoundToTf32(float x);
float RoundToBf16(float x);
float RoundToFp16(float x);

// Stochastic rounding of a double to one of its two float neighbours, up
// with probability (x − down)/(up − down); `u` is uniform in [0, 1).
float StochasticRoundToFloat(double x, float u);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_NUMERICS_ROUNDING_H_
