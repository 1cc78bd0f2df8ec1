// The check shared by the import tests of real Keras files: an imported
// model's initial weights are the file's, and ref64 trained from them on the
// golden's x and y ends where Keras' float64 fit() ended. A golden import
// directory holds init_w0.npy, ..., x.npy, y.npy, final_w0.npy, ... and
// final_out.npy.
// Not thread-safe (plain functions over test data).
#ifndef DRIFTSCOPE_TESTS_IMPORT_IMPORT_GOLDEN_H_
#define DRIFTSCOPE_TESTS_IMPORT_IMPORT_GOLDEN_H_

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "client/import/keras_import.h"
#include "engine/io/npy.h"
#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace import_golden {

// The array in `path`; an empty one (and a test failure) when unreadable.
inline NdArray ReadGolden(const std::string& path) {
  absl::StatusOr<NdArray> a = ReadNpy(path);
  EXPECT_TRUE(a.ok()) << a.status();
  return a.ok() ? *a : NdArray();
}

// |a - r| <= 1e-10 · max(1, |r|) elementwise.
inline void ExpectClose(const NdArray& a, const NdArray& r,
                        const std::string& what) {
  ASSERT_EQ(a.shape(), r.shape()) << what;
  double worst = 0;
  for (int64_t i = 0; i < r.size(); ++i) {
    worst = std::max(worst, std::fabs(a.at(i) - r.at(i)) /
                                std::max(1.0, std::fabs(r.at(i))));
  }
  EXPECT_LE(worst, 1e-10) << what;
}

// The imported initial weights equal dir/init_w<j>.npy, all `count` of them.
inline void ExpectInitialWeightsAreTheFiles(const ImportedModel& m,
                                            const std::string& dir,
                                            size_t count) {
  ASSERT_EQ(m.init_weights.size(), count);
  for (size_t j = 0; j < count; ++j) {
    const NdArray want = ReadGolden(absl::StrCat(dir, "init_w", j, ".npy"));
    ASSERT_EQ(m.init_weights[j].shape(), want.shape()) << j;
    for (int64_t i = 0; i < want.size(); ++i)
      ASSERT_EQ(m.init_weights[j].at(i), want.at(i)) << j << "[" << i << "]";
  }
}

// Trains `m` on ref64 from its initial weights and dir/x.npy, dir/y.npy into
// *run, and expects its `count` final weights and its outputs within 1e-10
// of Keras' (dir/final_w<j>.npy, dir/final_out.npy); failures name `what`.
inline void ExpectTrainsLikeKerasFloat64(const ImportedModel& m,
                                         const std::string& dir, size_t count,
                                         const std::string& what,
                                         RunResult* run) {
  absl::StatusOr<Profile> ref64 = Profile::Parse("ref64");
  ASSERT_TRUE(ref64.ok());
  RunOptions options;
  options.x = ReadGolden(dir + "x.npy");
  options.y = ReadGolden(dir + "y.npy");
  options.init_weights = m.init_weights;
  absl::StatusOr<RunResult> r = RunJob(m.spec, *ref64, options);
  ASSERT_TRUE(r.ok()) << r.status();
  *run = *std::move(r);
  ASSERT_EQ(run->final_weights.size(), count);
  for (size_t j = 0; j < count; ++j) {
    ExpectClose(run->final_weights[j].array,
                ReadGolden(absl::StrCat(dir, "final_w", j, ".npy")),
                absl::StrCat(what, "final weight ", j));
  }
  ExpectClose(run->outputs, ReadGolden(dir + "final_out.npy"), "outputs");
}

}  // namespace import_golden
}  // namespace driftscope

#endif  // DRIFTSCOPE_TESTS_IMPORT_IMPORT_GOLDEN_H_
