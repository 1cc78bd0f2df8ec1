#include "engine/drift/array_drift.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine/drift/array_drift_internal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::ElementsAre;

NdArray F32(std::vector<float> v) {
  return NdArray::From<float>({static_cast<int64_t>(v.size())}, v);
}
NdArray F64(std::vector<double> v) {
  return NdArray::From<double>({static_cast<int64_t>(v.size())}, v);
}

ArrayDrift Cmp(const NdArray& a, const NdArray& r, DriftOptions o = {}) {
  absl::StatusOr<ArrayDrift> d = CompareArrays(a, r, o);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *d : ArrayDrift{};
}

float StepF(float x, int k) {  // k float32 ulps up (towards +inf)
  for (int i = 0; i < k; ++i) x = std::nextafter(x, HUGE_VALF);
  return x;
}

constexpr float kMinDenormF = std::numeric_limits<float>::denorm_min();
constexpr double kMinDenormD = std::numeric_limits<double>::denorm_min();

TEST(DriftArrayTest, IdenticalArraysHaveZeroDriftAndFullSignificance) {
  NdArray a = F32({1.5f, -2.0f, 0.0f, 3.25f});
  ArrayDrift d = Cmp(a, a);
  EXPECT_TRUE(d.bitwise_identical);
  EXPECT_TRUE(d.pass);
  EXPECT_EQ(d.overall.differing, 0);
  EXPECT_EQ(d.overall.max_abs, 0.0);
  EXPECT_EQ(d.overall.rel_l2, 0.0);
  EXPECT_EQ(d.overall.cosine, 1.0);
  EXPECT_EQ(d.overall.max_ulp, 0u);
  EXPECT_EQ(d.overall.ulp_histogram[0], 4);
  EXPECT_EQ(d.overall.min_sig_bits, 24.0);
  EXPECT_EQ(d.overall.mean_sig_bits, 24.0);
  EXPECT_EQ(d.overall.median_sig_bits, 24.0);
  EXPECT_EQ(d.ulp_unit, "float32");
}

TEST(DriftArrayTest, SignedZerosAreEqualButNotBitwiseIdentical) {
  ArrayDrift d = Cmp(F32({0.0f, -0.0f}), F32({-0.0f, 0.0f}));
  EXPECT_FALSE(d.bitwise_identical);
  EXPECT_EQ(d.overall.differing, 0);
  EXPECT_EQ(d.overall.max_ulp, 0u);
  EXPECT_EQ(d.overall.max_abs, 0.0);
  EXPECT_TRUE(d.pass);
}

TEST(DriftArrayTest, UlpDistanceCrossesZeroContinuously) {
  // spec §11.4: +min_denormal vs -min_denormal = 2; each vs ±0 = 1.
  ArrayDrift d = Cmp(F32({kMinDenormF, kMinDenormF, -kMinDenormF}),
                     F32({-kMinDenormF, 0.0f, -0.0f}));
  EXPECT_EQ(d.overall.max_ulp, 2u);
  EXPECT_THAT(std::vector<int64_t>(d.overall.ulp_histogram.begin(),
                                   d.overall.ulp_histogram.begin() + 3),
              ElementsAre(0, 2, 1));
  EXPECT_EQ(d.overall.median_ulp, 1.0);
  ArrayDrift d64 = Cmp(F64({kMinDenormD}), F64({-kMinDenormD}));
  EXPECT_EQ(d64.ulp_unit, "float64");
  EXPECT_EQ(d64.overall.max_ulp, 2u);
}

TEST(DriftArrayTest, DenormalsAndTheNormalBoundaryAreOneUlpApart) {
  const float largest_denorm =
      std::nextafter(std::numeric_limits<float>::min(), 0.0f);
  ArrayDrift d = Cmp(F32({2 * kMinDenormF, std::numeric_limits<float>::min()}),
                     F32({kMinDenormF, largest_denorm}));
  EXPECT_EQ(d.overall.max_ulp, 1u);
  EXPECT_EQ(d.overall.ulp_histogram[1], 2);
  EXPECT_EQ(d.overall.max_abs, static_cast<double>(kMinDenormF));
}

