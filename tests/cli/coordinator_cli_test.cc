// The job commands against a real driftscope-coordinator and workers on
// loopback: submit --wait and report give exactly the JSON report that
// `driftscope run` computes in-process for the same profiles; jobs, status,
// watch, workers, cancel and export do what their help says; bad input is
// one line and exit 2. Also runs scripts/demo.sh (`make demo`).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/lib/coordinator_client.h"
#include "engine/core/sha256.h"
#include "engine/io/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_util.h"
#include "tests/cli/cluster.h"

namespace driftscope {
namespace {

using ::driftscope::testing::Cluster;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSpec[] = R"({"seed": 3,
 "model": {"input": {"timesteps": 5, "features": 1},
           "layers": [{"gru": {"units": 6, "return_sequences": true}}]},
 "optimizer": {"rmsprop": {"learning_rate": 0.01}},
 "data": {"synthetic": {"generator": "RANDOM_WALK", "samples": 48, "eval_samples": 8}},
 "training": {"epochs": 2, "batch_size": 16}})";

// Long enough to be cancelled while it runs.
constexpr char kLongSpec[] = R"({"seed": 3,
 "model": {"input": {"timesteps": 20, "features": 1},
           "layers": [{"lstm": {"units": 64, "return_sequences": true}}]},
 "data": {"synthetic": {"generator": "SINE", "samples": 1024, "eval_samples": 8}},
 "training": {"epochs": 500, "batch_size": 32}})";

// The job id from "driftscope: submitted job ID (N runs)..." on stderr.
std::string SubmittedJob(const std::string& err) {
  const std::string tag = "submitted job ";
  const size_t at = err.find(tag);
  if (at == std::string::npos) return "";
  const size_t start = at + tag.size();
  return err.substr(start, err.find(' ', start) - start);
}

// The environments of a JSON report, in order.
std::string Environments(const std::string& json) {
  const std::string tag = "\"environments\":[";
  const size_t at = json.find(tag);
  if (at == std::string::npos) return "";
  std::string list =
      json.substr(at + tag.size(), json.find(']', at) - at - tag.size());
  list.erase(std::remove(list.begin(), list.end(), '"'), list.end());
  return list;
}

class CoordinatorCliTest : public ::testing::Test {
 protected:
  void StartCluster(
      const std::vector<std::string>& profiles,
      const std::vector<std::vector<std::string>>& worker_flags = {}) {
    dir_ = FreshDir();
    WriteFile(dir_ + "/spec.json", kSpec);
    WriteFile(dir_ + "/long.json", kLongSpec);
    absl::Status s = cluster_.Start(profiles, dir_ + "/store", worker_flags);
    ASSERT_TRUE(s.ok()) << s;
  }

  std::string dir_;
  Cluster cluster_;
};

TEST_F(CoordinatorCliTest, SubmitWaitReportsWhatRunComputesInProcess) {
  StartCluster({"fp32"});
  const std::vector<std::string> profiles = {
      "--profiles", "ref64,fp32,fp32-sse2", "--repeats", "2"};
  std::vector<std::string> submit = {"submit", dir_ + "/spec.json", "--wait",
                                     "--format", "json"};
  submit.insert(submit.end(), profiles.begin(), profiles.end());
  CliResult remote = cluster_.Cli(submit);
  ASSERT_NE(remote.exit_code, 2) << remote.err;
  std::vector<std::string> run = {"run", dir_ + "/spec.json", "--format",
                                  "json"};
  run.insert(run.end(), profiles.begin(), profiles.end());
  CliResult local = RunCli(run);
  ASSERT_NE(local.exit_code, 2) << local.err;
  EXPECT_EQ(remote.exit_code, local.exit_code);
  EXPECT_THAT(local.out, HasSubstr("\"environments\":[\"ref64\",\"fp32\","
                                   "\"fp32-sse2\"]"));
  // Every number, name and verdict: the same bytes.
  EXPECT_EQ(remote.out, local.out);

  const std::string job = SubmittedJob(remote.err);
  ASSERT_FALSE(job.empty()) << remote.err;
  CliResult report = cluster_.Cli({"report", job, "--format", "json"});
  EXPECT_EQ(report.exit_code, local.exit_code) << report.err;
  EXPECT_EQ(report.out, local.out);
  // The reference named by a run id: the run of fp32, repeat 0.
  CliResult by_run = cluster_.Cli(
      {"report", job, "--reference", job + "-r2", "--format", "json"});
  ASSERT_NE(by_run.exit_code, 2) << by_run.err;
  EXPECT_THAT(by_run.out, HasSubstr("\"reference\":{\"environment\":\"fp32\""));
  CliResult bad_ref = cluster_.Cli({"report", job, "--reference", "run-x"});
  EXPECT_EQ(bad_ref.exit_code, 2);
  EXPECT_THAT(bad_ref.err, HasSubstr("--reference 'run-x'"));
}

