// Optimizer validation, clipping edge cases and hand-computed steps.
#include "engine/optim/optimizer.h"

#include <cmath>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "engine/optim/clip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

const double kNan = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

absl::Status CreateStatus(const OptimizerSpec& spec) {
  return Optimizer<float>::Create(spec, {{0, 4}}).status();
}

void ExpectInvalid(const OptimizerSpec& spec, const std::string& message) {
  const absl::Status st = CreateStatus(spec);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << message;
  EXPECT_THAT(std::string(st.message()), HasSubstr(message));
}

TEST(OptimizerValidation, LearningRate) {
  OptimizerSpec s;
  s.learning_rate = kNan;
  const absl::Status st = CreateStatus(s);
  EXPECT_EQ(st.message(),
            "optimizer.learning_rate must be a finite number > 0, got nan");
  s.learning_rate = 0;
  ExpectInvalid(s,
                "optimizer.learning_rate must be a finite number > 0, got 0");
  s.learning_rate = kInf;
  ExpectInvalid(s, "optimizer.learning_rate");
  s.learning_rate = -0.1;
  ExpectInvalid(s, "got -0.1");
}

TEST(OptimizerValidation, AdamBetasAndEpsilon) {
  OptimizerSpec s;  // Adam by default
  EXPECT_TRUE(CreateStatus(s).ok());
  s.beta_1 = 1.0;
  ExpectInvalid(s, "optimizer.beta_1 must be in [0, 1), got 1");
  s = OptimizerSpec();
  s.beta_2 = -0.5;
  ExpectInvalid(s, "optimizer.beta_2 must be in [0, 1), got -0.5");
  s = OptimizerSpec();
  s.beta_2 = kNan;
  ExpectInvalid(s, "optimizer.beta_2");
  s = OptimizerSpec();
  s.epsilon = -1e-7;
  ExpectInvalid(s, "optimizer.epsilon must be a finite number >= 0");
  s.epsilon = 0;  // allowed
  EXPECT_TRUE(CreateStatus(s).ok());
}

TEST(OptimizerValidation, SgdAndRmsprop) {
  OptimizerSpec s;
  s.kind = OptimizerKind::kSgd;
  s.momentum = 1.0;
  ExpectInvalid(s, "optimizer.momentum must be in [0, 1), got 1");
  s.momentum = 0;
  s.nesterov = true;  // Keras accepts this and ignores nesterov
  EXPECT_TRUE(CreateStatus(s).ok());
  s.beta_1 = 7;  // not an SGD field: ignored
  EXPECT_TRUE(CreateStatus(s).ok());

  s = OptimizerSpec();
  s.kind = OptimizerKind::kRmsprop;
  s.rho = 1.0;
  ExpectInvalid(s, "optimizer.rho must be in [0, 1), got 1");
  s.rho = 0.9;
  s.momentum = -0.1;
  ExpectInvalid(s, "optimizer.momentum");
  s.momentum = 0.5;
  s.epsilon = kNan;
  ExpectInvalid(s, "optimizer.epsilon");
}

TEST(OptimizerValidation, Clipping) {
  OptimizerSpec s;
  s.clipnorm = 0.0;
  ExpectInvalid(s, "optimizer.clipnorm must be a finite number > 0, got 0");
  s.clipnorm.reset();
  s.global_clipnorm = kInf;
  ExpectInvalid(s, "optimizer.global_clipnorm must be a finite number > 0");
  s.global_clipnorm.reset();
  s.clipvalue = -1;
  ExpectInvalid(s, "optimizer.clipvalue");
  s.clipvalue = 0.5;
  s.clipnorm = 1;
  ExpectInvalid(s,
                "only one of clipnorm, global_clipnorm and clipvalue may be "
                "set (as in Keras), got clipnorm=1 and clipvalue=0.5");
}

TEST(OptimizerValidation, Variables) {
  OptimizerSpec s;
  const absl::Status st =
      Optimizer<double>::Create(s, {{0, 4}, {-1, 2}}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("variables[1]"));
}

// ‖(3, 4)‖ = 5 > c = 1 → (0.6, 0.8); a zero gradient stays zero (TF's
// zero-norm guard); a small one is multiplied and divided by c anyway.
TEST(Clip, ByNormPerVariable) {
  std::vector<double> g = {3, 4, 0, 0, 0.25, 0.5};
  ClipByNormPerVariable<double>({{0, 2}, {2, 2}, {4, 2}}, 1.0, g.data());
  EXPECT_DOUBLE_EQ(g[0], 0.6);
  EXPECT_DOUBLE_EQ(g[1], 0.8);
  EXPECT_EQ(g[2], 0.0);
  EXPECT_FALSE(std::signbit(g[2]));
  EXPECT_EQ(g[3], 0.0);
  EXPECT_EQ(g[4], 0.25);
  EXPECT_EQ(g[5], 0.5);

  // (g·c)/c need not give g back in float32: 0.027f·0.3f/0.3f is 1 ulp
  // below 0.027f, and Keras applies it even though ‖g‖ < c.
  float one = 0.027f;
  ClipByNormPerVariable<float>({{0, 1}}, 0.3, &one);
  EXPECT_EQ(one, std::nextafter(0.027f, 0.0f));

  std::vector<float> bad = {NAN, 1.0f, 2.0f};
  ClipByNormPerVariable<float>({{0, 2}, {2, 1}}, 1.0, bad.data());
  EXPECT_TRUE(std::isnan(bad[0]));
  EXPECT_TRUE(std::isnan(bad[1]));
  EXPECT_EQ(bad[2], 1.0f);  // other variables are clipped on their own
}

