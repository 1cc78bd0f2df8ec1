// The Keras training-run golden check shared by the dropout,
// recurrent-dropout and Bidirectional tests: a golden case directory holds
// f64/ and f32/ subdirectories, each with Keras' inputs (x, y), initial
// weights (w0, w1, ...), the losses of its 6 fit() steps, the final outputs
// and the final weights (final_w0, ...); out0 (outputs before training) when
// the generator wrote it. Tolerances are golden_util.h's.
// Not thread-safe (plain functions over test data).
#ifndef DRIFTSCOPE_TESTS_ENGINE_GOLDEN_KERAS_TRAINING_GOLDEN_H_
#define DRIFTSCOPE_TESTS_ENGINE_GOLDEN_KERAS_TRAINING_GOLDEN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/core/ndarray.h"
#include "engine/io/npy.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"
#include "gtest/gtest.h"
#include "tests/engine/golden/golden_util.h"

namespace driftscope {
namespace golden {

// dir + prefix + "0.npy", "1.npy", ... up to the first that is missing.
inline std::vector<NdArray> LoadSeries(const std::string& dir,
                                       const std::string& prefix) {
  std::vector<NdArray> out;
  for (int j = 0;; ++j) {
    absl::StatusOr<NdArray> w = ReadNpy(absl::StrCat(dir, prefix, j, ".npy"));
    if (!w.ok()) break;
    out.push_back(*std::move(w));
  }
  return out;
}

// Trains `spec` under fp64 or fp32 from the golden's data and initial weights
// and expects Keras' losses, final outputs and final weights (and, with
// check_initial_outputs, the outputs before any step: out0).
inline void ExpectTrainingMatchesKeras(const std::string& case_name,
                                       const std::string& case_dir,
                                       const JobSpec& spec, bool fp64,
                                       bool check_initial_outputs) {
  const std::string dir64 = case_dir + "/f64/";
  const std::string dir32 = case_dir + "/f32/";
  const std::string& dir = fp64 ? dir64 : dir32;
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  RunOptions options;
  const std::vector<NdArray> init = LoadSeries(dir, "w");
  ASSERT_FALSE(init.empty()) << dir << ": no initial weights";
  options.init_weights = init;
  options.x = Load(dir, "x");
  options.y = Load(dir, "y");
  options.eval_x = options.x;
  absl::StatusOr<Profile> profile = Profile::Parse(fp64 ? "fp64" : "fp32");
  ASSERT_TRUE(profile.ok());
  const std::string what = case_name + (fp64 ? " f64" : " f32");
  const auto check = [&](const NdArray& a, const std::string& name) {
    if (fp64) {
      ExpectMatchesKeras(what, a.data<double>(), a.size(), dir64, dir32, name);
    } else {
      ExpectMatchesKeras(what, a.data<float>(), a.size(), dir64, dir32, name);
    }
  };
  if (check_initial_outputs) {
    JobSpec forward_only = spec;
    forward_only.training.epochs = 0;
    absl::StatusOr<RunResult> r0 = RunJob(forward_only, *profile, options);
    ASSERT_TRUE(r0.ok()) << r0.status();
    check(r0->outputs, "out0");
  }
  absl::StatusOr<RunResult> r = RunJob(spec, *profile, options);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->steps, 6);
  check(r->losses, "losses");
  check(r->outputs, "final_out");
  ASSERT_EQ(r->final_weights.size(), init.size());
  for (size_t j = 0; j < init.size(); ++j) {
    check(r->final_weights[j].array, absl::StrCat("final_w", j));
  }
}

}  // namespace golden
}  // namespace driftscope

#endif  // DRIFTSCOPE_TESTS_ENGINE_GOLDEN_KERAS_TRAINING_GOLDEN_H_