// A few seconds of training: time to kill a worker while it runs.
constexpr char kSlowSpec[] = R"({"seed": 5,
 "model": {"input": {"timesteps": 20, "features": 1},
           "layers": [{"gru": {"units": 48, "return_sequences": true}}]},
 "data": {"synthetic": {"generator": "SINE", "samples": 512, "eval_samples": 8}},
 "training": {"epochs": 30, "batch_size": 32}})";

// Submits `args` (no --wait), kills worker 0 once run 0 trains, waits for
// the job to succeed; the job as it ended. Run 0 must have moved.
v1::Job SubmitAndKillWorkerZero(Cluster& cluster,
                                const std::vector<std::string>& args) {
  CliResult submitted = cluster.Cli(args);
  EXPECT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job(absl::StripAsciiWhitespace(submitted.out));
  CoordinatorClientOptions o;
  o.channel.address = cluster.address();
  o.channel.insecure = true;
  auto client = CoordinatorClient::Create(o);
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return v1::Job();
  EXPECT_TRUE(testing::Eventually([&] {
    absl::StatusOr<v1::Job> j = (*client)->GetJob(job);
    return j.ok() && j->runs(0).state() == v1::RUN_RUNNING &&
           j->runs(0).step() > 0;
  }));
  cluster.KillWorker(0);
  CliResult watched = cluster.Cli({"watch", job});
  EXPECT_EQ(watched.exit_code, 0) << watched.err;
  absl::StatusOr<v1::Job> done = (*client)->GetJob(job);
  EXPECT_TRUE(done.ok()) << done.status();
  if (!done.ok()) return v1::Job();
  const v1::RunInfo& moved = done->runs(0);
  EXPECT_GE(moved.attempts_size(), 2) << done->DebugString();
  if (moved.attempts_size() >= 2) {
    EXPECT_EQ(moved.attempts(0).worker(), cluster.worker(0));
    EXPECT_EQ(moved.attempts().rbegin()->worker(), cluster.worker(1));
  }
  return *done;
}

// A report after a retry moved runs to another worker is the one `run`
// computes, byte for byte, fingerprint-derived fields included.
TEST_F(CoordinatorCliTest, RunsMovedByARetryReportWhatRunComputes) {
  StartCluster({"fp32", "fp32"});
  WriteFile(dir_ + "/slow.json", kSlowSpec);
  const v1::Job job = SubmitAndKillWorkerZero(
      cluster_, {"submit", dir_ + "/slow.json", "--workers", cluster_.worker(0),
                 "--profiles", "ref64,fp32"});
  ASSERT_FALSE(job.job_id().empty());
  CliResult report = cluster_.Cli({"report", job.job_id(), "--format", "json"});
  ASSERT_NE(report.exit_code, 2) << report.err;
  EXPECT_THAT(report.err, Not(HasSubstr("fingerprint")));
  CliResult local = RunCli({"run", dir_ + "/slow.json", "--profiles",
                            "ref64,fp32", "--format", "json"});
  ASSERT_NE(local.exit_code, 2) << local.err;
  // fp32 against ref64: the same initial weights, apart from the first
  // update on (located only with every step's fingerprint).
  EXPECT_THAT(local.out,
              ::testing::ContainsRegex("\"first_divergent_step\":1[,}]"));
  EXPECT_THAT(local.out, HasSubstr("\"cause\":\"numerics\""));
  EXPECT_EQ(report.out, local.out);
  EXPECT_EQ(report.exit_code, local.exit_code);
}

