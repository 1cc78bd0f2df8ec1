// The Keras config -> JobSpec mapping on configs as Keras 2 / tf.keras and
// Keras 3 write them: every supported option lands in the spec, and every
// option that would change the computation is refused by name.
#include "client/import/keras_layers.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/import/keras_config.h"
#include "client/import/keras_import.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

// A Keras 2 (tf.keras 2.x) Sequential config: the input shape on an
// InputLayer's batch_input_shape, Keras 2 hard_sigmoid, implementation 1.
constexpr char kKeras2Sequential[] = R"({"class_name": "Sequential",
 "config": {"name": "sequential", "layers": [
  {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 10, 3],
   "dtype": "float32", "sparse": false, "ragged": false,
   "name": "lstm_input"}},
  {"class_name": "LSTM", "config": {"name": "l", "trainable": true,
   "dtype": "float32", "return_sequences": true, "return_state": false,
   "go_backwards": true, "stateful": false, "unroll": false,
   "time_major": false, "units": 8, "activation": "tanh",
   "recurrent_activation": "hard_sigmoid", "use_bias": true,
   "kernel_initializer": {"class_name": "GlorotUniform",
                          "config": {"seed": null}},
   "recurrent_initializer": {"class_name": "Orthogonal",
                             "config": {"gain": 2.0, "seed": null}},
   "bias_initializer": {"class_name": "Zeros", "config": {}},
   "unit_forget_bias": true, "kernel_regularizer": null,
   "recurrent_regularizer": null, "bias_regularizer": null,
   "activity_regularizer": null, "kernel_constraint": null,
   "recurrent_constraint": null, "bias_constraint": null, "dropout": 0.25,
   "recurrent_dropout": 0.0, "implementation": 1}},
  {"class_name": "Dense", "config": {"name": "d", "units": 2,
   "activation": "relu", "use_bias": false,
   "kernel_initializer": {"class_name": "RandomUniform",
     "config": {"minval": -0.1, "maxval": 0.2, "seed": null}}}}]}})";

absl::StatusOr<KerasModel> Parse(const std::string& json,
                                 const std::string& version = "2.15.0") {
  return ParseKerasModel(json, "", version);
}

TEST(KerasLayers, Keras2SequentialMapsEveryOption) {
  absl::StatusOr<KerasModel> m = Parse(kKeras2Sequential);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->timesteps, 10);
  EXPECT_EQ(m->features, 3);
  ASSERT_EQ(m->layers.size(), 2u);
  absl::StatusOr<LayerSpec> lstm = MapKerasLayer(m->layers[0]);
  ASSERT_TRUE(lstm.ok()) << lstm.status();
  EXPECT_EQ(lstm->kind, LayerKind::kLstm);
  EXPECT_EQ(lstm->units, 8);
  EXPECT_TRUE(lstm->return_sequences);
  EXPECT_TRUE(lstm->go_backwards);
  EXPECT_EQ(lstm->recurrent_activation, Activation::kHardSigmoidKeras2);
  EXPECT_EQ(lstm->implementation, 1);
  EXPECT_EQ(lstm->dropout, 0.25);
  EXPECT_EQ(lstm->recurrent_initializer.kind,
            InitializerSpec::Kind::kOrthogonal);
  EXPECT_EQ(lstm->recurrent_initializer.gain, 2.0);
  absl::StatusOr<LayerSpec> dense = MapKerasLayer(m->layers[1]);
  ASSERT_TRUE(dense.ok()) << dense.status();
  EXPECT_EQ(dense->units, 2);
  EXPECT_EQ(dense->activation, Activation::kRelu);
  EXPECT_FALSE(dense->use_bias);
  EXPECT_EQ(dense->kernel_initializer.kind,
            InitializerSpec::Kind::kRandomUniform);
  EXPECT_EQ(dense->kernel_initializer.minval, -0.1);
  EXPECT_EQ(dense->kernel_initializer.maxval, 0.2);
}

TEST(KerasLayers, HardSigmoidFollowsTheKerasVersionThatSavedTheFile) {
  absl::StatusOr<KerasModel> m = Parse(kKeras2Sequential, "3.15.1");
  ASSERT_TRUE(m.ok()) << m.status();
  absl::StatusOr<LayerSpec> lstm = MapKerasLayer(m->layers[0]);
  ASSERT_TRUE(lstm.ok()) << lstm.status();
  EXPECT_EQ(lstm->recurrent_activation, Activation::kHardSigmoidKeras3);
}

// The LSTM of kKeras2Sequential with `from` replaced by `to` in its config.
absl::Status MapChangedLstm(const std::string& from, const std::string& to) {
  const std::string json = absl::StrReplaceAll(kKeras2Sequential, {{from, to}});
  EXPECT_NE(json, kKeras2Sequential) << from;
  absl::StatusOr<KerasModel> m = Parse(json);
  if (!m.ok()) return m.status();
  return MapKerasLayer(m->layers[0]).status();
}

