#include "engine/job/job_spec.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "engine/core/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

void ExpectInvalid(const JobSpec& spec, const std::string& message) {
  absl::Status s = ValidateJobSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(s.message(), message);
}

TEST(Sha256Test, KnownVectorsAndIncrementalForm) {
  // FIPS 180-2 examples.
  EXPECT_EQ(Sha256Hex("", 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.Update("a", 1);
  h.Update("bc", 2);
  EXPECT_EQ(h.HexDigest(), Sha256Hex("abc", 3));
  // Starts over after a digest.
  h.Update("", 0);
  EXPECT_EQ(h.HexDigest(), Sha256Hex("", 0));
}

TEST(JobSpecTest, DefaultJobIsTheDocumentedOneAndValid) {
  const JobSpec spec = DefaultJobSpec();
  EXPECT_EQ(spec.seed, 42u);
  EXPECT_EQ(spec.model.timesteps, 10);
  EXPECT_EQ(spec.model.features, 1);
  ASSERT_EQ(spec.model.layers.size(), 2u);
  for (const LayerSpec& l : spec.model.layers) {
    EXPECT_EQ(l.kind, LayerKind::kLstm);
    EXPECT_TRUE(l.return_sequences);
    EXPECT_EQ(l.activation, Activation::kTanh);
    EXPECT_EQ(l.recurrent_activation, Activation::kSigmoid);
  }
  EXPECT_EQ(spec.model.layers[0].units, 64);
  EXPECT_EQ(spec.model.layers[1].units, 32);
  EXPECT_EQ(spec.optimizer.kind, OptimizerKind::kAdam);
  EXPECT_EQ(spec.optimizer.learning_rate, 0.001);
  EXPECT_EQ(spec.optimizer.clipnorm, 1.0);
  EXPECT_FALSE(spec.optimizer.global_clipnorm.has_value());
  EXPECT_EQ(spec.loss, LossKind::kMse);
  EXPECT_EQ(spec.data.generator, DataSpec::Generator::kSine);
  EXPECT_EQ(spec.data.samples, 1024);
  EXPECT_EQ(spec.data.eval_samples, 128);
  EXPECT_EQ(spec.training.epochs, 3);
  EXPECT_EQ(spec.training.batch_size, 32);
  EXPECT_TRUE(spec.training.shuffle);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  EXPECT_EQ(ModelOutputUnits(spec.model), 32);
  EXPECT_TRUE(ModelOutputIsSequence(spec.model));
}

TEST(JobSpecTest, OutputShapeFollowsLastRnnAndDenseKeepsRank) {
  ModelSpec m = DefaultJobSpec().model;
  m.layers[1].return_sequences = false;
  EXPECT_FALSE(ModelOutputIsSequence(m));
  LayerSpec dense;
  dense.kind = LayerKind::kDense;
  dense.units = 3;
  m.layers.push_back(dense);
  EXPECT_FALSE(ModelOutputIsSequence(m));
  EXPECT_EQ(ModelOutputUnits(m), 3);
  m.layers[1].return_sequences = true;
  EXPECT_TRUE(ModelOutputIsSequence(m));
}

TEST(JobSpecValidationTest, RangeMessagesNameFieldAndValue) {
  JobSpec s = DefaultJobSpec();
  s.model.layers[1].units = 0;
  ExpectInvalid(s, "model.layers[1].units must be in [1, 4096], got 0");
  s = DefaultJobSpec();
  s.model.timesteps = 0;
  ExpectInvalid(s, "model.timesteps must be in [1, 100000], got 0");
  s = DefaultJobSpec();
  s.model.features = -3;
  ExpectInvalid(s, "model.features must be in [1, 4096], got -3");
  s = DefaultJobSpec();
  s.training.batch_size = 0;
  ExpectInvalid(s, "training.batch_size must be in [1, 1048576], got 0");
  s = DefaultJobSpec();
  s.training.epochs = -1;
  ExpectInvalid(s, "training.epochs must be in [0, 100000], got -1");
  s = DefaultJobSpec();
  s.data.samples = 0;
  ExpectInvalid(s, "data.synthetic.samples must be in [1, 10000000], got 0");
  s = DefaultJobSpec();
  s.data.eval_samples = 0;
  ExpectInvalid(s,
                "data.synthetic.eval_samples must be in [1, 10000000], got 0");
  s = DefaultJobSpec();
  s.data.generator = DataSpec::Generator::kDelayedCopy;
  s.data.delay = 10;
  ExpectInvalid(s, "data.synthetic.delay must be in [0, 9], got 10");
  s = DefaultJobSpec();
  s.model.layers.clear();
  ExpectInvalid(s, "model.layers must hold 1 to 64 layers, got 0");
}

TEST(JobSpecValidationTest, OptimizerMessages) {
  JobSpec s = DefaultJobSpec();
  s.optimizer.learning_rate = std::nan("");
  ExpectInvalid(s,
                "optimizer.learning_rate must be a finite number > 0, got nan");
  s.optimizer.learning_rate = -1;
  ExpectInvalid(s,
                "optimizer.learning_rate must be a finite number > 0, got -1");
  s = DefaultJobSpec();
  s.optimizer.beta_1 = 1.0;
  ExpectInvalid(s, "optimizer.beta_1 must be in [0, 1), got 1");
  s = DefaultJobSpec();
  s.optimizer.epsilon = std::numeric_limits<double>::infinity();
  ExpectInvalid(s, "optimizer.epsilon must be a finite number > 0, got inf");
  s = DefaultJobSpec();
  s.optimizer.global_clipnorm = 2.0;
  ExpectInvalid(s,
                "optimizer: at most one of clipnorm, global_clipnorm, "
                "clipvalue may be set, got clipnorm and global_clipnorm");
  s = DefaultJobSpec();
  s.optimizer.clipnorm = 0.0;
  ExpectInvalid(s, "optimizer.clipnorm must be a finite number > 0, got 0");
  s = DefaultJobSpec();
  s.optimizer.kind = OptimizerKind::kSgd;
  s.optimizer.momentum = 1.5;
  ExpectInvalid(s, "optimizer.momentum must be in [0, 1], got 1.5");
}

TEST(JobSpecValidationTest, LayerCombinations) {
  JobSpec s = DefaultJobSpec();
  s.model.layers[0].return_sequences = false;
  ExpectInvalid(s,
                "model.layers[1] is a LSTM layer and needs a sequence input, "
                "but model.layers[0] returns no sequence (set its "
                "return_sequences to true)");
  s = DefaultJobSpec();
  s.model.layers[0].implementation = 3;
  ExpectInvalid(s, "model.layers[0].implementation must be 1 or 2, got 3");
  s = DefaultJobSpec();
  s.model.layers[0].kind = LayerKind::kSimpleRnn;
  s.model.layers[0].recurrent_activation = Activation::kHardSigmoidKeras2;
  ExpectInvalid(s,
                "model.layers[0].recurrent_activation applies to LSTM and GRU "
                "only, got hard_sigmoid_keras2 on a SimpleRNN layer");
  s = DefaultJobSpec();
  s.model.layers[1].kind = LayerKind::kGru;
  s.model.layers[1].recurrent_activation = static_cast<Activation>(42);
  ExpectInvalid(s,
                "model.layers[1].recurrent_activation must be one of tanh, "
                "sigmoid, hard_sigmoid_keras2, hard_sigmoid_keras3, relu, "
                "linear, got 42");
  s = DefaultJobSpec();
  s.model.layers[0].reset_after = false;
  ExpectInvalid(
      s,
      "model.layers[0].reset_after applies to GRU only, got false on a "
      "LSTM layer");
  s = DefaultJobSpec();
  s.model.layers[0].return_state = true;
  ExpectInvalid(s,
                "model.layers[0].return_state is only supported on the last "
                "layer (index 1), got it on layer 0");
  s = DefaultJobSpec();
  s.model.layers[1].kind = LayerKind::kDense;
  s.model.layers[1].return_sequences = true;
  ExpectInvalid(s,
                "model.layers[1]: return_sequences, return_state and "
                "go_backwards apply to RNN layers only; Dense keeps its input "
                "rank");
  s = DefaultJobSpec();
  s.model.layers[0].kernel_initializer.kind =
      InitializerSpec::Kind::kRandomNormal;
  s.model.layers[0].kernel_initializer.stddev = 0;
  ExpectInvalid(s,
                "model.layers[0].kernel_initializer.stddev must be a finite "
                "number > 0, got 0");
  // A GRU with reset_after=false and a Dense head on a sequence are fine.
  s = DefaultJobSpec();
  s.model.layers[1].kind = LayerKind::kGru;
  s.model.layers[1].reset_after = false;
  LayerSpec dense;
  dense.kind = LayerKind::kDense;
  dense.units = 1;
  dense.activation = Activation::kLinear;
  s.model.layers.push_back(dense);
  EXPECT_TRUE(ValidateJobSpec(s).ok()) << ValidateJobSpec(s);
}

TEST(JobSpecDigestTest, CanonicalTextIsVersionedAndExact) {
  const JobSpec spec = DefaultJobSpec();
  const std::string text = CanonicalText(spec);
  EXPECT_THAT(text, StartsWith("driftscope-jobspec-v2\nseed=42\n"));
  // Hex floats: 0.001 is written exactly, not as a rounded decimal.
  EXPECT_THAT(text,
              HasSubstr("optimizer.learning_rate=0x1.0624dd2f1a9fcp-10\n"));
  EXPECT_THAT(text, HasSubstr("optimizer.clipnorm=0x1p+0\n"));
  EXPECT_THAT(text, HasSubstr("optimizer.clipvalue=none\n"));
  EXPECT_THAT(text, HasSubstr("model.layers[1].units=32\n"));
  EXPECT_EQ(SpecDigest(spec), Sha256Hex(text.data(), text.size()));
  // Pinned: a change here changes every stored digest, so it must come with
  // a new version line.
  EXPECT_EQ(SpecDigest(spec),
            "4efbdfc8db5a0c4e38e09585022d26ef65e009a3de6b51888c4cc7f1a4e973c8");
}

TEST(JobSpecDigestTest, EveryFieldChangesTheDigest) {
  const std::string base = SpecDigest(DefaultJobSpec());
  EXPECT_EQ(SpecDigest(DefaultJobSpec()), base);
  JobSpec s = DefaultJobSpec();
  s.optimizer.learning_rate = std::nextafter(0.001, 1.0);  // one ulp
  EXPECT_NE(SpecDigest(s), base);
  s = DefaultJobSpec();
  s.seed = 43;
  EXPECT_NE(SpecDigest(s), base);
  s = DefaultJobSpec();
  s.model.layers[0].go_backwards = true;
  EXPECT_NE(SpecDigest(s), base);
  s = DefaultJobSpec();
  s.optimizer.clipnorm.reset();
  EXPECT_NE(SpecDigest(s), base);
  s = DefaultJobSpec();
  s.model.layers[1].bias_initializer.gain = 2.0;
  EXPECT_NE(SpecDigest(s), base);
  // Fields added later: each changes the digest, and only when set.
  s = DefaultJobSpec();
  s.seed_mode = SeedMode::kKeras;
  EXPECT_NE(SpecDigest(s), base);
  s = DefaultJobSpec();
  s.optimizer.weight_decay = 0.0;  // set, even to 0: Keras' decay step runs
  EXPECT_NE(SpecDigest(s), base);
  s = DefaultJobSpec();
  s.model.layers[0].dropout = 0.1;
  EXPECT_NE(SpecDigest(s), base);
}

TEST(JobSpecDigestTest, CaptureOptionsDoNotChangeTheDigest) {
  // Capturing per-epoch outputs records more; it computes the same thing.
  JobSpec s = DefaultJobSpec();
  s.training.capture_epoch_outputs = true;
  EXPECT_EQ(SpecDigest(s), SpecDigest(DefaultJobSpec()));
}

}  // namespace
}  // namespace driftscope
