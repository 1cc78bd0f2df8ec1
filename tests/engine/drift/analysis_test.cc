#include "engine/drift/analysis.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/drift/report_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

// A run whose outputs are base * (1 + scale) in the given dtype.
RunRecord MakeRun(const std::string& name, const std::string& profile,
                  double scale, int repeat = 0, DType dtype = DType::kFloat32) {
  RunRecord r;
  r.name = name;
  r.profile = profile;
  r.repeat = repeat;
  r.spec_digest = "digest";
  std::vector<double> v;
  for (int i = 0; i < 2 * 3 * 4; ++i) v.push_back((i + 1) * (1.0 + scale));
  NdArray out = NdArray::From<double>({2, 3, 4}, v);
  r.outputs = dtype == DType::kFloat64 ? out : out.AsType(DType::kFloat32);
  std::vector<double> losses = {1.0, 0.5, 0.25};
  r.losses = NdArray::From<double>({3}, losses).AsType(dtype);
  r.fingerprints = {"w0", "w1", "w2", "w3"};
  r.fingerprints_f32 = {"f0", "f1", "f2", "f3"};
  return r;
}

const PairDrift& PairFor(const DriftReport& r, const std::string& env) {
  for (const PairDrift& p : r.pairs) {
    if (p.environment == env) return p;
  }
  ADD_FAILURE() << "no pair for " << env;
  return r.pairs.front();
}

