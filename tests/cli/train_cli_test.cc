// Runs the real `driftscope` binary: what a user sees on success (every file,
// right shapes, identical bits on a rerun) and on bad input (one line naming
// the field, exit code 2, OUT untouched).
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

// Small enough to train in well under a second: 64 samples, 1 epoch.
constexpr char kSmallSpec[] = R"({
  "seed": 7,
  "model": {"input": {"timesteps": 5, "features": 1},
            "layers": [{"lstm": {"units": 8, "return_sequences": true}},
                       {"lstm": {"units": 4, "return_sequences": true,
                                 "return_state": true}}]},
  "optimizer": {"adam": {"learning_rate": 0.01}, "clipnorm": 1.0},
  "data": {"synthetic": {"generator": "SINE", "samples": 64,
                         "eval_samples": 16}},
  "training": {"epochs": 1, "batch_size": 32, "capture_epoch_outputs": true}
})";

std::vector<int64_t> NpyShape(const std::string& path) {
  absl::StatusOr<NdArray> a = ReadNpy(path);
  EXPECT_TRUE(a.ok()) << a.status();
  if (!a.ok()) return {};
  for (int64_t i = 0; i < a->size(); ++i) {
    EXPECT_TRUE(std::isfinite(a->at(i))) << path << "[" << i << "]";
  }
  return a->shape();
}

using Shape = std::vector<int64_t>;

