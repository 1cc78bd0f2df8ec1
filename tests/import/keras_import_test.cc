// `driftscope import` as a library: real Keras 3.15.1 files
// (tests/golden/keras_import/make_goldens.py) mapped to a JobSpec and
// initial weights, trained in fp64 against Keras' own float64 fit(), and
// every kind of bad file refused with a message naming the file.
#include "client/import/keras_import.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/import/keras_config.h"
#include "client/import/keras_layers.h"
#include "engine/init/init_seeds.h"
#include "engine/io/npy.h"
#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

std::string Golden(const std::string& name) {
  return absl::StrCat(DRIFTSCOPE_SOURCE_DIR, "/tests/golden/keras_import/",
                      name);
}

NdArray Npy(const std::string& name) {
  absl::StatusOr<NdArray> a = ReadNpy(Golden(name));
  EXPECT_TRUE(a.ok()) << a.status();
  return a.ok() ? *a : NdArray();
}

double At(const NdArray& a, int64_t i) {
  return a.dtype() == DType::kFloat64 ? a.data<double>()[i]
                                      : a.data<float>()[i];
}

// |a - r| <= 1e-10 · max(1, |r|) elementwise: Keras float64 vs the engine
// in fp64 from the same file, weights and outputs of order 1.
void ExpectClose(const NdArray& a, const NdArray& r, const std::string& what) {
  ASSERT_EQ(a.shape(), r.shape()) << what;
  double worst = 0;
  for (int64_t i = 0; i < r.size(); ++i) {
    worst = std::max(worst, std::fabs(At(a, i) - At(r, i)) /
                                std::max(1.0, std::fabs(At(r, i))));
  }
  EXPECT_LE(worst, 1e-10) << what;
}

void ExpectBitEqual(const NdArray& a, const NdArray& r,
                    const std::string& what) {
  ASSERT_EQ(a.shape(), r.shape()) << what;
  ASSERT_EQ(a.dtype(), r.dtype()) << what;
  for (int64_t i = 0; i < r.size(); ++i) {
    ASSERT_EQ(At(a, i), At(r, i)) << what << " element " << i;
  }
}

// Trains the imported model in fp64 on the golden data with the import
// defaults (3 epochs, batch 32, no shuffle: what the goldens' fit() did)
// and compares with Keras.
void ExpectTrainsLikeKeras(const std::string& dir, const std::string& file,
                           int weights) {
  absl::StatusOr<ImportedModel> m = ImportKerasModel(Golden(dir + "/" + file));
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->init_weights.size(), static_cast<size_t>(weights));
  for (int j = 0; j < weights; ++j) {
    ExpectBitEqual(m->init_weights[j],
                   Npy(absl::StrCat(dir, "/init_w", j, ".npy")),
                   absl::StrCat(dir, " initial weight ", j));
  }
  absl::StatusOr<Profile> ref64 = Profile::Parse("ref64");
  ASSERT_TRUE(ref64.ok());
  RunOptions options;
  options.x = Npy(dir + "/x.npy");
  options.y = Npy(dir + "/y.npy");
  options.init_weights = m->init_weights;
  absl::StatusOr<RunResult> r = RunJob(m->spec, *ref64, options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->losses.size(), 6);  // 2 steps per epoch (32 + 8), 3 epochs
  ASSERT_EQ(r->final_weights.size(), static_cast<size_t>(weights));
  for (int j = 0; j < weights; ++j) {
    ExpectClose(r->final_weights[j].array,
                Npy(absl::StrCat(dir, "/final_w", j, ".npy")),
                absl::StrCat(dir, " final weight ", j));
  }
  ExpectClose(r->outputs, Npy(dir + "/final_out.npy"), dir + " outputs");
}

TEST(KerasImport, Keras3SequentialFileTrainsLikeKerasFloat64) {
  ExpectTrainsLikeKeras("seq_lstm_gru", "model.keras", 8);
}

