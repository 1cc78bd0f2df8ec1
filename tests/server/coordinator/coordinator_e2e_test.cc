// A real driftscope-coordinator with real workers on 127.0.0.1: submit,
// watch and report end to end, with the report's numbers held to the
// engine's own AnalyzeRuns over in-process runs of the same profiles.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/core/sha256.h"
#include "engine/drift/analysis.h"
#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/tensor_stream.h"
#include "tests/server/coordinator/coordinator_test_util.h"
#include "tests/server/coordinator/store_test_util.h"
#include "tests/server/worker_process.h"

namespace driftscope {
namespace {

using ::driftscope::testing::CoordinatorProcess;
using ::driftscope::testing::CoordinatorStub;
using ::driftscope::testing::Ctx;
using ::driftscope::testing::StoreDir;
using ::driftscope::testing::TinySpec;
using ::driftscope::testing::WorkerProcess;

RunRecord LocalRecord(const std::string& name, int repeat, const RunResult& r) {
  RunRecord rec;
  rec.name = name;
  rec.repeat = repeat;
  rec.spec_digest = r.spec_digest;
  rec.outputs = r.outputs;
  rec.losses = r.losses;
  for (const Fingerprint& f : r.fingerprints) {
    rec.fingerprints.push_back(f.sha256);
    rec.fingerprints_f32.push_back(f.sha256_f32);
  }
  rec.epoch_outputs = r.epoch_outputs;
  rec.profile = r.profile;
  return rec;
}

void ExpectSameStats(const v1::DriftMetrics& m, const DriftStats& s,
                     const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(m.elements(), s.count);
  EXPECT_EQ(m.differing_elements(), s.differing);
  EXPECT_EQ(m.max_abs(), s.max_abs);
  EXPECT_EQ(m.mean_abs(), s.mean_abs);
  EXPECT_EQ(m.rms(), s.rms);
  EXPECT_EQ(m.max_rel(), s.max_rel);
  EXPECT_EQ(m.rel_l2(), s.rel_l2);
  EXPECT_EQ(m.cosine(), s.cosine);
  EXPECT_EQ(static_cast<uint64_t>(m.max_ulp()), s.max_ulp);
  EXPECT_EQ(m.median_ulp(), s.median_ulp);
  EXPECT_EQ(m.min_significant_bits(), s.min_sig_bits);
  EXPECT_EQ(m.mean_significant_bits(), s.mean_sig_bits);
  EXPECT_EQ(m.tolerance_violations(), s.tolerance_violations);
  EXPECT_EQ(m.pass(), s.pass);
}

TEST(CoordinatorE2eTest, SubmitWatchReportMatchesInProcessAnalysis) {
  auto w1 = WorkerProcess::Start(
      {"--insecure", "--default_profile=fp32", "--max_concurrent_runs=2"});
  ASSERT_TRUE(w1.ok()) << w1.status();
  auto w2 = WorkerProcess::Start({"--insecure", "--default_profile=fp32-sse2"});
  ASSERT_TRUE(w2.ok()) << w2.status();
  StoreDir dir;
  auto coordinator = CoordinatorProcess::Start(
      {"--insecure", "--worker_insecure", "--store_dir=" + dir.path(),
       "--workers=" + (*w1)->address() + "," + (*w2)->address()});
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  auto stub = CoordinatorStub((*coordinator)->address());

  v1::SubmitJobRequest submit;
  submit.set_client_request_id("e2e-1");
  *submit.mutable_spec() = JobSpecToProto(TinySpec());
  submit.mutable_placement()->set_repeats(2);
  submit.mutable_placement()->set_add_reference(true);
  submit.set_description("end to end");
  v1::Job job;
  ASSERT_TRUE(stub->SubmitJob(Ctx().get(), submit, &job).ok());
  // ref64 on the first worker, then each worker's default profile twice.
  ASSERT_EQ(job.runs_size(), 5);
  EXPECT_EQ(job.runs(0).profile(), "ref64");

  // Watch: a snapshot first, run updates, and the terminal state last.
  v1::WatchJobRequest watch;
  watch.set_job_id(job.job_id());
  auto ctx = Ctx(std::chrono::seconds(120));
  auto reader = stub->WatchJob(ctx.get(), watch);
  std::vector<v1::JobEvent> events;
  v1::JobEvent e;
  while (reader->Read(&e)) events.push_back(e);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_GE(events.size(), 2u);
  EXPECT_TRUE(events.front().has_snapshot());
  ASSERT_TRUE(events.back().has_job_state());
  EXPECT_EQ(events.back().job_state(), v1::JOB_SUCCEEDED);

  v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  ASSERT_TRUE(stub->GetJob(Ctx().get(), get, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED);
  EXPECT_GT(job.finished_unix_ms(), 0);

  // The same runs in this process, grouped and named as the coordinator
  // groups and names them.
  std::vector<RunRecord> local;
  std::map<std::string, RunResult> local_by_run;
  std::string reference_env;
  for (const v1::RunInfo& run : job.runs()) {
    ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.run_id();
    ASSERT_EQ(run.attempts_size(), 1);
    EXPECT_EQ(run.attempts(0).worker(), run.worker());
    EXPECT_EQ(run.attempts(0).outcome(), "succeeded");
    auto profile = Profile::Parse(run.profile());
    ASSERT_TRUE(profile.ok()) << profile.status();
    auto result = RunJob(TinySpec(), *profile);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(run.summary().spec_digest(), result->spec_digest);
    EXPECT_EQ(run.summary().profile(), result->profile);
    EXPECT_EQ(run.summary().steps(), result->steps);
    // Each profile ran on one worker: its environment is named by the
    // profile alone, a worker's default by its preset name, as `driftscope
    // run` names them.
    const std::string env = run.profile() == "ref64"           ? "ref64"
                            : run.worker() == (*w1)->address() ? "fp32"
                                                               : "fp32-sse2";
    if (run.profile() == "ref64") reference_env = env;
    local.push_back(LocalRecord(env, run.repeat(), *result));
    local_by_run[run.run_id()] = *result;
  }
  AnalysisOptions options;
  options.reference = reference_env;
  auto expected = AnalyzeRuns(local, options);
  ASSERT_TRUE(expected.ok()) << expected.status();

  v1::GetReportRequest report_req;
  report_req.set_job_id(job.job_id());
  v1::DriftReport report;
  ASSERT_TRUE(stub->GetReport(Ctx().get(), report_req, &report).ok());
  EXPECT_EQ(report.reference_run_id(), job.runs(0).run_id());
  EXPECT_EQ(report.reference_reason(), "ref64");
  EXPECT_EQ(report.reference_environment(), expected->reference);
  EXPECT_EQ(report.pass(), expected->pass);
  ASSERT_EQ(report.pairs_size(), static_cast<int>(expected->pairs.size()));
  for (size_t i = 0; i < expected->pairs.size(); ++i) {
    const PairDrift& want = expected->pairs[i];
    const v1::PairReport& got = report.pairs(static_cast<int>(i));
    EXPECT_EQ(got.environment(), want.environment);
    EXPECT_EQ(got.profile(), want.profile);
    ExpectSameStats(got.outputs(), want.outputs.overall, want.environment);
    EXPECT_EQ(got.outputs().bitwise_identical(),
              want.outputs.bitwise_identical);
    ASSERT_EQ(got.per_timestep_size(),
              static_cast<int>(want.outputs.per_timestep.size()));
    for (size_t t = 0; t < want.outputs.per_timestep.size(); ++t) {
      ExpectSameStats(got.per_timestep(static_cast<int>(t)),
                      want.outputs.per_timestep[t], absl::StrCat("t=", t));
    }
    ASSERT_EQ(got.per_epoch_size(), static_cast<int>(want.epochs.size()));
    for (size_t k = 0; k < want.epochs.size(); ++k) {
      ExpectSameStats(got.per_epoch(static_cast<int>(k)),
                      want.epochs[k].overall, absl::StrCat("epoch ", k));
    }
    ASSERT_EQ(got.loss_diff_size(),
              static_cast<int>(want.loss.abs_diff.size()));
    for (size_t s = 0; s < want.loss.abs_diff.size(); ++s) {
      EXPECT_EQ(std::fabs(got.loss_diff(static_cast<int>(s))),
                want.loss.abs_diff[s]);
    }
    EXPECT_EQ(got.first_divergent_step(), want.first_divergent_step);
    EXPECT_EQ(got.attribution_detail(), want.attribution_detail);
    EXPECT_EQ(got.pass(), want.pass);
    EXPECT_EQ(got.has_noise_floor_rel_l2(),
              want.noise_floor_rel_l2.has_value());
  }
  // Every default-profile environment ran twice: its repeatability is there.
  EXPECT_EQ(report.repeatability_size(),
            static_cast<int>(expected->repeatability.size()));
  ASSERT_EQ(report.environments_size(),
            static_cast<int>(expected->environments.size()));
  const size_t n = expected->environments.size();
  ASSERT_EQ(report.rel_l2_matrix_size(), static_cast<int>(n * n));
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(report.environments(static_cast<int>(i)),
              expected->environments[i]);
    for (size_t j = 0; j < n; ++j) {
      EXPECT_EQ(report.rel_l2_matrix(static_cast<int>(i * n + j)),
                expected->rel_l2_matrix[i][j]);
      EXPECT_EQ(static_cast<uint64_t>(
                    report.max_ulp_matrix(static_cast<int>(i * n + j))),
                expected->max_ulp_matrix[i][j]);
    }
  }

  // A tolerance and a relative floor reach the analysis as given.
  v1::Tolerance* tol = report_req.mutable_tolerance();
  tol->set_atol(1e-4);
  tol->set_rtol(0);
  tol->set_max_ulp(1000000);
  tol->set_relative_floor(0.5);
  v1::DriftReport tolerant;
  ASSERT_TRUE(stub->GetReport(Ctx().get(), report_req, &tolerant).ok());
  options.atol = 1e-4;
  options.rtol = 0;
  options.max_ulp = 1000000;
  options.rel_floor = 0.5;
  auto expected_tolerant = AnalyzeRuns(local, options);
  ASSERT_TRUE(expected_tolerant.ok());
  EXPECT_EQ(tolerant.tolerance().relative_floor(), 0.5);
  EXPECT_EQ(tolerant.tolerance().max_ulp(), 1000000);
  ASSERT_EQ(tolerant.pairs_size(),
            static_cast<int>(expected_tolerant->pairs.size()));
  for (size_t i = 0; i < expected_tolerant->pairs.size(); ++i) {
    const PairDrift& want = expected_tolerant->pairs[i];
    ExpectSameStats(tolerant.pairs(static_cast<int>(i)).outputs(),
                    want.outputs.overall, "tolerant " + want.environment);
    EXPECT_EQ(want.outputs.rel_floor, 0.5);
  }

  // FetchResult streams a run's tensors exactly as the run produced them.
  const v1::RunInfo& run = job.runs(1);
  v1::FetchResultRequest fetch;
  fetch.set_job_id(job.job_id());
  fetch.set_run_id(run.run_id());
  fetch.add_names("outputs");
  fetch.add_names("losses");
  auto fctx = Ctx();
  auto chunks = stub->FetchResult(fctx.get(), fetch);
  TensorAssembler assembler;
  v1::TensorChunk chunk;
  while (chunks->Read(&chunk)) ASSERT_TRUE(assembler.Add(chunk).ok());
  ASSERT_TRUE(chunks->Finish().ok());
  auto tensors = assembler.Finish();
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  ASSERT_EQ(tensors->size(), 2u);
  const RunResult& mine = local_by_run[run.run_id()];
  for (const NamedArray& t : *tensors) {
    EXPECT_TRUE(t.array == (t.name == "outputs" ? mine.outputs : mine.losses))
        << t.name;
    for (const v1::TensorInfo& info : run.summary().tensors()) {
      if (info.name() != t.name) continue;
      EXPECT_EQ(info.sha256(), Sha256Hex(t.array.raw(), t.array.nbytes()));
    }
  }
}

}  // namespace
}  // namespace driftscope