// Regression: report took the first divergent step and attribution from
// the coordinator's GetReport, matched by environment. A retry onto a
// worker running the same profile merged two of the client's environments
// into one of the coordinator's, and one pair came back unmatched: no
// divergent step, attribution "unknown".
TEST_F(CoordinatorCliTest, RetryOntoAWorkerOfTheSameProfileKeepsAttribution) {
  StartCluster({"fp32", "fp32"});
  WriteFile(dir_ + "/slow.json", kSlowSpec);
  // r0: ref64 on worker 0 (the reference), r1: fp32 on worker 0, r2: fp32
  // on worker 1; r0 and r1 end up on worker 1.
  const v1::Job job = SubmitAndKillWorkerZero(
      cluster_, {"submit", dir_ + "/slow.json", "--workers",
                 absl::StrCat(cluster_.worker(0), ",", cluster_.worker(1)),
                 "--reference"});
  ASSERT_EQ(job.runs_size(), 3);
  CliResult report = cluster_.Cli({"report", job.job_id(), "--format", "json"});
  ASSERT_NE(report.exit_code, 2) << report.err;
  const std::string w0 = cluster_.worker(0), w1 = cluster_.worker(1);
  EXPECT_EQ(Environments(report.out),
            absl::StrCat(w0, "/ref64,", w0, "/fp32,", w1, "/fp32"));
  // Both fp32 environments against ref64, each located at step 1.
  const std::vector<std::string> pairs =
      absl::StrSplit(report.out, "{\"environment\":");
  int located = 0;
  for (const std::string& p : pairs) {
    if (!absl::StartsWith(p, absl::StrCat("\"", w0, "/fp32\"")) &&
        !absl::StartsWith(p, absl::StrCat("\"", w1, "/fp32\""))) {
      continue;
    }
    if (p.find("\"repeat\":") == std::string::npos) continue;  // a pair
    EXPECT_THAT(p, ::testing::ContainsRegex("\"first_divergent_step\":1[,}]"));
    EXPECT_THAT(p, HasSubstr("\"cause\":\"numerics\""));
    ++located;
  }
  EXPECT_EQ(located, 2) << report.out;
  EXPECT_THAT(report.out, Not(HasSubstr("\"cause\":\"unknown\"")));
}

