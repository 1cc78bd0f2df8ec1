// The pure parts of the job commands: environment labels of a job's runs
// (what the report names its rows), state names, profile lists, and the
// live view `watch` draws.
#include <string>
#include <vector>

#include "client/cli/cli_util.h"
#include "client/cli/job_progress.h"
#include "client/cli/job_records.h"
#include "engine/core/ndarray.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "engine/train/run_result.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/run_records.h"

namespace driftscope::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::RunInfo MakeRun(const std::string& id, const std::string& worker,
                    const std::string& profile, int repeat,
                    v1::RunState state = v1::RUN_QUEUED) {
  v1::RunInfo r;
  r.set_run_id(id);
  r.set_worker(worker);
  r.set_profile(profile);
  r.set_repeat(repeat);
  r.set_state(state);
  return r;
}

TEST(JobLabelsTest, ProfilesNameTheEnvironmentsWhenTheyTellThemApart) {
  v1::Job job;
  *job.add_runs() = MakeRun("r1", "w1", "ref64", 0);
  *job.add_runs() = MakeRun("r2", "w1", "ref64", 1);
  *job.add_runs() = MakeRun("r3", "w2", "fp32", 0);
  // The requested profile may be a canonical knob string.
  *job.add_runs() = MakeRun("r4", "w3", "fp32,isa=x86-64,threads=1", 0);
  EXPECT_THAT(RunLabels(job),
              ElementsAre("ref64", "ref64", "fp32", "fp32-sse2"));
}

TEST(JobLabelsTest, WorkerNamesWhenTwoWorkersRunOneProfile) {
  v1::Job job;
  *job.add_runs() = MakeRun("r1", "w1", "fp32", 0);
  *job.add_runs() = MakeRun("r2", "w2", "fp32", 0);
  *job.add_runs() = MakeRun("r3", "w2", "tf32", 0);
  EXPECT_THAT(RunLabels(job), ElementsAre("w1/fp32", "w2/fp32", "w2/tf32"));
}

// Placed on w1, failed there, retried and succeeded on w3: the report must
// name w3, where the result came from.
TEST(JobLabelsTest, ARetriedRunIsNamedAfterTheWorkerThatRanIt) {
  v1::Job job;
  v1::RunInfo moved = MakeRun("r1", "w1", "fp32", 0, v1::RUN_SUCCEEDED);
  v1::RunAttempt* first = moved.add_attempts();
  first->set_attempt(1);
  first->set_worker("w1");
  first->set_outcome("failed");
  v1::RunAttempt* second = moved.add_attempts();
  second->set_attempt(2);
  second->set_worker("w3");
  second->set_outcome("succeeded");
  *job.add_runs() = moved;
  *job.add_runs() = MakeRun("r2", "w2", "fp32", 0, v1::RUN_SUCCEEDED);
  EXPECT_EQ(WorkerThatRan(job.runs(0)), "w3");
  EXPECT_THAT(RunLabels(job), ElementsAre("w3/fp32", "w2/fp32"));
  EXPECT_THAT(DescribeRun(job.runs(0)), HasSubstr("(w3, fp32"));

  v1::RunInfo with_result = moved;
  v1::TensorInfo* outputs = with_result.mutable_summary()->add_tensors();
  outputs->set_name("outputs");
  std::vector<NamedArray> tensors;
  tensors.push_back({"outputs", NdArray(DType::kFloat32, {2})});
  absl::StatusOr<RunRecord> rec =
      RecordFromRun(with_result, "w3/fp32", std::move(tensors), {});
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->environment.at("worker"), "w3");
}

// Placed on w1 and w2, both ran on w2 (w1 died): named by worker that ran,
// the two would merge, so the job keeps its placement names.
TEST(JobLabelsTest, RunsThatWouldMergeKeepTheirPlacementNames) {
  v1::Job job;
  v1::RunInfo moved = MakeRun("r1", "w1", "fp32", 0, v1::RUN_SUCCEEDED);
  v1::RunAttempt* a = moved.add_attempts();
  a->set_worker("w2");
  a->set_outcome("succeeded");
  *job.add_runs() = moved;
  *job.add_runs() = MakeRun("r2", "w2", "fp32", 0, v1::RUN_SUCCEEDED);
  EXPECT_THAT(RunLabels(job), ElementsAre("w1/fp32", "w2/fp32"));
  // Where each really ran is still what DescribeRun says.
  EXPECT_THAT(DescribeRun(job.runs(0)), HasSubstr("(w2, fp32"));
}

