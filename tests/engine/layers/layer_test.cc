// The engine's layers (float and double) against the fp64 reference for every
// layer type and option; argument checks; determinism (repeat, threads,
// buffer reuse across batch sizes); implementation 1 vs 2 in float32.
#include "engine/layers/layer.h"

#include <cmath>
#include <cstring>

#include "gtest/gtest.h"
#include "tests/engine/reference/layer_test_util.h"

namespace driftscope {
namespace {

using testing_util::AllLayerConfigs;
using testing_util::Describe;
using testing_util::Flatten;
using testing_util::Lcg;
using testing_util::RandomWeights;

Context MakeContext(Precision p, int threads,
                    ActivationImpl act = ActivationImpl::kDefault) {
  Profile profile;
  profile.precision = p;
  profile.threads = threads;
  profile.act = act;
  return Context(profile);
}

template <typename T>
std::vector<T> Cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// Every |a − r| ≤ rtol·max(|r|, floor·max|r|): relative error, with a floor
// at a fraction of the tensor's largest value so that near-zero entries
// (sums that cancel, where the relative error of any summation order is
// unbounded) are judged on the tensor's scale. floor is 1% for double, 10%
// for float.
template <typename T>
void ExpectClose(const T* a, const std::vector<double>& r, double rtol,
                 const std::string& what) {
  const double floor = std::is_same_v<T, float> ? 0.1 : 0.01;
  double scale = 0;
  for (double v : r) scale = std::max(scale, std::fabs(v));
  int bad = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const double tol = rtol * std::max(std::fabs(r[i]), floor * scale);
    if (!(std::fabs(static_cast<double>(a[i]) - r[i]) <= tol) && bad++ < 3) {
      ADD_FAILURE() << what << "[" << i << "]: engine " << a[i]
                    << " vs reference " << r[i] << " (rtol " << rtol << ")";
    }
  }
}

struct Case {
  LayerSpec spec;
  ActivationShape in;
  int batch;
  RefWeights w;
  std::vector<double> x, dy;
};

Case MakeCase(const LayerSpec& spec, const ActivationShape& in, int batch,
              uint64_t seed) {
  Lcg rng(seed);
  Case c{spec, in, batch, RandomWeights(spec, in, &rng, 0.9), {}, {}};
  c.x = rng.Vec(batch * in.per_sample(), 1.5);
  c.dy = rng.Vec(batch * RefOutputShape(spec, in).per_sample(), 1.0);
  return c;
}

template <typename T>
void CompareWithReference(const Case& c, double rtol,
                          ActivationImpl act = ActivationImpl::kDefault) {
  const Context ctx = MakeContext(
      std::is_same_v<T, double> ? Precision::kFp64 : Precision::kFp32, 1, act);
  auto made = MakeLayer<T>(c.spec, c.in, "model.layers[0]");
  ASSERT_TRUE(made.ok()) << made.status();
  Layer<T>& layer = **made;
  const ActivationShape out = RefOutputShape(c.spec, c.in);
  EXPECT_EQ(layer.output_shape().sequence, out.sequence);
  EXPECT_EQ(layer.output_shape().dim, out.dim);
  const auto shapes = RefWeightShapes(c.spec, c.in);
  ASSERT_EQ(layer.weights().size(), shapes.size());
  for (size_t k = 0; k < shapes.size(); ++k)
    EXPECT_EQ(layer.weights()[k].shape, shapes[k]);

  const std::vector<T> params = Cast<T>(Flatten(c.w));
  ASSERT_EQ(layer.num_params(), static_cast<int64_t>(params.size()));
  const std::vector<T> x = Cast<T>(c.x), dy = Cast<T>(c.dy);
  std::vector<T> y(c.dy.size());
  layer.Forward(ctx, params.data(), x.data(), c.batch, y.data());

  std::vector<std::vector<double>> ref_states;
  const auto ref_y = RefForward(c.spec, c.in, c.w, c.x, c.batch, &ref_states);
  ExpectClose(y.data(), ref_y, rtol, "y");
  const auto states = layer.final_states();
  ASSERT_EQ(states.size(), ref_states.size());
  for (size_t s = 0; s < states.size(); ++s)
    ExpectClose(states[s], ref_states[s], rtol, "state " + std::to_string(s));

  std::vector<T> dparams(params.size(), T(-7)), dx(x.size(), T(-7));
  layer.Backward(ctx, params.data(), dy.data(), dx.data(), dparams.data());
  const RefLayerGrads g = RefBackward(c.spec, c.in, c.w, c.x, c.batch, c.dy);
  const T* dp = dparams.data();
  for (size_t k = 0; k < g.dweights.size(); ++k) {
    ExpectClose(dp, g.dweights[k], rtol, "d" + layer.weights()[k].name);
    dp += g.dweights[k].size();
  }
  ExpectClose(dx.data(), g.dx, rtol, "dx");
}

TEST(LayerVsReferenceTest, DoubleAgreesTo1e12ForEveryConfiguration) {
  uint64_t seed = 100;
  for (const LayerSpec& spec : AllLayerConfigs(3)) {
    SCOPED_TRACE(Describe(spec));
    CompareWithReference<double>(MakeCase(spec, {true, 4, 2}, 3, seed++),
                                 1e-12);
    if (spec.kind == LayerKind::kDense)
      CompareWithReference<double>(MakeCase(spec, {false, 1, 2}, 3, seed++),
                                   1e-12);
    if (HasFailure()) return;
  }
}

// Float32 throughout (weights and inputs rounded from the same doubles); the
// drift from fp64 over 4 recurrent steps stays below 2e-5 relative.
TEST(LayerVsReferenceTest, FloatAgreesTo2e5ForEveryConfiguration) {
  uint64_t seed = 100;
  for (const LayerSpec& spec : AllLayerConfigs(3)) {
    SCOPED_TRACE(Describe(spec));
    Case c = MakeCase(spec, {true, 4, 2}, 3, seed++);
    // The reference sees the float-rounded inputs, so only the arithmetic
    // differs.
    for (auto& v : c.w)
      for (double& e : v) e = static_cast<float>(e);
    for (double& e : c.x) e = static_cast<float>(e);
    for (double& e : c.dy) e = static_cast<float>(e);
    // Both CPU activation implementations: libm and Eigen's fast ones.
    CompareWithReference<float>(c, 2e-5, ActivationImpl::kLibm);
    CompareWithReference<float>(c, 2e-5, ActivationImpl::kFast);
    if (HasFailure()) return;
  }
}

// Larger shapes: several GEMM tiles (4U > 256), D ≠ U, B·T rows > 1 block.
TEST(LayerVsReferenceTest, LargerShapesAgreeInDouble) {
  for (LayerKind kind :
       {LayerKind::kLstm, LayerKind::kGru, LayerKind::kSimpleRnn}) {
    for (bool reset_after : {true, false}) {
      if (kind != LayerKind::kGru && !reset_after) continue;
      LayerSpec spec;
      spec.kind = kind;
      spec.units = 70;
      spec.reset_after = reset_after;
      spec.return_sequences = true;
      SCOPED_TRACE(Describe(spec));
      Case c = MakeCase(spec, {true, 6, 9}, 5, 9);
      for (auto& v : c.w)
        for (double& e : v) e *= 0.3;
      CompareWithReference<double>(c, 1e-12);
    }
  }
}

TEST(MakeLayerTest, RejectsBadArgumentsNamingTheField) {
  LayerSpec spec;
  spec.kind = LayerKind::kLstm;
  spec.units = 0;
  auto r = MakeLayer<float>(spec, {true, 10, 1}, "model.layers[0]");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "model.layers[0].units must be >= 1, got 0");

