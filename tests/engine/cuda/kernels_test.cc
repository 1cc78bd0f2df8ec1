// The DS_HD arithmetic of the device path, on the host: our own exp, tanh and
// sigmoid against float64 (the error bounds documented in
// engine/cuda/activations_kernels.h), and the emulation's fast GEMM loop
// against the one-thread-per-element GemmArgs functor the GPU runs (same bits).
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "engine/cuda/activations_kernels.h"
#include "engine/cuda/emu_ops.h"
#include "engine/cuda/gemm_kernels.h"
#include "gtest/gtest.h"
#include "tests/engine/reference/layer_test_util.h"

namespace driftscope {
namespace {

// Distance in units in the last place of float `got` from the exact value
// `want` (a double): |got − want| / ulp(want rounded to float).
double UlpError(float got, double want) {
  const float w = static_cast<float>(want);
  if (w == 0.0f) return got == 0.0f ? 0.0 : std::fabs(got) / 1.4e-45;
  const float next = std::nextafter(std::fabs(w), INFINITY);
  const double ulp =
      static_cast<double>(next) - std::fabs(static_cast<double>(w));
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

template <typename F, typename R>
double MaxUlp(F f, R ref, float lo, float hi, int n) {
  double worst = 0;
  for (int i = 0; i <= n; ++i) {
    const float x = lo + (hi - lo) * static_cast<float>(i) / n;
    worst = std::max(worst, UlpError(f(x), ref(static_cast<double>(x))));
  }
  return worst;
}

TEST(DeviceActivationsTest, ExpIsWithinOneUlpOfFloat64) {
  const double e =
      MaxUlp([](float x) { return dev::Exp(x); },
             [](double x) { return std::exp(x); }, -87.0f, 88.7f, 2000000);
  std::printf("Exp max error: %.3f ulp\n", e);
  EXPECT_LE(e, 1.0);
  // Subnormal results round once, and the range ends are exact.
  EXPECT_LE(UlpError(dev::Exp(-100.0f), std::exp(-100.0)), 1.0);
  EXPECT_EQ(dev::Exp(0.0f), 1.0f);
  EXPECT_EQ(dev::Exp(-200.0f), 0.0f);
  EXPECT_TRUE(std::isinf(dev::Exp(89.0f)));
  EXPECT_TRUE(std::isnan(dev::Exp(NAN)));
}

TEST(DeviceActivationsTest, TanhAndSigmoidAreWithinThreeUlpOfFloat64) {
  const double t =
      MaxUlp([](float x) { return dev::Tanh(x); },
             [](double x) { return std::tanh(x); }, -12.0f, 12.0f, 2000000);
  const double tiny =
      MaxUlp([](float x) { return dev::Tanh(x); },
             [](double x) { return std::tanh(x); }, -1e-3f, 1e-3f, 200000);
  const double s = MaxUlp([](float x) { return dev::Sigmoid(x); },
                          [](double x) { return 1.0 / (1.0 + std::exp(-x)); },
                          -80.0f, 30.0f, 2000000);
  std::printf("Tanh max error: %.3f ulp (near 0: %.3f); Sigmoid: %.3f ulp\n", t,
              tiny, s);
  EXPECT_LE(t, 3.0);
  EXPECT_LE(tiny, 3.0);
  EXPECT_LE(s, 3.0);
  EXPECT_EQ(dev::Tanh(0.0f), 0.0f);
  EXPECT_EQ(dev::Tanh(20.0f), 1.0f);
  EXPECT_EQ(dev::Tanh(-20.0f), -1.0f);
  EXPECT_EQ(dev::Sigmoid(0.0f), 0.5f);
  EXPECT_TRUE(std::isnan(dev::Tanh(NAN)));
}

TEST(DeviceActivationsTest, DerivativesMatchFiniteDifferences) {
  for (int act :
       {dev::kActTanh, dev::kActSigmoid, dev::kActRelu, dev::kActLinear,
        dev::kActHardSigmoidKeras2, dev::kActHardSigmoidKeras3}) {
    for (float x : {-2.3f, -0.7f, 0.4f, 1.9f}) {
      const double h = 1e-3;
      const double fd = (dev::ActForward(act, static_cast<float>(x + h)) -
                         dev::ActForward(act, static_cast<float>(x - h))) /
                        (2 * h);
      const float y = dev::ActForward(act, x);
      EXPECT_NEAR(dev::ActBackward(act, y, 1.0f), fd, 2e-3)
          << "act " << act << " at " << x;
    }
  }
}

TEST(DeviceGemmTest, RoundTf32KeepsTenMantissaBitsNearestEven) {
  EXPECT_EQ(dev::RoundTf32(1.0f), 1.0f);
  // 1 + 2^-11 is a tie between 1 and 1 + 2^-10: to even, 1.
  EXPECT_EQ(dev::RoundTf32(1.0f + 0x1p-11f), 1.0f);
  EXPECT_EQ(dev::RoundTf32(1.0f + 0x1p-11f + 0x1p-20f), 1.0f + 0x1p-10f);
  EXPECT_EQ(dev::RoundTf32(1.0f + 3 * 0x1p-11f), 1.0f + 0x1p-9f);
  EXPECT_TRUE(std::isinf(dev::RoundTf32(INFINITY)));
}

// The emulation's vectorizable loop gives the bits of the per-element
// functor the GPU runs, for every transpose combination and with TF32.
TEST(DeviceGemmTest, EmulatedGemmEqualsTheElementFunctorBitForBit) {
  testing_util::Lcg rng(5);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (bool tf32 : {false, true}) {
        // 11 rows = tiles of 6, 4 and 1; 37 columns = 2 panels and 5 more.
        const int m = 11, n = 37, k = 19;
        std::vector<float> a(m * k + 5), b(k * n + 3);
        for (float& v : a) v = static_cast<float>(rng.Next(2.0));
        for (float& v : b) v = static_cast<float>(rng.Next(2.0));
        dev::GemmArgs g;
        g.ta = ta;
        g.tb = tb;
        g.m = m;
        g.n = n;
        g.k = k;
        g.a = a.data();
        g.lda = ta ? m : k;
        g.b = b.data();
        g.ldb = tb ? k : n;
        g.tf32 = tf32;
        std::vector<float> want(m * n), got(m * n, -1.0f);
        g.c = want.data();
        g.ldc = n;
        for (int64_t i = 0; i < g.size(); ++i) g(i);
        std::unique_ptr<dev::DeviceOps> ops = NewEmulatedDeviceOps(false);
        g.c = got.data();
        ASSERT_EQ(ops->Gemm(g, dev::GemmRole::kForward), dev::OpStatus::kOk);
        EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * 4), 0)
            << "ta " << ta << " tb " << tb << " tf32 " << tf32;
        // The order is the contract: a plain double product is close but
        // fp32 fma chains are not exact, and TF32 rounding is visible.
        double worst = 0;
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < n; ++j) {
            double s = 0;
            for (int kk = 0; kk < k; ++kk)
              s += static_cast<double>(g.A(i, kk)) * g.B(kk, j);
            worst = std::max(worst, std::fabs(s - got[i * n + j]));
          }
        EXPECT_LT(worst, 1e-4);
      }
    }
  }
}