// Global norm of {(3), (4)} is 5; with c = 1 every gradient is scaled by
// 1/5. An Inf anywhere makes every gradient NaN (scale + (n − n)).
TEST(Clip, ByGlobalNorm) {
  std::vector<double> g = {3, 4};
  ClipByGlobalNorm<double>({{0, 1}, {1, 1}}, 1.0, g.data());
  EXPECT_DOUBLE_EQ(g[0], 0.6);
  EXPECT_DOUBLE_EQ(g[1], 0.8);

  // Below the threshold the scale is c·(1/c) rounded: exactly 1 for c = 2.
  std::vector<float> small = {0.5f, 0.25f};
  ClipByGlobalNorm<float>({{0, 2}}, 2.0, small.data());
  EXPECT_EQ(small[0], 0.5f);
  EXPECT_EQ(small[1], 0.25f);

  std::vector<float> zero = {0.0f, 0.0f};
  ClipByGlobalNorm<float>({{0, 2}}, 1.0, zero.data());
  EXPECT_EQ(zero[0], 0.0f);

  std::vector<float> inf = {INFINITY, 1.0f, 2.0f};
  ClipByGlobalNorm<float>({{0, 1}, {1, 2}}, 1.0, inf.data());
  for (float v : inf) EXPECT_TRUE(std::isnan(v));
}

TEST(Clip, ByValue) {
  std::vector<float> g = {-3.0f, -0.001f, 0.0f, 0.02f, NAN};
  ClipByValue<float>({{0, 5}}, 0.01, g.data());
  EXPECT_EQ(g[0], -0.01f);
  EXPECT_EQ(g[1], -0.001f);
  EXPECT_EQ(g[2], 0.0f);
  EXPECT_EQ(g[3], 0.01f);
  EXPECT_TRUE(std::isnan(g[4]));
}

// One Adam step by hand in double: m = 0.1·g, v = 0.001·g²,
// alpha = lr·sqrt(1 − β2')/(1 − β1') with β' = double(float(β)) (Keras casts
// the Python float through a float32 tensor), θ -= m·alpha/(sqrt(v) + ε).
TEST(OptimizerStep, AdamFirstStepByHand) {
  OptimizerSpec s;
  s.learning_rate = 0.01;
  auto opt = Optimizer<double>::Create(s, {{0, 2}});
  ASSERT_TRUE(opt.ok());
  std::vector<double> p = {1.0, -2.0};
  std::vector<double> g = {0.5, -0.25};
  (*opt)->Apply(p.data(), g.data());
  EXPECT_EQ((*opt)->iterations(), 1);
  const double b1 = static_cast<float>(0.9), b2 = static_cast<float>(0.999);
  const double alpha = 0.01 * std::sqrt(1 - b2) / (1 - b1);
  for (int i = 0; i < 2; ++i) {
    const double gi = i == 0 ? 0.5 : -0.25;
    const double m = gi * (1 - 0.9), v = gi * gi * (1 - 0.999);
    const double want =
        (i == 0 ? 1.0 : -2.0) - m * alpha / (std::sqrt(v) + 1e-7);
    EXPECT_NEAR(p[i], want, 1e-15);
  }
}

// SGD with momentum 0.5, lr 0.1, g = 1 twice: m = −0.1 then −0.15; θ = −0.25.
// Nesterov: θ += m·μ − g·lr → −0.15 then −0.075 − 0.1 = −0.175 → −0.325.
TEST(OptimizerStep, SgdMomentumAndNesterovByHand) {
  for (bool nesterov : {false, true}) {
    OptimizerSpec s;
    s.kind = OptimizerKind::kSgd;
    s.learning_rate = 0.1;
    s.momentum = 0.5;
    s.nesterov = nesterov;
    auto opt = Optimizer<double>::Create(s, {{0, 1}});
    ASSERT_TRUE(opt.ok());
    double p = 0;
    for (int step = 0; step < 2; ++step) {
      double g = 1;
      (*opt)->Apply(&p, &g);
    }
    EXPECT_NEAR(p, nesterov ? -0.325 : -0.25, 1e-15) << nesterov;
    EXPECT_EQ((*opt)->iterations(), 2);
  }
}

// RMSprop, rho 0.5, ε 0: v = 0.5·g² → θ -= lr·g/sqrt(0.5·g²) = lr·sqrt(2).
TEST(OptimizerStep, RmspropFirstStepByHand) {
  OptimizerSpec s;
  s.kind = OptimizerKind::kRmsprop;
  s.learning_rate = 0.01;
  s.rho = 0.5;
  s.epsilon = 0;
  auto opt = Optimizer<double>::Create(s, {{0, 1}});
  ASSERT_TRUE(opt.ok());
  double p = 1, g = 3;
  (*opt)->Apply(&p, &g);
  EXPECT_NEAR(p, 1 - 0.01 * std::sqrt(2.0), 1e-15);
}

// Parameters outside every variable slice are never touched.
TEST(OptimizerStep, OnlyVariablesChange) {
  OptimizerSpec s;
  s.kind = OptimizerKind::kSgd;
  s.learning_rate = 0.01;
  auto opt = Optimizer<float>::Create(s, {{1, 2}});
  ASSERT_TRUE(opt.ok());
  std::vector<float> p = {5, 5, 5, 5};
  std::vector<float> g = {1, 1, 1, 1};
  (*opt)->Apply(p.data(), g.data());
  EXPECT_EQ(p[0], 5.0f);
  EXPECT_EQ(p[3], 5.0f);
  EXPECT_EQ(p[1], 5.0f - 1.0f * 0.01f);
}

}  // namespace
}  // namespace driftscope
