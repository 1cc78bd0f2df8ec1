// `driftscope import` of a Keras 3 model that starts with an Embedding
// (tests/golden/embedding/make_embedding_golden.py): the .keras and legacy
// .h5 files map to an embedding spec on token ids, train in fp64 like
// Keras' float64 fit() to 1e-10, and the Embedding options driftscope
// cannot compute the same way are refused naming the layer.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/import/keras_file.h"
#include "client/import/keras_import.h"
#include "client/import/keras_layers.h"
#include "engine/io/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/import/import_golden.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

std::string Golden(const std::string& name) {
  return absl::StrCat(DRIFTSCOPE_SOURCE_DIR, "/tests/golden/embedding/", name);
}

NdArray Npy(const std::string& name) {
  return import_golden::ReadGolden(Golden(name));
}

class EmbeddingImportTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EmbeddingImportTest, FileTrainsLikeKerasFloat64) {
  absl::StatusOr<ImportedModel> m =
      ImportKerasModel(Golden("import/" + GetParam()));
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelSpec& s = m->spec.model;
  EXPECT_EQ(s.timesteps, 6);
  EXPECT_EQ(s.features, 1);
  ASSERT_EQ(s.layers.size(), 3u);
  EXPECT_EQ(s.layers[0].kind, LayerKind::kEmbedding);
  EXPECT_EQ(s.layers[0].input_dim, 20);
  EXPECT_EQ(s.layers[0].units, 4);
  EXPECT_FALSE(s.layers[0].mask_zero);
  EXPECT_EQ(s.layers[0].kernel_initializer.kind,
            InitializerSpec::Kind::kRandomUniform);
  EXPECT_EQ(s.layers[0].kernel_initializer.minval, -0.05);
  EXPECT_EQ(s.layers[0].kernel_initializer.maxval, 0.05);
  EXPECT_EQ(m->spec.data.generator, DataSpec::Generator::kTokens);
  ASSERT_NO_FATAL_FAILURE(
      import_golden::ExpectInitialWeightsAreTheFiles(*m, Golden("import/"), 6));
  RunResult r;
  ASSERT_NO_FATAL_FAILURE(import_golden::ExpectTrainsLikeKerasFloat64(
      *m, Golden("import/"), 6, GetParam() + " ", &r));
  EXPECT_EQ(r.losses.size(), 6);
  EXPECT_EQ(r.final_weights[0].name, "layer0_embeddings");
}

INSTANTIATE_TEST_SUITE_P(Keras315, EmbeddingImportTest,
                         ::testing::Values("model.keras", "model.h5"),
                         [](const auto& info) {
                           return info.param == "model.keras" ? "Keras3"
                                                              : "LegacyH5";
                         });

// Embedding(mask_zero=True): token id 0 is padding. Trained on ids padded
// with 0 (right, left, and fully padded samples), ref64 ends where Keras'
// float64 fit() ended, with row 0 of the table untouched.
TEST(EmbeddingImport, MaskZeroFileTrainsLikeKerasFloat64) {
  absl::StatusOr<ImportedModel> m =
      ImportKerasModel(Golden("import_mask_zero/model.keras"));
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelSpec& s = m->spec.model;
  ASSERT_EQ(s.layers.size(), 3u);
  EXPECT_EQ(s.layers[0].kind, LayerKind::kEmbedding);
  EXPECT_TRUE(s.layers[0].mask_zero);
  EXPECT_FALSE(s.mask_value.has_value());
  ASSERT_EQ(m->init_weights.size(), 6u);
  RunResult r;
  ASSERT_NO_FATAL_FAILURE(import_golden::ExpectTrainsLikeKerasFloat64(
      *m, Golden("import_mask_zero/"), 6, "mask_zero ", &r));
  const NdArray& table = r.final_weights[0].array;
  for (int u = 0; u < 4; ++u)
    EXPECT_EQ(table.at(u), m->init_weights[0].at(u)) << "row 0, unit " << u;
}

TEST(EmbeddingImport, UnsupportedOptionsAreRefusedNamingTheLayer) {
  absl::StatusOr<ImportedModel> m =
      ImportKerasModel(Golden("bad_regularizer.keras"));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("(Embedding)"));
  EXPECT_THAT(m.status().message(), HasSubstr("embeddings_regularizer"));
}

// A tf.keras 2 Sequential config: the Embedding carries the input shape
// (batch_input_shape [null, 6]) and input_length.
constexpr char kKeras2Embedding[] = R"({"class_name": "Sequential",
 "config": {"name": "sequential", "layers": [
  {"class_name": "Embedding", "config": {"name": "e", "trainable": true,
   "batch_input_shape": [null, 6], "dtype": "float32", "input_dim": 20,
   "output_dim": 4, "embeddings_initializer": {"class_name": "RandomUniform",
   "config": {"minval": -0.05, "maxval": 0.05, "seed": null}},
   "embeddings_regularizer": null, "activity_regularizer": null,
   "embeddings_constraint": null, "mask_zero": false,
   "input_length": LENGTH}},
  {"class_name": "Dense", "config": {"name": "d", "units": 2}}]}})";

KerasFile Keras2File(const std::string& length) {
  KerasFile f;
  f.format = KerasFile::Format::kLegacyH5;
  f.keras_version = "2.15.0";
  f.model_config = kKeras2Embedding;
  f.model_config.replace(f.model_config.find("LENGTH"), 6, length);
  f.weights["e"] = {NdArray(DType::kFloat32, {20, 4})};
  f.weights["d"] = {NdArray(DType::kFloat32, {4, 2}),
                    NdArray(DType::kFloat32, {2})};
  return f;
}

TEST(EmbeddingImport, Keras2InputLengthMustMatchTheInput) {
  absl::StatusOr<ImportedModel> m = ImportKerasFile(Keras2File("6"), "m.h5");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->spec.model.timesteps, 6);
  EXPECT_EQ(m->spec.model.features, 1);
  EXPECT_EQ(m->spec.model.layers[0].kind, LayerKind::kEmbedding);
  EXPECT_TRUE(ImportKerasFile(Keras2File("null"), "m.h5").ok());
  m = ImportKerasFile(Keras2File("5"), "m.h5");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("m.h5"));
  EXPECT_THAT(m.status().message(), HasSubstr("input_length"));
  EXPECT_THAT(m.status().message(), HasSubstr("6 timesteps"));
}

TEST(EmbeddingImport, AConfigWithoutItsSizesIsRefused) {
  KerasLayer l{"Embedding", "x", KerasConfig({}, "layer 'x' (Embedding)")};
  absl::StatusOr<LayerSpec> s = MapKerasLayer(l);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(),
              HasSubstr("layer 'x' (Embedding): input_dim must be given"));
}

TEST(EmbeddingImport, IntegerIdFilesAreReadAsIds) {
  absl::StatusOr<NdArray> ids = ReadNpyIntegers(Golden("import/ids.npy"));
  ASSERT_TRUE(ids.ok()) << ids.status();
  const NdArray x = Npy("import/x.npy");
  ASSERT_EQ(ids->shape(), (std::vector<int64_t>{40, 6}));
  ASSERT_EQ(ids->size(), x.size());
  for (int64_t i = 0; i < x.size(); ++i) ASSERT_EQ(ids->at(i), x.at(i)) << i;
  // ReadNpy itself still takes floats only.
  EXPECT_FALSE(ReadNpy(Golden("import/ids.npy")).ok());
}

}  // namespace
}  // namespace driftscope
