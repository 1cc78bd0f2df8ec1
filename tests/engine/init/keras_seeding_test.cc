// seed_mode KERAS against real Keras 3 (tests/golden/seeding/
// make_seeding_golden.py; the cases below mirror its CASES): the seeds
// Keras gave each initializer and dropout SeedGenerator after
// keras.utils.set_random_seed(s), and the initial weights RunJob starts
// from, which must be Keras' get_weights() bit for bit except orthogonal
// kernels: TF factors in float32, we in double and round once, so the two
// differ by TF's float32 rounding error (observed up to 1.57e-7 on these
// cases, entries up to 0.6 in magnitude); the bound is 2^-22 (2.4e-7, two
// float32 ulps at 0.5..1), far below any wrong-seed or wrong-order error
// (O(0.1)).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/init/init_seeds.h"
#include "engine/io/npy.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/reference/layer_test_util.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;
using testing_util::Dense;
using testing_util::Rnn;
using Kind = InitializerSpec::Kind;

NdArray Golden(const std::string& name) {
  absl::StatusOr<NdArray> a = ReadNpy(std::string(DRIFTSCOPE_SOURCE_DIR) +
                                      "/tests/golden/seeding/" + name);
  EXPECT_TRUE(a.ok()) << a.status();
  return a.ok() ? *a : NdArray();
}

struct SeedingCase {
  std::string name;
  JobSpec spec;
};

void PrintTo(const SeedingCase& c, std::ostream* os) { *os << c.name; }

JobSpec KerasJob(uint64_t seed, int timesteps, int features,
                 std::vector<LayerSpec> layers) {
  JobSpec spec;
  spec.seed = seed;
  spec.seed_mode = SeedMode::kKeras;
  spec.model.timesteps = timesteps;
  spec.model.features = features;
  spec.model.layers = std::move(layers);
  spec.data.samples = 4;
  spec.data.eval_samples = 2;
  spec.training.epochs = 0;
  spec.training.batch_size = 4;
  return spec;
}

// Mirrors CASES in make_seeding_golden.py.
std::vector<SeedingCase> Cases() {
  std::vector<SeedingCase> c;
  c.push_back({"lstm_pair_s42", KerasJob(42, 10, 1,
                                         {Rnn(LayerKind::kLstm, 64),
                                          Rnn(LayerKind::kLstm, 32)})});
  c.push_back(
      {"gru_dense_s7",
       KerasJob(7, 12, 3, {Rnn(LayerKind::kGru, 16, false), Dense(3)})});
  {
    LayerSpec gru = Rnn(LayerKind::kGru, 8);
    gru.reset_after = false;
    LayerSpec dense = Dense(2);
    dense.activation = Activation::kTanh;
    c.push_back(
        {"mixed_s2147483653", KerasJob((uint64_t{1} << 31) + 5, 6, 4,
                                       {gru, Rnn(LayerKind::kSimpleRnn, 6),
                                        Rnn(LayerKind::kLstm, 5), dense})});
  }
  {
    LayerSpec lstm = Rnn(LayerKind::kLstm, 4);
    lstm.kernel_initializer.kind = Kind::kRandomNormal;
    lstm.bias_initializer.kind = Kind::kRandomUniform;
    LayerSpec gru = Rnn(LayerKind::kGru, 3);
    gru.use_bias = false;
    gru.bias_initializer.kind = Kind::kRandomNormal;
    LayerSpec rnn = Rnn(LayerKind::kSimpleRnn, 3, false);
    rnn.recurrent_initializer.kind = Kind::kGlorotUniform;
    rnn.bias_initializer.kind = Kind::kRandomUniform;
    LayerSpec dense = Dense(2);
    dense.kernel_initializer.kind = Kind::kZeros;
    dense.bias_initializer.kind = Kind::kRandomNormal;
    c.push_back({"initializers_s4294967295",
                 KerasJob(0xFFFFFFFFu, 5, 2, {lstm, gru, rnn, dense})});
  }
  c.push_back(
      {"simple_rnn_s0", KerasJob(0, 4, 3,
                                 {Rnn(LayerKind::kSimpleRnn, 5),
                                  Rnn(LayerKind::kSimpleRnn, 4, false)})});
  return c;
}

class KerasSeedingTest : public ::testing::TestWithParam<SeedingCase> {};

