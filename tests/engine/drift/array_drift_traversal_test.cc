#include "engine/drift/array_drift_traversal.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace driftscope::drift_internal {
namespace {

// What ForEachRun handed to each group: its elements in the order received
// (a's and r's), runs after the group's end, and how often it ended.
struct Received {
  std::vector<float> a;
  std::vector<double> r;
  int ends = 0;
  int runs_after_end = 0;
};

// Walks an (N, T, U) array whose element k holds k (a as float, r as
// double, so a run that pairs the wrong elements or types shows).
std::vector<Received> Walk(int64_t N, int64_t T, int64_t U, bool per_t,
                           bool index_order) {
  const int64_t n = N * T * U;
  std::vector<float> a(static_cast<size_t>(n));
  std::vector<double> r(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    a[static_cast<size_t>(k)] = static_cast<float>(k);
    r[static_cast<size_t>(k)] = static_cast<double>(k);
  }
  auto stage_a = std::make_unique<float[]>(kStage);
  auto stage_r = std::make_unique<double[]>(kStage);
  std::vector<Received> got(static_cast<size_t>(per_t ? T : 1));
  ForEachRun(
      a.data(), r.data(), {N, T, U}, per_t, index_order, n, stage_a.get(),
      stage_r.get(),
      [&](const float* pa, const double* pr, int64_t m, int64_t g) {
        Received& x = got[static_cast<size_t>(g)];
        if (x.ends > 0) ++x.runs_after_end;
        x.a.insert(x.a.end(), pa, pa + m);
        x.r.insert(x.r.end(), pr, pr + m);
      },
      [&](int64_t g) { ++got[static_cast<size_t>(g)].ends; });
  return got;
}

// Timestep t's elements in index order: rows i = 0..N-1, each U long.
std::vector<double> Expected(int64_t N, int64_t T, int64_t U, int64_t t) {
  std::vector<double> v;
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t u = 0; u < U; ++u) {
      v.push_back(static_cast<double>((i * T + t) * U + u));
    }
  }
  return v;
}

void ExpectEveryGroupInIndexOrder(int64_t N, int64_t T, int64_t U,
                                  bool index_order) {
  SCOPED_TRACE(testing::Message()
               << "N=" << N << " T=" << T << " U=" << U
               << (index_order ? " index order" : " t-major"));
  const std::vector<Received> got = Walk(N, T, U, true, index_order);
  ASSERT_EQ(got.size(), static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    const Received& x = got[static_cast<size_t>(t)];
    const std::vector<double> want = Expected(N, T, U, t);
    EXPECT_EQ(x.r, want) << "t=" << t;
    EXPECT_EQ(std::vector<double>(x.a.begin(), x.a.end()), want) << "t=" << t;
    EXPECT_EQ(x.ends, 1) << "t=" << t;
    EXPECT_EQ(x.runs_after_end, 0) << "t=" << t;
  }
}

// The contract that makes results independent of the walk: both walks give
// every timestep its rows in order of i, and end it once, after its last run.
TEST(DriftTraversalTest, EveryTimestepGetsItsRowsInIndexOrderWhicheverWalk) {
  for (bool index_order : {true, false}) {
    // Long rows (direct), a row longer than a tile's share, and one tile
    // that does not divide N.
    ExpectEveryGroupInIndexOrder(7, 5, kMinDirectRow, index_order);
    ExpectEveryGroupInIndexOrder(37, 3, 300, index_order);
    ExpectEveryGroupInIndexOrder(20, 40, 33, index_order);
  }
  // Short rows are staged when t-major: several stage loads per timestep
  // (N * U > kStage) and a row size that does not divide kStage.
  ExpectEveryGroupInIndexOrder(1000, 4, 3, false);
  ExpectEveryGroupInIndexOrder(500, 2, kMinDirectRow - 1, false);
  ExpectEveryGroupInIndexOrder(3, 2, 1, false);
}

TEST(DriftTraversalTest, WithoutCurvesTheWholeArrayIsOneGroupInIndexOrder) {
  const std::vector<Received> got = Walk(9, 4, 5, false, false);
  ASSERT_EQ(got.size(), 1u);
  std::vector<double> want;
  for (int64_t k = 0; k < 9 * 4 * 5; ++k) want.push_back(double(k));
  EXPECT_EQ(got[0].r, want);
  EXPECT_EQ(std::vector<double>(got[0].a.begin(), got[0].a.end()), want);
  EXPECT_EQ(got[0].ends, 1);
}

}  // namespace
}  // namespace driftscope::drift_internal
