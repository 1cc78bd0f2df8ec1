// ReportToProto: the engine report's environments become runs (each
// through its lowest repeat), and the values with no direct proto form are
// mapped as coordinator.proto documents.
#include "proto/lib/report_convert.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace driftscope::coordinator {
namespace {

RunRecord Record(const std::string& name, int repeat, std::vector<double> l) {
  RunRecord r;
  r.name = name;
  r.repeat = repeat;
  r.losses = NdArray::From<double>({static_cast<int64_t>(l.size())}, l);
  return r;
}

TEST(ReportConvertTest, EnvironmentsMapToTheirLowestRepeatAndValuesAreMapped) {
  // Records in run order: the reference, then env "w/fp32" as repeat 1
  // before repeat 0.
  const std::vector<RunRecord> records = {Record("w/ref64", 0, {1.0, 2.0}),
                                          Record("w/fp32", 1, {1.5, 2.0}),
                                          Record("w/fp32", 0, {1.25, 2.5})};
  DriftReport report;
  report.reference = "w/ref64";
  report.reference_profile = "fp64";
  report.reference_reason = "named";
  report.atol = 1e-8;
  report.rtol = 1e-5;
  report.environments = {"w/ref64", "w/fp32"};
  PairDrift pair;
  pair.environment = "w/fp32";
  pair.profile = "fp32";
  pair.outputs.bitwise_identical = false;
  pair.outputs.dtype_a = "float32";
  pair.outputs.dtype_ref = "float64";
  pair.outputs.overall.count = 10;
  pair.outputs.overall.differing = 3;
  pair.outputs.overall.ulp_histogram[0] = 7;
  pair.outputs.overall.ulp_histogram[2] = 3;
  pair.outputs.overall.nan_mismatches = 1;
  pair.outputs.overall.inf_mismatches = 2;
  pair.outputs.per_timestep.resize(2);
  pair.outputs.per_timestep[1].differing = 1;
  pair.attribution = "evaluation";
  pair.first_divergent_step = -1;
  pair.noise_floor_rel_l2 = 0.0;
  pair.drift_to_noise = std::numeric_limits<double>::infinity();
  report.pairs.push_back(pair);
  RepeatGroup g;
  g.environment = "w/fp32";
  g.repeats = 2;
  g.bitwise_repeatable = true;
  report.repeatability.push_back(g);
  report.rel_l2_matrix = {{0, std::nan("")}, {std::nan(""), 0}};
  report.max_ulp_matrix = {{0, std::numeric_limits<uint64_t>::max()},
                           {std::numeric_limits<uint64_t>::max(), 0}};

  ReportContext context;
  context.job_id = "job-1";
  context.run_ids = {"job-1-r0", "job-1-r1", "job-1-r2"};
  context.reference_reason = "ref64";
  const v1::DriftReport p = ReportToProto(report, records, context);

  EXPECT_EQ(p.reference_run_id(), "job-1-r0");
  EXPECT_EQ(p.reference_reason(), "ref64");
  EXPECT_EQ(p.tolerance().atol(), 1e-8);
  ASSERT_EQ(p.pairs_size(), 1);
  const v1::PairReport& pr = p.pairs(0);
  EXPECT_EQ(pr.run_id(), "job-1-r2");  // repeat 0 represents w/fp32
  EXPECT_EQ(pr.attribution(), v1::EVALUATION);
  EXPECT_EQ(pr.drift_over_noise(), 0.0);  // the floor is zero
  EXPECT_TRUE(pr.has_noise_floor_rel_l2());
  EXPECT_EQ(pr.outputs().nan_inf_mismatches(), 3);
  ASSERT_EQ(pr.outputs().ulp_histogram_size(), 3);  // trailing zeros cut
  EXPECT_EQ(pr.outputs().ulp_histogram(2), 3);
  ASSERT_EQ(pr.per_timestep_size(), 2);
  // Different dtypes: never bitwise identical, even where nothing differs.
  EXPECT_FALSE(pr.per_timestep(0).bitwise_identical());
  // loss(A) - loss(R), A being repeat 0 of w/fp32.
  ASSERT_EQ(pr.loss_diff_size(), 2);
  EXPECT_EQ(pr.loss_diff(0), 0.25);
  EXPECT_EQ(pr.loss_diff(1), 0.5);
  EXPECT_TRUE(p.repeatability().at("w/fp32").bitwise_identical());
  ASSERT_EQ(p.run_ids_size(), 2);
  EXPECT_EQ(p.run_ids(1), "job-1-r2");
  EXPECT_EQ(p.environments(1), "w/fp32");
  ASSERT_EQ(p.max_ulp_matrix_size(), 4);
  EXPECT_EQ(p.max_ulp_matrix(1), -1);  // shapes differ
  EXPECT_TRUE(std::isnan(p.rel_l2_matrix(1)));
}

}  // namespace
}  // namespace driftscope::coordinator
