// The GEMM-level profile knobs really change the arithmetic, each agrees with
// a double-precision product within a stated tolerance, and the
// deterministic ones are bit-reproducible.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "engine/cpu/kernel_table.h"
#include "engine/numerics/context.h"
#include "engine/numerics/rounding.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

std::vector<float> Fill(int n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>((s >> 8) * (1.0 / 8388608.0) - 1.0);
  }
  return v;
}

struct Problem {
  int m = 32, n = 128, k = 512;
  std::vector<float> a = Fill(32 * 512, 11), b = Fill(512 * 128, 12);
  std::vector<double> exact;  // double product of the float inputs
  Problem() {
    exact.assign(static_cast<size_t>(m) * n, 0.0);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double s = 0;
        for (int p = 0; p < k; ++p) s += double(a[i * k + p]) * b[p * n + j];
        exact[i * n + j] = s;
      }
  }
  std::vector<float> Run(const std::string& profile, uint64_t seed = 0) const {
    absl::StatusOr<Profile> p = Profile::Parse(profile);
    EXPECT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(Context::Check(*p).ok()) << profile;
    Context ctx(*p, seed);
    std::vector<float> c(static_cast<size_t>(m) * n);
    ctx.Gemm<float>(false, false, m, n, k, a.data(), k, b.data(), n, 0.f,
                    c.data(), n);
    return c;
  }
  // Max |c − exact| relative to the largest |exact|.
  double Err(const std::vector<float>& c) const {
    double e = 0, scale = 0;
    for (size_t i = 0; i < c.size(); ++i) {
      e = std::max(e, std::fabs(c[i] - exact[i]));
      scale = std::max(scale, std::fabs(exact[i]));
    }
    return e / scale;
  }
};

bool SameBits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() &&
         std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

double FractionDiffering(const std::vector<float>& x,
                         const std::vector<float>& y) {
  size_t d = 0;
  for (size_t i = 0; i < x.size(); ++i) d += std::memcmp(&x[i], &y[i], 4) != 0;
  return double(d) / x.size();
}

TEST(ContextKnobsTest, ReductionOrdersDifferAndAgreeWithDouble) {
  Problem pr;
  std::vector<float> blocked = pr.Run("fp32");
  std::vector<float> seq = pr.Run("fp32,gemm=sequential");
  std::vector<float> pair = pr.Run("fp32,gemm=pairwise");
  std::vector<float> split = pr.Run("fp32,gemm=split-k=4");
  // Sequential is exactly the left-to-right float loop.
  for (int i = 0; i < pr.m; ++i)
    for (int j = 0; j < pr.n; ++j) {
      float s = 0;
      for (int p = 0; p < pr.k; ++p)
        s += pr.a[i * pr.k + p] * pr.b[p * pr.n + j];
      ASSERT_EQ(seq[i * pr.n + j], s);
    }
  // Pairwise is numpy's cascade: blocks of 8 left to right, halves combined.
  std::function<float(const float*, int)> cascade = [&](const float* v,
                                                        int n) -> float {
    if (n <= 8) {
      float s = 0;
      for (int i = 0; i < n; ++i) s += v[i];
      return s;
    }
    const int half = (n / 2 + 7) / 8 * 8;
    return cascade(v, half) + cascade(v + half, n - half);
  };
  std::vector<float> prod(pr.k);
  for (int i = 0; i < pr.m; ++i)
    for (int j = 0; j < pr.n; ++j) {
      for (int p = 0; p < pr.k; ++p)
        prod[p] = pr.a[i * pr.k + p] * pr.b[p * pr.n + j];
      ASSERT_EQ(pair[i * pr.n + j], cascade(prod.data(), pr.k));
    }
  EXPECT_FALSE(SameBits(blocked, seq));
  EXPECT_FALSE(SameBits(blocked, pair));
  EXPECT_FALSE(SameBits(blocked, split));
  EXPECT_FALSE(SameBits(seq, pair));
  // k = 512 terms of magnitude ≤ 1: a float sum errs by at most ~k·2^-24.
  for (const auto* c : {&blocked, &seq, &pair, &split}) {
    EXPECT_LT(pr.Err(*c), 512 * 0x1p-24);
  }
  // Pairwise summation is more accurate than sequential.
  EXPECT_LT(pr.Err(pair), pr.Err(seq));
  // Deterministic knobs give the same bits on a second run.
  EXPECT_TRUE(SameBits(split, pr.Run("fp32,gemm=split-k=4")));
  EXPECT_TRUE(SameBits(pair, pr.Run("fp32,gemm=pairwise")));
}

