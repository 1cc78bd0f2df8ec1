// Deterministic test data for the GEMM tests: values in [-1, 1) from a
// 32-bit LCG, the same on every machine. Pure function.
#ifndef DRIFTSCOPE_TESTS_ENGINE_NUMERICS_TEST_FILL_H_
#define DRIFTSCOPE_TESTS_ENGINE_NUMERICS_TEST_FILL_H_

#include <cstdint>
#include <vector>

namespace driftscope::testing {

template <typename T>
std::vector<T> Fill(int64_t n, uint32_t seed) {
  std::vector<T> v(static_cast<size_t>(n));
  uint32_t s = seed;
  for (T& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<T>((s >> 8) * (1.0 / 8388608.0) - 1.0);
  }
  return v;
}

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_ENGINE_NUMERICS_TEST_FILL_H_
