// Keras initializers against TensorFlow/Keras goldens
// (tests/golden/init/make_init_golden.py): the random streams must give
// Keras' bits; the orthogonal QR is checked against TF's float32 QR and a
// float64 numpy QR of the same draws.
#include "engine/init/initializers.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "engine/io/npy.h"
#include "engine/rng/philox.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;
using Kind = InitializerSpec::Kind;

NdArray Golden(const std::string& name) {
  absl::StatusOr<NdArray> a = ReadNpy(std::string(DRIFTSCOPE_SOURCE_DIR) +
                                      "/tests/golden/init/" + name);
  EXPECT_TRUE(a.ok()) << a.status();
  return a.ok() ? *a : NdArray();
}

int64_t UlpDistance(float a, float b) {
  auto key = [](float f) -> int64_t {
    int32_t i;
    std::memcpy(&i, &f, 4);
    return i >= 0 ? int64_t{i} : int64_t{INT32_MIN} - i;
  };
  return std::llabs(key(a) - key(b));
}

// Max |Q Qᵀ − I| over the rows of a row-major r×c float matrix (r ≤ c).
double RowOrthonormalityError(const float* q, int r, int c) {
  double worst = 0;
  for (int i = 0; i < r; ++i) {
    for (int j = 0; j < r; ++j) {
      double s = 0;
      for (int k = 0; k < c; ++k) s += double{q[i * c + k]} * q[j * c + k];
      worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  }
  return worst;
}

LayerSpec Lstm(int units) {
  LayerSpec s;
  s.kind = LayerKind::kLstm;
  s.units = units;
  return s;
}

TEST(InitializersTest, LstmKernelGlorotIsBitIdenticalToTensorFlow) {
  std::vector<float> w;
  ASSERT_TRUE(
      InitializeLayer(Lstm(64), {{1, 256}, {64, 256}, {256}}, 42, 0, &w).ok());
  const NdArray golden = Golden("lstm64_d1_kernel_glorot.npy");
  ASSERT_EQ(golden.size(), 256);
  EXPECT_EQ(0, std::memcmp(w.data(), golden.raw(), 256 * sizeof(float)));
}

TEST(InitializersTest, LstmRecurrentOrthogonalMatchesTensorFlowQr) {
  std::vector<float> w;
  ASSERT_TRUE(
      InitializeLayer(Lstm(64), {{1, 256}, {64, 256}, {256}}, 42, 0, &w).ok());
  const float* q = w.data() + 256;
  const NdArray tf = Golden("lstm64_recurrent_orthogonal_tf.npy");
  const NdArray f64 = Golden("lstm64_recurrent_orthogonal_f64.npy");
  ASSERT_EQ(tf.shape(), (std::vector<int64_t>{64, 256}));
  ASSERT_EQ(f64.size(), 64 * 256);
  double max_tf = 0;
  int64_t max_ulp_f64 = 0;
  for (int i = 0; i < 64 * 256; ++i) {
    max_tf = std::max(max_tf, std::fabs(double{q[i]} - tf.data<float>()[i]));
    max_ulp_f64 =
        std::max(max_ulp_f64, UlpDistance(q[i], f64.data<float>()[i]));
  }
  // TF factors in float32; we in double and round once.
  EXPECT_LT(max_tf, 1e-6);
  // Same math in double: only a rounding tie can differ, by one ulp.
  EXPECT_LE(max_ulp_f64, 1);
  EXPECT_LT(RowOrthonormalityError(q, 64, 256), 1e-6);
}

TEST(InitializersTest, SquareOrthogonalIsNotTransposed) {
  LayerSpec rnn;
  rnn.kind = LayerKind::kSimpleRnn;
  rnn.units = 32;
  std::vector<float> w;
  ASSERT_TRUE(InitializeLayer(rnn, {{3, 32}, {32, 32}, {32}}, 42, 1, &w).ok());
  const float* q = w.data() + 3 * 32;
  const NdArray f64 = Golden("rnn32_recurrent_orthogonal_f64.npy");
  for (int i = 0; i < 32 * 32; ++i) {
    EXPECT_LE(UlpDistance(q[i], f64.data<float>()[i]), 1) << i;
  }
  EXPECT_LT(RowOrthonormalityError(q, 32, 32), 1e-6);
}

// Keras 3 turns initializer seed s into the stateless seed [s, 0]
// (verified by the golden script), so stream 0 reproduces Keras' own
// initializer objects.
TEST(InitializersTest, KerasSeededInitializersAreReproducedOnStreamZero) {
  InitializerSpec glorot{Kind::kGlorotUniform};
  std::vector<float> w(8 * 32);
  ASSERT_TRUE(InitializeTensor(glorot, {8, 32}, 1234, 0, w.data()).ok());
  EXPECT_EQ(0,
            std::memcmp(w.data(),
                        Golden("keras_glorot_uniform_seed1234_8x32.npy").raw(),
                        w.size() * 4));

  InitializerSpec uniform{Kind::kRandomUniform};
  uniform.minval = -0.3;
  uniform.maxval = 0.7;
  w.resize(45);
  ASSERT_TRUE(InitializeTensor(uniform, {5, 9}, 1234, 0, w.data()).ok());
  EXPECT_EQ(0,
            std::memcmp(w.data(),
                        Golden("keras_random_uniform_seed1234_5x9.npy").raw(),
                        45 * 4));

  InitializerSpec normal{Kind::kRandomNormal};
  normal.mean = 0.25;
  normal.stddev = 2.0;
  ASSERT_TRUE(InitializeTensor(normal, {5, 9}, 1234, 0, w.data()).ok());
  const NdArray kn = Golden("keras_random_normal_seed1234_5x9.npy");
  for (int i = 0; i < 45; ++i) {
    // libm-dependent (see PhiloxTest); bit-identical on glibc.
    EXPECT_LE(UlpDistance(w[i], kn.data<float>()[i]), 4) << i;
  }

  InitializerSpec orth{Kind::kOrthogonal};
  w.resize(16 * 48);
  ASSERT_TRUE(InitializeTensor(orth, {16, 48}, 1234, 0, w.data()).ok());
  const NdArray ko = Golden("keras_orthogonal_seed1234_16x48.npy");
  for (int i = 0; i < 16 * 48; ++i) {
    EXPECT_NEAR(w[i], ko.data<float>()[i], 1e-6) << i;
  }
}

TEST(InitializersTest, GlorotUsesKerasFansForHigherRanks) {
  // (2, 3, 4): receptive field 2, fan_in 6, fan_out 8, limit sqrt(3/7).
  std::vector<float> w(24), u(24);
  ASSERT_TRUE(InitializeTensor(InitializerSpec{Kind::kGlorotUniform}, {2, 3, 4},
                               5, 9, w.data())
                  .ok());
  StatelessUniform(5, 9, 24, u.data());
  const float limit = static_cast<float>(std::sqrt(3.0 / 7.0));
  for (int i = 0; i < 24; ++i) {
    EXPECT_EQ(w[i], u[i] * (2 * limit) + (-limit)) << i;
    EXPECT_LT(std::fabs(w[i]), limit);
  }
}

TEST(InitializersTest, OrthogonalGainScalesExactly) {
  InitializerSpec one{Kind::kOrthogonal}, two{Kind::kOrthogonal};
  two.gain = 2.0;
  std::vector<float> a(12 * 5), b(12 * 5);
  ASSERT_TRUE(InitializeTensor(one, {12, 5}, 3, 4, a.data()).ok());
  ASSERT_TRUE(InitializeTensor(two, {12, 5}, 3, 4, b.data()).ok());
  for (int i = 0; i < 60; ++i) EXPECT_EQ(b[i], 2 * a[i]) << i;
  // Tall (12, 5): orthonormal columns.
  double worst = 0;
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 5; ++j) {
      double s = 0;
      for (int k = 0; k < 12; ++k) s += double{a[k * 5 + i]} * a[k * 5 + j];
      worst = std::max(worst, std::fabs(s - (i == j)));
    }
  }
  EXPECT_LT(worst, 1e-6);
}

