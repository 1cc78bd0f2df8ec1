// JobThreads: a finished job's thread runs the next one; Run() never waits
// for a busy thread; the destructor waits for what runs.
#include "server/worker/job_threads.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/server/eventually.h"

namespace driftscope {
namespace {

using ::driftscope::testing::Eventually;

TEST(JobThreadsTest, AFinishedThreadRunsTheNextJob) {
  JobThreads threads;
  std::thread::id first, second;
  absl::Notification ran_first, ran_second;
  threads.Run([&] {
    first = std::this_thread::get_id();
    ran_first.Notify();
  });
  ran_first.WaitForNotification();
  ASSERT_TRUE(Eventually([&] { return threads.idle() == 1; }));
  threads.Run([&] {
    second = std::this_thread::get_id();
    ran_second.Notify();
  });
  ran_second.WaitForNotification();
  EXPECT_EQ(second, first);
  EXPECT_NE(first, std::this_thread::get_id());
}

TEST(JobThreadsTest, BusyThreadsDoNotHoldUpANewJob) {
  JobThreads threads;
  absl::Notification release;
  std::atomic<int> started{0};
  for (int i = 0; i < 3; ++i) {
    threads.Run([&] {
      ++started;
      release.WaitForNotification();
    });
  }
  // Three jobs block; a fourth still runs at once on a thread of its own.
  ASSERT_TRUE(Eventually([&] { return started.load() == 3; }));
  absl::Notification fourth;
  threads.Run([&] { fourth.Notify(); });
  EXPECT_TRUE(fourth.WaitForNotificationWithTimeout(absl::Seconds(20)));
  release.Notify();
}

TEST(JobThreadsTest, DestructorWaitsForRunningJobs) {
  std::atomic<bool> finished{false};
  absl::Notification started;
  {
    JobThreads threads;
    threads.Run([&] {
      started.Notify();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      finished = true;
    });
    started.WaitForNotification();
  }
  EXPECT_TRUE(finished);
}

}  // namespace
}  // namespace driftscope