TEST(TrainCliTest, WritesEveryFileWithKerasShapes) {
  const std::string dir = FreshDir();
  WriteFile(dir + "/spec.json", kSmallSpec);
  const std::string out = dir + "/out";
  CliResult r = RunCli({"train", dir + "/spec.json", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(r.out, HasSubstr("trained 2 steps"));
  EXPECT_THAT(r.out, HasSubstr("(16, 5, 4)"));

  EXPECT_EQ(NpyShape(out + "/outputs.npy"), (Shape{16, 5, 4}));
  EXPECT_EQ(NpyShape(out + "/losses.npy"), (Shape{2}));  // ceil(64/32) steps
  EXPECT_EQ(NpyShape(out + "/weights/layer0_kernel.npy"), (Shape{1, 32}));
  EXPECT_EQ(NpyShape(out + "/weights/layer0_recurrent_kernel.npy"),
            (Shape{8, 32}));
  EXPECT_EQ(NpyShape(out + "/weights/layer0_bias.npy"), (Shape{32}));
  EXPECT_EQ(NpyShape(out + "/weights/layer1_kernel.npy"), (Shape{8, 16}));
  EXPECT_EQ(NpyShape(out + "/weights/layer1_recurrent_kernel.npy"),
            (Shape{4, 16}));
  EXPECT_EQ(NpyShape(out + "/weights/layer1_bias.npy"), (Shape{16}));
  EXPECT_EQ(NpyShape(out + "/epoch_outputs/epoch0.npy"), (Shape{16, 5, 4}));
  EXPECT_FALSE(Exists(out + "/epoch_outputs/epoch1.npy"));
  EXPECT_EQ(NpyShape(out + "/states_h.npy"), (Shape{16, 4}));
  EXPECT_EQ(NpyShape(out + "/states_c.npy"), (Shape{16, 4}));
  // With return_sequences the last output step is the final h.
  absl::StatusOr<NdArray> outputs = ReadNpy(out + "/outputs.npy");
  absl::StatusOr<NdArray> h = ReadNpy(out + "/states_h.npy");
  ASSERT_TRUE(outputs.ok() && h.ok());
  for (int n = 0; n < 16; ++n) {
    for (int u = 0; u < 4; ++u) {
      EXPECT_EQ(outputs->at((n * 5 + 4) * 4 + u), h->at(n * 4 + u));
    }
  }

  const std::string fingerprints = ReadFile(out + "/fingerprints.json");
  EXPECT_THAT(fingerprints, HasSubstr("{\"step\":0,\"sha256\":\""));
  EXPECT_THAT(fingerprints, HasSubstr("{\"step\":2,"));
  EXPECT_THAT(fingerprints, ::testing::Not(HasSubstr("{\"step\":3,")));

  absl::StatusOr<JobSpec> spec = LoadSpecJson(dir + "/spec.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  const std::string run = ReadFile(out + "/run.json");
  EXPECT_THAT(run, HasSubstr("\"spec_digest\":\"" + SpecDigest(*spec) + "\""));
  EXPECT_THAT(run, HasSubstr("\"profile\":\"fp32"));
  EXPECT_THAT(run, HasSubstr("\"environment\":{\"hostname\":"));
  EXPECT_THAT(run, HasSubstr("\"steps\":2"));
  // No staging directory is left next to OUT.
  EXPECT_THAT(ListDir(dir, "out"), ::testing::ElementsAre("out"));
}

// What a user of seed_mode KERAS sees: the initial weights `train` writes
// for a spec mirroring a Keras script are Keras' get_weights() after
// keras.utils.set_random_seed(7) (tests/golden/seeding/gru_dense_s7, written
// by real Keras 3.15.1); no epoch, so the final weights are the initial ones.
TEST(TrainCliTest, KerasSeedModeWritesTheWeightsKerasBuilds) {
  const std::string dir = FreshDir();
  WriteFile(dir + "/spec.json", R"({
    "seed": 7, "seed_mode": "KERAS",
    "model": {"input": {"timesteps": 12, "features": 3},
              "layers": [{"gru": {"units": 16}}, {"dense": {"units": 3}}]},
    "data": {"synthetic": {"samples": 4, "eval_samples": 2}},
    "training": {"epochs": 0}
  })");
  const std::string out = dir + "/out";
  CliResult r = RunCli({"train", dir + "/spec.json", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string golden = absl::StrCat(
      DRIFTSCOPE_SOURCE_DIR, "/tests/golden/seeding/gru_dense_s7/w");
  // get_weights() order: GRU kernel, recurrent kernel, bias; Dense kernel,
  // bias. The orthogonal recurrent kernel is checked (to float32 rounding)
  // by the engine's seeding test; the others must be Keras' bits.
  const std::pair<int, const char*> bitwise[] = {{0, "layer0_kernel"},
                                                 {2, "layer0_bias"},
                                                 {3, "layer1_kernel"},
                                                 {4, "layer1_bias"}};
  for (const auto& [j, name] : bitwise) {
    absl::StatusOr<NdArray> want = ReadNpy(absl::StrCat(golden, j, ".npy"));
    absl::StatusOr<NdArray> got =
        ReadNpy(absl::StrCat(out, "/weights/", name, ".npy"));
    ASSERT_TRUE(want.ok() && got.ok()) << name;
    EXPECT_EQ(*got, *want) << name;
  }
}

// run.json says what computed the run: nothing for the CPU engine, the
// backend and its math for a device profile (cuda-det-emu: the emulated
// deterministic GPU path, which has no GPU, driver or library versions).
TEST(TrainCliTest, RunJsonSaysWhichDeviceRan) {
  const std::string dir = FreshDir();
  WriteFile(dir + "/spec.json", kSmallSpec);
  ASSERT_EQ(
      RunCli({"train", dir + "/spec.json", "--out", dir + "/cpu"}).exit_code,
      0);
  CliResult r = RunCli({"train", dir + "/spec.json", "--profile",
                        "cuda-det-emu", "--out", dir + "/emu"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string cpu = ReadFile(dir + "/cpu/run.json");
  const std::string emu = ReadFile(dir + "/emu/run.json");
  EXPECT_THAT(cpu, HasSubstr("\"device\":null"));
  EXPECT_THAT(emu, HasSubstr("\"profile\":\"fp32,device=cuda-emu\""));
  EXPECT_THAT(emu, HasSubstr("\"device\":{\"backend\":\"cuda-emu\","
                             "\"gpu_name\":\"none (host emulation)\","
                             "\"compute_capability\":null,"));
  EXPECT_THAT(emu, HasSubstr("\"cudnn_version\":0,"
                             "\"math_mode\":\"ordered-fma\"}"));
  // Same initial weights as the CPU run (made on the host).
  const std::string init = "\"initial_fingerprint\":";
  const size_t a = cpu.find(init), b = emu.find(init);
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  EXPECT_EQ(cpu.substr(a, init.size() + 66), emu.substr(b, init.size() + 66));
}

TEST(TrainCliTest, SameRunTwiceGivesIdenticalFiles) {
  const std::string dir = FreshDir();
  WriteFile(dir + "/spec.json", kSmallSpec);
  ASSERT_EQ(
      RunCli({"train", dir + "/spec.json", "--out", dir + "/a"}).exit_code, 0);
  ASSERT_EQ(
      RunCli({"train", dir + "/spec.json", "--out=" + dir + "/b"}).exit_code,
      0);
  for (const char* f :
       {"outputs.npy", "losses.npy", "fingerprints.json", "states_h.npy",
        "states_c.npy", "epoch_outputs/epoch0.npy", "weights/layer0_kernel.npy",
        "weights/layer1_recurrent_kernel.npy", "weights/layer1_bias.npy"}) {
    const std::string a = ReadFile(dir + "/a/" + f);
    EXPECT_FALSE(a.empty()) << f;
    EXPECT_TRUE(a == ReadFile(dir + "/b/" + f)) << f << " differs";
  }
}

// Every layer kind's weight files are the ones --init-weights reads back:
// restarting from a run's final weights with 0 epochs gives its outputs.
TEST(TrainCliTest, InitWeightsRoundTripForEveryLayerKind) {
  const std::string dir = FreshDir();
  const std::string model =
      R"("model": {"input": {"timesteps": 4, "features": 3},
          "layers": [{"gru": {"units": 5, "return_sequences": true}},
                     {"gru": {"units": 2, "return_sequences": true, "reset_after": false}},
                     {"simple_rnn": {"units": 3, "return_sequences": true}},
                     {"lstm": {"units": 2, "return_sequences": true, "use_bias": false}},
                     {"dense": {"units": 2}}]},
         "data": {"synthetic": {"generator": "RANDOM_WALK", "samples": 16, "eval_samples": 4}})";
  WriteFile(dir + "/train.json",
            "{" + model + R"(, "training": {"epochs": 1}})");
  WriteFile(dir + "/eval.json",
            "{" + model + R"(, "training": {"epochs": 0}})");
  CliResult first =
      RunCli({"train", dir + "/train.json", "--out", dir + "/first"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(NpyShape(dir + "/first/weights/layer0_bias.npy"), (Shape{2, 15}));
  EXPECT_EQ(NpyShape(dir + "/first/weights/layer1_bias.npy"), (Shape{6}));
  EXPECT_FALSE(Exists(dir + "/first/weights/layer3_bias.npy"));
  CliResult again = RunCli({"train", dir + "/eval.json", "--init-weights",
                            dir + "/first/weights", "--out", dir + "/again"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const std::string a = ReadFile(dir + "/first/outputs.npy");
  EXPECT_FALSE(a.empty());
  EXPECT_TRUE(a == ReadFile(dir + "/again/outputs.npy"));
  EXPECT_EQ(NpyShape(dir + "/again/losses.npy"), (Shape{0}));
}

struct LayerCase {
  const char* name;
  const char* spec;
  Shape outputs;
};

class TrainCliLayersTest : public ::testing::TestWithParam<LayerCase> {};

TEST_P(TrainCliLayersTest, RunsFromJson) {
  const std::string dir = FreshDir();
  WriteFile(dir + "/spec.json", GetParam().spec);
  CliResult r = RunCli({"train", dir + "/spec.json", "--out", dir + "/out"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(NpyShape(dir + "/out/outputs.npy"), GetParam().outputs);
  EXPECT_EQ(NpyShape(dir + "/out/losses.npy"), (Shape{2}));
}

INSTANTIATE_TEST_SUITE_P(
    LayersAndOptimizers, TrainCliLayersTest,
    ::testing::Values(
        LayerCase{"GruSimpleRnnDenseSgd",
                  R"({"model": {"input": {"timesteps": 6, "features": 2},
                      "layers": [{"gru": {"units": 5, "return_sequences": true}},
                                 {"simple_rnn": {"units": 3}},
                                 {"dense": {"units": 2, "activation": "tanh"}}]},
                      "optimizer": {"sgd": {"learning_rate": 0.05, "momentum": 0.9}},
                      "data": {"synthetic": {"generator": "RANDOM_WALK", "samples": 40, "eval_samples": 8}},
                      "training": {"batch_size": 32}})",
                  Shape{8, 2}},
        LayerCase{"GruResetBeforeRmsprop",
                  R"({"model": {"input": {"timesteps": 6, "features": 1},
                      "layers": [{"gru": {"units": 4, "return_sequences": true, "reset_after": false}},
                                 {"dense": {"units": 1}}]},
                      "optimizer": {"rmsprop": {"learning_rate": 0.001}, "clipvalue": 0.5},
                      "loss": "MAE",
                      "data": {"synthetic": {"generator": "DELAYED_COPY", "samples": 64, "eval_samples": 8, "delay": 2}},
                      "training": {"batch_size": 32, "shuffle": false}})",
                  Shape{8, 6, 1}}),
    [](const ::testing::TestParamInfo<LayerCase>& info) {
      return std::string(info.param.name);
    });

// --- bad input: exit 2, one line naming the field, OUT untouched ----------

void ExpectUsageError(const CliResult& r, const std::string& names) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, StartsWith("driftscope: error: "));
  EXPECT_THAT(r.err, HasSubstr(names));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.out, "");
}

std::string NpyInt32(const std::vector<int64_t>& shape) {
  std::string dims;
  int64_t n = 1;
  for (int64_t d : shape) {
    absl::StrAppend(&dims, d, ", ");
    n *= d;
  }
  std::string header =
      "{'descr': '<i4', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string file("\x93NUMPY\x01\x00", 8);
  file += static_cast<char>(header.size() & 0xff);
  file += static_cast<char>(header.size() >> 8);
  return file + header + std::string(n * 4, '\0');
}

class TrainCliErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir();
    WriteFile(dir_ + "/spec.json", kSmallSpec);
    // (N, T=5, F=1) inputs and the model's (N, 5, 4) targets.
    std::vector<float> x(3 * 5 * 1, 0.5f), y(3 * 5 * 4, 0.25f);
    ASSERT_TRUE(
        WriteNpy(dir_ + "/x.npy", NdArray::From<float>({3, 5, 1}, x)).ok());
    ASSERT_TRUE(
        WriteNpy(dir_ + "/y.npy", NdArray::From<float>({3, 5, 4}, y)).ok());
    ASSERT_TRUE(
        WriteNpy(dir_ + "/x_t4.npy",
                 NdArray::From<float>({3, 4, 1}, std::vector<float>(12, 0.f)))
            .ok());
    WriteFile(dir_ + "/x_int.npy", NpyInt32({3, 5, 1}));
    out_ = dir_ + "/out";
  }
  // A spec file whose JSON is `json`.
  std::string Spec(const std::string& json) {
    const std::string path = absl::StrCat(dir_, "/bad", n_++, ".json");
    WriteFile(path, json);
    return path;
  }
  void ExpectOutAbsent() {
    // Neither OUT nor a staging directory next to it.
    EXPECT_THAT(ListDir(dir_, "out"), ::testing::IsEmpty());
  }
  std::string dir_, out_;
  int n_ = 0;
};