TEST(DriftArrayTest, OneUlpNeighboursNearOne) {
  const float up = std::nextafter(1.0f, 2.0f);  // 1 + 2^-23
  ArrayDrift d = Cmp(F32({up, 1.0f}), F32({1.0f, 1.0f}));
  EXPECT_EQ(d.overall.differing, 1);
  EXPECT_EQ(d.overall.differing_fraction, 0.5);
  EXPECT_EQ(d.overall.max_ulp, 1u);
  EXPECT_EQ(d.overall.max_abs, std::ldexp(1.0, -23));
  EXPECT_EQ(d.overall.max_rel, std::ldexp(1.0, -23));
  EXPECT_EQ(d.overall.min_sig_bits, 23.0);
  EXPECT_EQ(d.overall.mean_sig_bits, 23.5);
  EXPECT_EQ(d.overall.median_sig_bits, 23.5);
  // The same pair in float64 is 2^29 float64 ulps apart.
  ArrayDrift d64 = Cmp(F64({up}), F64({1.0}));
  EXPECT_EQ(d64.overall.max_ulp, uint64_t{1} << 29);
  EXPECT_EQ(d64.sig_bits_cap, 53);
}

TEST(DriftArrayTest, NanAndInfMismatchesAreCountedApart) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  ArrayDrift d = Cmp(F32({nan, 1.0f, inf, inf, nan, -inf, nan, 2.0f}),
                     F32({1.0f, nan, 1.0f, -inf, nan, -inf, inf, 2.5f}));
  EXPECT_EQ(d.overall.nan_mismatches, 3);  // includes NaN vs Inf
  EXPECT_EQ(d.overall.inf_mismatches, 2);
  EXPECT_EQ(d.overall.nonfinite_matches, 2);
  EXPECT_EQ(d.overall.numeric, 1);
  EXPECT_EQ(d.overall.differing, 6);
  // Only the finite pair enters the numeric metrics.
  EXPECT_EQ(d.overall.max_abs, 0.5);
  EXPECT_EQ(d.overall.rel_l2, 0.2);
  EXPECT_FALSE(d.pass);
  // Matching non-finite values alone do not fail the verdict.
  ArrayDrift same = Cmp(F32({nan, inf, 1.0f}), F32({nan, inf, 1.0f}));
  EXPECT_TRUE(same.pass);
  EXPECT_EQ(same.overall.differing, 0);
}

TEST(DriftArrayTest, KnownNormsRelativeL2AndCosine) {
  // r = (3, 4), a = (3, 5): Δ = (0, 1), ‖Δ‖ = 1, ‖r‖ = 5.
  ArrayDrift d = Cmp(F64({3, 5}), F64({3, 4}));
  EXPECT_DOUBLE_EQ(d.overall.rel_l2, 0.2);
  EXPECT_DOUBLE_EQ(d.overall.cosine, 29.0 / (5.0 * std::sqrt(34.0)));
  EXPECT_DOUBLE_EQ(d.overall.rms, std::sqrt(0.5));
  EXPECT_EQ(d.overall.mean_abs, 0.5);
  EXPECT_EQ(d.overall.max_rel, 0.25);
  EXPECT_DOUBLE_EQ(d.overall.min_sig_bits, 2.0);
  // Opposite vectors.
  ArrayDrift opp = Cmp(F64({-1, -2}), F64({1, 2}));
  EXPECT_EQ(opp.overall.cosine, -1.0);
  EXPECT_EQ(opp.overall.rel_l2, 2.0);
}

TEST(DriftArrayTest, ZeroReferenceNormIsHandled) {
  ArrayDrift zero = Cmp(F64({0, 0}), F64({0, 0}));
  EXPECT_EQ(zero.overall.rel_l2, 0.0);
  EXPECT_EQ(zero.overall.cosine, 1.0);
  ArrayDrift off = Cmp(F64({1, 0}), F64({0, 0}));
  EXPECT_TRUE(std::isinf(off.overall.rel_l2));
  EXPECT_EQ(off.overall.cosine, 0.0);
  EXPECT_EQ(off.overall.min_sig_bits, 0.0);
}

TEST(DriftArrayTest, RelativeErrorUsesTheFloor) {
  // Default floor 1e-6 * max|r| = 1e-6: |0.001 - 0| / 1e-6 = 1000.
  ArrayDrift d = Cmp(F64({0.001, 1.0}), F64({0.0, 1.0}));
  EXPECT_DOUBLE_EQ(d.rel_floor, 1e-6);
  EXPECT_DOUBLE_EQ(d.overall.max_rel, 1000.0);
  DriftOptions o;
  o.rel_floor = 0.5;
  ArrayDrift f = Cmp(F64({0.001, 1.0}), F64({0.0, 1.0}), o);
  EXPECT_DOUBLE_EQ(f.overall.max_rel, 0.002);
}