TEST(InitializersTest, OrthogonalNeedsRankTwo) {
  std::vector<float> w(4);
  const absl::Status s =
      InitializeTensor(InitializerSpec{Kind::kOrthogonal}, {4}, 1, 1, w.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("rank >= 2"));
}

TEST(InitializersTest, LstmUnitForgetBiasLayout) {
  LayerSpec spec = Lstm(3);
  std::vector<float> w;
  ASSERT_TRUE(InitializeLayer(spec, {{2, 12}, {3, 12}, {12}}, 7, 2, &w).ok());
  ASSERT_EQ(w.size(), 2 * 12 + 3 * 12 + 12u);
  const std::vector<float> bias(w.end() - 12, w.end());
  EXPECT_EQ(bias, (std::vector<float>{0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0}));

  // A random bias initializer: [init(U), ones, init(2U)], both pieces from
  // the start of the bias stream (as Keras' two calls with one seed).
  spec.bias_initializer = InitializerSpec{Kind::kRandomUniform};
  ASSERT_TRUE(InitializeLayer(spec, {{2, 12}, {3, 12}, {12}}, 7, 2, &w).ok());
  std::vector<float> expect(6);
  ASSERT_TRUE(InitializeTensor(spec.bias_initializer, {6}, 7,
                               streams::Init(2, 2), expect.data())
                  .ok());
  const float* b = w.data() + w.size() - 12;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(b[i], expect[i]);
  for (int i = 3; i < 6; ++i) EXPECT_EQ(b[i], 1.0f);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(b[6 + i], expect[i]);

  spec.unit_forget_bias = false;
  ASSERT_TRUE(InitializeLayer(spec, {{2, 12}, {3, 12}, {12}}, 7, 2, &w).ok());
  std::vector<float> plain(12);
  ASSERT_TRUE(InitializeTensor(spec.bias_initializer, {12}, 7,
                               streams::Init(2, 2), plain.data())
                  .ok());
  EXPECT_EQ(std::vector<float>(w.end() - 12, w.end()), plain);
}

