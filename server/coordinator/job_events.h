// JobEventHub: fans the scheduler's job events (run updates, job states)
// out to WatchJob streams without ever blocking the publisher.
//
// Each subscription has a bounded queue. When a slow watcher lets it fill
// up, the queue is dropped and the subscription is marked as having a gap:
// the watcher then sends a fresh snapshot instead of the missed events
// (coordinator.proto: "snapshot ... after any gap"). Safe for concurrent
// use.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_JOB_EVENTS_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_JOB_EVENTS_H_

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "driftscope/v1/coordinator.pb.h"

namespace driftscope::coordinator {

class JobSubscription {
 public:
  explicit JobSubscription(size_t capacity) : capacity_(capacity) {}
  JobSubscription(const JobSubscription&) = delete;
  JobSubscription& operator=(const JobSubscription&) = delete;

  // What Next() found: events in order, or a gap (events were dropped).
  struct Batch {
    std::deque<v1::JobEvent> events;
    bool gap = false;
  };
  // Waits up to `timeout` for events (or a gap) and takes them all.
  Batch Next(absl::Duration timeout);

  void Push(const v1::JobEvent& event);

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<v1::JobEvent> events_ ABSL_GUARDED_BY(mu_);
  bool gap_ ABSL_GUARDED_BY(mu_) = false;
};

class JobEventHub {
 public:
  explicit JobEventHub(size_t queue_capacity = 1024)
      : capacity_(queue_capacity) {}
  JobEventHub(const JobEventHub&) = delete;
  JobEventHub& operator=(const JobEventHub&) = delete;

  std::shared_ptr<JobSubscription> Subscribe(absl::string_view job_id);
  void Unsubscribe(absl::string_view job_id,
                   const std::shared_ptr<JobSubscription>& subscription);
  // Never blocks on a watcher.
  void Publish(absl::string_view job_id, const v1::JobEvent& event);
  int watchers(absl::string_view job_id) const;

 private:
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::set<std::shared_ptr<JobSubscription>>, std::less<>>
      subscribers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_JOB_EVENTS_H_