TEST(KerasImport, LegacyH5FunctionalFileTrainsLikeKerasFloat64) {
  ExpectTrainsLikeKeras("func_rnn_lstm", "model.h5", 7);
}

TEST(KerasImport, Keras3BidirectionalFileTrainsLikeKerasFloat64) {
  ExpectTrainsLikeKeras("seq_bidir", "model.keras", 14);
}

// dropout and recurrent_dropout inside Bidirectional: the rates are
// imported; with seed_mode KERAS and the script's seed (13) set in the
// imported spec, each copy draws the masks Keras' fit() drew (float32
// uniforms on both sides, see make_goldens.py), so ref64 trains like Keras
// float64. With the import's default STREAMS masks it does not.
TEST(KerasImport, BidirectionalWithDropoutTrainsLikeKerasWithItsSeed) {
  absl::StatusOr<ImportedModel> m =
      ImportKerasModel(Golden("seq_bidir_dropout/model.keras"));
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->spec.model.layers.size(), 2u);
  const LayerSpec& bi = m->spec.model.layers[0];
  EXPECT_TRUE(bi.bidirectional);
  EXPECT_EQ(bi.dropout, 0.2);
  EXPECT_EQ(bi.recurrent_dropout, 0.1);
  EXPECT_EQ(m->spec.seed_mode, SeedMode::kStreams);
  ASSERT_EQ(m->init_weights.size(), 8u);
  RunOptions options;
  options.x = Npy("seq_bidir_dropout/x.npy");
  options.y = Npy("seq_bidir_dropout/y.npy");
  options.init_weights = m->init_weights;
  const Profile ref64 = *Profile::Parse("ref64");
  JobSpec spec = m->spec;
  spec.seed_mode = SeedMode::kKeras;
  spec.seed = 13;
  // The copies' SeedGenerator words Keras had
  // (seq_bidir_dropout/dropout_seed_words.json).
  const std::vector<LayerSeeds> seeds = ModelInitSeeds(spec);
  EXPECT_EQ(seeds[0].dropout, std::optional<uint64_t>(861145937));
  EXPECT_EQ(seeds[0].backward_dropout, std::optional<uint64_t>(199419816));
  absl::StatusOr<RunResult> r = RunJob(spec, ref64, options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->losses.size(), 6);
  ASSERT_EQ(r->final_weights.size(), 8u);
  for (int j = 0; j < 8; ++j) {
    ExpectClose(r->final_weights[j].array,
                Npy(absl::StrCat("seq_bidir_dropout/final_w", j, ".npy")),
                absl::StrCat("final weight ", j));
  }
  ExpectClose(r->outputs, Npy("seq_bidir_dropout/final_out.npy"), "outputs");

  absl::StatusOr<RunResult> streams = RunJob(m->spec, ref64, options);
  ASSERT_TRUE(streams.ok()) << streams.status();
  const NdArray want = Npy("seq_bidir_dropout/final_w0.npy");
  double diff = 0;
  for (int64_t i = 0; i < want.size(); ++i)
    diff = std::max(
        diff, std::fabs(At(streams->final_weights[0].array, i) - At(want, i)));
  EXPECT_GT(diff, 1e-6);
}

// A Functional model whose two outputs are a Bidirectional(merge_mode=None)
// last layer's: one output side by side ([forward | backward]), the loss
// the two outputs' MSE added, trained like Keras' fit(x, [y_f, y_b]).
TEST(KerasImport, BidirectionalMergeModeNoneTrainsLikeKerasFloat64) {
  absl::StatusOr<ImportedModel> m =
      ImportKerasModel(Golden("func_bidir_none/model.keras"));
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->spec.model.layers.size(), 2u);
  EXPECT_EQ(m->spec.model.layers[1].merge_mode, MergeMode::kNone);
  EXPECT_EQ(ModelOutputCount(m->spec.model), 2);
  EXPECT_EQ(ModelOutputUnits(m->spec.model), 4);
  ExpectTrainsLikeKeras("func_bidir_none", "model.keras", 12);
}