TEST(DriftArrayTest, SignificantBitsFromRelativeError) {
  // rel = 2^-10 exactly, and one identical element (cap 24).
  ArrayDrift d = Cmp(F32({1.0f + 1.0f / 1024, 1.0f}), F32({1.0f, 1.0f}));
  EXPECT_EQ(d.overall.min_sig_bits, 10.0);
  EXPECT_DOUBLE_EQ(d.overall.mean_sig_bits, 17.0);
  EXPECT_DOUBLE_EQ(d.overall.median_sig_bits, 17.0);
  // rel = 3 * 2^-12: -log2 = 12 - log2(3).
  ArrayDrift e = Cmp(F64({1.0 + 3.0 / 4096}), F64({1.0}));
  EXPECT_NEAR(e.overall.mean_sig_bits, 12.0 - std::log2(3.0), 1e-12);
}

TEST(DriftArrayTest, MedianAndHistogramOfKnownUlpDistances) {
  const std::vector<int> ulps = {0, 1, 2, 3, 5, 9, 17};
  std::vector<float> a, r;
  for (int k : ulps) {
    r.push_back(0.75f);
    a.push_back(StepF(0.75f, k));
  }
  ArrayDrift d = Cmp(F32(a), F32(r));
  EXPECT_EQ(d.overall.median_ulp, 3.0);
  EXPECT_EQ(d.overall.max_ulp, 17u);
  EXPECT_THAT(std::vector<int64_t>(d.overall.ulp_histogram.begin(),
                                   d.overall.ulp_histogram.begin() + 7),
              ElementsAre(1, 1, 2, 1, 1, 1, 0));
  // Even count: numpy's mean of the two middle values (3 and 5).
  a.push_back(StepF(0.75f, 100));
  r.push_back(0.75f);
  EXPECT_EQ(Cmp(F32(a), F32(r)).overall.median_ulp, 4.0);
  // Middle values in different buckets: {1, 2} -> 1.5; {6, 8} -> 7.
  EXPECT_EQ(Cmp(F32({StepF(2.0f, 1), StepF(2.0f, 2)}), F32({2.0f, 2.0f}))
                .overall.median_ulp,
            1.5);
  EXPECT_EQ(Cmp(F32({StepF(2.0f, 6), StepF(2.0f, 8)}), F32({2.0f, 2.0f}))
                .overall.median_ulp,
            7.0);
}

TEST(DriftArrayTest, VerdictBoundaryIsInclusive) {
  DriftOptions o;
  o.atol = 0.5;
  o.rtol = 0.25;  // threshold at r = 1: exactly 0.75
  EXPECT_TRUE(Cmp(F64({1.75}), F64({1.0}), o).pass);
  EXPECT_FALSE(Cmp(F64({std::nextafter(1.75, 2.0)}), F64({1.0}), o).pass);
  EXPECT_EQ(Cmp(F64({std::nextafter(1.75, 2.0), 1.0}), F64({1.0, 1.0}), o)
                .overall.tolerance_violations,
            1);
  DriftOptions u;
  u.check_tolerance = false;
  u.max_ulp = 3;
  EXPECT_TRUE(Cmp(F32({StepF(1.0f, 3)}), F32({1.0f}), u).pass);
  EXPECT_FALSE(Cmp(F32({StepF(1.0f, 4)}), F32({1.0f}), u).pass);
}

TEST(DriftArrayTest, MixedPrecisionMeasuresUlpsInFloat32) {
  // The float64 reference rounds to 1.0f: 0 float32 ulps, yet Δ = 2^-30.
  const double r = 1.0 + std::ldexp(1.0, -30);
  ArrayDrift d = Cmp(F32({1.0f}), F64({r}));
  EXPECT_EQ(d.ulp_unit, "float32");
  EXPECT_EQ(d.sig_bits_cap, 24);
  EXPECT_EQ(d.overall.max_ulp, 0u);
  EXPECT_EQ(d.overall.differing, 1);
  EXPECT_EQ(d.overall.max_abs, std::ldexp(1.0, -30));
  EXPECT_FALSE(d.bitwise_identical);
  ArrayDrift e = Cmp(F64({r}), F32({StepF(1.0f, 2)}));
  EXPECT_EQ(e.overall.max_ulp, 2u);
}

