// JSON job specs: defaults, round trips and error messages that name the
// field a user has to fix.
#include "proto/lib/spec_json.h"

#include <cmath>
#include <string>

#include "absl/status/status.h"
#include "engine/job/job_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/job_convert.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kExampleSpec[] =
    R"({"seed": 42, "model": {"input": {"timesteps": 10, "features": 1}, "layers": [{"lstm": {"units": 64, "return_sequences": true}}, {"lstm": {"units": 32, "return_sequences": true}}]}, "optimizer": {"adam": {"learning_rate": 0.001}, "clipnorm": 1.0}, "loss": "MSE", "data": {"synthetic": {"generator": "SINE", "samples": 1024, "eval_samples": 128}}, "training": {"epochs": 3, "batch_size": 32, "shuffle": true}})";

std::string ErrorOf(const std::string& json) {
  absl::StatusOr<JobSpec> spec = ParseSpecJson(json, "spec.json");
  EXPECT_FALSE(spec.ok()) << json;
  if (spec.ok()) return "";
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(spec.status().message());
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  return message;
}

// A one-layer spec with `layer` as the layer's JSON.
std::string WithLayer(const std::string& layer) {
  return R"({"model": {"input": {"timesteps": 4, "features": 2}, "layers": [)" +
         layer + "]}}";
}

TEST(SpecJsonTest, ExampleSpecIsTheDefaultJob) {
  absl::StatusOr<JobSpec> spec = ParseSpecJson(kExampleSpec, "example.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(CanonicalText(*spec), CanonicalText(DefaultJobSpec()));
  EXPECT_EQ(SpecDigest(*spec), SpecDigest(DefaultJobSpec()));
}

TEST(SpecJsonTest, CamelCaseKeysAreTheSameSpec) {
  absl::StatusOr<JobSpec> spec = ParseSpecJson(
      R"({"seed": 42, "model": {"input": {"timesteps": 10, "features": 1}, "layers": [{"lstm": {"units": 64, "returnSequences": true}}, {"lstm": {"units": 32, "returnSequences": true}}]}, "optimizer": {"adam": {"learningRate": 0.001}, "clipnorm": 1.0}, "loss": "MSE", "data": {"synthetic": {"generator": "SINE", "samples": 1024, "evalSamples": 128}}, "training": {"epochs": 3, "batchSize": 32}})",
      "camel.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(CanonicalText(*spec), CanonicalText(DefaultJobSpec()));
}

TEST(SpecJsonTest, AbsentFieldsTakeKerasDefaults) {
  absl::StatusOr<JobSpec> spec = ParseSpecJson(
      WithLayer(R"({"gru": {"units": 3}}, {"dense": {"units": 1}})"), "s");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->seed, 42u);
  const LayerSpec& gru = spec->model.layers[0];
  EXPECT_EQ(gru.kind, LayerKind::kGru);
  EXPECT_TRUE(gru.reset_after);  // TF2 / Keras 3 default
  EXPECT_TRUE(gru.use_bias);
  EXPECT_EQ(gru.implementation, 2);
  EXPECT_EQ(gru.activation, Activation::kTanh);
  EXPECT_EQ(gru.recurrent_activation, Activation::kSigmoid);
  EXPECT_EQ(gru.kernel_initializer.kind, InitializerSpec::Kind::kGlorotUniform);
  EXPECT_EQ(gru.recurrent_initializer.kind, InitializerSpec::Kind::kOrthogonal);
  EXPECT_EQ(gru.bias_initializer.kind, InitializerSpec::Kind::kZeros);
  EXPECT_FALSE(gru.return_sequences);
  const LayerSpec& dense = spec->model.layers[1];
  EXPECT_EQ(dense.activation, Activation::kLinear);  // Dense default
  EXPECT_EQ(spec->optimizer.kind, OptimizerKind::kAdam);
  EXPECT_EQ(spec->optimizer.learning_rate, 0.001);
  EXPECT_EQ(spec->optimizer.beta_1, 0.9);
  EXPECT_EQ(spec->optimizer.beta_2, 0.999);
  EXPECT_EQ(spec->optimizer.epsilon, 1e-7);
  EXPECT_FALSE(spec->optimizer.clipnorm.has_value());
  EXPECT_EQ(spec->loss, LossKind::kMse);
  EXPECT_EQ(spec->training.epochs, 1);  // Keras Model.fit default
  EXPECT_EQ(spec->training.batch_size, 32);
  EXPECT_TRUE(spec->training.shuffle);
}

TEST(SpecJsonTest, ExplicitFalseAndZeroOverrideTrueDefaults) {
  absl::StatusOr<JobSpec> spec = ParseSpecJson(
      R"({"seed": 0, "model": {"input": {"timesteps": 4, "features": 2}, "layers": [{"lstm": {"units": 3, "use_bias": false, "unit_forget_bias": false, "implementation": 1}}]}, "optimizer": {"sgd": {}}, "training": {"epochs": 0, "shuffle": false}})",
      "s");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->seed, 0u);
  EXPECT_FALSE(spec->model.layers[0].use_bias);
  EXPECT_FALSE(spec->model.layers[0].unit_forget_bias);
  EXPECT_EQ(spec->model.layers[0].implementation, 1);
  EXPECT_EQ(spec->optimizer.kind, OptimizerKind::kSgd);
  EXPECT_EQ(spec->optimizer.learning_rate, 0.01);  // Keras SGD default
  EXPECT_EQ(spec->training.epochs, 0);
  EXPECT_FALSE(spec->training.shuffle);
}

