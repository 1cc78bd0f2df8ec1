// Helpers for the coordinator store tests: a fresh store directory per test
// (removed afterwards) and small job and run rows. One thread at a time.
#ifndef DRIFTSCOPE_TESTS_SERVER_COORDINATOR_STORE_TEST_UTIL_H_
#define DRIFTSCOPE_TESTS_SERVER_COORDINATOR_STORE_TEST_UTIL_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/coordinator/store.h"

namespace driftscope::testing {

// mkdtemp under gtest's TempDir: unique even when ctest runs tests of this
// binary in parallel processes.
class StoreDir {
 public:
  StoreDir() {
    std::string templ = ::testing::TempDir() + "/store_XXXXXX";
    if (mkdtemp(templ.data()) != nullptr) path_ = templ;
  }
  ~StoreDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  StoreDir(const StoreDir&) = delete;
  StoreDir& operator=(const StoreDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A float32 tensor of `n` values derived from `seed`.
inline v1::Tensor SeededTensor(int n, int seed) {
  v1::Tensor t;
  t.set_dtype(v1::FLOAT32);
  t.add_shape(n);
  std::string data(static_cast<size_t>(n) * 4, '\0');
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] =
        static_cast<char>((i * 131 + static_cast<size_t>(seed) * 7) & 0xff);
  }
  t.set_data(data);
  return t;
}

inline coordinator::JobRow MakeJob(const std::string& job_id,
                                   const std::string& request_id = "",
                                   int64_t created_unix_ms = 1000) {
  coordinator::JobRow job;
  job.job_id = job_id;
  job.client_request_id = request_id;
  job.spec_digest = "digest-" + job_id;
  job.spec.set_seed(7);
  job.placement.add_workers("w1");
  job.placement.set_repeats(2);
  job.description = "test job " + job_id;
  job.init_weights = {SeededTensor(3, 1), SeededTensor(5, 2)};
  job.created_unix_ms = created_unix_ms;
  return job;
}

// `n` queued runs "<job_id>-r<i>" on workers w1, w2, ...
inline std::vector<coordinator::RunRow> MakeRuns(const std::string& job_id,
                                                 int n) {
  std::vector<coordinator::RunRow> runs;
  for (int i = 0; i < n; ++i) {
    coordinator::RunRow run;
    run.run_id = absl::StrCat(job_id, "-r", i);
    run.job_id = job_id;
    run.worker = absl::StrCat("w", i + 1);
    run.profile = "fp32";
    run.repeat = i;
    runs.push_back(run);
  }
  return runs;
}

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_SERVER_COORDINATOR_STORE_TEST_UTIL_H_