TEST(DriftArrayTest, PerTimestepCurvesLocateTheDrift) {
  // (N=2, T=3, U=2); only t = 2 differs, by 0.5 and 0.25.
  std::vector<double> r(12, 1.0), a(12, 1.0);
  a[(0 * 3 + 2) * 2 + 1] = 1.5;
  a[(1 * 3 + 2) * 2 + 0] = 1.25;
  ArrayDrift d = Cmp(NdArray::From<double>({2, 3, 2}, a),
                     NdArray::From<double>({2, 3, 2}, r));
  ASSERT_EQ(d.per_timestep.size(), 3u);
  EXPECT_EQ(d.per_timestep[0].differing, 0);
  EXPECT_EQ(d.per_timestep[1].max_abs, 0.0);
  EXPECT_EQ(d.per_timestep[2].differing, 2);
  EXPECT_EQ(d.per_timestep[2].count, 4);
  EXPECT_EQ(d.per_timestep[2].max_abs, 0.5);
  EXPECT_EQ(d.per_timestep[2].mean_abs, 0.1875);
  EXPECT_DOUBLE_EQ(d.per_timestep[2].rel_l2, std::sqrt(0.3125) / 2.0);
  EXPECT_EQ(d.overall.differing, 2);
  EXPECT_EQ(d.overall.count, 12);
  DriftOptions flat;
  flat.per_timestep = false;
  EXPECT_TRUE(Cmp(NdArray::From<double>({2, 3, 2}, a),
                  NdArray::From<double>({2, 3, 2}, r), flat)
                  .per_timestep.empty());
}

TEST(DriftArrayTest, ShapeMismatchIsAnError) {
  absl::StatusOr<ArrayDrift> d = CompareArrays(
      NdArray(DType::kFloat32, {2, 3}), NdArray(DType::kFloat32, {3, 2}));
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
}

// An independent, plain re-implementation (sort-based medians, libm log2,
// a straightforward ULP via nextafter counting is too slow, so the key
// formula of spec §11.4 written again here) checked on random data.
struct Naive {
  double max_abs = 0, sum_abs = 0, sum_d2 = 0, sum_r2 = 0, sum_a2 = 0,
         sum_ar = 0, max_rel = 0, sum_sig = 0, min_sig = 1e300;
  std::vector<uint64_t> ulps;
  std::vector<double> sigs;
};

uint64_t NaiveUlp(float x, float y) {
  int32_t i, j;
  std::memcpy(&i, &x, 4);
  std::memcpy(&j, &y, 4);
  const int64_t ki = i >= 0 ? int64_t{i} : int64_t{INT32_MIN} - i;
  const int64_t kj = j >= 0 ? int64_t{j} : int64_t{INT32_MIN} - j;
  return static_cast<uint64_t>(std::llabs(ki - kj));
}

template <typename T>
double SortedMedian(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return 0.5 *
         (static_cast<double>(v[(n - 1) / 2]) + static_cast<double>(v[n / 2]));
}

