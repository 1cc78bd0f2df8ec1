// Regression: Context::Gemm gave different bits for the same operands at
// different addresses (Eigen's lazy product and GEMV peel unaligned heads),
// which made supplied-data runs nondeterministic.
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

#include "engine/numerics/context.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

template <typename T>
std::vector<T> Product(const char* profile, int m, int n, int k, int offset) {
  // Operands copied to `offset` elements past a 64-byte aligned start.
  std::vector<T> store_a(m * k + 64), store_b(k * n + 64), store_c(m * n + 64);
  auto align = [offset](std::vector<T>& v) {
    uintptr_t p = reinterpret_cast<uintptr_t>(v.data());
    T* base = reinterpret_cast<T*>((p + 63) & ~uintptr_t{63});
    return base + offset;
  };
  T *a = align(store_a), *b = align(store_b), *c = align(store_c);
  uint32_t s = 12345;
  for (int i = 0; i < m * k; ++i) {
    s = s * 1664525u + 1013904223u;
    a[i] = static_cast<T>((s >> 8) * (1.0 / 8388608.0) - 1.0);
  }
  for (int i = 0; i < k * n; ++i) {
    s = s * 1664525u + 1013904223u;
    b[i] = static_cast<T>((s >> 8) * (1.0 / 8388608.0) - 1.0);
  }
  Context ctx(*Profile::Parse(profile));
  ctx.Gemm<T>(false, false, m, n, k, a, k, b, n, T(0), c, n);
  return std::vector<T>(c, c + m * n);
}

class GemmAlignmentTest
    : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(GemmAlignmentTest, BitsDoNotDependOnOperandAddresses) {
  const auto [m, n, k] = GetParam();
  for (const char* profile : {"fp32", "fp32-sse2", "fp32-avx2", "ref64"}) {
    const bool fp64 = std::strcmp(profile, "ref64") == 0;
    for (int offset = 1; offset < 16; ++offset) {
      if (fp64) {
        EXPECT_EQ(Product<double>(profile, m, n, k, 0),
                  Product<double>(profile, m, n, k, offset))
            << profile << " offset " << offset;
      } else {
        EXPECT_EQ(Product<float>(profile, m, n, k, 0),
                  Product<float>(profile, m, n, k, offset))
            << profile << " offset " << offset;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GemmAlignmentTest,
    ::testing::Values(std::make_tuple(4, 12, 2), std::make_tuple(4, 12, 3),
                      std::make_tuple(1, 64, 33), std::make_tuple(33, 1, 40),
                      std::make_tuple(5, 7, 9), std::make_tuple(32, 256, 64),
                      std::make_tuple(3, 17, 100)));

}  // namespace
}  // namespace driftscope
