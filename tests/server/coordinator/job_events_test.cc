// JobEventHub: events reach every watcher in order; a watcher that does
// not read never slows the publisher, it gets a gap (and then a snapshot).
#include "server/coordinator/job_events.h"

#include "gtest/gtest.h"

namespace driftscope::coordinator {
namespace {

v1::JobEvent Step(int64_t step) {
  v1::JobEvent e;
  e.mutable_run_update()->set_step(step);
  return e;
}

TEST(JobEventHubTest, EveryWatcherGetsEveryEventInOrder) {
  JobEventHub hub;
  auto a = hub.Subscribe("job");
  auto b = hub.Subscribe("job");
  auto other = hub.Subscribe("other-job");
  EXPECT_EQ(hub.watchers("job"), 2);
  for (int i = 1; i <= 3; ++i) hub.Publish("job", Step(i));
  for (auto* sub : {a.get(), b.get()}) {
    JobSubscription::Batch batch = sub->Next(absl::Seconds(1));
    EXPECT_FALSE(batch.gap);
    ASSERT_EQ(batch.events.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(batch.events[i].run_update().step(), i + 1);
    }
  }
  EXPECT_TRUE(other->Next(absl::Milliseconds(1)).events.empty());
  hub.Unsubscribe("job", a);
  hub.Unsubscribe("job", b);
  EXPECT_EQ(hub.watchers("job"), 0);
}

TEST(JobEventHubTest, SlowWatcherGetsAGapAndNeverBlocksThePublisher) {
  JobEventHub hub(/*queue_capacity=*/8);
  auto slow = hub.Subscribe("job");
  auto fast = hub.Subscribe("job");
  int64_t fast_seen = 0;
  for (int i = 1; i <= 100000; ++i) {
    hub.Publish("job", Step(i));
    if (i % 4 == 0) {
      fast_seen +=
          static_cast<int64_t>(fast->Next(absl::ZeroDuration()).events.size());
    }
  }
  // (A publisher that waited for the stuck watcher would never get here.)
  EXPECT_EQ(fast_seen, 100000);
  JobSubscription::Batch batch = slow->Next(absl::ZeroDuration());
  EXPECT_TRUE(batch.gap);
  EXPECT_TRUE(batch.events.empty());
  // After the gap it receives new events again.
  hub.Publish("job", Step(7));
  batch = slow->Next(absl::Seconds(1));
  EXPECT_FALSE(batch.gap);
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_EQ(batch.events[0].run_update().step(), 7);
}

}  // namespace
}  // namespace driftscope::coordinator