TEST(DriftArrayTest, MatchesANaiveImplementationOnRandomData) {
  const int64_t N = 37, T = 11, U = 29;  // odd sizes: partial blocks
  std::vector<float> a(N * T * U), r(N * T * U);
  uint64_t s = 12345;
  auto next = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 11;
  };
  for (size_t i = 0; i < a.size(); ++i) {
    r[i] = static_cast<float>(static_cast<double>(next()) * 0x1p-53 * 4 - 2);
    const int k = static_cast<int>(next() % 40) - 20;
    a[i] = r[i];
    for (int j = 0; j < std::abs(k); ++j) {
      a[i] = std::nextafter(a[i], k > 0 ? HUGE_VALF : -HUGE_VALF);
    }
  }
  ArrayDrift d = Cmp(NdArray::From<float>({N, T, U}, a),
                     NdArray::From<float>({N, T, U}, r));
  double max_r = 0;
  for (float v : r) max_r = std::max(max_r, std::fabs(double{v}));
  const double floor = 1e-6 * max_r;
  for (int64_t t = -1; t < T; ++t) {
    Naive n;
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t tt = 0; tt < T; ++tt) {
        if (t >= 0 && tt != t) continue;
        for (int64_t u = 0; u < U; ++u) {
          const size_t k = static_cast<size_t>((i * T + tt) * U + u);
          const double av = a[k], rv = r[k], ad = std::fabs(av - rv);
          const double rel = ad / std::max(std::fabs(rv), floor);
          const double sig =
              ad == 0 ? 24.0 : std::clamp(-std::log2(rel), 0.0, 24.0);
          n.max_abs = std::max(n.max_abs, ad);
          n.sum_abs += ad;
          n.sum_d2 += ad * ad;
          n.sum_r2 += rv * rv;
          n.sum_a2 += av * av;
          n.sum_ar += av * rv;
          n.max_rel = std::max(n.max_rel, rel);
          n.sum_sig += sig;
          n.min_sig = std::min(n.min_sig, sig);
          n.ulps.push_back(NaiveUlp(a[k], r[k]));
          n.sigs.push_back(sig);
        }
      }
    }
    const DriftStats& st = t < 0 ? d.overall : d.per_timestep[t];
    const double m = static_cast<double>(n.ulps.size());
    SCOPED_TRACE(t);
    EXPECT_EQ(st.count, static_cast<int64_t>(n.ulps.size()));
    EXPECT_EQ(st.max_abs, n.max_abs);
    EXPECT_NEAR(st.mean_abs, n.sum_abs / m, 1e-12 * n.sum_abs / m);
    EXPECT_NEAR(st.rms, std::sqrt(n.sum_d2 / m), 1e-12 * st.rms);
    EXPECT_NEAR(st.rel_l2, std::sqrt(n.sum_d2 / n.sum_r2), 1e-12 * st.rel_l2);
    EXPECT_NEAR(st.cosine,
                std::min(1.0, n.sum_ar / std::sqrt(n.sum_a2 * n.sum_r2)),
                1e-12);
    EXPECT_NEAR(st.max_rel, n.max_rel, 1e-15 * n.max_rel);
    EXPECT_EQ(st.max_ulp, *std::max_element(n.ulps.begin(), n.ulps.end()));
    EXPECT_EQ(st.median_ulp, SortedMedian(n.ulps));
    EXPECT_NEAR(st.mean_sig_bits, n.sum_sig / m, 1e-10);
    EXPECT_NEAR(st.min_sig_bits, n.min_sig, 1e-10);
    EXPECT_NEAR(st.median_sig_bits, SortedMedian(n.sigs), 1e-10);
    int64_t hist[kUlpBuckets] = {};
    for (uint64_t u : n.ulps) {
      int b = 0;
      while (b < 64 && (u >> b) != 0) ++b;
      ++hist[b];
    }
    for (int b = 0; b < kUlpBuckets; ++b) {
      EXPECT_EQ(st.ulp_histogram[b], hist[b]) << "bucket " << b;
    }
  }
}

TEST(DriftArrayTest, ResultsAreBitwiseDeterministic) {
  std::vector<double> a(100003), r(100003);
  for (size_t i = 0; i < a.size(); ++i) {
    r[i] = std::sin(static_cast<double>(i));
    a[i] = r[i] * (1 + 1e-7 * std::cos(static_cast<double>(i) * 0.37));
  }
  const NdArray na = F64(a), nr = F64(r);
  ArrayDrift x = Cmp(na, nr), y = Cmp(na, nr);
  for (auto [p, q] : {std::pair{x.overall.mean_abs, y.overall.mean_abs},
                      {x.overall.rms, y.overall.rms},
                      {x.overall.rel_l2, y.overall.rel_l2},
                      {x.overall.cosine, y.overall.cosine},
                      {x.overall.mean_sig_bits, y.overall.mean_sig_bits},
                      {x.overall.median_sig_bits, y.overall.median_sig_bits},
                      {x.overall.median_ulp, y.overall.median_ulp}}) {
    EXPECT_EQ(std::memcmp(&p, &q, sizeof(double)), 0);
  }
}