TEST_F(TrainCliErrorTest, UnknownFlag) {
  ExpectUsageError(RunCli({"train", "--bogus", "1", "--out", out_}),
                   "unknown flag '--bogus'");
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, MissingOut) {
  ExpectUsageError(RunCli({"train", dir_ + "/spec.json"}), "--out");
}

TEST_F(TrainCliErrorTest, MissingSpecFile) {
  ExpectUsageError(RunCli({"train", dir_ + "/nope.json", "--out", out_}),
                   dir_ + "/nope.json: no such file");
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, UnknownJsonField) {
  const std::string spec = Spec(
      R"({"model": {"input": {"timesteps": 5, "features": 1}, "layers": [{"lstm": {"units": 4, "retrun_sequences": true}}]}})");
  ExpectUsageError(RunCli({"train", spec, "--out", out_}),
                   spec +
                       ": model.layers[0].lstm: unknown field "
                       "\"retrun_sequences\"");
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, UnknownLayer) {
  const std::string spec = Spec(
      R"({"model": {"input": {"timesteps": 5, "features": 1}, "layers": [{"conv1d": {"units": 4}}]}})");
  ExpectUsageError(RunCli({"train", spec, "--out", out_}),
                   "model.layers[0]: unknown field \"conv1d\"");
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, ZeroUnits) {
  const std::string spec = Spec(
      R"({"model": {"input": {"timesteps": 5, "features": 1}, "layers": [{"gru": {"units": 0}}]}})");
  ExpectUsageError(RunCli({"train", spec, "--out", out_}),
                   "model.layers[0].gru.units must be in [1, 4096], got 0");
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, NanLearningRate) {
  const std::string spec = Spec(
      R"({"model": {"input": {"timesteps": 5, "features": 1}, "layers": [{"dense": {"units": 1}}]}, "optimizer": {"sgd": {"learning_rate": "NaN"}}})");
  ExpectUsageError(RunCli({"train", spec, "--out", out_}),
                   "optimizer.sgd.learning_rate must be a finite number");
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, BadProfile) {
  ExpectUsageError(RunCli({"train", "--profile", "fp33", "--out", out_}),
                   "--profile");
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, XWithoutY) {
  ExpectUsageError(RunCli({"train", dir_ + "/spec.json", "--x", dir_ + "/x.npy",
                           "--out", out_}),
                   "--x and --y must be given together");
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, MissingNpyFile) {
  ExpectUsageError(
      RunCli({"train", dir_ + "/spec.json", "--x", dir_ + "/none.npy", "--y",
              dir_ + "/y.npy", "--out", out_}),
      "--x");
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, WrongNpyDtype) {
  CliResult r =
      RunCli({"train", dir_ + "/spec.json", "--x", dir_ + "/x_int.npy", "--y",
              dir_ + "/y.npy", "--out", out_});
  ExpectUsageError(r, "--x");
  EXPECT_THAT(r.err, HasSubstr("x_int.npy"));
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, TimestepsMismatchWithX) {
  CliResult r = RunCli({"train", dir_ + "/spec.json", "--x", dir_ + "/x_t4.npy",
                        "--y", dir_ + "/y.npy", "--out", out_});
  ExpectUsageError(r, "--x");
  EXPECT_THAT(r.err, HasSubstr("(3, 4, 1)"));
  EXPECT_THAT(r.err, HasSubstr("timesteps 5"));
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, WrongTargetShape) {
  // y must be (N, 5, 4); x itself is not a valid target.
  ExpectUsageError(RunCli({"train", dir_ + "/spec.json", "--x", dir_ + "/x.npy",
                           "--y", dir_ + "/x.npy", "--out", out_}),
                   "--y");
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, InitWeightsWithWrongShape) {
  // Weights of a model with other widths must not be half-imported.
  const std::string spec = Spec(
      R"({"model": {"input": {"timesteps": 5, "features": 1}, "layers": [{"simple_rnn": {"units": 3}}]}, "data": {"synthetic": {"samples": 8, "eval_samples": 2}}})");
  ::mkdir((dir_ + "/w").c_str(), 0755);
  ASSERT_TRUE(WriteNpy(dir_ + "/w/layer0_kernel.npy",
                       NdArray::From<float>({1, 3}, std::vector<float>(3)))
                  .ok());
  ASSERT_TRUE(WriteNpy(dir_ + "/w/layer0_recurrent_kernel.npy",
                       NdArray::From<float>({3, 2}, std::vector<float>(6)))
                  .ok());
  ASSERT_TRUE(WriteNpy(dir_ + "/w/layer0_bias.npy",
                       NdArray::From<float>({3}, std::vector<float>(3)))
                  .ok());
  CliResult r =
      RunCli({"train", spec, "--init-weights", dir_ + "/w", "--out", out_});
  ExpectUsageError(r, "layer0_recurrent_kernel.npy");
  EXPECT_THAT(r.err, HasSubstr("(3, 3)"));
  ExpectOutAbsent();
}

