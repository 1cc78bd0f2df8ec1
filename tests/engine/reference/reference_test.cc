// The reference's gradients against central finite differences of its own
// forward pass (fp64), for every layer type and option, and a 3-layer stack;
// plus hand-computed forward values that pin the reference to the spec.
#include "engine/reference/reference.h"

#include <cmath>

#include "gtest/gtest.h"
#include "tests/engine/reference/layer_test_util.h"

namespace driftscope {
namespace {

using testing_util::AllLayerConfigs;
using testing_util::Describe;
using testing_util::Lcg;
using testing_util::RandomWeights;

constexpr int kBatch = 3, kSteps = 4, kDim = 2, kUnits = 3;
constexpr double kH = 1e-6;

double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// |fd − analytic| ≤ 1e-6·max(|analytic|, 0.1): relative 1e-6, with a 1e-7
// absolute floor for gradients that are (near) zero, e.g. where a hard
// sigmoid is saturated; the finite-difference noise is ~1e-9.
void ExpectGradClose(double fd, double an, const std::string& what) {
  EXPECT_LE(std::fabs(fd - an), 1e-6 * std::max(std::fabs(an), 0.1))
      << what << ": finite difference " << fd << " vs backward " << an;
}

// L(θ) = Σ dy ⊙ y(θ): its gradient is exactly what Backward(dy) returns.
void CheckLayerGradients(const LayerSpec& spec, const ActivationShape& in,
                         uint64_t seed) {
  Lcg rng(seed);
  RefWeights w = RandomWeights(spec, in, &rng, 0.9);
  std::vector<double> x = rng.Vec(kBatch * in.per_sample(), 1.5);
  const ActivationShape out = RefOutputShape(spec, in);
  std::vector<double> dy = rng.Vec(kBatch * out.per_sample(), 1.0);
  const RefLayerGrads g = RefBackward(spec, in, w, x, kBatch, dy);
  auto loss = [&]() { return Dot(dy, RefForward(spec, in, w, x, kBatch)); };
  ASSERT_EQ(g.dweights.size(), w.size());
  for (size_t k = 0; k < w.size(); ++k) {
    ASSERT_EQ(g.dweights[k].size(), w[k].size());
    for (size_t i = 0; i < w[k].size(); ++i) {
      const double keep = w[k][i];
      w[k][i] = keep + kH;
      const double lp = loss();
      w[k][i] = keep - kH;
      const double lm = loss();
      w[k][i] = keep;
      ExpectGradClose(
          (lp - lm) / (2 * kH), g.dweights[k][i],
          "weight " + std::to_string(k) + "[" + std::to_string(i) + "]");
    }
  }
  ASSERT_EQ(g.dx.size(), x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + kH;
    const double lp = loss();
    x[i] = keep - kH;
    const double lm = loss();
    x[i] = keep;
    ExpectGradClose((lp - lm) / (2 * kH), g.dx[i],
                    "x[" + std::to_string(i) + "]");
  }
}

TEST(ReferenceGradientTest, EveryLayerAndOptionMatchesFiniteDifferences) {
  uint64_t seed = 1;
  for (const LayerSpec& spec : AllLayerConfigs(kUnits)) {
    SCOPED_TRACE(Describe(spec));
    CheckLayerGradients(spec, ActivationShape{true, kSteps, kDim}, seed++);
    if (spec.kind == LayerKind::kDense)
      CheckLayerGradients(spec, ActivationShape{false, 1, kDim}, seed++);
    if (HasFailure()) return;  // one config's report is enough
  }
}

// masks: null, or input dropout masks for the LSTM and the GRU.
void CheckStackGradients(bool with_masks) {
  std::vector<LayerSpec> layers(3);
  layers[0].kind = LayerKind::kLstm;
  layers[0].units = 4;
  layers[0].return_sequences = true;
  layers[1].kind = LayerKind::kGru;
  layers[1].units = 3;
  layers[1].go_backwards = true;
  layers[2].kind = LayerKind::kDense;
  layers[2].units = 2;
  layers[2].activation = Activation::kLinear;
  const ActivationShape in{true, kSteps, kDim};
  Lcg rng(77);
  std::vector<RefWeights> w;
  ActivationShape shape = in;
  for (const LayerSpec& l : layers) {
    w.push_back(RandomWeights(l, shape, &rng, 0.8));
    shape = RefOutputShape(l, shape);
  }
  EXPECT_FALSE(shape.sequence);
  std::vector<double> x = rng.Vec(kBatch * in.per_sample(), 1.0);
  std::vector<double> dy = rng.Vec(kBatch * shape.per_sample(), 1.0);
  RefMasks masks;
  if (with_masks) {
    // Dropout-style masks: 0 or 1/(1 - rate), the same at every timestep.
    masks = {std::vector<double>(kBatch * kDim, 0.0),
             std::vector<double>(kBatch * 4, 0.0),
             {}};
    for (int l = 0; l < 2; ++l) {
      const std::vector<double> u = rng.Vec(masks[l].size(), 1.0);
      for (size_t i = 0; i < u.size(); ++i) masks[l][i] = u[i] > -0.2 ? 2.5 : 0;
    }
  }
  const RefMasks* m = with_masks ? &masks : nullptr;
  const auto grads = RefModelBackward(layers, in, w, x, kBatch, dy, m);
  auto loss = [&]() {
    return Dot(dy, RefModelForward(layers, in, w, x, kBatch, m));
  };
  for (size_t l = 0; l < layers.size(); ++l) {
    for (size_t k = 0; k < w[l].size(); ++k) {
      for (size_t i = 0; i < w[l][k].size(); ++i) {
        const double keep = w[l][k][i];
        w[l][k][i] = keep + kH;
        const double lp = loss();
        w[l][k][i] = keep - kH;
        const double lm = loss();
        w[l][k][i] = keep;
        ExpectGradClose((lp - lm) / (2 * kH), grads[l].dweights[k][i],
                        "layer " + std::to_string(l));
      }
    }
  }
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + kH;
    const double lp = loss();
    x[i] = keep - kH;
    const double lm = loss();
    x[i] = keep;
    ExpectGradClose((lp - lm) / (2 * kH), grads[0].dx[i], "x");
  }
}

TEST(ReferenceGradientTest, ThreeLayerStackMatchesFiniteDifferences) {
  CheckStackGradients(/*with_masks=*/false);
}

// Input dropout masks on the LSTM and the GRU (zeros included): the masked
// stack's gradients, w.r.t. the unmasked input too.
TEST(ReferenceGradientTest, StackWithDropoutMasksMatchesFiniteDifferences) {
  CheckStackGradients(/*with_masks=*/true);
}

double Sig(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// One unit, one feature, two steps, written out by hand from §1.2.
TEST(ReferenceForwardTest, LstmMatchesHandComputedCell) {
  LayerSpec spec;
  spec.kind = LayerKind::kLstm;
  spec.units = 1;
  spec.return_sequences = true;
  const ActivationShape in{true, 2, 1};
  const RefWeights w = {{0.5, -0.3, 0.8, 0.1},    // kernel [i f c o]
                        {0.2, 0.4, -0.6, 0.7},    // recurrent_kernel
                        {0.0, 1.0, 0.05, -0.1}};  // bias
  const std::vector<double> x = {1.0, -2.0};
  std::vector<std::vector<double>> states;
  const auto y = RefForward(spec, in, w, x, 1, &states);
  double h = 0, c = 0;
  std::vector<double> expect;
  for (double xt : x) {
    const double i = Sig(xt * 0.5 + h * 0.2 + 0.0);
    const double f = Sig(xt * -0.3 + h * 0.4 + 1.0);
    const double g = std::tanh(xt * 0.8 + h * -0.6 + 0.05);
    const double o = Sig(xt * 0.1 + h * 0.7 - 0.1);
    c = f * c + i * g;
    h = o * std::tanh(c);
    expect.push_back(h);
  }
  ASSERT_EQ(y.size(), 2u);
  EXPECT_NEAR(y[0], expect[0], 1e-15);
  EXPECT_NEAR(y[1], expect[1], 1e-15);
  ASSERT_EQ(states.size(), 2u);
  EXPECT_NEAR(states[0][0], h, 1e-15);
  EXPECT_NEAR(states[1][0], c, 1e-15);
}

// GRU reset_after=True is PyTorch's nn.GRU (§8.3); written from that form.
TEST(ReferenceForwardTest, GruResetAfterMatchesPyTorchFormula) {
  LayerSpec spec;
  spec.kind = LayerKind::kGru;
  spec.units = 1;
  const ActivationShape in{true, 3, 1};
  const RefWeights w = {{0.3, -0.5, 0.9},  // kernel [z r h]
                        {0.6, 0.2, -0.4},  // recurrent_kernel
                        {0.1, -0.2, 0.3, -0.05, 0.15, 0.25}};  // (2, 3)
  const std::vector<double> x = {0.7, -1.1, 0.4};
  const auto y = RefForward(spec, in, w, x, 1);
  double h = 0;
  for (double xt : x) {
    const double r = Sig(-0.5 * xt - 0.2 + 0.2 * h + 0.15);
    const double z = Sig(0.3 * xt + 0.1 + 0.6 * h - 0.05);
    const double n = std::tanh(0.9 * xt + 0.3 + r * (-0.4 * h + 0.25));
    h = (1 - z) * n + z * h;
  }
  ASSERT_EQ(y.size(), 1u);
  EXPECT_NEAR(y[0], h, 1e-15);
}

// go_backwards consumes x_{T-1} first and returns the sequence in
// processing order: the same as the forward layer on the time-reversed x.
TEST(ReferenceForwardTest, GoBackwardsIsForwardOnReversedInput) {
  LayerSpec spec;
  spec.kind = LayerKind::kSimpleRnn;
  spec.units = 2;
  spec.return_sequences = true;
  const ActivationShape in{true, 5, 3};
  Lcg rng(5);
  const RefWeights w = RandomWeights(spec, in, &rng, 0.7);
  const std::vector<double> x = rng.Vec(2 * in.per_sample(), 1.0);
  std::vector<double> xr(x.size());
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 5; ++t)
      for (int d = 0; d < 3; ++d)
        xr[(b * 5 + t) * 3 + d] = x[(b * 5 + (4 - t)) * 3 + d];
  LayerSpec back = spec;
  back.go_backwards = true;
  EXPECT_EQ(RefForward(back, in, w, x, 2), RefForward(spec, in, w, xr, 2));
}

TEST(ReferenceForwardTest, HardSigmoidDefinitionsDiffer) {
  // Keras 2: clip(0.2x + 0.5); Keras 3: relu6(x + 3)/6.
  EXPECT_DOUBLE_EQ(RefActivation(Activation::kHardSigmoidKeras2, 1.0), 0.7);
  EXPECT_DOUBLE_EQ(RefActivation(Activation::kHardSigmoidKeras3, 1.0),
                   4.0 / 6.0);
  EXPECT_EQ(RefActivation(Activation::kHardSigmoidKeras2, 2.6), 1.0);
  EXPECT_LT(RefActivation(Activation::kHardSigmoidKeras3, 2.6), 1.0);
}

}  // namespace
}  // namespace driftscope