// Distances far beyond the exactly-counted ones (u >= 64, float64 units)
// and relative errors spread over binades: the medians come from the second
// pass and must still equal a sort-based median.
TEST(DriftArrayTest, MediansOfLargeDistancesAreExact) {
  const int64_t N = 101, T = 3, U = 40;
  std::vector<double> a(N * T * U), r(N * T * U);
  uint64_t s = 777;
  auto next = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 11;
  };
  for (size_t i = 0; i < a.size(); ++i) {
    r[i] = static_cast<double>(next()) * 0x1p-53 + 0.5;
    const int64_t k =
        static_cast<int64_t>(next() % (uint64_t{1} << 40)) - (int64_t{1} << 39);
    int64_t bits;
    std::memcpy(&bits, &r[i], 8);
    bits += (i % 7 == 0) ? 0 : k;  // some identical elements
    std::memcpy(&a[i], &bits, 8);
  }
  ArrayDrift d = Cmp(NdArray::From<double>({N, T, U}, a),
                     NdArray::From<double>({N, T, U}, r));
  double max_r = 0;
  for (double v : r) max_r = std::max(max_r, std::fabs(v));
  for (int64_t t = -1; t < T; ++t) {
    std::vector<uint64_t> ulps;
    std::vector<double> sigs;
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t tt = 0; tt < T; ++tt) {
        if (t >= 0 && tt != t) continue;
        for (int64_t u = 0; u < U; ++u) {
          const size_t k = static_cast<size_t>((i * T + tt) * U + u);
          int64_t x, y;
          std::memcpy(&x, &a[k], 8);
          std::memcpy(&y, &r[k], 8);
          ulps.push_back(static_cast<uint64_t>(std::llabs(x - y)));
          const double rel =
              std::fabs(a[k] - r[k]) / std::max(std::fabs(r[k]), 1e-6 * max_r);
          sigs.push_back(a[k] == r[k] ? 53.0
                                      : std::clamp(-std::log2(rel), 0.0, 53.0));
        }
      }
    }
    const DriftStats& st = t < 0 ? d.overall : d.per_timestep[t];
    SCOPED_TRACE(t);
    EXPECT_GT(SortedMedian(ulps), 64.0);
    EXPECT_EQ(st.median_ulp, SortedMedian(ulps));
    EXPECT_NEAR(st.median_sig_bits, SortedMedian(sigs), 1e-10);
  }
}

// Every metric of two comparisons, bit for bit.
void ExpectSameStats(const DriftStats& p, const DriftStats& q) {
  for (auto [u, v] : {std::pair{p.max_abs, q.max_abs},
                      {p.mean_abs, q.mean_abs},
                      {p.rms, q.rms},
                      {p.max_rel, q.max_rel},
                      {p.rel_l2, q.rel_l2},
                      {p.cosine, q.cosine},
                      {p.norm_a, q.norm_a},
                      {p.norm_ref, q.norm_ref},
                      {p.norm_diff, q.norm_diff},
                      {p.median_ulp, q.median_ulp},
                      {p.min_sig_bits, q.min_sig_bits},
                      {p.mean_sig_bits, q.mean_sig_bits},
                      {p.median_sig_bits, q.median_sig_bits}}) {
    EXPECT_EQ(std::memcmp(&u, &v, sizeof(double)), 0) << u << " vs " << v;
  }
  EXPECT_EQ(p.count, q.count);
  EXPECT_EQ(p.numeric, q.numeric);
  EXPECT_EQ(p.differing, q.differing);
  EXPECT_EQ(p.nan_mismatches, q.nan_mismatches);
  EXPECT_EQ(p.inf_mismatches, q.inf_mismatches);
  EXPECT_EQ(p.nonfinite_matches, q.nonfinite_matches);
  EXPECT_EQ(p.tolerance_violations, q.tolerance_violations);
  EXPECT_EQ(p.max_ulp, q.max_ulp);
  EXPECT_EQ(p.ulp_histogram, q.ulp_histogram);
}

void ExpectSameDrift(const ArrayDrift& x, const ArrayDrift& y) {
  ASSERT_EQ(x.per_timestep.size(), y.per_timestep.size());
  EXPECT_EQ(x.rel_floor, y.rel_floor);
  for (size_t t = 0; t <= x.per_timestep.size(); ++t) {
    SCOPED_TRACE(t == 0 ? std::string("overall")
                        : "t = " + std::to_string(t - 1));
    ExpectSameStats(t == 0 ? x.overall : x.per_timestep[t - 1],
                    t == 0 ? y.overall : y.per_timestep[t - 1]);
  }
}