TEST(SpecJsonTest, ActivationAndInitializerForms) {
  absl::StatusOr<JobSpec> spec = ParseSpecJson(
      WithLayer(
          R"({"lstm": {"units": 3, "return_sequences": true, "recurrent_activation": "hard_sigmoid", "kernel_initializer": {"random_uniform": {"minval": -0.1}}, "recurrent_initializer": {"orthogonal": {"gain": 2}}, "bias_initializer": {"name": "ones"}}},
             {"simple_rnn": {"units": 2, "activation": "relu", "kernel_initializer": {"random_normal": {"stddev": 0.5}}}})"),
      "s");
  ASSERT_TRUE(spec.ok()) << spec.status();
  const LayerSpec& lstm = spec->model.layers[0];
  EXPECT_EQ(lstm.recurrent_activation, Activation::kHardSigmoidKeras3);
  EXPECT_EQ(lstm.kernel_initializer.kind,
            InitializerSpec::Kind::kRandomUniform);
  EXPECT_EQ(lstm.kernel_initializer.minval, -0.1);
  EXPECT_EQ(lstm.kernel_initializer.maxval, 0.05);  // Keras default
  EXPECT_EQ(lstm.recurrent_initializer.gain, 2.0);
  EXPECT_EQ(lstm.bias_initializer.kind, InitializerSpec::Kind::kOnes);
  const LayerSpec& rnn = spec->model.layers[1];
  EXPECT_EQ(rnn.activation, Activation::kRelu);
  EXPECT_EQ(rnn.kernel_initializer.kind, InitializerSpec::Kind::kRandomNormal);
  EXPECT_EQ(rnn.kernel_initializer.mean, 0.0);
  EXPECT_EQ(rnn.kernel_initializer.stddev, 0.5);
}

TEST(SpecJsonTest, ExplicitJsonRoundTripsEveryField) {
  JobSpec spec = DefaultJobSpec();
  spec.seed = 123456789012345ull;  // beyond 2^32: JSON must keep it exact
  spec.model.layers[0].kind = LayerKind::kGru;
  spec.model.layers[0].reset_after = false;
  spec.model.layers[0].recurrent_activation = Activation::kHardSigmoidKeras2;
  spec.model.layers[0].go_backwards = true;
  spec.model.layers[0].dropout = 0.25;
  spec.model.layers[0].kernel_initializer = {
      InitializerSpec::Kind::kRandomUniform, -0.3, 0.1 + 0.2};
  spec.model.layers[1].kind = LayerKind::kSimpleRnn;
  spec.model.layers[1].use_bias = false;
  LayerSpec dense;
  dense.kind = LayerKind::kDense;
  dense.units = 2;
  dense.activation = Activation::kSigmoid;
  spec.model.layers.push_back(dense);
  spec.optimizer.kind = OptimizerKind::kRmsprop;
  spec.optimizer.learning_rate = 1.0 / 3.0;
  spec.optimizer.rho = 0.95;
  spec.optimizer.centered = true;
  spec.optimizer.clipnorm.reset();
  spec.optimizer.global_clipnorm = 0.7;
  spec.optimizer.weight_decay = 0.01;
  spec.loss = LossKind::kMae;
  spec.data.generator = DataSpec::Generator::kDelayedCopy;
  spec.data.delay = 3;
  spec.training.capture_epoch_outputs = true;
  spec.training.shuffle = false;
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);

  const std::string json = SpecToJson(spec, /*indent=*/true);
  absl::StatusOr<JobSpec> back = ParseSpecJson(json, "roundtrip.json");
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << json;
  EXPECT_EQ(CanonicalText(*back), CanonicalText(spec)) << json;
}