TEST(JobLabelsTest, AnUnfinishedRunIsNamedAfterItsPlacement) {
  v1::RunInfo r = MakeRun("r1", "w1", "fp32", 0, v1::RUN_RUNNING);
  v1::RunAttempt* a = r.add_attempts();
  a->set_worker("w2");  // in flight elsewhere: no result yet
  EXPECT_EQ(WorkerThatRan(r), "w1");
}

TEST(JobLabelsTest, AnUnrequestedProfileIsWhatRan) {
  v1::RunInfo r = MakeRun("r1", "w1", "", 0, v1::RUN_SUCCEEDED);
  EXPECT_EQ(ProfileLabel(r), "default");
  r.mutable_summary()->set_profile("fp32,matmul=tf32,threads=1");
  EXPECT_EQ(ProfileLabel(r), "tf32");
  // As a worker reports its default: isa=auto resolved on this machine.
  r.mutable_summary()->set_profile(
      Context(*Profile::Parse("ref64")).profile().ToString());
  EXPECT_EQ(ProfileLabel(r), "ref64");
  r.mutable_summary()->set_profile(
      Context(*Profile::Parse("fp32")).profile().ToString());
  EXPECT_EQ(ProfileLabel(r), "fp32");
  r.mutable_summary()->set_profile("fp32,gemm=pairwise,threads=1");
  EXPECT_EQ(ProfileLabel(r), "fp32,gemm=pairwise,threads=1");
}

TEST(JobStatesTest, NamesRoundTripAndUnknownOnesAreRejected) {
  for (v1::JobState s : {v1::JOB_QUEUED, v1::JOB_RUNNING, v1::JOB_SUCCEEDED,
                         v1::JOB_FAILED, v1::JOB_CANCELLED}) {
    absl::StatusOr<v1::JobState> parsed = ParseJobState(JobStateName(s));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_EQ(*ParseJobState("FAILED"), v1::JOB_FAILED);
  absl::StatusOr<v1::JobState> bad = ParseJobState("done");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("succeeded"));
}

TEST(ProfileListTest, KnobStringsKeepTheirCommas) {
  absl::StatusOr<std::vector<std::string>> p =
      SplitProfileList("ref64,fp32,threads=2,gemm=pairwise,tf32", "--profiles");
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(*p, ElementsAre("ref64", "fp32,threads=2,gemm=pairwise", "tf32"));
  EXPECT_EQ(SplitProfileList(",,", "--profiles").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(JobProgressTest, LogLinesForChangesOnlyAndAFrameWithABarPerRun) {
  JobProgress view;
  v1::JobEvent snapshot;
  v1::Job* job = snapshot.mutable_snapshot();
  job->set_job_id("job-7");
  job->set_state(v1::JOB_RUNNING);
  *job->add_runs() = MakeRun("run-a", "w1", "ref64", 0, v1::RUN_RUNNING);
  *job->add_runs() = MakeRun("run-b", "w2", "fp32", 0, v1::RUN_QUEUED);
  std::vector<std::string> lines = view.Apply(snapshot);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "job job-7: running, 0 of 2 runs finished");

  v1::JobEvent progress;
  *progress.mutable_run_update() =
      MakeRun("run-a", "w1", "ref64", 0, v1::RUN_RUNNING);
  progress.mutable_run_update()->set_step(48);
  progress.mutable_run_update()->set_total_steps(96);
  lines = view.Apply(progress);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "  run-a (w1, ref64, repeat 0): running, step 48/96");
  EXPECT_TRUE(view.Apply(progress).empty());  // nothing moved
  progress.mutable_run_update()->set_step(50);
  EXPECT_TRUE(view.Apply(progress).empty());  // still in the same quarter

  std::vector<std::string> frame = view.Frame(10);
  ASSERT_EQ(frame.size(), 3u);
  EXPECT_THAT(frame[1], HasSubstr("[#####.....]  52%  50/96  running"));
  EXPECT_THAT(frame[2], HasSubstr("[..........]"));

  v1::JobEvent failed;
  *failed.mutable_run_update() =
      MakeRun("run-b", "w2", "fp32", 0, v1::RUN_FAILED);
  failed.mutable_run_update()->mutable_failure()->set_message("worker w2 gone");
  lines = view.Apply(failed);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("failed: worker w2 gone"));

  v1::JobEvent end;
  end.set_job_state(v1::JOB_FAILED);
  lines = view.Apply(end);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "job job-7: failed, 1 of 2 runs finished (1 failed)");
}

}  // namespace
}  // namespace driftscope::cli