// Drift-like random pairs: identical elements, a few ulps, large relative
// errors, NaN, +Inf and -Inf.
template <typename TA, typename TR>
void FillPair(uint64_t seed, NdArray* a, NdArray* r) {
  uint64_t s = seed;
  auto next = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 11;
  };
  for (int64_t i = 0; i < a->size(); ++i) {
    const double rv = std::ldexp(static_cast<double>(next()) * 0x1p-53 - 0.5,
                                 static_cast<int>(next() % 40) - 20);
    const uint64_t p = next() % 100;
    double av = rv * (1 + (static_cast<double>(next()) * 0x1p-53 - 0.5) *
                              (p < 50 ? 1e-6 : 1e-1));
    if (p < 20) av = static_cast<TR>(rv);
    if (p == 97) av = NAN;
    if (p == 98) av = HUGE_VAL;
    r->data<TR>()[i] = static_cast<TR>(p == 99 ? -HUGE_VAL : rv);
    a->data<TA>()[i] = static_cast<TA>(av);
  }
}

// Each kernel (AVX-512, AVX2 where this CPU and build have them) does the
// portable kernel's operations in the same order: every metric is
// bit-for-bit equal, for every dtype pair, with runs that start and end
// anywhere in a vector or block, staged, tiled and direct (N, T, U) rows,
// and non-finite values.
template <typename TA, typename TR>
void ExpectKernelsAgree(const std::vector<int64_t>& shape, uint64_t seed,
                        const DriftOptions& options = {}) {
  NdArray a(DTypeOf<TA>(), shape), r(DTypeOf<TR>(), shape);
  FillPair<TA, TR>(seed, &a, &r);
  absl::StatusOr<ArrayDrift> want =
      drift_internal::CompareArraysPortable(a, r, options);
  ASSERT_TRUE(want.ok());
  for (const std::string& kernel : drift_internal::KernelNames()) {
    SCOPED_TRACE(kernel);
    absl::StatusOr<ArrayDrift> got =
        drift_internal::CompareArraysWithKernel(a, r, options, kernel);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectSameDrift(*got, *want);
  }
}

TEST(DriftArrayTest, AllKernelsAgreeBitwise) {
  // The kernels this machine runs; "portable" is always among them.
  EXPECT_EQ(drift_internal::KernelNames().back(), "portable");
  EXPECT_EQ(drift_internal::KernelNames().front(),
            drift_internal::KernelName());
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{1},
                                         {7},
                                         {8},
                                         {9},
                                         {255},
                                         {256},
                                         {257},
                                         {3001},
                                         {17, 5, 1},
                                         {17, 5, 3},
                                         {9, 4, 45},
                                         {41, 3, 64},
                                         {5, 3, 255},
                                         {5, 3, 257},
                                         {3, 2, 600},
                                         {1, 1300, 33}}) {
    SCOPED_TRACE(::testing::PrintToString(shape));
    ExpectKernelsAgree<float, float>(shape, 1);
    ExpectKernelsAgree<double, double>(shape, 2);
    ExpectKernelsAgree<float, double>(shape, 3);
    ExpectKernelsAgree<double, float>(shape, 4);
  }
}

// The second pass filters in float32, in float64 or not at all depending on
// the floor (its products must stay normal): the medians must not.
TEST(DriftArrayTest, AllKernelsAgreeWhateverTheFloor) {
  for (double floor : {1e-30, 1e-300, 10.0}) {
    DriftOptions o;
    o.rel_floor = floor;
    SCOPED_TRACE(floor);
    ExpectKernelsAgree<float, float>({3001}, 5, o);
    ExpectKernelsAgree<float, float>({41, 3, 64}, 6, o);
    ExpectKernelsAgree<double, float>({3001}, 7, o);
    ExpectKernelsAgree<double, double>({41, 3, 64}, 8, o);
  }
}

TEST(DriftArrayTest, EmptyShapesHaveEmptyCurves) {
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{
           {0}, {0, 5, 40}, {3, 0, 40}, {2, 3, 0}, {0, 0, 0}}) {
    SCOPED_TRACE(::testing::PrintToString(shape));
    for (const std::string& kernel : drift_internal::KernelNames()) {
      absl::StatusOr<ArrayDrift> d = drift_internal::CompareArraysWithKernel(
          NdArray(DType::kFloat32, shape), NdArray(DType::kFloat64, shape), {},
          kernel);
      ASSERT_TRUE(d.ok()) << kernel << ": " << d.status();
      EXPECT_EQ(d->overall.count, 0);
      EXPECT_TRUE(d->pass);
      EXPECT_EQ(d->per_timestep.size(),
                static_cast<size_t>(shape.size() == 3 ? shape[1] : 0));
    }
  }
}

