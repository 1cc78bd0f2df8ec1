#include "engine/numerics/activation_impls.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace driftscope {
namespace {

std::vector<float> Inputs() {
  std::vector<float> x;
  for (int i = -4000; i <= 4000; ++i) x.push_back(i * 0.0025f + 0.000123f);
  return x;
}

std::vector<float> Apply(const char* profile, Activation a,
                         const std::vector<float>& x) {
  Context ctx(*Profile::Parse(profile));
  ActivationKernels<float> k = ActivationFor<float>(ctx, a);
  std::vector<float> y(x.size());
  k.forward(x.data(), y.data(), static_cast<int64_t>(x.size()));
  return y;
}

// Max relative (or, with absolute = true, absolute) error against the
// double-precision function.
double MaxErr(const std::vector<float>& x, const std::vector<float>& y,
              Activation a, bool absolute = false) {
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = a == Activation::kTanh
                            ? std::tanh(double{x[i]})
                            : 1.0 / (1.0 + std::exp(-double{x[i]}));
    const double e = std::fabs(y[i] - want);
    worst = std::max(worst, absolute ? e : e / std::fabs(want));
  }
  return worst;
}

TEST(ActivationImplsTest, ImplementationsDifferAndEachMeetsItsErrorBound) {
  const std::vector<float> x = Inputs();
  for (Activation a : {Activation::kTanh, Activation::kSigmoid}) {
    std::vector<float> libm = Apply("fp32,act=libm", a, x);
    std::vector<float> fast = Apply("fp32,act=fast", a, x);
    std::vector<float> gpu = Apply("fp32,act=gpu", a, x);
    const double el = MaxErr(x, libm, a), ef = MaxErr(x, fast, a),
                 eg = MaxErr(x, gpu, a), ef_abs = MaxErr(x, fast, a, true);
    std::printf("%s max rel error: libm %.3g, fast %.3g (abs %.3g), gpu %.3g\n",
                ActivationName(a), el, ef, ef_abs, eg);
    EXPECT_NE(0, std::memcmp(libm.data(), fast.data(), x.size() * 4));
    EXPECT_NE(0, std::memcmp(libm.data(), gpu.data(), x.size() * 4));
    EXPECT_LT(el, 2 * 0x1p-23);  // glibc: within about one ulp
    if (a == Activation::kTanh) {
      EXPECT_LT(ef, 8 * 0x1p-23);  // Eigen's rational tanh: a few ulps
    } else {
      // Eigen's logistic is accurate in absolute terms only: far in the
      // negative tail, where sigmoid(x) is tiny, its relative error grows.
      EXPECT_LT(ef_abs, 8 * 0x1p-24);
      EXPECT_LT(ef, 1e-3);
    }
    if (a == Activation::kTanh) {
      EXPECT_LT(eg, 0x1p-10);  // tanh.approx.f32 bound
    } else {
      EXPECT_LT(eg, 8 * 0x1p-23);
    }
  }
}

// The array kernels of act=gpu (vectorized apart from the libm calls) are
// element for element the scalar definitions, over bit patterns from every
// exponent, NaN, infinities and denormals included.
TEST(ActivationImplsTest, GpuArrayKernelsEqualTheScalarDefinitions) {
  std::vector<float> x;
  for (uint64_t bits = 0; bits < (uint64_t{1} << 32); bits += 3989) {
    const uint32_t u = static_cast<uint32_t>(bits);
    float f;
    std::memcpy(&f, &u, 4);
    x.push_back(f);
  }
  for (float f : {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-38f, 88.0f, -88.0f, 89.0f,
                  -104.0f, -150.0f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN}) {
    x.push_back(f);
  }
  const std::vector<float> tanh = Apply("fp32,act=gpu", Activation::kTanh, x);
  const std::vector<float> sig = Apply("fp32,act=gpu", Activation::kSigmoid, x);
  // A NaN's sign and payload are whatever the compiler's folding of the
  // scalar form gives; any NaN matches any NaN.
  auto same = [](float got, float want) {
    return (std::isnan(got) && std::isnan(want)) ||
           std::memcmp(&got, &want, 4) == 0;
  };
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_TRUE(same(tanh[i], GpuTanh(x[i]))) << x[i];
    ASSERT_TRUE(same(sig[i], GpuSigmoid(x[i]))) << x[i];
  }
}

TEST(ActivationImplsTest, DefaultIsLibmForFp64AndFastForFp32) {
  EXPECT_EQ(Profile::Parse("ref64")->activations(), ActivationImpl::kLibm);
  EXPECT_EQ(Profile::Parse("fp32")->activations(), ActivationImpl::kFast);
  const std::vector<float> x = Inputs();
  std::vector<float> def = Apply("fp32", Activation::kTanh, x);
  std::vector<float> fast = Apply("fp32,act=fast", Activation::kTanh, x);
  EXPECT_EQ(0, std::memcmp(def.data(), fast.data(), x.size() * 4));
}

TEST(ActivationImplsTest, ExactActivationsAreTheSameEverywhere) {
  const std::vector<float> x = Inputs();
  for (Activation a : {Activation::kRelu, Activation::kHardSigmoidKeras3,
                       Activation::kLinear}) {
    std::vector<float> libm = Apply("fp32,act=libm", a, x);
    std::vector<float> gpu = Apply("fp32,act=gpu", a, x);
    EXPECT_EQ(0, std::memcmp(libm.data(), gpu.data(), x.size() * 4));
  }
}

}  // namespace
}  // namespace driftscope