TEST(InitializersTest, EachWeightHasItsOwnStream) {
  LayerSpec dense;
  dense.kind = LayerKind::kDense;
  dense.units = 4;
  dense.bias_initializer = InitializerSpec{Kind::kRandomUniform};
  std::vector<float> w;
  ASSERT_TRUE(InitializeLayer(dense, {{3, 4}, {4}}, 11, 5, &w).ok());
  std::vector<float> kernel(12), bias(4);
  ASSERT_TRUE(InitializeTensor(dense.kernel_initializer, {3, 4}, 11,
                               streams::Init(5, 0), kernel.data())
                  .ok());
  ASSERT_TRUE(InitializeTensor(dense.bias_initializer, {4}, 11,
                               streams::Init(5, 1), bias.data())
                  .ok());
  EXPECT_EQ(std::vector<float>(w.begin(), w.begin() + 12), kernel);
  EXPECT_EQ(std::vector<float>(w.begin() + 12, w.end()), bias);
}

TEST(InitializersTest, GruBiasShapesAndNoBias) {
  LayerSpec gru;
  gru.kind = LayerKind::kGru;
  gru.units = 2;
  std::vector<float> w;
  EXPECT_TRUE(InitializeLayer(gru, {{1, 6}, {2, 6}, {2, 6}}, 1, 0, &w).ok());
  EXPECT_EQ(w.size(), 6 + 12 + 12u);
  const absl::Status wrong =
      InitializeLayer(gru, {{1, 6}, {2, 6}, {6}}, 1, 0, &w);
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong.message(), HasSubstr("expected (2, 6)"));
  gru.reset_after = false;
  EXPECT_TRUE(InitializeLayer(gru, {{1, 6}, {2, 6}, {6}}, 1, 0, &w).ok());
  gru.use_bias = false;
  EXPECT_TRUE(InitializeLayer(gru, {{1, 6}, {2, 6}}, 1, 0, &w).ok());
  EXPECT_EQ(w.size(), 6 + 12u);
  const absl::Status extra =
      InitializeLayer(gru, {{1, 6}, {2, 6}, {6}}, 1, 0, &w);
  EXPECT_THAT(extra.message(), HasSubstr("expected 2"));
}

}  // namespace
}  // namespace driftscope