  spec.units = 4;
  r = MakeLayer<float>(spec, {false, 1, 8}, "model.layers[2]");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "model.layers[2]: lstm needs a sequence input; set "
            "return_sequences=true on the layer before it");

  spec.kind = LayerKind::kGru;
  spec.implementation = 3;
  r = MakeLayer<float>(spec, {true, 5, 2}, "model.layers[1]");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "model.layers[1].implementation must be 1 or 2, got 3");

  spec.kind = LayerKind::kDense;  // Dense takes either rank
  EXPECT_TRUE(MakeLayer<double>(spec, {false, 1, 8}, "x").ok());
  EXPECT_TRUE(MakeLayer<double>(spec, {true, 3, 8}, "x").ok());
}

TEST(MakeLayerTest, WeightShapesAreKerasShapes) {
  LayerSpec spec;
  spec.kind = LayerKind::kGru;
  spec.units = 5;
  auto gru = MakeLayer<float>(spec, {true, 7, 3}, "l");
  ASSERT_TRUE(gru.ok());
  const auto& w = (*gru)->weights();
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].name, "kernel");
  EXPECT_EQ(w[0].shape, (std::vector<int64_t>{3, 15}));
  EXPECT_EQ(w[1].name, "recurrent_kernel");
  EXPECT_EQ(w[1].shape, (std::vector<int64_t>{5, 15}));
  EXPECT_EQ(w[2].shape, (std::vector<int64_t>{2, 15}));
  spec.reset_after = false;
  EXPECT_EQ((*MakeLayer<float>(spec, {true, 7, 3}, "l"))->weights()[2].shape,
            (std::vector<int64_t>{15}));
  spec.kind = LayerKind::kLstm;
  spec.use_bias = false;
  auto lstm = MakeLayer<float>(spec, {true, 7, 3}, "l");
  EXPECT_EQ((*lstm)->num_params(), 3 * 20 + 5 * 20);
  EXPECT_FALSE((*lstm)->output_shape().sequence);
  EXPECT_EQ((*lstm)->output_shape().dim, 5);
}

