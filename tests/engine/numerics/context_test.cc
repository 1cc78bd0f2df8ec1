#include "engine/numerics/context.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace driftscope {
namespace {

// Deterministic fill in [-1, 1) without <random>.
template <typename T>
std::vector<T> Fill(int n, uint32_t seed) {
  std::vector<T> v(n);
  uint32_t s = seed;
  for (T& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<T>((s >> 8) * (1.0 / 8388608.0) - 1.0);
  }
  return v;
}

// Plain double loops: the oracle.
std::vector<double> NaiveGemm(bool ta, bool tb, int m, int n, int k,
                              const std::vector<double>& a,
                              const std::vector<double>& b) {
  std::vector<double> c(static_cast<size_t>(m) * n, 0.0);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int p = 0; p < k; ++p) {
        double av = ta ? a[static_cast<size_t>(p) * m + i]
                       : a[static_cast<size_t>(i) * k + p];
        double bv = tb ? b[static_cast<size_t>(j) * k + p]
                       : b[static_cast<size_t>(p) * n + j];
        s += av * bv;
      }
      c[static_cast<size_t>(i) * n + j] = s;
    }
  return c;
}

class GemmTest : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(GemmTest, MatchesNaiveProductInDoubleAndAccumulates) {
  const auto [ta, tb] = GetParam();
  const int m = 7, n = 600, k = 33;  // n spans several fixed-width tiles
  std::vector<double> a = Fill<double>(m * k, 1), b = Fill<double>(k * n, 2);
  Context ctx(*Profile::Parse("fp64"));
  std::vector<double> c(static_cast<size_t>(m) * n, 5.0);
  ctx.Gemm<double>(ta, tb, m, n, k, a.data(), ta ? m : k, b.data(), tb ? k : n,
                   0.0, c.data(), n);
  std::vector<double> want = NaiveGemm(ta, tb, m, n, k, a, b);
  for (size_t i = 0; i < c.size(); ++i) {
    ASSERT_NEAR(c[i], want[i], 1e-13 * k) << "element " << i;
  }
  // beta = 1 adds onto what is there.
  ctx.Gemm<double>(ta, tb, m, n, k, a.data(), ta ? m : k, b.data(), tb ? k : n,
                   1.0, c.data(), n);
  for (size_t i = 0; i < c.size(); ++i) {
    ASSERT_NEAR(c[i], 2 * want[i], 2e-13 * k) << "element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTransposes, GemmTest,
                         ::testing::Combine(::testing::Bool(),
                                            ::testing::Bool()));

TEST(GemmTest, BitsDoNotDependOnThreadCount) {
  const int m = 64, n = 1024, k = 256;
  std::vector<float> a = Fill<float>(m * k, 3), b = Fill<float>(k * n, 4);
  std::vector<float> c1(static_cast<size_t>(m) * n), c3(c1.size());
  Context one(*Profile::Parse("fp32,threads=1"));
  Context three(*Profile::Parse("fp32,threads=3"));
  one.Gemm<float>(false, false, m, n, k, a.data(), k, b.data(), n, 0.f,
                  c1.data(), n);
  three.Gemm<float>(false, false, m, n, k, a.data(), k, b.data(), n, 0.f,
                    c3.data(), n);
  EXPECT_EQ(0, std::memcmp(c1.data(), c3.data(), c1.size() * sizeof(float)));
}

}  // namespace
}  // namespace driftscope