TEST_F(TrainCliErrorTest, FailedRunLeavesPreviousOutputUntouched) {
  ASSERT_EQ(RunCli({"train", dir_ + "/spec.json", "--out", out_}).exit_code, 0);
  const std::string before = ReadFile(out_ + "/outputs.npy");
  const std::string run_before = ReadFile(out_ + "/run.json");
  const std::string spec = Spec(
      R"({"model": {"input": {"timesteps": 5, "features": 1}, "layers": [{"lstm": {"units": 0}}]}})");
  ExpectUsageError(RunCli({"train", spec, "--out", out_}), "units");
  EXPECT_EQ(ReadFile(out_ + "/outputs.npy"), before);
  EXPECT_EQ(ReadFile(out_ + "/run.json"), run_before);
  EXPECT_THAT(ListDir(dir_, "out"), ::testing::ElementsAre("out"));
}

TEST_F(TrainCliErrorTest, RefusesToReplaceAForeignDirectory) {
  ::mkdir(out_.c_str(), 0755);
  WriteFile(out_ + "/notes.txt", "mine");
  ExpectUsageError(RunCli({"train", dir_ + "/spec.json", "--out", out_}),
                   "not a driftscope output directory");
  EXPECT_EQ(ReadFile(out_ + "/notes.txt"), "mine");
}