// Runs Forward then Backward and returns y ++ final states ++ dparams ++ dx.
template <typename T>
std::vector<T> RunOnce(Layer<T>& layer, const Context& ctx, const Case& c) {
  const std::vector<T> params = Cast<T>(Flatten(c.w));
  const std::vector<T> x = Cast<T>(c.x), dy = Cast<T>(c.dy);
  std::vector<T> y(dy.size()), dp(params.size()), dx(x.size());
  layer.Forward(ctx, params.data(), x.data(), c.batch, y.data());
  std::vector<T> all = y;
  for (const T* s : layer.final_states())
    all.insert(all.end(), s, s + static_cast<size_t>(c.batch) * c.spec.units);
  layer.Backward(ctx, params.data(), dy.data(), dx.data(), dp.data());
  all.insert(all.end(), dp.begin(), dp.end());
  all.insert(all.end(), dx.begin(), dx.end());
  return all;
}

bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<LayerSpec> BigSpecs() {
  std::vector<LayerSpec> specs;
  for (LayerKind kind : {LayerKind::kLstm, LayerKind::kGru,
                         LayerKind::kSimpleRnn, LayerKind::kDense}) {
    LayerSpec s;
    s.kind = kind;
    s.units = 80;  // 4U = 320 and 3U = 240 + D: several 256-column tiles
    s.return_sequences = true;
    s.go_backwards = kind == LayerKind::kGru;
    s.activation = kind == LayerKind::kDense ? Activation::kTanh : s.activation;
    specs.push_back(s);
  }
  specs.push_back(specs[1]);
  specs.back().reset_after = false;
  return specs;
}

TEST(LayerDeterminismTest, RepeatsAndThreadCountsGiveIdenticalBits) {
  const Context one = MakeContext(Precision::kFp32, 1);
  const Context two = MakeContext(Precision::kFp32, 2);
  for (const LayerSpec& spec : BigSpecs()) {
    SCOPED_TRACE(Describe(spec));
    const ActivationShape in{true, 5, 300};
    const Case big = MakeCase(spec, in, 6, 3);
    const Case small = MakeCase(spec, in, 2, 4);
    auto a = std::move(*MakeLayer<float>(spec, in, "l"));
    auto b = std::move(*MakeLayer<float>(spec, in, "l"));
    const std::vector<float> first = RunOnce(*a, one, big);
    EXPECT_TRUE(BitEqual(first, RunOnce(*a, one, big))) << "second call";
    EXPECT_TRUE(BitEqual(first, RunOnce(*b, two, big))) << "threads=2";
    // A smaller batch after a larger one reuses the buffers: same bits as a
    // fresh layer that only ever saw the small batch.
    const std::vector<float> reused = RunOnce(*a, one, small);
    auto fresh = std::move(*MakeLayer<float>(spec, in, "l"));
    EXPECT_TRUE(BitEqual(reused, RunOnce(*fresh, one, small)));
  }
}