TEST(KerasLayers, OptionsThatChangeTheComputationAreRefusedByName) {
  const struct {
    const char* from;
    const char* to;
    const char* message;
  } cases[] = {
      {"\"stateful\": false", "\"stateful\": true",
       "layer 'l' (LSTM): stateful=True is not supported"},
      {"\"kernel_regularizer\": null",
       "\"kernel_regularizer\": {\"class_name\": \"L2\", \"config\": "
       "{\"l2\": 0.01}}",
       "layer 'l' (LSTM): kernel_regularizer is not supported"},
      {"\"activation\": \"tanh\"", "\"activation\": \"selu\"",
       "layer 'l' (LSTM): activation \"selu\" is not supported"},
      {"{\"class_name\": \"GlorotUniform\"", "{\"class_name\": \"HeNormal\"",
       "layer 'l' (LSTM): kernel_initializer HeNormal is not supported"},
      {"\"trainable\": true", "\"trainable\": false",
       "layer 'l' (LSTM): trainable=False is not supported"},
      {"\"implementation\": 1", "\"implementation\": 3",
       "layer 'l' (LSTM): implementation must be 1 or 2, got 3"},
      {"\"units\": 8", "\"units\": \"8\"",
       "layer 'l' (LSTM): units must be a number"},
      {"[null, 10, 3]", "[null, null, 3]",
       "the input's timesteps is not fixed"},
  };
  for (const auto& c : cases) {
    absl::Status s = MapChangedLstm(c.from, c.to);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.to;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message)) << c.to;
  }
}

TEST(KerasLayers, LayersTheEngineIsGainingAreRefusedAsNotSupportedYet) {
  for (const char* cls : {"Dropout"}) {
    KerasLayer l{cls, "x",
                 KerasConfig({}, absl::StrCat("layer 'x' (", cls, ")"))};
    absl::StatusOr<LayerSpec> s = MapKerasLayer(l);
    ASSERT_FALSE(s.ok()) << cls;
    EXPECT_THAT(std::string(s.status().message()),
                HasSubstr(absl::StrCat("layer 'x' (", cls, "): a ", cls,
                                       " layer is not supported yet")));
  }
}

TEST(KerasLayers, RecurrentDropoutAndImplementationOneDropoutAreCarried) {
  absl::StatusOr<KerasModel> m = Parse(absl::StrReplaceAll(
      kKeras2Sequential,
      {{"\"recurrent_dropout\": 0.0", "\"recurrent_dropout\": 0.125"}}));
  ASSERT_TRUE(m.ok()) << m.status();
  absl::StatusOr<LayerSpec> lstm = MapKerasLayer(m->layers[0]);
  ASSERT_TRUE(lstm.ok()) << lstm.status();
  EXPECT_EQ(lstm->recurrent_dropout, 0.125);
  EXPECT_EQ(lstm->dropout, 0.25);
  EXPECT_EQ(lstm->implementation, 1);
  EXPECT_TRUE(UsesGateMasks(*lstm));  // what Keras computes: per-gate masks
}

// A Keras 2 (tf.keras) Bidirectional: the wrapped layer's config under
// "layer", no "backward_layer" (Keras 2 writes one only when the model
// was built with its own).
constexpr char kKeras2Bidirectional[] = R"({"class_name": "Sequential",
 "config": {"name": "sequential", "layers": [
  {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 5, 2],
   "name": "in"}},
  {"class_name": "Bidirectional", "config": {"name": "bi",
   "trainable": true, "merge_mode": "sum", "layer": {"class_name": "GRU",
   "config": {"name": "gru", "units": 3, "return_sequences": true,
   "go_backwards": false, "reset_after": false, "dropout": 0.0,
   "recurrent_dropout": 0.0, "implementation": 2}}}},
  {"class_name": "Dense", "config": {"name": "d", "units": 1}}]}})";

absl::Status MapChangedBidirectional(const std::string& from,
                                     const std::string& to) {
  const std::string json =
      absl::StrReplaceAll(kKeras2Bidirectional, {{from, to}});
  EXPECT_NE(json, kKeras2Bidirectional) << from;
  absl::StatusOr<KerasModel> m = Parse(json);
  if (!m.ok()) return m.status();
  return MapKerasLayer(m->layers[0]).status();
}

