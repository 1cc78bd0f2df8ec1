// `driftscope import` of keras.layers.Masking: a real Keras 3.15.1 file with
// Masking first (tests/golden/masking/make_masking_golden.py) maps to a
// JobSpec with mask_value and trains in fp64 like Keras' own float64 fit()
// on padded sequences; Masking anywhere else is refused naming the layer.
#include <string>

#include "absl/strings/str_cat.h"
#include "client/import/keras_config.h"
#include "client/import/keras_import.h"
#include "client/import/keras_layers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/import/import_golden.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

std::string Golden(const std::string& name) {
  return absl::StrCat(DRIFTSCOPE_SOURCE_DIR,
                      "/tests/golden/masking/import_masked/", name);
}

TEST(KerasMaskingImport, MaskedFileTrainsLikeKerasFloat64) {
  absl::StatusOr<ImportedModel> m = ImportKerasModel(Golden("model.keras"));
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(m->spec.model.mask_value.has_value());
  EXPECT_EQ(*m->spec.model.mask_value, 0.0);
  ASSERT_EQ(m->spec.model.layers.size(), 3u);  // Masking is not a layer
  EXPECT_EQ(m->spec.model.layers[0].kind, LayerKind::kLstm);
  EXPECT_TRUE(m->spec.model.layers[1].bidirectional);
  const int weights = 3 + 6 + 2;
  const std::string dir = Golden("");
  ASSERT_NO_FATAL_FAILURE(
      import_golden::ExpectInitialWeightsAreTheFiles(*m, dir, weights));
  RunResult r;
  ASSERT_NO_FATAL_FAILURE(
      import_golden::ExpectTrainsLikeKerasFloat64(*m, dir, weights, "", &r));
  EXPECT_EQ(r.losses.size(), 6);  // 2 steps per epoch (32 + 8), 3 epochs
}

TEST(KerasMaskingImport, MaskingAfterTheFirstLayerIsRefusedNamingIt) {
  absl::StatusOr<ImportedModel> m =
      ImportKerasModel(Golden("bad_masking_second.keras"));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("bad_masking_second.keras"));
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("(Masking): Masking is supported only as the model's "
                        "first layer"));
}

// Keras' Bidirectional saves its copies with zero_output_for_mask=True
// (imported as Bidirectional above); a plain RNN layer with it is refused.
TEST(KerasMaskingImport, PlainZeroOutputForMaskIsRefused) {
  google::protobuf::Struct cfg;
  (*cfg.mutable_fields())["units"].set_number_value(3);
  (*cfg.mutable_fields())["zero_output_for_mask"].set_bool_value(true);
  KerasLayer l{"LSTM", "l", KerasConfig(cfg, "layer 'l' (LSTM)")};
  absl::StatusOr<LayerSpec> s = MapKerasLayer(l);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("layer 'l' (LSTM): zero_output_for_mask=True is not "
                        "supported outside a Bidirectional"));
  (*cfg.mutable_fields())["zero_output_for_mask"].set_bool_value(false);
  KerasLayer ok{"LSTM", "l", KerasConfig(cfg, "layer 'l' (LSTM)")};
  EXPECT_TRUE(MapKerasLayer(ok).ok()) << MapKerasLayer(ok).status();
}

}  // namespace
}  // namespace driftscope
