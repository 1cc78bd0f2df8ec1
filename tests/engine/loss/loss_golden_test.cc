// MSE and MAE value and gradient against real Keras 3.15 / TF 2.21
// (keras.losses.MeanSquaredError / MeanAbsoluteError under tf.GradientTape),
// goldens from tests/golden/optim/make_optim_golden.py.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/core/ndarray.h"
#include "engine/io/npy.h"
#include "engine/loss/loss.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

std::string GoldenPath(const std::string& name) {
  return absl::StrCat(DRIFTSCOPE_SOURCE_DIR, "/tests/golden/optim/", name,
                      ".npy");
}

template <typename T>
void CheckCase(LossKind kind, const char* kind_name, const char* tag,
               const char* dt) {
  const std::string base = absl::StrCat("loss_", kind_name, "_", tag, "_", dt);
  absl::StatusOr<NdArray> arrays = ReadNpy(GoldenPath(base));
  absl::StatusOr<NdArray> value = ReadNpy(GoldenPath(base + "_value"));
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  ASSERT_TRUE(value.ok()) << value.status();
  ASSERT_EQ(arrays->dtype(), DTypeOf<T>());
  ASSERT_EQ(value->dtype(), DTypeOf<T>());
  ASSERT_GE(arrays->ndim(), 3);  // stack([pred, target, grad])
  ASSERT_EQ(arrays->shape()[0], 3);
  const int last_dim = static_cast<int>(arrays->shape().back());
  const int64_t n = arrays->size() / 3;
  const int64_t rows = n / last_dim;
  const T* pred = arrays->data<T>();
  const T* target = pred + n;
  const T* want_grad = pred + 2 * n;

  // Value: TF sums the 12 or 6 row means in Eigen's packet order, we sum
  // sequentially: observed 1 ulp off in 3 of the 8 cases, exact otherwise.
  const T loss = LossForward<T>(kind, pred, target, rows, last_dim);
  const T want = value->data<T>()[0];
  const double tol = std::is_same_v<T, float> ? 2e-7 : 4e-16;
  EXPECT_NEAR(loss, want, tol * std::fabs(want)) << base;

  // Gradient: elementwise, so it must match TF's bits, signed zeros aside.
  std::vector<T> grad(n);
  LossBackward<T>(kind, pred, target, rows, last_dim, grad.data());
  int ties = 0;
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(grad[i], want_grad[i]) << base << " element " << i;
    EXPECT_EQ(std::signbit(grad[i]), std::signbit(want_grad[i]))
        << base << " element " << i;
    ties += pred[i] == target[i];
  }
  EXPECT_GT(ties, 0) << "the goldens include exact ties (MAE's sign(0))";
}

TEST(LossGolden, MseSequenceAndVector) {
  CheckCase<float>(LossKind::kMse, "mse", "seq", "f32");
  CheckCase<float>(LossKind::kMse, "mse", "vec", "f32");
  CheckCase<double>(LossKind::kMse, "mse", "seq", "f64");
  CheckCase<double>(LossKind::kMse, "mse", "vec", "f64");
}

TEST(LossGolden, MaeSequenceAndVector) {
  CheckCase<float>(LossKind::kMae, "mae", "seq", "f32");
  CheckCase<float>(LossKind::kMae, "mae", "vec", "f32");
  CheckCase<double>(LossKind::kMae, "mae", "seq", "f64");
  CheckCase<double>(LossKind::kMae, "mae", "vec", "f64");
}

// Hand-computed: pred = [[1, 2], [3, 5]], target = [[0, 0], [3, 1]].
// MSE rows: (1 + 4) / 2 = 2.5 and (0 + 16) / 2 = 8 → (2.5 + 8) / 2 = 5.25.
// MAE rows: 1.5 and 2 → 1.75. dMSE = 2(p − t) / 4; dMAE = sign(p − t) / 4.
TEST(Loss, HandComputedTwoByTwo) {
  const double pred[] = {1, 2, 3, 5};
  const double target[] = {0, 0, 3, 1};
  EXPECT_EQ(LossForward<double>(LossKind::kMse, pred, target, 2, 2), 5.25);
  EXPECT_EQ(LossForward<double>(LossKind::kMae, pred, target, 2, 2), 1.75);
  double g[4];
  LossBackward<double>(LossKind::kMse, pred, target, 2, 2, g);
  EXPECT_EQ(g[0], 0.5);
  EXPECT_EQ(g[1], 1.0);
  EXPECT_EQ(g[2], 0.0);
  EXPECT_EQ(g[3], 2.0);
  LossBackward<double>(LossKind::kMae, pred, target, 2, 2, g);
  EXPECT_EQ(g[0], 0.25);
  EXPECT_EQ(g[1], 0.25);
  EXPECT_EQ(g[2], 0.0);
  EXPECT_EQ(g[3], 0.25);
}

// A partial last batch divides by its own row count, not the batch size.
TEST(Loss, PartialBatchUsesItsOwnRows) {
  const float pred[] = {2, 0, 0};
  const float target[] = {0, 0, 0};
  EXPECT_EQ(LossForward<float>(LossKind::kMse, pred, target, 1, 1), 4.0f);
  EXPECT_EQ(LossForward<float>(LossKind::kMse, pred, target, 3, 1),
            4.0f / 3.0f);
  float g[3];
  LossBackward<float>(LossKind::kMse, pred, target, 1, 1, g);
  EXPECT_EQ(g[0], 4.0f);
}

// Finite differences in double on an uneven shape (rows 7, last_dim 3).
TEST(Loss, GradientMatchesFiniteDifferences) {
  std::vector<double> pred(21), target(21);
  for (int i = 0; i < 21; ++i) {
    pred[i] = std::sin(1.3 * i + 0.2);
    target[i] = std::cos(0.7 * i);
  }
  for (LossKind kind : {LossKind::kMse, LossKind::kMae}) {
    std::vector<double> g(21);
    LossBackward<double>(kind, pred.data(), target.data(), 7, 3, g.data());
    for (int i = 0; i < 21; ++i) {
      const double h = 1e-6;
      std::vector<double> p = pred;
      p[i] += h;
      const double up =
          LossForward<double>(kind, p.data(), target.data(), 7, 3);
      p[i] -= 2 * h;
      const double dn =
          LossForward<double>(kind, p.data(), target.data(), 7, 3);
      EXPECT_NEAR(g[i], (up - dn) / (2 * h), 1e-8) << i;
    }
  }
}

TEST(Loss, NanPropagatesAndZeroRowsGiveZero) {
  const double pred[] = {NAN, 1};
  const double target[] = {0, 1};
  EXPECT_TRUE(
      std::isnan(LossForward<double>(LossKind::kMse, pred, target, 1, 2)));
  double g[2];
  LossBackward<double>(LossKind::kMae, pred, target, 1, 2, g);
  EXPECT_TRUE(std::isnan(g[0]));
  EXPECT_EQ(g[1], 0.0);
  EXPECT_EQ(LossForward<double>(LossKind::kMse, pred, target, 0, 2), 0.0);
}

}  // namespace
}  // namespace driftscope
