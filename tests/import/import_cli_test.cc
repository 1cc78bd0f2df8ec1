// `driftscope import`, and `--model` on train, run and submit, through the
// real binary: what a user sees (exit codes, one-line errors, files).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/io/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_util.h"
#include "tests/cli/cluster.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

std::string Golden(const std::string& name) {
  return absl::StrCat(DRIFTSCOPE_SOURCE_DIR, "/tests/golden/keras_import/",
                      name);
}

// max |a - r| / max(1, |r|) over the elements of two float64 .npy files.
double MaxRelDiff(const std::string& a_path, const std::string& r_path) {
  absl::StatusOr<NdArray> a = ReadNpy(a_path), r = ReadNpy(r_path);
  EXPECT_TRUE(a.ok() && r.ok()) << a_path << " " << r_path;
  if (!a.ok() || !r.ok()) return 1e300;
  EXPECT_EQ(a->shape(), r->shape());
  EXPECT_EQ(a->dtype(), DType::kFloat64);
  if (a->shape() != r->shape() || a->dtype() != DType::kFloat64) return 1e300;
  double worst = 0;
  for (int64_t i = 0; i < r->size(); ++i) {
    const double x = a->data<double>()[i], y = r->data<double>()[i];
    worst = std::max(worst, std::fabs(x - y) / std::max(1.0, std::fabs(y)));
  }
  return worst;
}

bool SameBytes(const std::string& a, const std::string& b) {
  return ReadFile(a) == ReadFile(b) && !ReadFile(a).empty();
}