TEST(DriftAnalysisTest, ReferenceIsRef64ThenFp64ThenFirstOrNamed) {
  std::vector<RunRecord> runs = {
      MakeRun("laptop", "fp32", 0), MakeRun("a100", "fp32", 1e-6),
      MakeRun("oracle", "ref64", 0, 0, DType::kFloat64)};
  absl::StatusOr<DriftReport> r = AnalyzeRuns(runs);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->reference, "oracle");
  EXPECT_EQ(r->reference_reason, "ref64");
  EXPECT_EQ(r->pairs.size(), 2u);

  runs[2].profile = "fp64,threads=1";
  r = AnalyzeRuns(runs);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->reference, "oracle");
  EXPECT_EQ(r->reference_reason, "fp64");

  runs.pop_back();
  r = AnalyzeRuns(runs);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reference, "laptop");
  EXPECT_EQ(r->reference_reason, "first");

  AnalysisOptions o;
  o.reference = "a100";
  r = AnalyzeRuns(runs, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reference, "a100");
  o.reference = "tpu";
  EXPECT_EQ(AnalyzeRuns(runs, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(AnalyzeRuns({}).ok());
}

TEST(DriftAnalysisTest, FirstDivergenceAndAttribution) {
  RunRecord ref = MakeRun("ref", "fp32", 0);
  RunRecord same = MakeRun("same", "fp32", 0);
  RunRecord config = MakeRun("config", "fp32", 0);
  config.spec_digest = "other";
  RunRecord init = MakeRun("init", "fp32", 1e-3);
  init.fingerprints[0] = "x";
  init.fingerprints[1] = "y";
  RunRecord numerics = MakeRun("numerics", "fp32", 1e-5);
  numerics.fingerprints[2] = "z";
  numerics.fingerprints[3] = "zz";
  std::vector<double> l = {1.0, 0.5, 0.2500001};
  numerics.losses = NdArray::From<double>({3}, l).AsType(DType::kFloat32);
  RunRecord eval = MakeRun("eval", "fp32", 1e-5);
  RunRecord blind = MakeRun("blind", "fp32", 1e-5);
  blind.fingerprints.clear();
  absl::StatusOr<DriftReport> r =
      AnalyzeRuns({ref, same, config, init, numerics, eval, blind});
  ASSERT_TRUE(r.ok()) << r.status();

  EXPECT_EQ(PairFor(*r, "same").attribution, "none");
  EXPECT_EQ(PairFor(*r, "same").first_divergent_step, -1);
  EXPECT_TRUE(PairFor(*r, "same").outputs.bitwise_identical);
  EXPECT_EQ(PairFor(*r, "config").attribution, "configuration");
  EXPECT_EQ(PairFor(*r, "init").attribution, "initialisation");
  EXPECT_EQ(PairFor(*r, "init").first_divergent_step, 0);
  const PairDrift& n = PairFor(*r, "numerics");
  EXPECT_EQ(n.attribution, "numerics");
  EXPECT_EQ(n.first_divergent_step, 2);
  EXPECT_THAT(n.attribution_detail, HasSubstr("from step 2"));
  EXPECT_EQ(n.fingerprint_kind, "sha256");
  EXPECT_EQ(n.loss.first_differing_step, 3);
  EXPECT_EQ(n.loss.steps_compared, 3);
  EXPECT_NEAR(n.loss.max_abs, 1e-7, 2e-8);  // float32 rounding of 0.2500001
  EXPECT_EQ(PairFor(*r, "eval").attribution, "evaluation");
  EXPECT_EQ(PairFor(*r, "blind").attribution, "unknown");
}

TEST(DriftAnalysisTest, MixedPrecisionComparesFloat32Fingerprints) {
  RunRecord ref = MakeRun("ref", "ref64", 0, 0, DType::kFloat64);
  RunRecord f32 = MakeRun("f32", "fp32", 0);
  // Full-precision hashes always differ between precisions; the float32
  // roundings agree until step 1.
  f32.fingerprints = {"a", "b", "c", "d"};
  f32.fingerprints_f32 = {"f0", "g1", "g2", "g3"};
  absl::StatusOr<DriftReport> r = AnalyzeRuns({f32, ref});
  ASSERT_TRUE(r.ok());
  const PairDrift& p = PairFor(*r, "f32");
  EXPECT_EQ(p.fingerprint_kind, "sha256_f32");
  EXPECT_EQ(p.first_divergent_step, 1);
  EXPECT_EQ(p.attribution, "numerics");
  EXPECT_EQ(p.outputs.ulp_unit, "float32");
}

TEST(DriftAnalysisTest, RepeatSpreadIsTheNoiseFloor) {
  // "gpu" repeats differ by 1e-6 relative; vs the reference it is 1e-4.
  std::vector<RunRecord> runs = {
      MakeRun("ref", "fp64", 0, 0, DType::kFloat64),
      MakeRun("gpu", "fp64", 1e-4, 0, DType::kFloat64),
      MakeRun("gpu", "fp64", 1e-4 + 1e-6, 1, DType::kFloat64),
      MakeRun("cpu", "fp64", 2e-4, 0, DType::kFloat64)};
  absl::StatusOr<DriftReport> r = AnalyzeRuns(runs);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->repeatability.size(), 1u);
  const RepeatGroup& g = r->repeatability[0];
  EXPECT_EQ(g.environment, "gpu");
  EXPECT_EQ(g.repeats, 2);
  EXPECT_FALSE(g.bitwise_repeatable);
  // ‖r·1e-6‖ / ‖r·(1 + 1e-4)‖.
  EXPECT_NEAR(g.max_rel_l2, 1e-6 / (1 + 1e-4), 1e-12);
  const PairDrift& gpu = PairFor(*r, "gpu");
  ASSERT_TRUE(gpu.noise_floor_rel_l2.has_value());
  EXPECT_NEAR(*gpu.drift_to_noise, 1e-4 * (1 + 1e-4) / 1e-6, 1e-3);
  EXPECT_EQ(gpu.repeat, 0);
  // No repeats on either side of cpu/ref: no floor to compare with.
  EXPECT_FALSE(PairFor(*r, "cpu").noise_floor_rel_l2.has_value());
  // Bitwise-repeatable environment: a zero floor makes any drift infinite.
  runs[2] = MakeRun("gpu", "fp64", 1e-4, 1, DType::kFloat64);
  r = AnalyzeRuns(runs);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->repeatability[0].bitwise_repeatable);
  EXPECT_TRUE(std::isinf(*PairFor(*r, "gpu").drift_to_noise));
}

