#include "engine/numerics/rounding.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace driftscope {

namespace {

uint32_t Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
float FromBits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// Keeps the top (23 − drop) mantissa bits, round to nearest even. A carry
// into the exponent is the correct rounding, including to infinity.
float RoundMantissa(float x, int drop) {
  if (!std::isfinite(x)) return x;
  uint32_t u = Bits(x);
  const uint32_t lsb = (u >> drop) & 1u;
  const uint32_t half_minus_one = (1u << (drop - 1)) - 1u;
  u += half_minus_one + lsb;
  u &= ~((1u << drop) - 1u);
  return FromBits(u);
}

}  // namespace

float RoundToTf32(float x) { return RoundMantissa(x, 13); }
float RoundToBf16(float x) { return RoundMantissa(x, 16); }

float RoundToFp16(float x) {
  if (!std::isfinite(x)) return x;
  const float a = std::fabs(x);
  // 65504 is the largest half; 65520 lies halfway to 2^16 and rounds (to
  // even) up, i.e. to infinity.
  if (a >= 65520.0f)
    return std::copysign(std::numeric_limits<float>::infinity(), x);
  int e;
  std::frexp(a, &e);  // a = f·2^e, f in [0.5, 1)
  // Quantum of binary16 at this magnitude: 2^(e−11) for normals, 2^-24 for
  // subnormals (e − 1 < −14). Scaling by a power of two is exact, and
  // nearbyint rounds to nearest even in the default rounding mode.
  const int q = (e - 1 < -14) ? -24 : e - 11;
  const double r = std::nearbyint(std::ldexp(static_cast<double>(a), -q));
  return std::copysign(static_cast<float>(std::ldexp(r, q)), x);
}

float StochasticRoundToFloat(double x, float u) {
  if (!std::isfinite(x)) return static_cast<float>(x);
  float f = static_cast<float>(x);  // nearest
  if (static_cast<double>(f) == x) return f;
  float down, up;
  if (static_cast<double>(f) < x) {
    down = f;
    up = std::nextafter(f, std::numeric_limits<float>::infinity());
  } else {
    up = f;
    down = std::nextafter(f, -std::numeric_limits<float>::infinity());
  }
  const double p = (x - down) / (static_cast<double>(up) - down);
  return static_cast<double>(u) < p ? up : down;
}

}  // namespace driftscope