// The GPU's tiled ordered GEMM, replayed on the host phase by phase for a
// whole grid (every thread loads, "__syncthreads", every thread adds): the
// bits of the per-element functor, for partial tiles, transposes and TF32.
TEST(DeviceGemmTest, TiledKernelPhasesGiveTheElementFunctorsBits) {
  testing_util::Lcg rng(11);
  const int T = dev::kGemmTile;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (bool tf32 : {false, true}) {
        // std::array, not compound literals: those die at the end of the
        // range's initializer (clang's ASan: stack-use-after-scope).
        for (const std::array<int, 3>& shape :
             {std::array<int, 3>{37, 21, 40}, std::array<int, 3>{16, 16, 16},
              std::array<int, 3>{3, 50, 5}}) {
          const int m = shape[0], n = shape[1], k = shape[2];
          std::vector<float> a(m * k), b(k * n);
          for (float& v : a) v = static_cast<float>(rng.Next(2.0));
          for (float& v : b) v = static_cast<float>(rng.Next(2.0));
          dev::GemmArgs g;
          g.ta = ta;
          g.tb = tb;
          g.m = m;
          g.n = n;
          g.k = k;
          g.a = a.data();
          g.lda = ta ? m : k;
          g.b = b.data();
          g.ldb = tb ? k : n;
          g.tf32 = tf32;
          g.ldc = n;
          std::vector<float> want(m * n), got(m * n, -7.0f);
          g.c = want.data();
          for (int64_t e = 0; e < g.size(); ++e) g(e);
          g.c = got.data();
          for (int by = 0; by < (m + T - 1) / T; ++by) {
            for (int bx = 0; bx < (n + T - 1) / T; ++bx) {
              dev::GemmTile tile;
              std::vector<float> acc(T * T, 0.0f);
              for (int k0 = 0; k0 < k; k0 += T) {
                for (int ty = 0; ty < T; ++ty)
                  for (int tx = 0; tx < T; ++tx)
                    dev::GemmTileLoad(g, by, bx, ty, tx, k0, &tile);
                for (int ty = 0; ty < T; ++ty)
                  for (int tx = 0; tx < T; ++tx)
                    acc[ty * T + tx] = dev::GemmTileAccumulate(
                        g, ty, tx, k0, tile, acc[ty * T + tx]);
              }
              for (int ty = 0; ty < T; ++ty)
                for (int tx = 0; tx < T; ++tx)
                  dev::GemmTileStore(g, by, bx, ty, tx, acc[ty * T + tx]);
            }
          }
          EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * 4), 0)
              << "ta " << ta << " tb " << tb << " tf32 " << tf32 << " m " << m
              << " n " << n << " k " << k;
        }
      }
    }
  }
}

TEST(DeviceGemmTest, Tf32ChangesTheProduct) {
  std::vector<float> a = {1.0f + 0x1p-15f, 0.3f}, b = {0.7f, 1.0f / 3.0f};
  dev::GemmArgs g;
  g.m = 1;
  g.n = 1;
  g.k = 2;
  g.a = a.data();
  g.lda = 2;
  g.b = b.data();
  g.ldb = 1;
  float exact = 0, rounded = 0;
  g.c = &exact;
  g.ldc = 1;
  g(0);
  g.tf32 = true;
  g.c = &rounded;
  g(0);
  EXPECT_NE(exact, rounded);
  EXPECT_NEAR(exact, rounded, 1e-3);
}

}  // namespace
}  // namespace driftscope