TEST(DriftAnalysisTest, MatrixIsSymmetricWithZeroDiagonal) {
  absl::StatusOr<DriftReport> r =
      AnalyzeRuns({MakeRun("a", "fp64", 0, 0, DType::kFloat64),
                   MakeRun("b", "fp64", 1e-3, 0, DType::kFloat64),
                   MakeRun("c", "fp64", -2e-3, 0, DType::kFloat64)});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->rel_l2_matrix.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r->rel_l2_matrix[i][i], 0.0);
    EXPECT_EQ(r->max_ulp_matrix[i][i], 0u);
    for (size_t j = 0; j < 3; ++j) {
      EXPECT_EQ(r->rel_l2_matrix[i][j], r->rel_l2_matrix[j][i]);
      EXPECT_EQ(r->max_ulp_matrix[i][j], r->max_ulp_matrix[j][i]);
    }
  }
  // b vs c: ‖x·3e-3‖ / max(‖x(1+1e-3)‖, ‖x(1-2e-3)‖).
  EXPECT_NEAR(r->rel_l2_matrix[1][2], 3e-3 / (1 + 1e-3), 1e-12);
  EXPECT_GT(r->max_ulp_matrix[1][2], 0u);
}

TEST(DriftAnalysisTest, VerdictAndShapeMismatch) {
  RunRecord ref = MakeRun("ref", "fp64", 0, 0, DType::kFloat64);
  RunRecord close = MakeRun("close", "fp64", 1e-7, 0, DType::kFloat64);
  RunRecord far = MakeRun("far", "fp64", 1e-3, 0, DType::kFloat64);
  RunRecord shape = MakeRun("shape", "fp64", 0, 0, DType::kFloat64);
  shape.outputs = NdArray(DType::kFloat64, {4, 3, 2});
  AnalysisOptions o;
  o.rtol = 1e-5;
  absl::StatusOr<DriftReport> r = AnalyzeRuns({ref, close, far}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(PairFor(*r, "close").pass);
  EXPECT_FALSE(PairFor(*r, "far").pass);
  EXPECT_FALSE(r->pass);
  r = AnalyzeRuns({ref, close}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->pass);
  r = AnalyzeRuns({ref, shape}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(PairFor(*r, "shape").pass);
  EXPECT_THAT(PairFor(*r, "shape").error, HasSubstr("(4, 3, 2)"));
  EXPECT_TRUE(std::isnan(r->rel_l2_matrix[0][1]));
}

TEST(DriftAnalysisTest, PerEpochCurvesCoverCommonEpochs) {
  RunRecord ref = MakeRun("ref", "fp64", 0, 0, DType::kFloat64);
  RunRecord b = MakeRun("b", "fp64", 1e-3, 0, DType::kFloat64);
  for (int e = 0; e < 3; ++e) {
    ref.epoch_outputs.push_back(ref.outputs);
    b.epoch_outputs.push_back(e == 0 ? ref.outputs : b.outputs);
  }
  b.epoch_outputs.pop_back();
  absl::StatusOr<DriftReport> r = AnalyzeRuns({ref, b});
  ASSERT_TRUE(r.ok());
  const PairDrift& p = PairFor(*r, "b");
  ASSERT_EQ(p.epochs.size(), 2u);
  EXPECT_TRUE(p.epochs[0].bitwise_identical);
  EXPECT_NEAR(p.epochs[1].overall.rel_l2, 1e-3, 1e-12);
}

TEST(DriftAnalysisTest, JsonAndCsvCarryTheDocumentedKeys) {
  RunRecord ref = MakeRun("ref", "ref64", 0, 0, DType::kFloat64);
  RunRecord b = MakeRun("b,\"x\"", "fp32", 1e-3);
  absl::StatusOr<DriftReport> r = AnalyzeRuns({ref, b});
  ASSERT_TRUE(r.ok());
  const std::string json = ReportToJson(*r);
  for (const char* key :
       {"\"schema\":\"driftscope.drift_report/1\"", "\"reference\":",
        "\"pairs\":", "\"matrix\":", "\"rel_l2\":", "\"per_timestep\":{",
        "\"ulp_histogram\":[", "\"attribution\":{\"cause\":\"evaluation\"",
        "\"first_divergent_step\":-1", "\"b,\\\"x\\\"\"",
        "\"noise_floor_rel_l2\":null"}) {
    EXPECT_THAT(json, HasSubstr(key));
  }
  const std::string csv = ReportToCsv(*r);
  EXPECT_THAT(csv, HasSubstr("environment,profile,repeat,pass,"));
  EXPECT_THAT(csv, HasSubstr("\n\"b,\"\"x\"\"\",fp32,0,false,false,"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 2);
}

}  // namespace
}  // namespace driftscope