TEST(KerasLayers, Keras2BidirectionalMapsTheWrappedLayerAndMergeMode) {
  for (const auto& [name, mode] :
       std::vector<std::pair<std::string, MergeMode>>{
           {"concat", MergeMode::kConcat},
           {"sum", MergeMode::kSum},
           {"mul", MergeMode::kMul},
           {"ave", MergeMode::kAve}}) {
    absl::StatusOr<KerasModel> m = Parse(absl::StrReplaceAll(
        kKeras2Bidirectional,
        {{"\"merge_mode\": \"sum\"", "\"merge_mode\": \"" + name + "\""}}));
    ASSERT_TRUE(m.ok()) << m.status();
    absl::StatusOr<LayerSpec> bi = MapKerasLayer(m->layers[0]);
    ASSERT_TRUE(bi.ok()) << bi.status();
    EXPECT_TRUE(bi->bidirectional);
    EXPECT_EQ(bi->merge_mode, mode) << name;
    EXPECT_EQ(bi->kind, LayerKind::kGru);
    EXPECT_EQ(bi->units, 3);
    EXPECT_TRUE(bi->return_sequences);
    EXPECT_FALSE(bi->reset_after);
    EXPECT_FALSE(bi->go_backwards);
  }
}

// dropout and recurrent_dropout inside a Bidirectional are carried to the
// wrapped layer's spec (each copy draws its own masks in the engine).
TEST(KerasLayers, BidirectionalCarriesDropoutRates) {
  absl::StatusOr<KerasModel> m = Parse(absl::StrReplaceAll(
      kKeras2Bidirectional,
      {{"\"dropout\": 0.0,", "\"dropout\": 0.2,"},
       {"\"recurrent_dropout\": 0.0", "\"recurrent_dropout\": 0.1"}}));
  ASSERT_TRUE(m.ok()) << m.status();
  absl::StatusOr<LayerSpec> bi = MapKerasLayer(m->layers[0]);
  ASSERT_TRUE(bi.ok()) << bi.status();
  EXPECT_TRUE(bi->bidirectional);
  EXPECT_EQ(bi->dropout, 0.2);
  EXPECT_EQ(bi->recurrent_dropout, 0.1);
}

// merge_mode null (None) maps to MergeMode::kNone; whether the model may
// have it (last layer, its two outputs the model's) is import's check.
TEST(KerasLayers, BidirectionalMergeModeNoneMaps) {
  absl::StatusOr<KerasModel> m = Parse(absl::StrReplaceAll(
      kKeras2Bidirectional,
      {{"\"merge_mode\": \"sum\"", "\"merge_mode\": null"}}));
  ASSERT_TRUE(m.ok()) << m.status();
  absl::StatusOr<LayerSpec> bi = MapKerasLayer(m->layers[0]);
  ASSERT_TRUE(bi.ok()) << bi.status();
  EXPECT_EQ(bi->merge_mode, MergeMode::kNone);
}

TEST(KerasLayers, BidirectionalWhatTheEngineCannotComputeIsRefusedByName) {
  const struct {
    const char* from;
    const char* to;
    const char* message;
  } cases[] = {
      {"\"merge_mode\": \"sum\"", "\"merge_mode\": \"max\"",
       "layer 'bi' (Bidirectional): merge_mode \"max\" is not supported"},
      {"\"go_backwards\": false", "\"go_backwards\": true",
       "layer 'bi' (Bidirectional): the wrapped layer has go_backwards=True"},
      {"{\"class_name\": \"GRU\"", "{\"class_name\": \"Dense\"",
       "layer 'bi' (Bidirectional): layer is a Dense; Bidirectional wraps "
       "LSTM, GRU or SimpleRNN only"},
      {"\"reset_after\": false", "\"reset_after\": \"no\"",
       "layer 'bi' (Bidirectional): layer 'gru' (GRU): reset_after must be"},
      {"\"implementation\": 2}}",
       "\"implementation\": 2}}, "
       "\"backward_layer\": {\"class_name\": \"GRU\", \"config\": "
       "{\"name\": \"b\", \"units\": 4, \"return_sequences\": true, "
       "\"go_backwards\": true, \"reset_after\": false}}",
       "layer 'bi' (Bidirectional): backward_layer differs from the forward "
       "layer"},
      {"\"implementation\": 2}}",
       "\"implementation\": 2}}, "
       "\"backward_layer\": {\"class_name\": \"GRU\", \"config\": "
       "{\"name\": \"b\", \"units\": 3, \"return_sequences\": true, "
       "\"reset_after\": false}}",
       "layer 'bi' (Bidirectional): backward_layer must have "
       "go_backwards=True"},
  };
  for (const auto& c : cases) {
    absl::Status s = MapChangedBidirectional(c.from, c.to);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.to;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message)) << c.to;
  }
  // A backward_layer that is the forward one going backwards (what Keras 3
  // writes) is accepted.
  EXPECT_TRUE(
      MapChangedBidirectional(
          "\"implementation\": 2}}",
          "\"implementation\": 2}}, \"backward_layer\": {\"class_name\": "
          "\"GRU\", \"config\": {\"name\": \"b\", \"units\": 3, "
          "\"return_sequences\": true, \"go_backwards\": true, "
          "\"reset_after\": false}}")
          .ok());
}

