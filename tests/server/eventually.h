// Polling for a condition that another thread or process brings about, for
// the server and coordinator tests.
#ifndef DRIFTSCOPE_TESTS_SERVER_EVENTUALLY_H_
#define DRIFTSCOPE_TESTS_SERVER_EVENTUALLY_H_

#include <chrono>
#include <thread>

namespace driftscope::testing {

// Calls `done` every 5 ms until it returns true (then true) or `limit` has
// passed (then false). The default is generous: it only matters when the
// test fails, and a loaded CI machine can be slow.
template <typename F>
bool Eventually(F done,
                std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_SERVER_EVENTUALLY_H_
