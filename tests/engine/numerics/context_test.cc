#include "engine/numerics/context.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <utility>
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

namespace driftscope {
namespace {

// Threads cut a product into column tiles; for every shape class the bits
// must equal the one-call product (Eigen's sum order depends on k only).
class GemmThreadTilingTest
    : public ::testing::TestWithParam<std::tuple<int, int, int, bool, bool>> {};

TEST_P(GemmThreadTilingTest, TiledEqualsWholeBitForBit) {
  const auto [m, n, k, ta, tb] = GetParam();
  std::vector<float> a = Fill<float>(m * k, 5), b = Fill<float>(k * n, 6);
  std::vector<float> c1(static_cast<size_t>(m) * n, 1.f), c2 = c1, c4 = c1;
  for (auto [profile, c] : {std::pair<const char*, std::vector<float>*>{
                                "fp32,threads=1", &c1},
                            {"fp32,threads=2", &c2},
                            {"fp32,threads=4", &c4}}) {
    Context ctx(*Profile::Parse(profile));
    ctx.Gemm<float>(ta, tb, m, n, k, a.data(), ta ? m : k, b.data(),
                    tb ? k : n, 1.f, c->data(), n);
  }
  EXPECT_EQ(0, std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(c1.data(), c4.data(), c1.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GemmThreadTilingTest,
    ::testing::Values(std::make_tuple(64, 1024, 256, false, false),
                      std::make_tuple(64, 256, 1024, false, true),
                      std::make_tuple(256, 1024, 3000, true, false),
                      std::make_tuple(33, 1030, 70, false, false),
                      std::make_tuple(7, 517, 2049, true, true),
                      std::make_tuple(32, 256, 65, false, false)));

}  // namespace
}  // namespace driftscope