TEST_P(KerasSeedingTest, SeedsAreTheOnesKerasGaveEachSlot) {
  const SeedingCase& tc = GetParam();
  ASSERT_TRUE(ValidateJobSpec(tc.spec).ok());
  const NdArray golden = Golden(tc.name + "/seeds.npy");
  const std::vector<LayerSeeds> seeds = ModelInitSeeds(tc.spec);
  ASSERT_EQ(static_cast<int64_t>(seeds.size()) * 4, golden.size());
  for (size_t k = 0; k < seeds.size(); ++k) {
    const LayerSpec& l = tc.spec.model.layers[k];
    const bool rnn = l.kind != LayerKind::kDense;
    // Golden columns: kernel, recurrent kernel, bias, dropout generator;
    // -1 where Keras has no seed.
    std::vector<const InitializerSpec*> slots = {&l.kernel_initializer};
    if (rnn) slots.push_back(&l.recurrent_initializer);
    if (l.use_bias) slots.push_back(&l.bias_initializer);
    const int columns[] = {0, rnn ? 1 : 2, 2};
    for (size_t w = 0; w < slots.size(); ++w) {
      const double expect = golden.at(4 * k + columns[w]);
      const Kind kind = slots[w]->kind;
      if (kind == Kind::kZeros || kind == Kind::kOnes) {
        EXPECT_EQ(expect, -1) << "layer " << k << " weight " << w;
        continue;
      }
      EXPECT_EQ(static_cast<double>(seeds[k].weights[w].s0), expect)
          << "layer " << k << " weight " << w;
      EXPECT_EQ(seeds[k].weights[w].s1, 0u);
    }
    if (rnn) {
      ASSERT_TRUE(seeds[k].dropout.has_value()) << "layer " << k;
      EXPECT_EQ(static_cast<double>(*seeds[k].dropout), golden.at(4 * k + 3))
          << "layer " << k;
    } else {
      EXPECT_FALSE(seeds[k].dropout.has_value());
    }
  }
}

TEST_P(KerasSeedingTest, InitialWeightsAreKerasGetWeights) {
  const SeedingCase& tc = GetParam();
  absl::StatusOr<Profile> fp32 = Profile::Parse("fp32");
  ASSERT_TRUE(fp32.ok());
  // No training: the final weights are the initial ones.
  absl::StatusOr<RunResult> r = RunJob(tc.spec, *fp32);
  ASSERT_TRUE(r.ok()) << r.status();
  size_t j = 0;
  for (size_t k = 0; k < tc.spec.model.layers.size(); ++k) {
    const LayerSpec& l = tc.spec.model.layers[k];
    const int n = (l.kind == LayerKind::kDense ? 1 : 2) + (l.use_bias ? 1 : 0);
    for (int w = 0; w < n; ++w, ++j) {
      ASSERT_LT(j, r->final_weights.size());
      const NamedArray& got = r->final_weights[j];
      const NdArray want = Golden(absl::StrCat(tc.name, "/w", j, ".npy"));
      ASSERT_EQ(got.array.dtype(), DType::kFloat32) << got.name;
      ASSERT_EQ(got.array.shape(), want.shape()) << got.name;
      const bool orthogonal = w == 1 && l.kind != LayerKind::kDense &&
                              l.recurrent_initializer.kind == Kind::kOrthogonal;
      if (!orthogonal) {
        EXPECT_EQ(0, std::memcmp(got.array.raw(), want.raw(),
                                 static_cast<size_t>(want.nbytes())))
            << tc.name << " " << got.name << " is not Keras' bits";
        continue;
      }
      double worst = 0;
      for (int64_t i = 0; i < want.size(); ++i) {
        worst = std::max(worst, std::fabs(got.array.at(i) - want.at(i)));
      }
      EXPECT_LE(worst, 0x1p-22) << tc.name << " " << got.name;
      std::printf("%s %s orthogonal max |diff| vs TF %.3g\n", tc.name.c_str(),
                  got.name.c_str(), worst);
    }
  }
  EXPECT_EQ(j, r->final_weights.size());
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasSeedingTest,
                         ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<SeedingCase>& info) {
                           return info.param.name;
                         });

TEST(KerasSeedModeTest, DiffersFromTheStreamsModeAndChangesTheDigest) {
  JobSpec keras = DefaultJobSpec();
  keras.seed_mode = SeedMode::kKeras;
  const JobSpec streams = DefaultJobSpec();
  EXPECT_NE(SpecDigest(keras), SpecDigest(streams));
  EXPECT_THAT(CanonicalText(keras), HasSubstr("\nseed_mode=keras\n"));
  EXPECT_THAT(CanonicalText(streams), ::testing::Not(HasSubstr("seed_mode")));
  EXPECT_NE(ModelInitSeeds(keras)[0].weights[0],
            ModelInitSeeds(streams)[0].weights[0]);
}

TEST(KerasSeedModeTest, SeedAbove32BitsIsRefusedNamingTheField) {
  JobSpec spec = DefaultJobSpec();
  spec.seed_mode = SeedMode::kKeras;
  spec.seed = uint64_t{1} << 32;
  const absl::Status s = ValidateJobSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("seed must be in [0, 4294967295]"));
  EXPECT_THAT(s.message(), HasSubstr("4294967296"));
  spec.seed_mode = SeedMode::kStreams;
  EXPECT_TRUE(ValidateJobSpec(spec).ok());
}

}  // namespace
}  // namespace driftscope
