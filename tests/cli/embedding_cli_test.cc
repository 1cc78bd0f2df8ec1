// `driftscope train` with a model that starts with an Embedding: a JSON
// spec on TOKENS data, the Keras file with its int32 token ids
// (tests/golden/embedding/make_embedding_golden.py) trained like Keras'
// float64 fit(), and bad ids refused (exit 2, one line naming the file, the
// sample, the timestep and the value, nothing written).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/core/ndarray.h"
#include "engine/io/npy.h"
#include "engine/job/job_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/spec_json.h"
#include "tests/cli/cli_test_util.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kGolden =
    std::string(DRIFTSCOPE_SOURCE_DIR) + "/tests/golden/embedding/import/";

constexpr char kTokenSpec[] = R"({
  "seed": 3,
  "model": {"input": {"timesteps": 5},
            "layers": [{"embedding": {"input_dim": 9, "output_dim": 4}},
                       {"gru": {"units": 3, "return_sequences": true}},
                       {"dense": {"units": 2}}]},
  "data": {"synthetic": {"generator": "TOKENS", "samples": 32,
                         "eval_samples": 8}},
  "training": {"epochs": 1, "batch_size": 16}
})";

TEST(EmbeddingSpecJson, ParsesAndRoundTrips) {
  absl::StatusOr<JobSpec> spec = ParseSpecJson(kTokenSpec, "spec.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  const LayerSpec& e = spec->model.layers[0];
  EXPECT_EQ(e.kind, LayerKind::kEmbedding);
  EXPECT_EQ(e.input_dim, 9);
  EXPECT_EQ(e.units, 4);
  EXPECT_EQ(e.kernel_initializer.kind, InitializerSpec::Kind::kRandomUniform);
  EXPECT_EQ(spec->model.features, 1);  // absent: one id per timestep
  EXPECT_EQ(spec->data.generator, DataSpec::Generator::kTokens);
  absl::StatusOr<JobSpec> back =
      ParseSpecJson(SpecToJson(*spec, /*indent=*/false), "roundtrip.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(CanonicalText(*back), CanonicalText(*spec));

  std::string mask_zero = kTokenSpec;
  mask_zero.replace(mask_zero.find("\"output_dim\": 4"), 15,
                    "\"output_dim\": 4, \"mask_zero\": true");
  absl::StatusOr<JobSpec> masked = ParseSpecJson(mask_zero, "spec.json");
  ASSERT_TRUE(masked.ok()) << masked.status();
  EXPECT_TRUE(masked->model.layers[0].mask_zero);
  back = ParseSpecJson(SpecToJson(*masked, /*indent=*/false), "rt.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->model.layers[0].mask_zero);
  EXPECT_NE(CanonicalText(*masked), CanonicalText(*spec));

  // Masking in front of an embedding with mask_zero: refused.
  std::string both = mask_zero;
  both.replace(both.find("\"layers\": ["), 11,
               "\"layers\": [{\"masking\": {\"mask_value\": 0}}, ");
  absl::StatusOr<JobSpec> refused = ParseSpecJson(both, "spec.json");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(),
              HasSubstr("a Masking layer and an embedding with mask_zero"));
}

TEST(EmbeddingTrainCli, TrainsOnTokensFromJson) {
  const std::string dir = FreshDir();
  WriteFile(dir + "/spec.json", kTokenSpec);
  CliResult r = RunCli({"train", dir + "/spec.json", "--out", dir + "/out"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  absl::StatusOr<NdArray> table =
      ReadNpy(dir + "/out/weights/layer0_embeddings.npy");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->shape(), (std::vector<int64_t>{9, 4}));
  absl::StatusOr<NdArray> out = ReadNpy(dir + "/out/outputs.npy");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->shape(), (std::vector<int64_t>{8, 5, 2}));
}

// The Keras file trained on Keras' own int32 ids (N, T) ends where Keras'
// float64 fit() ended; also with mask_zero=True on ids padded with 0.
TEST(EmbeddingTrainCli, KerasFileWithIntIdsTrainsLikeKeras) {
  for (const std::string& golden :
       {kGolden, kGolden + "../import_mask_zero/"}) {
    SCOPED_TRACE(golden);
    const std::string dir = FreshDir();
    CliResult r = RunCli({"train", "--model", golden + "model.keras", "--x",
                          golden + "ids.npy", "--y", golden + "y.npy",
                          "--profile", "ref64", "--out", dir + "/out"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    absl::StatusOr<NdArray> got = ReadNpy(dir + "/out/outputs.npy");
    absl::StatusOr<NdArray> want = ReadNpy(golden + "final_out.npy");
    ASSERT_TRUE(got.ok() && want.ok());
    ASSERT_EQ(got->shape(), want->shape());
    double worst = 0;
    for (int64_t i = 0; i < want->size(); ++i)
      worst = std::max(worst, std::fabs(got->at(i) - want->at(i)) /
                                  std::max(1.0, std::fabs(want->at(i))));
    EXPECT_LE(worst, 1e-10);
    absl::StatusOr<NdArray> table =
        ReadNpy(dir + "/out/weights/layer0_embeddings.npy");
    absl::StatusOr<NdArray> table_want = ReadNpy(golden + "final_w0.npy");
    ASSERT_TRUE(table.ok() && table_want.ok());
    ASSERT_EQ(table->shape(), table_want->shape());
    worst = 0;
    for (int64_t i = 0; i < table->size(); ++i)
      worst = std::max(worst, std::fabs(table->at(i) - table_want->at(i)));
    EXPECT_LE(worst, 1e-10);
  }
}

// An int32 .npy of the given shape and values.
std::string NpyInt32(const std::vector<int64_t>& shape,
                     const std::vector<int32_t>& values) {
  std::string dims;
  for (int64_t d : shape) dims += absl::StrCat(d, ", ");
  if (shape.size() > 1) dims.resize(dims.size() - 1);
  std::string header =
      "{'descr': '<i4', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string file("\x93NUMPY\x01\x00", 8);
  file += static_cast<char>(header.size() & 0xff);
  file += static_cast<char>(header.size() >> 8);
  file += header;
  file.append(reinterpret_cast<const char*>(values.data()),
              values.size() * sizeof(int32_t));
  return file;
}

TEST(EmbeddingTrainCli, OutOfRangeIdIsRefusedNamingFileSampleStepAndValue) {
  const std::string dir = FreshDir();
  WriteFile(dir + "/spec.json", kTokenSpec);
  std::vector<int32_t> ids(3 * 5, 1);
  ids[2 * 5 + 3] = 9;  // sample 2, timestep 3; input_dim is 9
  WriteFile(dir + "/ids.npy", NpyInt32({3, 5}, ids));
  ASSERT_TRUE(
      WriteNpy(dir + "/y.npy",
               NdArray::From<float>({3, 5, 2}, std::vector<float>(30, 0.f)))
          .ok());
  CliResult r = RunCli({"train", dir + "/spec.json", "--x", dir + "/ids.npy",
                        "--y", dir + "/y.npy", "--out", dir + "/out"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, StartsWith("driftscope: error: "));
  EXPECT_THAT(r.err, HasSubstr(dir + "/ids.npy: sample 2, timestep 3: token "
                                     "id 9 is not an integer in [0, 9)"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(Exists(dir + "/out"));
}

}  // namespace
}  // namespace driftscope
