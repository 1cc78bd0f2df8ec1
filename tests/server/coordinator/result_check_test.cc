// CheckResultAgainstJob: a worker's result is stored only when it is what
// the job asked for.
#include "server/coordinator/result_check.h"

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/coordinator/coordinator_test_util.h"

namespace driftscope::coordinator {
namespace {

using ::driftscope::testing::TinySpec;
using ::testing::HasSubstr;

const RunResult& Real(const std::string& profile) {
  static auto* cache = new std::map<std::string, RunResult>();
  auto it = cache->find(profile);
  if (it == cache->end()) {
    auto r = RunJob(TinySpec(), *Profile::Parse(profile));
    EXPECT_TRUE(r.ok()) << r.status();
    it = cache->emplace(profile, *std::move(r)).first;
  }
  return it->second;
}

void ExpectRefused(const RunResult& r, const std::string& profile,
                   const std::string& names) {
  const absl::Status s = CheckResultAgainstJob(TinySpec(), profile, r);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(s.message(), HasSubstr(names));
  EXPECT_THAT(s.message(), HasSubstr("does not match the job"));
}

TEST(ResultCheckTest, RealRunsOfTheJobPass) {
  EXPECT_TRUE(CheckResultAgainstJob(TinySpec(), "fp32", Real("fp32")).ok());
  EXPECT_TRUE(CheckResultAgainstJob(TinySpec(), "ref64", Real("ref64")).ok());
  // A preset and its knob string are the same profile; isa=auto matches
  // the level the worker resolved it to.
  EXPECT_TRUE(
      CheckResultAgainstJob(TinySpec(), "fp32,threads=1", Real("fp32")).ok());
}

// The impostor from the issue: a (3,3) all-NaN output, spec digest 000…0
// and profile fp32, returned for a ref64 run. Stored as succeeded before.
TEST(ResultCheckTest, TheIssuesImpostorResultIsRefused) {
  RunResult r;
  r.spec_digest = std::string(64, '0');
  r.profile = "fp32";
  r.outputs = NdArray::From<float>(
      {3, 3}, std::vector<float>(9, std::numeric_limits<float>::quiet_NaN()));
  ExpectRefused(r, "ref64", "spec digest");
  r.spec_digest = SpecDigest(TinySpec());
  ExpectRefused(r, "ref64", "the profile that ran");
  r.profile = Real("ref64").profile;
  ExpectRefused(r, "ref64", "outputs's shape is (3, 3), expected (16, 10, 4)");
}

TEST(ResultCheckTest, EachTensorIsCheckedForShapeAndDtype) {
  // fp32 bits where ref64 was asked for (profile text forged too).
  RunResult r = Real("fp32");
  r.profile = Real("ref64").profile;
  ExpectRefused(r, "ref64", "outputs's dtype is float32, expected float64");

  r = Real("fp32");
  r.losses = NdArray::From<float>({3}, std::vector<float>(3, 0.f));
  ExpectRefused(r, "fp32", "losses's shape");

  r = Real("fp32");
  r.fingerprints.pop_back();
  ExpectRefused(r, "fp32", "number of fingerprints");

  r = Real("fp32");
  r.epoch_outputs.pop_back();
  ExpectRefused(r, "fp32", "number of epoch outputs");

  r = Real("fp32");
  r.final_weights[1].array =
      NdArray::From<float>({2, 2}, std::vector<float>(4, 0.f));
  ExpectRefused(r, "fp32", "layer0_recurrent_kernel's shape is (2, 2)");

  r = Real("fp32");
  r.steps += 1;
  ExpectRefused(r, "fp32", "step count");

  r = Real("fp32");
  r.profile = "fp32,gemm=sequential";
  ExpectRefused(r, "fp32", "the profile that ran");
}

}  // namespace
}  // namespace driftscope::coordinator
