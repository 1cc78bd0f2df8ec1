// `driftscope run`, `compare` and `env` as a user runs them: the report's
// numbers, verdicts and exit codes, sweep attribution, saved runs, and clear
// errors for bad input.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/env/environment.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_util.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSmallSpec[] = R"({"seed": 7,
 "model": {"input": {"timesteps": 6, "features": 2},
           "layers": [{"lstm": {"units": 8, "return_sequences": true}},
                      {"dense": {"units": 2}}]},
 "optimizer": {"adam": {"learning_rate": 0.01}, "clipnorm": 1.0},
 "loss": "MSE",
 "data": {"synthetic": {"generator": "SINE", "samples": 64, "eval_samples": 16}},
 "training": {"epochs": 2, "batch_size": 16, "shuffle": true}})";

std::string SpecFile(const std::string& dir) {
  const std::string path = dir + "/spec.json";
  WriteFile(path, kSmallSpec);
  return path;
}

// The number after `"key":` at or after `from` in `json`.
double NumberAfter(const std::string& json, const std::string& key,
                   size_t from = 0) {
  const size_t k = json.find("\"" + key + "\":", from);
  EXPECT_NE(k, std::string::npos) << key;
  if (k == std::string::npos) return -1;
  return std::strtod(json.c_str() + k + key.size() + 3, nullptr);
}

