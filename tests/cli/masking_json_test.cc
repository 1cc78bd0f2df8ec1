// The JSON form of keras.layers.Masking: {"masking": {"mask_value": v}} as
// the first layer becomes the model's mask_value (and round-trips); a
// masking layer anywhere else, or alone, is refused naming the layer.
#include <string>

#include "absl/status/status.h"
#include "engine/job/job_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/spec_json.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

std::string WithLayers(const std::string& layers) {
  return R"({"model": {"input": {"timesteps": 4, "features": 2}, "layers": [)" +
         layers + "]}}";
}

std::string ErrorOf(const std::string& json) {
  absl::StatusOr<JobSpec> spec = ParseSpecJson(json, "spec.json");
  EXPECT_FALSE(spec.ok()) << json;
  if (spec.ok()) return "";
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(spec.status().message());
}

TEST(MaskingJsonTest, FirstLayerBecomesTheMaskValueAndRoundTrips) {
  absl::StatusOr<JobSpec> spec = ParseSpecJson(
      WithLayers(
          R"({"masking": {"mask_value": -1.5}}, {"lstm": {"units": 3, "return_sequences": true}}, {"dense": {"units": 1}})"),
      "spec.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(spec->model.mask_value.has_value());
  EXPECT_EQ(*spec->model.mask_value, -1.5);
  ASSERT_EQ(spec->model.layers.size(), 2u);
  EXPECT_EQ(spec->model.layers[0].kind, LayerKind::kLstm);
  absl::StatusOr<JobSpec> back =
      ParseSpecJson(SpecToJson(*spec, /*indent=*/false), "roundtrip.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(CanonicalText(*back), CanonicalText(*spec));
  EXPECT_EQ(*back->model.mask_value, -1.5);

  // Keras' default mask_value is 0.0.
  absl::StatusOr<JobSpec> zero = ParseSpecJson(
      WithLayers(R"({"masking": {}}, {"gru": {"units": 2}})"), "spec.json");
  ASSERT_TRUE(zero.ok()) << zero.status();
  ASSERT_TRUE(zero->model.mask_value.has_value());
  EXPECT_EQ(*zero->model.mask_value, 0.0);

  // Without masking there is no mask, and the JSON has no masking layer.
  absl::StatusOr<JobSpec> plain =
      ParseSpecJson(WithLayers(R"({"gru": {"units": 2}})"), "spec.json");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->model.mask_value.has_value());
  EXPECT_EQ(SpecToJson(*plain, false).find("masking"), std::string::npos);
}

TEST(MaskingJsonTest, MaskingElsewhereOrAloneIsRefusedNamingTheLayer) {
  EXPECT_THAT(
      ErrorOf(WithLayers(
          R"({"lstm": {"units": 3, "return_sequences": true}}, {"masking": {"mask_value": 0}})")),
      HasSubstr("model.layers[1].masking: Masking is supported only as the "
                "model's first layer"));
  EXPECT_THAT(
      ErrorOf(WithLayers(
          R"({"masking": {}}, {"masking": {}}, {"lstm": {"units": 3}})")),
      HasSubstr("model.layers[1].masking"));
  EXPECT_THAT(ErrorOf(WithLayers(R"({"masking": {}})")),
              HasSubstr("at least one layer is required after masking"));
  EXPECT_THAT(
      ErrorOf(WithLayers(R"({"bidirectional": {"layer": {"masking": {}}}})")),
      HasSubstr("model.layers[0].bidirectional.layer"));
}

TEST(MaskingJsonTest, PaddedSyntheticDataNeedsMasking) {
  const std::string data =
      R"(, "data": {"synthetic": {"samples": 8, "eval_samples": 4, "pad_tail_max": 3}}})";
  const std::string masked =
      R"({"model": {"input": {"timesteps": 4, "features": 2}, "layers": [{"masking": {}}, {"lstm": {"units": 2}}]})" +
      data;
  absl::StatusOr<JobSpec> spec = ParseSpecJson(masked, "spec.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->data.pad_tail_max, 3);
  absl::StatusOr<JobSpec> back =
      ParseSpecJson(SpecToJson(*spec, false), "roundtrip.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->data.pad_tail_max, 3);
  const std::string unmasked =
      R"({"model": {"input": {"timesteps": 4, "features": 2}, "layers": [{"lstm": {"units": 2}}]})" +
      data;
  EXPECT_THAT(ErrorOf(unmasked),
              HasSubstr("data.synthetic.pad_tail_max pads with the Masking "
                        "layer's mask_value"));
}

}  // namespace
}  // namespace driftscope