// Once refused (dropout inside Bidirectional), now imported with its rate.
TEST(KerasImport, BidirectionalDropoutFileImports) {
  absl::StatusOr<ImportedModel> m =
      ImportKerasModel(Golden("bad_bidirectional.keras"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->spec.model.layers[0].bidirectional);
  EXPECT_EQ(m->spec.model.layers[0].dropout, 0.1);
}

TEST(KerasImport, LegacyH5BidirectionalFileTrainsLikeKerasFloat64) {
  ExpectTrainsLikeKeras("func_bidir", "model.h5", 14);
}

TEST(KerasImport, BidirectionalSpecCarriesTheWrappedLayerAndMergeMode) {
  absl::StatusOr<ImportedModel> seq =
      ImportKerasModel(Golden("seq_bidir/model.keras"));
  ASSERT_TRUE(seq.ok()) << seq.status();
  const ModelSpec& s = seq->spec.model;
  ASSERT_EQ(s.layers.size(), 3u);
  EXPECT_TRUE(s.layers[0].bidirectional);
  EXPECT_EQ(s.layers[0].kind, LayerKind::kLstm);
  EXPECT_EQ(s.layers[0].merge_mode, MergeMode::kConcat);
  EXPECT_EQ(s.layers[0].units, 3);
  EXPECT_FALSE(s.layers[0].go_backwards);
  EXPECT_TRUE(s.layers[1].bidirectional);
  EXPECT_EQ(s.layers[1].kind, LayerKind::kGru);
  EXPECT_EQ(s.layers[1].merge_mode, MergeMode::kAve);
  EXPECT_FALSE(s.layers[2].bidirectional);
  // Forward copy then backward copy: the forward LSTM kernel reads the 2
  // features, the GRU's the 2·3 concatenated units.
  ASSERT_EQ(seq->init_weights.size(), 14u);
  EXPECT_EQ(seq->init_weights[0].shape(), (std::vector<int64_t>{2, 12}));
  EXPECT_EQ(seq->init_weights[3].shape(), (std::vector<int64_t>{2, 12}));
  EXPECT_EQ(seq->init_weights[6].shape(), (std::vector<int64_t>{6, 6}));

  absl::StatusOr<ImportedModel> fn =
      ImportKerasModel(Golden("func_bidir/model.h5"));
  ASSERT_TRUE(fn.ok()) << fn.status();
  const ModelSpec& f = fn->spec.model;
  ASSERT_EQ(f.layers.size(), 3u);
  EXPECT_EQ(f.layers[0].kind, LayerKind::kSimpleRnn);
  EXPECT_EQ(f.layers[0].merge_mode, MergeMode::kSum);
  EXPECT_EQ(f.layers[1].kind, LayerKind::kLstm);
  EXPECT_EQ(f.layers[1].merge_mode, MergeMode::kMul);
  EXPECT_FALSE(f.layers[1].return_sequences);
}

TEST(KerasImport, DropoutRatesAreCarried) {
  absl::StatusOr<ImportedModel> m = ImportKerasModel(Golden("dropout.keras"));
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelSpec& s = m->spec.model;
  ASSERT_EQ(s.layers.size(), 3u);
  EXPECT_EQ(s.layers[0].kind, LayerKind::kLstm);
  EXPECT_DOUBLE_EQ(s.layers[0].dropout, 0.2);
  EXPECT_EQ(s.layers[0].recurrent_dropout, 0.0);
  // Built with implementation=1, which Keras 3 leaves out of the config:
  // the file reloads as implementation 2, in Keras too, and so imports.
  EXPECT_EQ(s.layers[0].implementation, 2);
  EXPECT_FALSE(UsesGateMasks(s.layers[0]));
  EXPECT_EQ(s.layers[1].kind, LayerKind::kGru);
  EXPECT_EQ(s.layers[1].dropout, 0.0);
  EXPECT_DOUBLE_EQ(s.layers[1].recurrent_dropout, 0.25);
  EXPECT_TRUE(UsesGateMasks(s.layers[1]));
}

TEST(KerasImport, SpecCarriesEveryLayerOptionAndTheCompileConfig) {
  absl::StatusOr<ImportedModel> seq =
      ImportKerasModel(Golden("seq_lstm_gru/model.keras"));
  ASSERT_TRUE(seq.ok()) << seq.status();
  const ModelSpec& s = seq->spec.model;
  EXPECT_EQ(s.timesteps, 6);
  EXPECT_EQ(s.features, 2);
  ASSERT_EQ(s.layers.size(), 3u);
  EXPECT_EQ(s.layers[0].kind, LayerKind::kLstm);
  EXPECT_EQ(s.layers[0].units, 4);
  EXPECT_TRUE(s.layers[0].return_sequences);
  EXPECT_EQ(s.layers[1].kind, LayerKind::kGru);
  EXPECT_FALSE(s.layers[1].reset_after);
  EXPECT_EQ(s.layers[2].kind, LayerKind::kDense);
  EXPECT_EQ(s.layers[2].activation, Activation::kTanh);
  EXPECT_TRUE(seq->compiled);
  EXPECT_EQ(seq->spec.optimizer.kind, OptimizerKind::kAdam);
  EXPECT_DOUBLE_EQ(seq->spec.optimizer.learning_rate, 0.01);
  ASSERT_TRUE(seq->spec.optimizer.clipnorm.has_value());
  EXPECT_EQ(*seq->spec.optimizer.clipnorm, 1.0);
  EXPECT_EQ(seq->spec.loss, LossKind::kMse);

  absl::StatusOr<ImportedModel> fn =
      ImportKerasModel(Golden("func_rnn_lstm/model.h5"));
  ASSERT_TRUE(fn.ok()) << fn.status();
  const ModelSpec& f = fn->spec.model;
  ASSERT_EQ(f.layers.size(), 3u);
  EXPECT_EQ(f.layers[0].kind, LayerKind::kSimpleRnn);
  EXPECT_EQ(f.layers[0].activation, Activation::kRelu);
  EXPECT_TRUE(f.layers[0].go_backwards);
  EXPECT_EQ(f.layers[1].kind, LayerKind::kLstm);
  // Saved by Keras 3: its hard_sigmoid, relu6(x + 3) / 6.
  EXPECT_EQ(f.layers[1].recurrent_activation, Activation::kHardSigmoidKeras3);
  EXPECT_FALSE(f.layers[1].unit_forget_bias);
  EXPECT_FALSE(f.layers[1].use_bias);
  EXPECT_FALSE(f.layers[1].return_sequences);
  EXPECT_EQ(fn->spec.optimizer.kind, OptimizerKind::kSgd);
  EXPECT_DOUBLE_EQ(fn->spec.optimizer.learning_rate, 0.05);
  EXPECT_DOUBLE_EQ(fn->spec.optimizer.momentum, 0.9);
  EXPECT_TRUE(fn->spec.optimizer.nesterov);
  EXPECT_EQ(fn->spec.loss, LossKind::kMae);
}

TEST(KerasImport, UncompiledModelTakesTheDocumentedDefaults) {
  absl::StatusOr<ImportedModel> m =
      ImportKerasModel(Golden("uncompiled.keras"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(m->compiled);
  const JobSpec defaults = ImportDefaults();
  EXPECT_EQ(m->spec.optimizer.kind, OptimizerKind::kAdam);
  EXPECT_EQ(m->spec.optimizer.learning_rate, 0.001);
  EXPECT_FALSE(m->spec.optimizer.clipnorm.has_value());
  EXPECT_EQ(m->spec.loss, LossKind::kMse);
  EXPECT_EQ(m->spec.seed, defaults.seed);
  EXPECT_EQ(m->spec.training.epochs, 3);
  EXPECT_EQ(m->spec.training.batch_size, 32);
  EXPECT_FALSE(m->spec.training.shuffle);
  ASSERT_EQ(m->init_weights.size(), 5u);
  EXPECT_EQ(m->init_weights[0].dtype(), DType::kFloat32);
  ExpectBitEqual(m->init_weights[0], Npy("uncompiled_w0.npy"),
                 "SimpleRNN kernel");
}

// A copy of `name` cut to `fraction` of its bytes, or with one byte flipped
// at that fraction; returns its path.
std::string DamagedCopy(const std::string& name, double fraction, bool flip) {
  std::ifstream in(Golden(name), std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  std::string bytes = s.str();
  const size_t at = static_cast<size_t>(bytes.size() * fraction);
  if (flip) {
    bytes[at] = static_cast<char>(bytes[at] ^ 0x5a);
  } else {
    bytes.resize(at);
  }
  const std::string path = absl::StrCat(
      ::testing::TempDir(), "/", flip ? "flipped_" : "truncated_",
      static_cast<int>(fraction * 100), "_", name.substr(name.rfind('/') + 1));
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

void ExpectRefused(const std::string& path, const std::string& what) {
  absl::StatusOr<ImportedModel> m = ImportKerasModel(path);
  ASSERT_FALSE(m.ok()) << path << " was imported";
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument)
      << m.status();
  EXPECT_THAT(std::string(m.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr(what));
}

TEST(KerasImport, BadFilesAreRefusedNamingTheFileAndTheProblem) {
  ExpectRefused(Golden("bad_no_weights.keras"), "model.weights.h5 is missing");
  ExpectRefused(Golden("bad_weights_not_hdf5.keras"),
                "model.weights.h5 is not a readable HDF5 file");
  ExpectRefused(Golden("bad_shapes.h5"),
                "the weights do not fit the config: layer 'lstm");
  ExpectRefused(Golden("bad_shapes.h5"),
                "(LSTM) kernel is (3, 12) in the file, its config needs "
                "(3, 20)");
  ExpectRefused(Golden("bad_conv1d.keras"),
                "layer 'conv1d' (Conv1D): the layer class Conv1D is not "
                "supported");
  ExpectRefused(Golden("bad_two_inputs.keras"), "only a chain of layers");
  ExpectRefused(Golden("make_goldens.py"), "neither a Keras 3 .keras file");
}

TEST(KerasImport, BidirectionalMergeModeNoneElsewhereIsRefused) {
  ExpectRefused(Golden("bad_bidir_none_one_output.keras"),
                "(Bidirectional): merge_mode None gives two outputs "
                "(forward, backward); driftscope supports it only on the "
                "last layer, with its two outputs as the model's outputs in "
                "this order, got the outputs [bi[0]] (want [bi[0], bi[1]])");
  ExpectRefused(Golden("bad_bidir_none_swapped.keras"),
                "got the outputs [bi[1], bi[0]]");
  ExpectRefused(Golden("bad_bidir_none_then_dense.keras"),
                "only on the last layer, with its two outputs as the "
                "model's outputs, but layer 'dense' (Dense) comes after it");
}

TEST(KerasImport, TruncatedAndCorruptFilesAreRefused) {
  for (double f : {0.1, 0.5, 0.9}) {
    ExpectRefused(DamagedCopy("seq_lstm_gru/model.keras", f, false),
                  "truncated or corrupt");
    ExpectRefused(DamagedCopy("func_rnn_lstm/model.h5", f, false),
                  "truncated or corrupt");
  }
  // A flipped byte inside the zipped weights fails the zip's CRC check.
  ExpectRefused(DamagedCopy("seq_lstm_gru/model.keras", 0.5, true),
                "model.weights.h5");
}

TEST(KerasImport, MissingFileIsNotFound) {
  absl::StatusOr<ImportedModel> m = ImportKerasModel("/nonexistent/m.keras");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("/nonexistent/m.keras"));
}

}  // namespace
}  // namespace driftscope