TEST(DriftArrayTest, UnknownKernelIsAnError) {
  absl::StatusOr<ArrayDrift> d = drift_internal::CompareArraysWithKernel(
      F32({1.0f}), F32({1.0f}), {}, "sse9");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
}

// A timestep's curve is that timestep's slice compared on its own, bit for
// bit (same floor): rows of any length fill the same blocks and lanes,
// whether the rows are staged (U < 32), tiled (U = 64) or direct.
TEST(DriftArrayTest, PerTimestepCurvesEqualSlicesComparedAlone) {
  for (int64_t U : {1, 3, 64, 255, 257}) {
    const int64_t N = 37, T = 4;
    NdArray a(DType::kFloat32, {N, T, U}), r(DType::kFloat32, {N, T, U});
    FillPair<float, float>(static_cast<uint64_t>(U), &a, &r);
    DriftOptions o;
    o.rel_floor = 1e-9;
    const ArrayDrift d = Cmp(a, r, o);
    ASSERT_EQ(d.per_timestep.size(), static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      std::vector<float> sa, sr;
      for (int64_t i = 0; i < N; ++i) {
        const int64_t base = (i * T + t) * U;
        sa.insert(sa.end(), a.data<float>() + base, a.data<float>() + base + U);
        sr.insert(sr.end(), r.data<float>() + base, r.data<float>() + base + U);
      }
      SCOPED_TRACE(::testing::Message() << "U = " << U << ", t = " << t);
      ExpectSameStats(d.per_timestep[t], Cmp(F32(sa), F32(sr), o).overall);
    }
  }
}

// So many timesteps that the per-t working histograms would not fit: the
// curves then come from a t-major walk. Each t must match a comparison of
// that t's slice on its own (same floor), bit for bit.
TEST(DriftArrayTest, CurvesOfManyTimestepsMatchPerSliceComparisons) {
  const int64_t N = 3, T = 1300, U = 32;
  std::vector<float> a(N * T * U), r(N * T * U);
  uint64_t s = 99;
  auto next = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 11;
  };
  for (size_t i = 0; i < a.size(); ++i) {
    r[i] = static_cast<float>(static_cast<double>(next()) * 0x1p-53 - 0.5);
    a[i] = static_cast<float>(
        r[i] * (1 + (static_cast<double>(next()) * 0x1p-53 - 0.5) * 1e-4));
  }
  DriftOptions o;
  o.rel_floor = 1e-3;
  ArrayDrift d = Cmp(NdArray::From<float>({N, T, U}, a),
                     NdArray::From<float>({N, T, U}, r), o);
  ASSERT_EQ(d.per_timestep.size(), static_cast<size_t>(T));
  for (int64_t t : {int64_t{0}, int64_t{649}, T - 1}) {
    std::vector<float> sa, sr;
    for (int64_t i = 0; i < N; ++i) {
      const size_t base = static_cast<size_t>((i * T + t) * U);
      sa.insert(sa.end(), a.begin() + base, a.begin() + base + U);
      sr.insert(sr.end(), r.begin() + base, r.begin() + base + U);
    }
    const DriftStats want = Cmp(F32(sa), F32(sr), o).overall;
    const DriftStats& got = d.per_timestep[t];
    SCOPED_TRACE(t);
    EXPECT_EQ(got.count, N * U);
    EXPECT_EQ(got.differing, want.differing);
    EXPECT_EQ(got.max_abs, want.max_abs);
    EXPECT_EQ(got.max_rel, want.max_rel);
    EXPECT_EQ(got.max_ulp, want.max_ulp);
    EXPECT_EQ(got.ulp_histogram, want.ulp_histogram);
    EXPECT_EQ(got.median_ulp, want.median_ulp);
    EXPECT_EQ(got.median_sig_bits, want.median_sig_bits);
    EXPECT_EQ(got.tolerance_violations, want.tolerance_violations);
    ExpectSameStats(got, want);
  }
}

}  // namespace
}  // namespace driftscope
