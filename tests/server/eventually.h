// Polling for a condition that another thread or process brings about, for
// the server tests (the coordinator tests have their own, with a longer
// default: tests/server/coordinator/coordinator_test_util.h).
#ifndef DRIFTSCOPE_TESTS_SERVER_EVENTUALLY_H_
#define DRIFTSCOPE_TESTS_SERVER_EVENTUALLY_H_

#include <chrono>
#include <thread>

namespace driftscope::testing {

// Calls `done` every 5 ms until it returns true (then true) or `limit` has
// passed (then false).
template <typename F>
bool Eventually(F done,
                std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_SERVER_EVENTUALLY_H_