// Keras mode 1 adds the bias before the recurrent term ((xW+b)+hR), mode 2
// after ((xW+hR)+b), and mode 1 runs one GEMM per gate: mathematically the
// same layer, so the float32 results agree to rounding, but not bit for bit.
TEST(LayerImplementationTest, LstmMode1AndMode2DifferOnlyByRounding) {
  const Context ctx = MakeContext(Precision::kFp32, 1);
  LayerSpec spec;
  spec.kind = LayerKind::kLstm;
  spec.units = 16;
  spec.return_sequences = true;
  const ActivationShape in{true, 8, 5};
  Case c = MakeCase(spec, in, 4, 11);
  spec.implementation = 1;
  auto m1 = std::move(*MakeLayer<float>(spec, in, "l"));
  spec.implementation = 2;
  auto m2 = std::move(*MakeLayer<float>(spec, in, "l"));
  const std::vector<float> r1 = RunOnce(*m1, ctx, c);
  const std::vector<float> r2 = RunOnce(*m2, ctx, c);
  ASSERT_EQ(r1.size(), r2.size());
  int differing = 0;
  double max_rel = 0, scale = 0;
  for (float v : r2) scale = std::max(scale, std::fabs(double{v}));
  for (size_t i = 0; i < r1.size(); ++i) {
    if (r1[i] != r2[i]) ++differing;
    max_rel =
        std::max(max_rel, std::fabs(double{r1[i]} - r2[i]) /
                              std::max(std::fabs(double{r2[i]}), 1e-2 * scale));
  }
  EXPECT_GT(differing, 0) << "modes 1 and 2 must not be bit-identical";
  EXPECT_LT(max_rel, 1e-5);
}

// Profile "impl=1" forces Keras implementation 1 on every RNN whatever the
// spec says: the same bits as a spec asking for it.
TEST(LayerImplementationTest, ProfileOverrideForcesImplementation) {
  LayerSpec spec;
  spec.kind = LayerKind::kLstm;
  spec.units = 16;
  spec.return_sequences = true;
  const ActivationShape in{true, 8, 5};
  const Case c = MakeCase(spec, in, 4, 11);
  Profile forced;
  forced.implementation = 1;
  const Context ctx_forced(forced);
  const Context ctx = MakeContext(Precision::kFp32, 1);
  spec.implementation = 2;
  auto by_profile = std::move(*MakeLayer<float>(spec, in, "l"));
  spec.implementation = 1;
  auto by_spec = std::move(*MakeLayer<float>(spec, in, "l"));
  spec.implementation = 2;
  auto plain = std::move(*MakeLayer<float>(spec, in, "l"));
  const std::vector<float> forced_bits = RunOnce(*by_profile, ctx_forced, c);
  EXPECT_TRUE(BitEqual(forced_bits, RunOnce(*by_spec, ctx, c)));
  EXPECT_FALSE(BitEqual(forced_bits, RunOnce(*plain, ctx, c)));
}

// Mixed precision (bf16): every activation a layer produces is a bf16 value
// (low 16 bits of the float32 zero), and the result stays near fp32's.
TEST(LayerMixedPrecisionTest, Bf16RoundsEveryProducedActivation) {
  for (LayerKind kind : {LayerKind::kLstm, LayerKind::kGru,
                         LayerKind::kSimpleRnn, LayerKind::kDense}) {
    LayerSpec spec;
    spec.kind = kind;
    spec.units = 8;
    spec.return_sequences = true;
    SCOPED_TRACE(testing_util::Describe(spec));
    const ActivationShape in{true, 6, 4};
    const Case c = MakeCase(spec, in, 3, 21);
    const std::vector<float> params = Cast<float>(Flatten(c.w));
    const std::vector<float> x = Cast<float>(c.x);
    std::vector<float> y(c.dy.size()), y32(c.dy.size());
    auto layer = std::move(*MakeLayer<float>(spec, in, "l"));
    layer->Forward(MakeContext(Precision::kBf16, 1), params.data(), x.data(), 3,
                   y.data());
    int not_bf16 = 0;
    for (float v : y) {
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      if ((bits & 0xFFFFu) != 0) ++not_bf16;
    }
    EXPECT_EQ(not_bf16, 0);
    for (const float* s : layer->final_states()) {
      uint32_t bits;
      std::memcpy(&bits, s, 4);
      EXPECT_EQ(bits & 0xFFFFu, 0u);
    }
    layer->Forward(MakeContext(Precision::kFp32, 1), params.data(), x.data(), 3,
                   y32.data());
    double max_diff = 0;
    for (size_t i = 0; i < y.size(); ++i)
      max_diff = std::max(max_diff, std::fabs(double{y[i]} - y32[i]));
    EXPECT_GT(max_diff, 0.0);
    EXPECT_LT(max_diff, 0.05);  // bf16 keeps 8 bits: ~0.4% per rounding
  }
}

}  // namespace
}  // namespace driftscope
