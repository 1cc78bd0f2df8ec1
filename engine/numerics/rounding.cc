#include "engine/numerics/rounding.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace driftscope {

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
