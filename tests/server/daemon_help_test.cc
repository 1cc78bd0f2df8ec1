// `--help` on the daemons lists their flags, shared and own, with the file
// each comes from (absl alone lists only a file named after the program:
// "No flags matched").
#include <cstdio>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/coordinator/coordinator_test_util.h"
#include "tests/server/worker_process.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string HelpOf(const std::string& binary) {
  std::string out;
  std::FILE* p = popen((binary + " --help 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

TEST(DaemonHelpTest, WorkerListsSharedAndOwnFlags) {
  const std::string help = HelpOf(testing::WorkerBinary());
  EXPECT_THAT(help, Not(HasSubstr("No flags matched")));
  EXPECT_THAT(help, HasSubstr("Flags from server/daemon/daemon_main.cc"));
  EXPECT_THAT(help, HasSubstr("Flags from server/worker/main.cc"));
  for (const char* flag :
       {"--listen", "--tls_cert", "--auth_token_file", "--max_flops",
        "--grace_period", "--max_concurrent_runs", "--coordinator"}) {
    EXPECT_THAT(help, HasSubstr(flag));
  }
  EXPECT_THAT(help, Not(HasSubstr("--store_dir")));
}

TEST(DaemonHelpTest, CoordinatorListsSharedAndOwnFlags) {
  const std::string help = HelpOf(testing::CoordinatorBinary());
  EXPECT_THAT(help, HasSubstr("Flags from server/daemon/daemon_main.cc"));
  EXPECT_THAT(help, HasSubstr("Flags from server/coordinator/main.cc"));
  for (const char* flag : {"--listen", "--insecure", "--max_epochs",
                           "--store_dir", "--workers", "--worker_tls_ca"}) {
    EXPECT_THAT(help, HasSubstr(flag));
  }
  EXPECT_THAT(help, Not(HasSubstr("--max_concurrent_runs")));
}

}  // namespace
}  // namespace driftscope