TEST(ContextKnobsTest, Tf32AndBf16RoundTheInputsOnly) {
  Problem pr;
  std::vector<float> tf32 = pr.Run("tf32");
  // Same as an exact-input GEMM on inputs rounded beforehand.
  Problem rounded;
  for (float& x : rounded.a) x = RoundToTf32(x);
  for (float& x : rounded.b) x = RoundToTf32(x);
  EXPECT_TRUE(SameBits(tf32, rounded.Run("fp32")));
  std::vector<float> bf16 = pr.Run("bf16");
  std::vector<float> fp32 = pr.Run("fp32");
  const double e32 = pr.Err(fp32), etf = pr.Err(tf32), ebf = pr.Err(bf16);
  std::printf("max rel error vs double: fp32 %.3g, tf32 %.3g, bf16 %.3g\n", e32,
              etf, ebf);
  EXPECT_LT(e32, etf);
  EXPECT_LT(etf, ebf);
  EXPECT_LT(ebf, 0.05);  // unit roundoff 2^-8 on each input, k = 512 terms
}

TEST(ContextKnobsTest, ThreadCountChangesBitsOnlyWhenAskedTo) {
  Problem pr;
  std::vector<float> one = pr.Run("fp32,threads=1");
  EXPECT_TRUE(SameBits(one, pr.Run("fp32,threads=2")));
  std::vector<float> reduced = pr.Run("fp32,threads=2,reduce=threads");
  EXPECT_FALSE(SameBits(one, reduced));
  EXPECT_TRUE(SameBits(reduced, pr.Run("fp32,threads=2,reduce=threads")));
  EXPECT_LT(pr.Err(reduced), 512 * 0x1p-24);
}

TEST(ContextKnobsTest, NondetDiffersFromRunToRun) {
  Problem pr;
  std::set<std::string> distinct;
  for (int i = 0; i < 20; ++i) {
    std::vector<float> c = pr.Run("fp32-nondet");
    EXPECT_LT(pr.Err(c), 512 * 0x1p-24);
    distinct.insert(std::string(reinterpret_cast<const char*>(c.data()),
                                c.size() * sizeof(float)));
  }
  EXPECT_GT(distinct.size(), 1u);
}

TEST(ContextKnobsTest, StochasticRoundingIsSeededAndWithinOneUlp) {
  Problem pr;
  std::vector<float> s1 = pr.Run("fp32,sr=on", 7);
  EXPECT_TRUE(SameBits(s1, pr.Run("fp32,sr=on", 7)));
  EXPECT_FALSE(SameBits(s1, pr.Run("fp32,sr=on", 8)));
  for (size_t i = 0; i < s1.size(); ++i) {
    const float lo = std::nextafter(static_cast<float>(pr.exact[i]), -1e30f);
    const float hi = std::nextafter(static_cast<float>(pr.exact[i]), 1e30f);
    ASSERT_GE(s1[i], lo);
    ASSERT_LE(s1[i], hi);
  }
  EXPECT_FALSE(Context::Check(*Profile::Parse("fp64,sr=on")).ok());
}

TEST(ContextKnobsTest, IsaLevelsAreSeparateKernelsWithRealDifferences) {
  // DESIGN §6: a 128×128 fp32 product; FMA (x86-64-v3) changes bits versus
  // SSE2 (x86-64). Only the levels this CPU has are run.
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    GTEST_SKIP() << "CPU without AVX2+FMA: only x86-64 can run here";
  }
  const int n = 128;
  std::vector<float> a = Fill(n * n, 21), b = Fill(n * n, 22);
  auto run = [&](const char* profile) {
    Context ctx(*Profile::Parse(profile));
    std::vector<float> c(n * n);
    ctx.Gemm<float>(false, false, n, n, n, a.data(), n, b.data(), n, 0.f,
                    c.data(), n);
    return c;
  };
  std::vector<float> sse2 = run("fp32-sse2"), avx2 = run("fp32-avx2");
  EXPECT_STREQ(Context(*Profile::Parse("fp32-sse2")).kernel_isa(), "x86-64");
  EXPECT_STREQ(Context(*Profile::Parse("fp32-avx2")).kernel_isa(), "x86-64-v3");
  const double diff = FractionDiffering(sse2, avx2);
  std::printf("x86-64 vs x86-64-v3: %.1f%% of elements differ\n", 100 * diff);
  EXPECT_GT(diff, 0.0);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl")) {
    std::vector<float> avx512 = run("fp32-avx512");
    std::printf("x86-64 vs x86-64-v4: %.1f%%, x86-64-v3 vs x86-64-v4: %.1f%%\n",
                100 * FractionDiffering(sse2, avx512),
                100 * FractionDiffering(avx2, avx512));
  }
  // Each level agrees with a double product to float accuracy.
  for (const auto* c : {&sse2, &avx2}) {
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        double s = 0;
        for (int p = 0; p < n; ++p) s += double(a[i * n + p]) * b[p * n + j];
        ASSERT_NEAR((*c)[i * n + j], s, 128 * 0x1p-24 * 4);
      }
  }
}

}  // namespace
}  // namespace driftscope