TEST(RunCliTest, ReportsDriftWithVerdictAndAttribution) {
  const std::string dir = FreshDir();
  const std::string spec = SpecFile(dir);
  CliResult ok = RunCli({"run", spec, "--profiles", "ref64,fp32,bf16",
                         "--format", "json", "--atol", "0.1", "--rtol", "0.1"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("\"schema\":\"driftscope.drift_report/1\""));
  EXPECT_THAT(ok.out, HasSubstr("\"environment\":\"ref64\""));
  EXPECT_THAT(ok.out, HasSubstr("\"cause\":\"numerics\""));
  const size_t fp32 = ok.out.find("\"environment\":\"fp32\"");
  const size_t bf16 = ok.out.find("\"environment\":\"bf16\"");
  ASSERT_NE(fp32, std::string::npos);
  ASSERT_NE(bf16, std::string::npos);
  const double l2_fp32 = NumberAfter(ok.out, "rel_l2", fp32);
  const double l2_bf16 = NumberAfter(ok.out, "rel_l2", bf16);
  EXPECT_GT(l2_fp32, 0);
  EXPECT_GT(l2_bf16, 10 * l2_fp32);
  // The same runs against a tight threshold fail with exit code 1.
  CliResult tight = RunCli(
      {"run", spec, "--profiles", "ref64,fp32", "--fail-above", "1e-12"});
  EXPECT_EQ(tight.exit_code, 1) << tight.err;
  EXPECT_THAT(tight.out, HasSubstr("FAIL"));
}

TEST(RunCliTest, InProcessRunEqualsCompareOfTrainedDirectories) {
  const std::string dir = FreshDir();
  const std::string spec = SpecFile(dir);
  CliResult run = RunCli({"run", spec, "--profiles", "ref64,fp32", "--format",
                          "json", "--out", dir + "/runs"});
  ASSERT_NE(run.exit_code, 2) << run.err;
  for (const char* p : {"ref64", "fp32"}) {
    CliResult t =
        RunCli({"train", spec, "--profile", p, "--out", dir + "/" + p});
    ASSERT_EQ(t.exit_code, 0) << t.err;
    // `run --out` saved the same bits as `train`.
    EXPECT_EQ(ReadFile(dir + "/runs/" + p + "/r0/outputs.npy"),
              ReadFile(dir + "/" + p + "/outputs.npy"));
  }
  EXPECT_TRUE(Exists(dir + "/runs/report.json"));
  CliResult cmp =
      RunCli({"compare", dir + "/ref64", dir + "/fp32", "--format", "json"});
  ASSERT_NE(cmp.exit_code, 2) << cmp.err;
  const size_t a = run.out.find("\"environment\":\"fp32\"");
  const size_t b = cmp.out.find("\"environment\":\"fp32\"");
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  EXPECT_EQ(NumberAfter(run.out, "rel_l2", a),
            NumberAfter(cmp.out, "rel_l2", b));
  EXPECT_EQ(NumberAfter(run.out, "max_ulp", a),
            NumberAfter(cmp.out, "max_ulp", b));
  EXPECT_EQ(NumberAfter(run.out, "first_divergent_step", a),
            NumberAfter(cmp.out, "first_divergent_step", b));
}

TEST(RunCliTest, RepeatsGiveANoiseFloorAndNondetShowsIt) {
  const std::string dir = FreshDir();
  const std::string spec = SpecFile(dir);
  CliResult r = RunCli({"run", spec, "--profiles", "fp32,fp32-nondet",
                        "--repeats", "2", "--format", "json"});
  ASSERT_NE(r.exit_code, 2) << r.err;
  const size_t rep = r.out.find("\"repeatability\"");
  ASSERT_NE(rep, std::string::npos);
  const std::string section = r.out.substr(rep);
  EXPECT_THAT(section, HasSubstr("{\"environment\":\"fp32\",\"repeats\":2,"
                                 "\"bitwise_repeatable\":true"));
  EXPECT_THAT(section, HasSubstr("{\"environment\":\"fp32-nondet\",\"repeats\":"
                                 "2,\"bitwise_repeatable\":false"));
}

TEST(RunCliTest, SweepRanksTheKnobsBetweenTwoProfiles) {
  const std::string dir = FreshDir();
  const std::string spec = SpecFile(dir);
  CliResult r =
      RunCli({"run", spec, "--profiles", "ref64", "--sweep",
              "fp32,fp32,matmul=tf32,gemm=split-k=4", "--format", "json"});
  ASSERT_NE(r.exit_code, 2) << r.err;
  const size_t sweep = r.out.find("\"sweep\":");
  ASSERT_NE(sweep, std::string::npos) << r.out;
  const std::string s = r.out.substr(sweep);
  // Both knobs are listed; TF32 moves the outputs far more than a split-k
  // reordering, so it ranks first.
  const size_t tf32 = s.find("\"knob\":\"matmul=tf32\"");
  const size_t split = s.find("\"knob\":\"gemm=split-k=4\"");
  ASSERT_NE(tf32, std::string::npos);
  ASSERT_NE(split, std::string::npos);
  EXPECT_LT(tf32, split);
  EXPECT_GT(NumberAfter(s, "alone_rel_l2", tf32),
            NumberAfter(s, "alone_rel_l2", split));
}

TEST(RunCliTest, BadInputIsOneLineAndExitTwo) {
  const std::string dir = FreshDir();
  const std::string spec = SpecFile(dir);
  const std::vector<std::vector<std::string>> bad = {
      {"run", spec, "--profiles", "fp33"},
      {"run", spec, "--profiles", "fp32,isa=avx1024"},
      {"run", spec, "--repeats", "0"},
      {"run", spec, "--format", "xml"},
      {"run", spec, "--profiles", "ref64,fp32", "--reference", "tf32"},
      {"run", spec, "--sweep", "fp32"},
      {"run", spec, "--atol", "-1"},
      {"run", dir + "/missing.json"},
      {"compare", dir + "/a.npy"},
      {"compare", dir + "/nothere", dir + "/nothere2"},
      {"env", "--bogus"},
  };
  for (const auto& args : bad) {
    CliResult r = RunCli(args);
    EXPECT_EQ(r.exit_code, 2)
        << args[1] << " " << (args.size() > 2 ? args[2] : "");
    EXPECT_THAT(r.err, ::testing::StartsWith("driftscope: error: "));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  CliResult out_exists =
      RunCli({"run", spec, "--profiles", "nope", "--out", dir + "/never"});
  EXPECT_EQ(out_exists.exit_code, 2);
  EXPECT_FALSE(Exists(dir + "/never"));
}

TEST(RunCliTest, CompareNpyFilesAndEnv) {
  const std::string dir = FreshDir();
  const std::string spec = SpecFile(dir);
  ASSERT_EQ(RunCli({"train", spec, "--out", dir + "/a"}).exit_code, 0);
  CliResult same =
      RunCli({"compare", dir + "/a/outputs.npy", dir + "/a/outputs.npy"});
  EXPECT_EQ(same.exit_code, 0) << same.err;
  EXPECT_THAT(same.out, HasSubstr("bitwise identical  yes"));
  CliResult env = RunCli({"env", "--json"});
  ASSERT_EQ(env.exit_code, 0) << env.err;
  EXPECT_THAT(env.out, HasSubstr("\"profiles\":[\"ref64\""));
  EXPECT_THAT(env.out, HasSubstr("\"kernels_auto\":"));
  CliResult table = RunCli({"env"});
  EXPECT_THAT(table.out, HasSubstr("isa flags"));
  EXPECT_THAT(table.out, Not(HasSubstr("error")));
}

TEST(RunCliTest, EnvSaysWhyTheCudaPresetsCannotRunWithoutAGpu) {
  if (!ProbeEnvironment().cuda.devices.empty())
    GTEST_SKIP() << "this host has a GPU";
  CliResult table = RunCli({"env"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("gpus"));
  EXPECT_THAT(table.out, HasSubstr("not without a gpu"));
  EXPECT_THAT(table.out, HasSubstr("cuda-cudnn"));
  EXPECT_THAT(table.out, HasSubstr("no CUDA device"));
  CliResult json = RunCli({"env", "--json"});
  // Runnable here: the emulation, not the GPU presets; those are listed as
  // known but unavailable.
  const size_t runnable = json.out.find("\"profiles\":[");
  const size_t unavailable = json.out.find("\"profiles_unavailable\":[");
  ASSERT_NE(runnable, std::string::npos) << json.out;
  ASSERT_NE(unavailable, std::string::npos) << json.out;
  const std::string here =
      json.out.substr(runnable, json.out.find(']', runnable) - runnable);
  const std::string not_here = json.out.substr(
      unavailable, json.out.find(']', unavailable) - unavailable);
  EXPECT_THAT(here, Not(HasSubstr("\"cuda-cudnn\"")));
  EXPECT_THAT(here, HasSubstr("\"cuda-det-emu\""));
  EXPECT_THAT(not_here, HasSubstr("\"cuda-cudnn\""));
  EXPECT_THAT(not_here, Not(HasSubstr("\"cuda-det-emu\"")));
}

// `run` holds every run's result until the report: five profiles of a job
// that fits once may not fit five times. The issue's spec (1.6 TB of eval
// outputs) is refused before any run, with nothing written.
TEST(RunCliTest, JobsAboveTheMemoryLimitAreRefusedBeforeAnyRun) {
  const std::string dir = FreshDir();
  const std::string spec = dir + "/huge.json";
  std::ofstream(spec) << R"({
    "model": {"input": {"timesteps": 1000, "features": 1},
              "layers": [{"dense": {"units": 4096}}]},
    "data": {"synthetic": {"samples": 64, "eval_samples": 100000}},
    "training": {"epochs": 1, "batch_size": 32}
  })";
  CliResult r = RunCli({"run", spec, "--out", dir + "/never"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, ::testing::StartsWith("driftscope: error: "));
  EXPECT_THAT(r.err, HasSubstr("TiB of memory"));
  EXPECT_FALSE(Exists(dir + "/never"));
  // The small spec under a 1 MiB limit: refused the same way.
  r = RunCli({"run", SpecFile(dir), "--max-memory-mib", "1"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--max-memory-mib"));
}

// An --html the command cannot write used to be found only after every
// run had been computed (and the report printed). Now it is refused first.
TEST(RunCliTest, UnwritableHtmlIsRefusedBeforeAnyRun) {
  const std::string dir = FreshDir();
  const std::string spec = SpecFile(dir);
  ::mkdir((dir + "/a_directory").c_str(), 0755);
  for (const std::string& html :
       {dir + "/a_directory", std::string("/proc/driftscope-report.html"),
        dir + "/missing/report.html"}) {
    SCOPED_TRACE(html);
    CliResult r = RunCli({"run", spec, "--profiles", "ref64,fp32", "--html",
                          html, "--out", dir + "/never"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, HasSubstr("--html " + html));
    EXPECT_EQ(r.out, "");  // no report: nothing was run
    EXPECT_FALSE(Exists(dir + "/never"));
  }
  // Nothing of the probe is left behind.
  EXPECT_THAT(ListDir(dir, "a_directory"),
              ::testing::ElementsAre("a_directory"));
}

}  // namespace
}  // namespace driftscope
