#include "engine/env/environment.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

TEST(EnvironmentTest, ProbeDescribesThisMachine) {
  const Environment& env = ProbeEnvironment();
  EXPECT_FALSE(env.hostname.empty());
  EXPECT_GT(env.cores, 0);
  EXPECT_THAT(env.kernel, HasSubstr("Linux"));
  EXPECT_FALSE(env.eigen_version.empty());
  EXPECT_FALSE(env.engine_version.empty());
  // Without a GPU the probe says why instead of failing.
  if (env.cuda.devices.empty()) {
    EXPECT_FALSE(env.cuda.error.empty());
  }
}

TEST(EnvironmentTest, JsonHasStableKeysAndEscapes) {
  Environment env;
  env.hostname = "host \"quoted\"\n";
  env.isa_flags = {"avx2", "fma"};
  std::string json = EnvironmentToJson(env);
  EXPECT_THAT(json, HasSubstr("\"hostname\":\"host \\\"quoted\\\"\\n\""));
  EXPECT_THAT(json, HasSubstr("\"isa_flags\":[\"avx2\",\"fma\"]"));
  EXPECT_THAT(json, HasSubstr("\"cuda\":{\"compiled\":"));
}

}  // namespace
}  // namespace driftscope