// A Keras 2 Functional chain (inbound_nodes as nested lists) with a Keras 2
// training_config ("lr").
constexpr char kKeras2Functional[] = R"({"class_name": "Functional",
 "config": {"name": "model", "layers": [
  {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 4, 3],
   "name": "input_1"}, "name": "input_1", "inbound_nodes": []},
  {"class_name": "Dense", "config": {"name": "dense", "units": 1},
   "name": "dense", "inbound_nodes": [[["gru", 0, 0, {}]]]},
  {"class_name": "GRU", "config": {"name": "gru", "units": 2,
   "reset_after": false}, "name": "gru",
   "inbound_nodes": [[["input_1", 0, 0, {}]]]}],
  "input_layers": [["input_1", 0, 0]],
  "output_layers": [["dense", 0, 0]]}})";

KerasFile Keras2File(const std::string& training_config) {
  KerasFile f;
  f.format = KerasFile::Format::kLegacyH5;
  f.keras_version = "2.15.0";
  f.model_config = kKeras2Functional;
  f.training_config = training_config;
  auto filled = [](std::vector<int64_t> shape, double start) {
    NdArray a(DType::kFloat32, shape);
    for (int64_t i = 0; i < a.size(); ++i) {
      a.data<float>()[i] = static_cast<float>(start + 0.25 * i);
    }
    return a;
  };
  f.weights["gru"] = {filled({3, 6}, 0), filled({2, 6}, 10), filled({6}, 20)};
  f.weights["dense"] = {filled({2, 1}, 30), filled({1}, 40)};
  return f;
}

TEST(KerasLayers, Keras2FunctionalChainImportsInDataFlowOrder) {
  absl::StatusOr<ImportedModel> m = ImportKerasFile(
      Keras2File(R"({"loss": "mae", "optimizer_config": {"class_name":
        "Adam", "config": {"lr": 0.002, "decay": 0.0, "beta_1": 0.8}}})"),
      "k2.h5");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->spec.model.layers.size(), 2u);
  EXPECT_EQ(m->spec.model.layers[0].kind, LayerKind::kGru);
  EXPECT_FALSE(m->spec.model.layers[0].reset_after);
  EXPECT_EQ(m->spec.model.layers[1].kind, LayerKind::kDense);
  // A config with "decay" is tf.keras' OptimizerV2, which trains with the
  // float32 roundings of lr and the betas (tfkeras2_import_test.cc checks
  // this against real Keras 2 training).
  EXPECT_EQ(m->spec.optimizer.learning_rate, static_cast<float>(0.002));
  EXPECT_EQ(m->spec.optimizer.beta_1, static_cast<float>(0.8));
  EXPECT_EQ(m->spec.loss, LossKind::kMae);
  ASSERT_EQ(m->init_weights.size(), 5u);
  EXPECT_EQ(m->init_weights[2].data<float>()[0], 20.0f);  // GRU bias
  EXPECT_EQ(m->init_weights[3].data<float>()[0], 30.0f);  // Dense kernel
}

TEST(KerasLayers, CompileSettingsDriftscopeCannotReplayAreRefused) {
  const struct {
    const char* training_config;
    const char* message;
  } cases[] = {
      {R"({"loss": "mse", "optimizer_config": {"class_name": "Adamax",
          "config": {}}})",
       "the optimizer Adamax is not supported"},
      {R"({"loss": "mse", "optimizer_config": {"class_name": "SGD",
          "config": {"learning_rate": {"class_name": "ExponentialDecay",
          "config": {}}}}})",
       "learning_rate is a schedule"},
      {R"({"loss": "mse", "optimizer_config": {"class_name": "Adam",
          "config": {"lr": 0.01, "decay": 0.1}}})",
       "decay (a learning rate decay) is not supported"},
      {R"({"loss": "huber", "optimizer_config": {"class_name": "Adam",
          "config": {}}})",
       "the loss huber is not supported"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<ImportedModel> m =
        ImportKerasFile(Keras2File(c.training_config), "k2.h5");
    ASSERT_FALSE(m.ok()) << c.training_config;
    EXPECT_THAT(std::string(m.status().message()), HasSubstr("k2.h5: "));
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.message));
  }
}

TEST(KerasLayers, WeightsOfALayerTheConfigLacksAreRefused) {
  KerasFile f = Keras2File("");
  f.weights["lstm_extra"] = {NdArray(DType::kFloat32, {1})};
  absl::StatusOr<ImportedModel> m = ImportKerasFile(f, "k2.h5");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("weights of layers the config does not have "
                        "(lstm_extra)"));
}

}  // namespace
}  // namespace driftscope