TEST(SpecJsonTest, SeedModeKerasRoundTripsAndDefaultsToStreams) {
  absl::StatusOr<JobSpec> keras =
      ParseSpecJson(WithLayer(R"({"lstm": {"units": 3}})")
                        .insert(1, R"("seed_mode": "KERAS", )"),
                    "spec.json");
  ASSERT_TRUE(keras.ok()) << keras.status();
  EXPECT_EQ(keras->seed_mode, SeedMode::kKeras);
  absl::StatusOr<JobSpec> back =
      ParseSpecJson(SpecToJson(*keras, /*indent=*/false), "roundtrip.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(CanonicalText(*back), CanonicalText(*keras));

  absl::StatusOr<JobSpec> plain =
      ParseSpecJson(WithLayer(R"({"lstm": {"units": 3}})"), "spec.json");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->seed_mode, SeedMode::kStreams);
  EXPECT_THAT(
      ErrorOf(WithLayer(R"({"lstm": {"units": 3}})")
                  .insert(1, R"("seed": 4294967296, "seed_mode": "KERAS", )")),
      HasSubstr("spec.json: seed must be in [0, 4294967295] with seed_mode "
                "KERAS"));
}

TEST(SpecJsonTest, BidirectionalAndRecurrentDropoutRoundTrip) {
  absl::StatusOr<JobSpec> spec = ParseSpecJson(
      WithLayer(
          R"({"bidirectional": {"merge_mode": "sum", "layer": {"gru": {"units": 3, "return_sequences": true, "reset_after": false}}}}, {"lstm": {"units": 2, "recurrent_dropout": 0.25}})"),
      "spec.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  const LayerSpec& bi = spec->model.layers[0];
  EXPECT_TRUE(bi.bidirectional);
  EXPECT_EQ(bi.merge_mode, MergeMode::kSum);
  EXPECT_EQ(bi.kind, LayerKind::kGru);
  EXPECT_EQ(bi.units, 3);
  EXPECT_FALSE(bi.reset_after);
  EXPECT_EQ(spec->model.layers[1].recurrent_dropout, 0.25);
  absl::StatusOr<JobSpec> back =
      ParseSpecJson(SpecToJson(*spec, /*indent=*/false), "roundtrip.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(CanonicalText(*back), CanonicalText(*spec));

  absl::StatusOr<JobSpec> concat = ParseSpecJson(
      WithLayer(R"({"bidirectional": {"layer": {"lstm": {"units": 3}}}})"),
      "spec.json");
  ASSERT_TRUE(concat.ok()) << concat.status();
  EXPECT_EQ(concat->model.layers[0].merge_mode, MergeMode::kConcat);
  EXPECT_EQ(ModelOutputUnits(concat->model), 6);

  // merge_mode none: two outputs side by side, on the last layer only.
  absl::StatusOr<JobSpec> none = ParseSpecJson(
      WithLayer(
          R"({"bidirectional": {"merge_mode": "none", "layer": {"lstm": {"units": 3}}}})"),
      "spec.json");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->model.layers[0].merge_mode, MergeMode::kNone);
  EXPECT_EQ(ModelOutputUnits(none->model), 6);
  EXPECT_EQ(ModelOutputCount(none->model), 2);
  EXPECT_THAT(
      ErrorOf(WithLayer(
          R"({"bidirectional": {"merge_mode": "none", "layer": {"lstm": {"units": 3, "return_sequences": true}}}}, {"dense": {"units": 1}})")),
      HasSubstr("merge_mode none gives two outputs (forward and backward) "
                "and is only supported on the last layer, but "
                "model.layers[1] comes after it"));
  EXPECT_THAT(
      ErrorOf(WithLayer(
          R"({"bidirectional": {"merge_mode": "avg", "layer": {"lstm": {"units": 3}}}})")),
      HasSubstr("must be one of concat, sum, mul, ave, none, got \"avg\""));
  EXPECT_THAT(
      ErrorOf(WithLayer(
          R"({"bidirectional": {"layer": {"dense": {"units": 3}}}})")),
      HasSubstr("model.layers[0].bidirectional.layer: must be one of lstm, "
                "gru, simple_rnn"));
  EXPECT_THAT(ErrorOf(WithLayer(R"({"bidirectional": {"merge_mode": "sum"}})")),
              HasSubstr("model.layers[0].bidirectional.layer: must be set"));
}

TEST(SpecJsonTest, AdamwIsAdamWithKerasDefaultWeightDecay) {
  const std::string model =
      R"("model": {"input": {"timesteps": 2, "features": 1}, "layers": [{"dense": {"units": 1}}]})";
  absl::StatusOr<JobSpec> adamw = ParseSpecJson(
      "{" + model + R"(, "optimizer": {"adamw": {"learning_rate": 0.01}}})",
      "spec.json");
  ASSERT_TRUE(adamw.ok()) << adamw.status();
  EXPECT_EQ(adamw->optimizer.kind, OptimizerKind::kAdam);
  EXPECT_EQ(adamw->optimizer.weight_decay, 0.004);
  absl::StatusOr<JobSpec> same = ParseSpecJson(
      "{" + model +
          R"(, "optimizer": {"adam": {"learning_rate": 0.01}, "weight_decay": 0.004}})",
      "spec.json");
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(SpecDigest(*same), SpecDigest(*adamw));
  absl::StatusOr<JobSpec> back =
      ParseSpecJson(SpecToJson(*adamw, /*indent=*/false), "roundtrip.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(CanonicalText(*back), CanonicalText(*adamw));
  EXPECT_EQ(
      ErrorOf("{" + model +
              R"(, "optimizer": {"sgd": {}, "weight_decay": -1}})"),
      "spec.json: optimizer.weight_decay must be a finite number >= 0, got "
      "-1");
}

TEST(SpecJsonTest, LayerWithoutKindNamesTheLayer) {
  EXPECT_EQ(ErrorOf(WithLayer(R"({"lstm": {"units": 3}}, {})")),
            "spec.json: model.layers[1]: exactly one of lstm, gru, "
            "simple_rnn, dense, bidirectional, embedding must be set");
}

TEST(SpecJsonTest, UnknownFieldNamesFieldAndFile) {
  EXPECT_EQ(ErrorOf(WithLayer(R"({"lstm": {"unitz": 3}})")),
            "spec.json: model.layers[0].lstm: unknown field \"unitz\"");
  EXPECT_EQ(ErrorOf(R"({"sead": 1})"), "spec.json: unknown field \"sead\"");
}

TEST(SpecJsonTest, UnknownLayerTypeIsAnUnknownField) {
  EXPECT_THAT(ErrorOf(WithLayer(R"({"conv1d": {"units": 3}})")),
              StartsWith("spec.json: model.layers[0]: unknown field "
                         "\"conv1d\""));
}

TEST(SpecJsonTest, TwoLayerKindsAreRejected) {
  EXPECT_THAT(
      ErrorOf(WithLayer(R"({"lstm": {"units": 3}, "gru": {"units": 3}})")),
      StartsWith("spec.json: model.layers[0]: "));
}

TEST(SpecJsonTest, RangeErrorsUseJsonPaths) {
  EXPECT_EQ(
      ErrorOf(WithLayer(R"({"lstm": {"units": 0}})")),
      "spec.json: model.layers[0].lstm.units must be in [1, 4096], got 0");
  EXPECT_THAT(
      ErrorOf(
          R"({"model": {"input": {"timesteps": 0, "features": 1}, "layers": [{"dense": {"units": 1}}]}})"),
      StartsWith("spec.json: model.input.timesteps must be in [1, "));
  EXPECT_THAT(
      ErrorOf(
          R"({"model": {"input": {"timesteps": 2, "features": 1}, "layers": [{"dense": {"units": 1}}]}, "optimizer": {"adam": {"learning_rate": "NaN"}}})"),
      StartsWith("spec.json: optimizer.adam.learning_rate must be a finite "
                 "number > 0, got nan"));
}

TEST(SpecJsonTest, BadEnumListsValidValues) {
  EXPECT_THAT(
      ErrorOf(
          R"({"model": {"input": {"timesteps": 2, "features": 1}, "layers": [{"dense": {"units": 1}}]}, "loss": "MSLE"})"),
      ::testing::AllOf(StartsWith("spec.json: loss: "), HasSubstr("MSLE"),
                       HasSubstr("valid: MSE, MAE")));
}

// Found by fuzz/spec_json_fuzzer.cc: a name holding a newline (JSON "\n")
// was echoed raw, so the one-line error became two.
TEST(SpecJsonTest, UnknownNamesAreEchoedEscapedOnOneLine) {
  const std::string init = ErrorOf(WithLayer(
      R"({"dense": {"units": 3, "kernel_initializer": {"name": "gloro\nt_uniform"}}})"));
  EXPECT_THAT(init, HasSubstr("unknown initializer \"gloro\\nt_uniform\""));
  EXPECT_EQ(init.find('\n'), std::string::npos) << init;
  const std::string act =
      ErrorOf(WithLayer(R"({"lstm": {"units": 3, "activation": "ta\nh"}})"));
  EXPECT_THAT(act, HasSubstr("unknown activation \"ta\\nh\""));
  EXPECT_EQ(act.find('\n'), std::string::npos) << act;
}

TEST(SpecJsonTest, BadActivationAndInitializerNameTheField) {
  EXPECT_THAT(
      ErrorOf(WithLayer(R"({"lstm": {"units": 3, "activation": "gelu"}})")),
      StartsWith("spec.json: model.layers[0].lstm.activation: unknown "
                 "activation \"gelu\""));
  EXPECT_THAT(
      ErrorOf(WithLayer(
          R"({"dense": {"units": 3, "kernel_initializer": {"name": "he_normal"}}})")),
      StartsWith("spec.json: model.layers[0].dense.kernel_initializer.name: "
                 "unknown initializer \"he_normal\""));
  // The Keras habit of a bare string gets a hint at the object form.
  EXPECT_THAT(
      ErrorOf(WithLayer(
          R"({"dense": {"units": 3, "kernel_initializer": "zeros"}})")),
      ::testing::AllOf(
          StartsWith("spec.json: model.layers[0].dense.kernel_initializer: "),
          HasSubstr("{\"name\": \"glorot_uniform\"}")));
}

TEST(SpecJsonTest, MissingModelIsReported) {
  EXPECT_THAT(ErrorOf(R"({"seed": 1})"),
              StartsWith("spec.json: model: required"));
  EXPECT_THAT(ErrorOf(R"({"model": {"layers": [{"dense": {"units": 1}}]}})"),
              StartsWith("spec.json: model.input: required"));
}

TEST(SpecJsonTest, SuppliedDataOnlyWhereAccepted) {
  const std::string json =
      R"({"model": {"input": {"timesteps": 2, "features": 1}, "layers": [{"dense": {"units": 1}}]}, "data": {"supplied": {"x": "x.npy", "y": "y.npy"}}})";
  EXPECT_THAT(ErrorOf(json), StartsWith("spec.json: data.supplied: "));
  SuppliedDataPaths paths;
  absl::StatusOr<JobSpec> spec = ParseSpecJson(json, "spec.json", &paths);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(paths.x, "x.npy");
  EXPECT_EQ(paths.y, "y.npy");
  EXPECT_EQ(paths.eval_x, "");
}

TEST(SpecJsonTest, MissingFileIsNotFound) {
  absl::StatusOr<JobSpec> spec =
      LoadSpecJson(::testing::TempDir() + "/no/such/spec.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(spec.status().message(),
            ::testing::TempDir() + "/no/such/spec.json: no such file");
}

TEST(SpecJsonTest, SyntaxErrorIsOneLine) {
  EXPECT_THAT(ErrorOf(R"({"model": {)"), StartsWith("spec.json: "));
}

TEST(JobConvertTest, EngineFieldPathsBecomeJsonPaths) {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[1].kind = LayerKind::kGru;
  EXPECT_EQ(EngineFieldToJsonPath(spec, "model.layers[1].units must be"),
            "model.layers[1].gru.units must be");
  EXPECT_EQ(EngineFieldToJsonPath(spec, "model.layers[7].units must be"),
            "model.layers[7].units must be");
  EXPECT_EQ(EngineFieldToJsonPath(spec, "optimizer.beta_1 must be"),
            "optimizer.adam.beta_1 must be");
  EXPECT_EQ(EngineFieldToJsonPath(spec, "optimizer.clipnorm must be"),
            "optimizer.clipnorm must be");
  EXPECT_EQ(EngineFieldToJsonPath(spec, "model.features must be"),
            "model.input.features must be");
  EXPECT_EQ(EngineFieldToJsonPath(spec, "training.epochs must be"),
            "training.epochs must be");
  EXPECT_THAT(EngineFieldToJsonPath(spec, "model.layers must hold"),
              Not(HasSubstr("lstm")));
}

}  // namespace
}  // namespace driftscope