// --out on a mount point: replacing it means renaming it (EBUSY), which
// used to fail after training and leave OUT.old-* behind. Now it is refused
// before training, and nothing is left.
TEST_F(TrainCliErrorTest, OutOnAMountPointIsRefusedBeforeTraining) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (mounts a tmpfs)";
  // A mount namespace of this thread (and of the CLI it starts), so the
  // mount is seen by nobody else.
  if (::unshare(CLONE_NEWNS) != 0 ||
      ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    GTEST_SKIP() << "no private mount namespace: " << std::strerror(errno);
  }
  ::mkdir(out_.c_str(), 0755);
  ASSERT_EQ(::mount("tmpfs", out_.c_str(), "tmpfs", 0, "size=1m"), 0)
      << std::strerror(errno);
  WriteFile(out_ + "/run.json", "{}");  // looks like a previous output
  CliResult r = RunCli({"train", dir_ + "/spec.json", "--out", out_});
  const std::vector<std::string> left = ListDir(dir_, "out");
  ::umount2(out_.c_str(), MNT_DETACH);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("mount point"));
  EXPECT_THAT(r.err, HasSubstr("--out " + out_));
  EXPECT_THAT(left, ::testing::ElementsAre("out"));  // no out.old-*, .tmp-*
}

TEST(CliTest, HelpAndVersion) {
  CliResult help = RunCli({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("train"));
  CliResult train_help = RunCli({"help", "train"});
  EXPECT_EQ(train_help.exit_code, 0);
  EXPECT_THAT(train_help.out, HasSubstr("--init-weights DIR"));
  CliResult version = RunCli({"version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_THAT(version.out, StartsWith("driftscope "));
  ExpectUsageError(RunCli({"frobnicate"}), "unknown command 'frobnicate'");
  ExpectUsageError(RunCli({}), "no command given");
}

// The spec from the issue: Dense(4096) over T=1000 and 100000 eval samples
// (1.6 TB of eval outputs). Before the fix `train` died of std::bad_alloc
// (exit 134) and left OUT.tmp-*; checked with the previous binary.
constexpr char kTerabyteEvalSpec[] = R"({
  "model": {"input": {"timesteps": 1000, "features": 1},
            "layers": [{"dense": {"units": 4096}}]},
  "data": {"synthetic": {"samples": 64, "eval_samples": 100000}},
  "training": {"epochs": 1, "batch_size": 32}
})";

TEST_F(TrainCliErrorTest, JobAboveTheMemoryLimitIsRefusedAndNothingWritten) {
  CliResult r = RunCli({"train", Spec(kTerabyteEvalSpec), "--out", out_});
  ExpectUsageError(r, "TiB of memory");
  EXPECT_THAT(r.err, HasSubstr("--max-memory-mib"));
  ExpectOutAbsent();
  // An explicit limit below a small job's estimate refuses it too, and one
  // above lets it run.
  r = RunCli(
      {"train", dir_ + "/spec.json", "--out", out_, "--max-memory-mib", "1"});
  ExpectUsageError(r, "above the memory limit for in-process runs");
  ExpectOutAbsent();
  r = RunCli({"train", dir_ + "/spec.json", "--out", out_, "--max-memory-mib",
              "4096"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ExpectUsageError(RunCli({"train", dir_ + "/spec.json", "--out", out_,
                           "--max-memory-mib", "-3"}),
                   "--max-memory-mib");
}

// The issue: SIGINT/SIGTERM during `train` left OUT.tmp-* behind (it did
// before this fix: the process died with the staging directory in place).
TEST(TrainCliTest, InterruptedTrainLeavesNoStagingDirectory) {
  for (int sig : {SIGINT, SIGTERM}) {
    const std::string dir = FreshDir();
    WriteFile(dir + "/long.json", R"({
      "model": {"input": {"timesteps": 20, "features": 1},
                "layers": [{"lstm": {"units": 64}}]},
      "data": {"synthetic": {"samples": 4096, "eval_samples": 16}},
      "training": {"epochs": 10000, "batch_size": 32}})");
    std::string bin = DRIFTSCOPE_BINARY_DIR "/client/driftscope";
    std::vector<std::string> argv_s = {bin, "train", dir + "/long.json",
                                       "--out", dir + "/out"};
    std::vector<char*> argv;
    for (std::string& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    ASSERT_EQ(
        posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
    // Training has begun once the staging directory exists.
    bool staged = false;
    for (int i = 0; i < 600 && !staged; ++i) {
      staged = !ListDir(dir, "out.tmp-").empty();
      if (!staged) usleep(20000);
    }
    ASSERT_TRUE(staged);
    usleep(200000);
    ASSERT_EQ(kill(pid, sig), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << status;
    EXPECT_THAT(ListDir(dir, "out"), ::testing::IsEmpty());
  }
}

}  // namespace
}  // namespace driftscope
