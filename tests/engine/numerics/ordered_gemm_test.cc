// gemm=sequential and gemm=pairwise: every element is its scalar definition
// (left to right from 0; numpy's cascade of blocks of 8), bit for bit, at
// every ISA level and in both precisions, for shapes that exercise the
// kernel's row and column tails, both transposes and beta = 1, and with
// signed zeros, infinities and NaN among the inputs.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "engine/numerics/context.h"
#include "gtest/gtest.h"
#include "tests/engine/numerics/test_fill.h"

namespace driftscope {
namespace {

using ::driftscope::testing::Fill;

template <typename T>
T Cascade(const T* v, int n) {
  if (n <= 8) {
    T s = T(0);
    for (int i = 0; i < n; ++i) s += v[i];
    return s;
  }
  const int half = (n / 2 + 7) / 8 * 8;
  return Cascade(v, half) + Cascade(v + half, n - half);
}

// The scalar definition, element by element.
template <typename T>
std::vector<T> Oracle(bool pairwise, bool ta, bool tb, int m, int n, int k,
                      const std::vector<T>& a, const std::vector<T>& b, T beta,
                      std::vector<T> c) {
  std::vector<T> prod(static_cast<size_t>(k));
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      for (int p = 0; p < k; ++p) {
        const T av = ta ? a[static_cast<size_t>(p) * m + i]
                        : a[static_cast<size_t>(i) * k + p];
        const T bv = tb ? b[static_cast<size_t>(j) * k + p]
                        : b[static_cast<size_t>(p) * n + j];
        prod[p] = av * bv;
      }
      T s = T(0);
      if (pairwise) {
        s = Cascade(prod.data(), k);
      } else {
        for (int p = 0; p < k; ++p) s += prod[p];
      }
      T& cij = c[static_cast<size_t>(i) * n + j];
      cij = beta == T(0) ? s : cij + s;
    }
  return c;
}

// Bitwise equality that treats every NaN as equal to every NaN.
template <typename T>
bool SameBits(const std::vector<T>& x, const std::vector<T>& y, size_t* first) {
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) && std::isnan(y[i])) continue;
    if (std::memcmp(&x[i], &y[i], sizeof(T)) != 0) {
      *first = i;
      return false;
    }
  }
  return true;
}

template <typename T>
void Check(const std::string& profile_text, int m, int n, int k, bool special) {
  const absl::StatusOr<Profile> profile = Profile::Parse(profile_text);
  ASSERT_TRUE(profile.ok()) << profile.status();
  if (!Context::Check(*profile).ok()) return;  // a level this CPU lacks
  const bool pairwise = profile->gemm == GemmOrder::kPairwise;
  Context ctx(*profile);
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      std::vector<T> a = Fill<T>(int64_t{m} * k, 1 + m);
      std::vector<T> b = Fill<T>(int64_t{k} * n, 2 + n);
      if (special) {
        const T inf = std::numeric_limits<T>::infinity();
        a[0] = -T(0);
        b[b.size() / 2] = inf;
        a[a.size() - 1] = std::numeric_limits<T>::quiet_NaN();
        // b has one element for k = n = 1 (ASan: heap-buffer-overflow).
        if (b.size() > 1) b[1] = std::numeric_limits<T>::denorm_min();
        a[a.size() / 3] = std::numeric_limits<T>::max();
      }
      for (const T beta : {T(0), T(1)}) {
        std::vector<T> c = Fill<T>(int64_t{m} * n, 3);
        const std::vector<T> want =
            Oracle(pairwise, ta, tb, m, n, k, a, b, beta, c);
        ctx.Gemm<T>(ta, tb, m, n, k, a.data(), ta ? m : k, b.data(), tb ? k : n,
                    beta, c.data(), n);
        size_t first = 0;
        ASSERT_TRUE(SameBits(want, c, &first))
            << profile_text << " m=" << m << " n=" << n << " k=" << k
            << " ta=" << ta << " tb=" << tb << " beta=" << beta << " element "
            << first << ": " << c[first] << " vs " << want[first];
      }
    }
  }
}

class OrderedGemmTest
    : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(OrderedGemmTest, EveryElementIsItsScalarDefinition) {
  const auto [m, n, k] = GetParam();
  for (const char* order : {"sequential", "pairwise"}) {
    for (const char* isa : {"x86-64", "x86-64-v3", "x86-64-v4", "native"}) {
      const std::string knobs = std::string(",gemm=") + order + ",isa=" + isa;
      Check<float>("fp32" + knobs, m, n, k, false);
      Check<float>("fp32" + knobs, m, n, k, true);
      Check<double>("fp64" + knobs, m, n, k, false);
      Check<double>("fp64" + knobs, m, n, k, true);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, OrderedGemmTest,
    ::testing::Values(std::make_tuple(1, 1, 1), std::make_tuple(3, 5, 8),
                      std::make_tuple(9, 17, 9), std::make_tuple(8, 48, 16),
                      std::make_tuple(13, 50, 17), std::make_tuple(32, 64, 70),
                      std::make_tuple(17, 97, 129),
                      std::make_tuple(5, 130, 1000)));

}  // namespace
}  // namespace driftscope