TEST_F(CoordinatorCliTest, SubmitWithInitWeightsRunsFromThoseWeights) {
  StartCluster({"fp32"});
  // Weights from a finished training run, imported as `train` imports them.
  CliResult trained =
      RunCli({"train", dir_ + "/spec.json", "--out", dir_ + "/trained"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const std::string weights = dir_ + "/trained/weights";
  CliResult local = RunCli({"train", dir_ + "/spec.json", "--init-weights",
                            weights, "--out", dir_ + "/local"});
  ASSERT_EQ(local.exit_code, 0) << local.err;

  CliResult remote =
      cluster_.Cli({"submit", dir_ + "/spec.json", "--profiles", "fp32",
                    "--init-weights", weights, "--wait"});
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  const std::string job = SubmittedJob(remote.err);
  ASSERT_FALSE(job.empty()) << remote.err;
  CliResult exported = cluster_.Cli({"export", job, "--out", dir_ + "/e"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  // The worker started from the imported weights: the outputs of the local
  // run from the same weights, bit for bit, unlike a run from seeded init.
  const std::string outputs = ReadFile(dir_ + "/local/outputs.npy");
  EXPECT_EQ(ReadFile(dir_ + "/e/" + job + "-r0/outputs.npy"), outputs);
  EXPECT_NE(ReadFile(dir_ + "/trained/outputs.npy"), outputs);

  // A weight of the wrong shape: refused here, naming the file and the
  // shape, and nothing is submitted.
  CliResult before = cluster_.Cli({"jobs"});
  const std::string bad = dir_ + "/bad";
  ASSERT_EQ(
      std::system(absl::StrCat("cp -r '", weights, "' '", bad, "'").c_str()),
      0);
  ASSERT_TRUE(WriteNpy(bad + "/layer0_recurrent_kernel.npy",
                       NdArray(DType::kFloat32, {18, 6}))
                  .ok());
  CliResult refused =
      cluster_.Cli({"submit", dir_ + "/spec.json", "--init-weights", bad});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.err, HasSubstr("--init-weights " + bad +
                                     "/layer0_recurrent_kernel.npy: shape "
                                     "(18, 6) does not match the Keras shape "
                                     "(6, 18)"));
  EXPECT_EQ(cluster_.Cli({"jobs"}).out, before.out);
}

TEST_F(CoordinatorCliTest, WorkersWithTheirOwnProfilesAreNamedByProfile) {
  StartCluster({"ref64", "fp32-sse2"});
  CliResult remote = cluster_.Cli({"submit", dir_ + "/spec.json", "--wait",
                                   "--repeats", "2", "--format", "json"});
  ASSERT_NE(remote.exit_code, 2) << remote.err;
  // The workers' order is the coordinator's; run the same order here.
  const std::string envs = Environments(remote.out);
  ASSERT_THAT(envs, ::testing::AnyOf("ref64,fp32-sse2", "fp32-sse2,ref64"));
  CliResult local = RunCli({"run", dir_ + "/spec.json", "--profiles", envs,
                            "--repeats", "2", "--format", "json"});
  EXPECT_EQ(remote.out, local.out);
}

TEST_F(CoordinatorCliTest, JobsStatusWatchAndWorkersShowTheJob) {
  StartCluster({"fp32", "ref64"});
  CliResult submit = cluster_.Cli(
      {"submit", dir_ + "/spec.json", "--description", "nightly 42"});
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  const std::string job(absl::StripTrailingAsciiWhitespace(submit.out));
  ASSERT_FALSE(job.empty());
  EXPECT_EQ(job.find('\n'), std::string::npos) << "stdout is the id only";

  CliResult watch = cluster_.Cli({"watch", job});
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  // Not a terminal: one line per change, ending with the job's state.
  EXPECT_THAT(watch.out, HasSubstr(job + "-r0 ("));
  EXPECT_THAT(watch.out, HasSubstr("): succeeded"));
  EXPECT_THAT(watch.out,
              HasSubstr(absl::StrCat("job ", job,
                                     ": succeeded, 2 of 2 runs finished - "
                                     "nightly 42\n")));

  CliResult jobs = cluster_.Cli({"jobs"});
  ASSERT_EQ(jobs.exit_code, 0) << jobs.err;
  EXPECT_THAT(jobs.out, HasSubstr("JOB"));
  EXPECT_THAT(jobs.out, HasSubstr(job + "  succeeded  2/2"));
  EXPECT_THAT(jobs.out, HasSubstr("nightly 42"));
  CliResult failed = cluster_.Cli({"jobs", "--state", "failed,cancelled"});
  EXPECT_EQ(failed.out, "no jobs\n");
  // Pages: newest first, the next page's command on stderr.
  CliResult second = cluster_.Cli({"submit", dir_ + "/spec.json"});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  const std::string job2(absl::StripTrailingAsciiWhitespace(second.out));
  CliResult page1 = cluster_.Cli({"jobs", "--limit", "1"});
  EXPECT_THAT(page1.out, HasSubstr(job2));
  EXPECT_THAT(page1.out, Not(HasSubstr(job + " ")));
  const std::string hint = "driftscope jobs --page-token ";
  const size_t at = page1.err.find(hint);
  ASSERT_NE(at, std::string::npos) << page1.err;
  const std::string token(
      absl::StripTrailingAsciiWhitespace(page1.err.substr(at + hint.size())));
  CliResult page2 =
      cluster_.Cli({"jobs", "--limit", "1", "--page-token", token});
  EXPECT_THAT(page2.out, HasSubstr(job + "  succeeded"));
  EXPECT_EQ(page2.err, "");

  CliResult status = cluster_.Cli({"status", job});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("state        succeeded (2/2 runs"));
  EXPECT_THAT(status.out, HasSubstr("description  nightly 42"));
  for (size_t w = 0; w < 2; ++w) {
    EXPECT_THAT(status.out, HasSubstr(cluster_.worker(w)));
  }
  EXPECT_THAT(status.out, HasSubstr("ATTEMPTS"));
  // 48 samples / batch 16 x 2 epochs = 6 steps, one attempt.
  EXPECT_THAT(status.out,
              ::testing::ContainsRegex("-r[01] +[0-9.:]+ +ref64 +0 +succeeded "
                                       "+6/6 +1\n"));
  // A finished job cannot be cancelled.
  CliResult cancel = cluster_.Cli({"cancel", job});
  EXPECT_EQ(cancel.exit_code, 2);
  EXPECT_THAT(cancel.err, HasSubstr("nothing to cancel"));

  CliResult workers = cluster_.Cli({"workers"});
  ASSERT_EQ(workers.exit_code, 0) << workers.err;
  EXPECT_THAT(workers.out,
              HasSubstr(cluster_.worker(0) + "  available  fp32 "));
  EXPECT_THAT(workers.out,
              HasSubstr(cluster_.worker(1) + "  available  ref64 "));
}

TEST_F(CoordinatorCliTest, AFailedRunFailsTheGateButTheRestIsReported) {
  // The second worker refuses the job (its own limit: 4 units; the spec has
  // 6): that run fails for good, the other succeeds.
  StartCluster({"fp32", "fp32-sse2"}, {{}, {"--max_units=4"}});
  CliResult r = cluster_.Cli({"submit", dir_ + "/spec.json", "--wait",
                              "--profiles", "fp32", "--format", "csv"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("not in the report: "));
  EXPECT_THAT(r.err,
              HasSubstr(cluster_.worker(1) + ", fp32, repeat 0): failed: "));
  EXPECT_THAT(r.err, HasSubstr("ended failed: 1 of 2 runs did not succeed"));
  // The report of what succeeded is still printed (CSV: header only, as a
  // single environment has no pair).
  EXPECT_THAT(r.out, HasSubstr("environment,profile,repeat,pass"));
  const std::string job = SubmittedJob(r.err);
  CliResult status = cluster_.Cli({"status", job});
  EXPECT_THAT(status.out, HasSubstr("state        failed"));
  EXPECT_THAT(status.out, HasSubstr("units"));  // the worker's reason
  CliResult watch = cluster_.Cli({"watch", job});
  EXPECT_EQ(watch.exit_code, 1);
  EXPECT_THAT(watch.err, HasSubstr("ended failed"));
}

TEST_F(CoordinatorCliTest, WatchCarriesOnThroughACoordinatorRestart) {
  StartCluster({"fp32"}, {{"--max_concurrent_runs=2"}});
  // A few seconds of training: LSTM(64), T=20, 1024 samples, 8 epochs.
  WriteFile(dir_ + "/seconds.json", R"({"seed": 3,
   "model": {"input": {"timesteps": 20, "features": 1},
             "layers": [{"lstm": {"units": 64, "return_sequences": true}}]},
   "data": {"synthetic": {"generator": "SINE", "samples": 1024, "eval_samples": 8}},
   "training": {"epochs": 8, "batch_size": 32}})");
  CliResult submit = cluster_.Cli({"submit", dir_ + "/seconds.json"});
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  const std::string job(absl::StripTrailingAsciiWhitespace(submit.out));
  // `watch` in the background while the coordinator is killed and started
  // again on the same address and store.
  std::string command =
      absl::StrCat("'", DRIFTSCOPE_BINARY_DIR, "/client/driftscope' watch ",
                   job, " --coordinator ", cluster_.address(), " --insecure >'",
                   dir_, "/watch.out' 2>&1; echo $? >'", dir_, "/watch.rc'");
  FILE* watch = ::popen(command.c_str(), "w");
  ASSERT_NE(watch, nullptr);
  ASSERT_TRUE(testing::Eventually(
      [&] {
        return ReadFile(dir_ + "/watch.out").find("running, step") !=
               std::string::npos;
      },
      std::chrono::seconds(60)));
  absl::Status restarted = cluster_.RestartCoordinator();
  ASSERT_TRUE(restarted.ok()) << restarted;
  ::pclose(watch);  // waits for the watch to end
  const std::string out = ReadFile(dir_ + "/watch.out");
  EXPECT_EQ(ReadFile(dir_ + "/watch.rc"), "0\n") << out;
  EXPECT_THAT(out, HasSubstr("job " + job + ": succeeded"));
  CliResult status = cluster_.Cli({"status", job});
  EXPECT_THAT(status.out, HasSubstr("interrupted"));  // the first attempt
}

TEST_F(CoordinatorCliTest, CancelStopsTheJobAndSaysSo) {
  StartCluster({"fp32"});
  CliResult submit = cluster_.Cli({"submit", dir_ + "/long.json"});
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  const std::string job(absl::StripTrailingAsciiWhitespace(submit.out));
  CliResult cancel = cluster_.Cli({"cancel", job});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_EQ(cancel.out, "job " + job + ": cancelled\n");
  CliResult watch = cluster_.Cli({"watch", job});
  EXPECT_EQ(watch.exit_code, 1);
  EXPECT_THAT(watch.err, HasSubstr("ended cancelled"));
  CliResult status = cluster_.Cli({"status", job});
  EXPECT_THAT(status.out, HasSubstr("state        cancelled"));
  // Cancelling again is harmless; a job without results has no report.
  CliResult again = cluster_.Cli({"cancel", job});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, cancel.out);
  CliResult report = cluster_.Cli({"report", job});
  EXPECT_EQ(report.exit_code, 2);
  EXPECT_THAT(report.err, HasSubstr("none of its runs succeeded"));
  CliResult jobs = cluster_.Cli({"jobs", "--state", "cancelled"});
  EXPECT_THAT(jobs.out, HasSubstr(job + "  cancelled"));
}

TEST_F(CoordinatorCliTest, ExportWritesNpyFilesWhoseDigestsMatchTheSummary) {
  StartCluster({"fp32", "fp32-sse2"});
  CliResult submit = cluster_.Cli(
      {"submit", dir_ + "/spec.json", "--wait", "--format", "csv"});
  ASSERT_NE(submit.exit_code, 2) << submit.err;
  const std::string job = SubmittedJob(submit.err);
  CliResult exported = cluster_.Cli({"export", job, "--out", dir_ + "/x"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_THAT(exported.out, HasSubstr("exported 2 of 2 runs"));
  EXPECT_TRUE(Exists(dir_ + "/x/report.json"));
  EXPECT_TRUE(Exists(dir_ + "/x/job.json"));

  CoordinatorClientOptions o;
  o.channel.address = cluster_.address();
  o.channel.insecure = true;
  auto client = CoordinatorClient::Create(o);
  ASSERT_TRUE(client.ok());
  absl::StatusOr<v1::Job> j = (*client)->GetJob(job);
  ASSERT_TRUE(j.ok()) << j.status();
  int checked = 0;
  for (const v1::RunInfo& run : j->runs()) {
    for (const v1::TensorInfo& t : run.summary().tensors()) {
      std::string file = t.name() + ".npy";
      if (absl::StartsWith(t.name(), "layer")) file = "weights/" + file;
      if (absl::StartsWith(t.name(), "epoch")) file = "epoch_outputs/" + file;
      absl::StatusOr<NdArray> a =
          ReadNpy(absl::StrCat(dir_, "/x/", run.run_id(), "/", file));
      ASSERT_TRUE(a.ok()) << a.status();
      EXPECT_EQ(Sha256Hex(a->raw(), a->nbytes()), t.sha256()) << file;
      ++checked;
    }
  }
  EXPECT_GE(checked, 2 * 4);  // outputs, losses, 2 epochs, weights
  // An export directory compares like a run directory.
  CliResult compare = RunCli({"compare", absl::StrCat(dir_, "/x/", job, "-r0"),
                              absl::StrCat(dir_, "/x/", job, "-r1")});
  EXPECT_NE(compare.exit_code, 2) << compare.err;
  // Exported again: replaced. Into a directory of other files: refused.
  EXPECT_EQ(cluster_.Cli({"export", job, "--out", dir_ + "/x"}).exit_code, 0);
  ::mkdir((dir_ + "/mine").c_str(), 0755);
  WriteFile(dir_ + "/mine/notes.txt", "keep me");
  CliResult refused = cluster_.Cli({"export", job, "--out", dir_ + "/mine"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_EQ(ReadFile(dir_ + "/mine/notes.txt"), "keep me");
  EXPECT_TRUE(ListDir(dir_, "mine.tmp").empty());
}

TEST_F(CoordinatorCliTest, BadInputIsOneLineAndExitTwo) {
  StartCluster({"fp32"});
  auto one_line = [](const CliResult& r) {
    return std::count(r.err.begin(), r.err.end(), '\n') == 1 &&
           absl::StartsWith(r.err, "driftscope: error: ");
  };
  CliResult down =
      RunCli({"jobs", "--coordinator", "127.0.0.1:1", "--insecure"});
  EXPECT_EQ(down.exit_code, 2);
  EXPECT_THAT(down.err, HasSubstr("coordinator 127.0.0.1:1"));
  EXPECT_TRUE(one_line(down)) << down.err;
  CliResult none = RunCli({"workers", "--insecure"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("--coordinator"));
  CliResult unknown = cluster_.Cli({"status", "job-nope"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("job-nope"));
  EXPECT_TRUE(one_line(unknown)) << unknown.err;
  EXPECT_EQ(cluster_.Cli({"watch", "job-nope"}).exit_code, 2);
  EXPECT_EQ(cluster_.Cli({"report", "job-nope"}).exit_code, 2);
  // Rejected before anything is sent: no job is made.
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"submit", "--profiles", "fp33"},
           {"submit", "--repeats", "0"},
           {"submit", "--format", "json"},
           {"submit", "--labels", "gpu"},
           {"submit", dir_ + "/missing.json"}}) {
    CliResult r = cluster_.Cli(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ");
    EXPECT_TRUE(one_line(r)) << r.err;
  }
  // Rejected by the coordinator: still exit 2, still no job.
  CliResult no_worker = cluster_.Cli({"submit", "--workers", "nobody"});
  EXPECT_EQ(no_worker.exit_code, 2);
  EXPECT_THAT(no_worker.err, HasSubstr("nobody"));
  EXPECT_EQ(cluster_.Cli({"jobs"}).out, "no jobs\n");
}

TEST(CoordinatorFlagsTest, TokenAndAddressFromFlagsOrEnvironment) {
  const std::string dir = FreshDir();
  auto c = testing::CoordinatorProcess::Start(
      {"--insecure", "--store_dir=" + dir + "/store", "--auth_token=s3cret"});
  ASSERT_TRUE(c.ok()) << c.status();
  const std::string address = (*c)->address();
  CliResult anonymous =
      RunCli({"jobs", "--coordinator", address, "--insecure"});
  EXPECT_EQ(anonymous.exit_code, 2);
  EXPECT_THAT(anonymous.err, HasSubstr("coordinator " + address));
  CliResult wrong = RunCli(
      {"jobs", "--coordinator", address, "--insecure", "--token", "guess"});
  EXPECT_EQ(wrong.exit_code, 2);
  CliResult right = RunCli(
      {"jobs", "--coordinator", address, "--insecure", "--token", "s3cret"});
  EXPECT_EQ(right.exit_code, 0) << right.err;
  EXPECT_EQ(right.out, "no jobs\n");
  ::setenv("DRIFTSCOPE_COORDINATOR", address.c_str(), 1);
  ::setenv("DRIFTSCOPE_TOKEN", "s3cret", 1);
  CliResult from_env = RunCli({"workers", "--insecure"});
  ::unsetenv("DRIFTSCOPE_COORDINATOR");
  ::unsetenv("DRIFTSCOPE_TOKEN");
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;
  EXPECT_THAT(from_env.out, HasSubstr("no workers"));
  // TLS is the default: a plaintext coordinator does not answer it.
  CliResult tls =
      RunCli({"jobs", "--coordinator", address, "--token", "s3cret"});
  EXPECT_EQ(tls.exit_code, 2);
}

TEST(CoordinatorFlagsTest, HelpListsTheJobCommands) {
  CliResult help = RunCli({"help"});
  ASSERT_EQ(help.exit_code, 0);
  for (const char* c : {"submit", "jobs", "status", "watch", "cancel",
                        "workers", "report", "export"}) {
    EXPECT_THAT(help.out, HasSubstr(absl::StrCat("\n  ", c, " ")));
    CliResult usage = RunCli({c, "--help"});
    EXPECT_EQ(usage.exit_code, 0) << c;
    EXPECT_THAT(usage.out, HasSubstr(absl::StrCat("Usage: driftscope ", c)));
    EXPECT_THAT(usage.out, HasSubstr("--coordinator HOST:PORT"));
  }
}

TEST(DemoTest, MakeDemoRunsTheClusterAndMatchesTheInProcessReport) {
  const std::string dir = FreshDir();
  const std::string command = absl::StrCat(
      "cd '", DRIFTSCOPE_SOURCE_DIR, "' && DEMO_REPEATS=1 DEMO_OUT='", dir,
      "/demo' scripts/demo.sh '", DRIFTSCOPE_BINARY_DIR, "' 2>&1");
  FILE* p = ::popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int status = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_THAT(out, HasSubstr("byte for byte the coordinator's"));
  EXPECT_TRUE(Exists(dir + "/demo/report.html"));
  EXPECT_TRUE(Exists(dir + "/demo/report.json"));
  EXPECT_THAT(out, Not(HasSubstr("error")));
}

}  // namespace
}  // namespace driftscope