TEST(ImportCli, ImportWritesASpecAndWeightsThatTrainLikeKerasFloat64) {
  const std::string dir = FreshDir();
  CliResult r = RunCli({"import", Golden("seq_lstm_gru/model.keras"), "--out",
                        dir + "/imported"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Exists(dir + "/imported/spec.json"));
  for (const char* w : {"layer0_kernel", "layer0_recurrent_kernel",
                        "layer0_bias", "layer1_kernel", "layer2_bias"}) {
    EXPECT_TRUE(Exists(absl::StrCat(dir, "/imported/init_weights/", w, ".npy")))
        << w;
  }
  r = RunCli({"train", dir + "/imported/spec.json", "--init-weights",
              dir + "/imported/init_weights", "--x",
              Golden("seq_lstm_gru/x.npy"), "--y", Golden("seq_lstm_gru/y.npy"),
              "--profile", "ref64", "--out", dir + "/run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(MaxRelDiff(dir + "/run/outputs.npy",
                       Golden("seq_lstm_gru/final_out.npy")),
            1e-10);
  EXPECT_LE(MaxRelDiff(dir + "/run/weights/layer1_recurrent_kernel.npy",
                       Golden("seq_lstm_gru/final_w4.npy")),
            1e-10);
}

// Bidirectional weights land in the engine's forward/backward files, in
// Keras' get_weights() order (forward copy, then backward copy).
TEST(ImportCli, BidirectionalWeightsAreWrittenForwardThenBackward) {
  const std::string dir = FreshDir();
  CliResult r = RunCli(
      {"import", Golden("seq_bidir/model.keras"), "--out", dir + "/imported"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string w = dir + "/imported/init_weights/";
  EXPECT_EQ(MaxRelDiff(w + "layer0_forward_kernel.npy",
                       Golden("seq_bidir/init_w0.npy")),
            0.0);
  EXPECT_EQ(MaxRelDiff(w + "layer0_backward_kernel.npy",
                       Golden("seq_bidir/init_w3.npy")),
            0.0);
  EXPECT_EQ(MaxRelDiff(w + "layer1_backward_recurrent_kernel.npy",
                       Golden("seq_bidir/init_w10.npy")),
            0.0);
  r = RunCli({"train", dir + "/imported/spec.json", "--init-weights",
              dir + "/imported/init_weights", "--x", Golden("seq_bidir/x.npy"),
              "--y", Golden("seq_bidir/y.npy"), "--profile", "ref64", "--out",
              dir + "/run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(
      MaxRelDiff(dir + "/run/outputs.npy", Golden("seq_bidir/final_out.npy")),
      1e-10);
  EXPECT_LE(
      MaxRelDiff(dir + "/run/weights/layer1_backward_recurrent_kernel.npy",
                 Golden("seq_bidir/final_w10.npy")),
      1e-10);
}

TEST(ImportCli, TrainWithModelMatchesKerasFloat64) {
  const std::string dir = FreshDir();
  CliResult r = RunCli({"train", "--model", Golden("func_rnn_lstm/model.h5"),
                        "--x", Golden("func_rnn_lstm/x.npy"), "--y",
                        Golden("func_rnn_lstm/y.npy"), "--profile", "ref64",
                        "--out", dir + "/run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(MaxRelDiff(dir + "/run/outputs.npy",
                       Golden("func_rnn_lstm/final_out.npy")),
            1e-10);
  EXPECT_LE(MaxRelDiff(dir + "/run/weights/layer1_kernel.npy",
                       Golden("func_rnn_lstm/final_w3.npy")),
            1e-10);
  EXPECT_THAT(ReadFile(dir + "/run/run.json"),
              HasSubstr(absl::StrCat("\"model_file\":\"",
                                     Golden("func_rnn_lstm/model.h5"), "\"")));
}

TEST(ImportCli, RunWithModelStartsEveryProfileFromTheFilesWeights) {
  const std::string dir = FreshDir();
  const std::string model = Golden("seq_lstm_gru/model.keras");
  CliResult r = RunCli({"run", "--model", model, "--profiles", "ref64,fp32",
                        "--jobs", "1", "--out", dir + "/runs"});
  ASSERT_LE(r.exit_code, 1) << r.err;  // 1: drift above the tolerance
  EXPECT_THAT(r.out, HasSubstr("numerics from step 1"));
  // The same computation as `train --model` (synthetic data of the spec).
  r = RunCli({"train", "--model", model, "--profile", "ref64", "--out",
              dir + "/train"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(SameBytes(dir + "/runs/ref64/r0/outputs.npy",
                        dir + "/train/outputs.npy"));
  // ... and not that of the spec with seeded initial weights.
  r = RunCli({"import", model, "--out", dir + "/imported"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = RunCli({"train", dir + "/imported/spec.json", "--profile", "ref64",
              "--out", dir + "/seeded"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(
      SameBytes(dir + "/seeded/outputs.npy", dir + "/train/outputs.npy"));
}

TEST(ImportCli, SubmitWithModelRunsFromTheFilesWeights) {
  const std::string dir = FreshDir();
  const std::string model = Golden("func_rnn_lstm/model.h5");
  testing::Cluster cluster;
  ASSERT_TRUE(cluster.Start({"fp32"}, dir + "/store").ok());
  CliResult local = RunCli({"train", "--model", model, "--profile", "fp32",
                            "--out", dir + "/local"});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  CliResult remote =
      cluster.Cli({"submit", "--model", model, "--profiles", "fp32", "--wait"});
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  const std::string tag = "submitted job ";
  const size_t at = remote.err.find(tag);
  ASSERT_NE(at, std::string::npos) << remote.err;
  const std::string job = remote.err.substr(
      at + tag.size(), remote.err.find(' ', at + tag.size()) - at - tag.size());
  CliResult exported = cluster.Cli({"export", job, "--out", dir + "/e"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  // The worker trained the file's model from the file's weights: the local
  // run's outputs bit for bit.
  EXPECT_TRUE(SameBytes(dir + "/e/" + job + "-r0/outputs.npy",
                        dir + "/local/outputs.npy"));
}

// Exit 2, one line on stderr naming the file and the problem, nothing
// written.
void ExpectRefusedEverywhere(const std::string& file, const std::string& what) {
  const std::string dir = FreshDir();
  const std::vector<std::vector<std::string>> commands = {
      {"import", file, "--out", dir + "/out"},
      {"train", "--model", file, "--out", dir + "/out"},
      {"run", "--model", file, "--profiles", "ref64", "--out", dir + "/out"},
      {"submit", "--model", file, "--coordinator", "127.0.0.1:1", "--insecure"},
  };
  for (const auto& args : commands) {
    CliResult r = RunCli(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << " " << file << ": " << r.err;
    const std::vector<std::string> lines =
        absl::StrSplit(r.err, '\n', absl::SkipEmpty());
    EXPECT_EQ(lines.size(), 1u) << r.err;
    EXPECT_THAT(r.err, HasSubstr(file)) << args[0];
    EXPECT_THAT(r.err, HasSubstr(what)) << args[0];
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_EQ(ListDir(dir, "out"), std::vector<std::string>{}) << args[0];
  }
}

TEST(ImportCli, AZipWithoutWeightsIsRefused) {
  ExpectRefusedEverywhere(Golden("bad_no_weights.keras"),
                          "model.weights.h5 is missing");
}

TEST(ImportCli, WeightsThatDoNotFitTheConfigAreRefused) {
  ExpectRefusedEverywhere(Golden("bad_shapes.h5"),
                          "the weights do not fit the config");
}

TEST(ImportCli, AnUnsupportedLayerIsRefusedByName) {
  ExpectRefusedEverywhere(Golden("bad_conv1d.keras"),
                          "layer 'conv1d' (Conv1D)");
}

TEST(ImportCli, ATruncatedFileIsRefused) {
  const std::string dir = FreshDir();
  const std::string bytes = ReadFile(Golden("func_rnn_lstm/model.h5"));
  const std::string cut = ::testing::TempDir() + "/import_cli_truncated.h5";
  WriteFile(cut, bytes.substr(0, bytes.size() / 2));
  ExpectRefusedEverywhere(cut, "truncated or corrupt");
}

// A file written by a real tf.keras 2 (make_tfkeras2_goldens.py), its
// optimizer written as "Custom>Adam": `train --model` trains it as Keras 2
// trained the same file.
TEST(ImportCli, TrainWithARealTfKeras2FileMatchesKeras2Float64) {
  const std::string dir = FreshDir();
  const std::string c = "tfk2_seq_lstm_dense/";
  CliResult r = RunCli({"train", "--model", Golden(c + "model.h5"), "--x",
                        Golden(c + "x.npy"), "--y", Golden(c + "y.npy"),
                        "--profile", "ref64", "--out", dir + "/run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(MaxRelDiff(dir + "/run/outputs.npy", Golden(c + "final_out.npy")),
            1e-10);
  EXPECT_LE(MaxRelDiff(dir + "/run/weights/layer0_recurrent_kernel.npy",
                       Golden(c + "final_w1.npy")),
            1e-10);
}

TEST(ImportCli, BadTfKeras2FilesAreRefused) {
  ExpectRefusedEverywhere(Golden("tfk2_bad_shapes.h5"),
                          "layer 'lstm' (LSTM) kernel is (2, 12) in the "
                          "file, its config needs (2, 16)");
  ExpectRefusedEverywhere(Golden("tfk2_weights_only.h5"),
                          "the file holds weights only");
  ExpectRefusedEverywhere(Golden("tfk2_bad_legacy_rmsprop.h5"),
                          "legacy RMSprop");
  const std::string bytes = ReadFile(Golden("tfk2_seq_lstm_dense/model.h5"));
  const std::string cut = ::testing::TempDir() + "/import_cli_tfk2_cut.h5";
  WriteFile(cut, bytes.substr(0, bytes.size() * 3 / 4));
  ExpectRefusedEverywhere(cut, "truncated or corrupt");
}

TEST(ImportCli, ModelFlagExcludesASpecAndInitWeights) {
  const std::string dir = FreshDir();
  WriteFile(dir + "/spec.json", "{}");
  CliResult r = RunCli({"train", dir + "/spec.json", "--model",
                        Golden("uncompiled.keras"), "--out", dir + "/out"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--model replaces SPEC.json"));
  EXPECT_FALSE(Exists(dir + "/out"));
}

TEST(ImportCli, ImportRefusesToReplaceADirectoryItDidNotWrite) {
  const std::string dir = FreshDir();
  ::mkdir((dir + "/mine").c_str(), 0755);
  WriteFile(dir + "/mine/notes.txt", "keep me");
  CliResult r =
      RunCli({"import", Golden("uncompiled.keras"), "--out", dir + "/mine"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(ReadFile(dir + "/mine/notes.txt"), "keep me");
  EXPECT_FALSE(Exists(dir + "/mine/spec.json"));
}

// The summary counts the file's Keras layers, Masking included (it is a field
// of the spec's model, not an engine layer, so it owns no weight file), and
// the first weight file is the layer after it.
TEST(ImportCli, MaskingIsCountedAndTheWeightsStartAfterIt) {
  const std::string dir = FreshDir();
  const std::string model = std::string(DRIFTSCOPE_SOURCE_DIR) +
                            "/tests/golden/masking/import_masked/model.keras";
  CliResult r = RunCli({"import", model, "--out", dir + "/imported"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(": 4 layers, 11 weight arrays"));
  EXPECT_EQ(MaxRelDiff(dir + "/imported/init_weights/layer0_kernel.npy",
                       std::string(DRIFTSCOPE_SOURCE_DIR) +
                           "/tests/golden/masking/import_masked/init_w0.npy"),
            0.0);
}

}  // namespace
}  // namespace driftscope
