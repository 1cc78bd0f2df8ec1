#include "server/coordinator/job_events.h"

#include <utility>
#include <vector>

namespace driftscope::coordinator {

JobSubscription::Batch JobSubscription::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return gap_ || !events_.empty();
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  Batch b;
  b.gap = gap_;
  gap_ = false;
  b.events.swap(events_);
  return b;
}

void JobSubscription::Push(const v1::JobEvent& event) {
  absl::MutexLock lock(&mu_);
  if (gap_) return;  // a snapshot follows anyway
  if (events_.size() >= capacity_) {
    events_.clear();
    gap_ = true;
    return;
  }
  events_.push_back(event);
}

std::shared_ptr<JobSubscription> JobEventHub::Subscribe(
    absl::string_view job_id) {
  auto sub = std::make_shared<JobSubscription>(capacity_);
  absl::MutexLock lock(&mu_);
  subscribers_[std::string(job_id)].insert(sub);
  return sub;
}

void JobEventHub::Unsubscribe(
    absl::string_view job_id,
    const std::shared_ptr<JobSubscription>& subscription) {
  absl::MutexLock lock(&mu_);
  auto it = subscribers_.find(job_id);
  if (it == subscribers_.end()) return;
  it->second.erase(subscription);
  if (it->second.empty()) subscribers_.erase(it);
}

void JobEventHub::Publish(absl::string_view job_id, const v1::JobEvent& event) {
  std::vector<std::shared_ptr<JobSubscription>> subs;
  {
    absl::MutexLock lock(&mu_);
    auto it = subscribers_.find(job_id);
    if (it == subscribers_.end()) return;
    subs.assign(it->second.begin(), it->second.end());
  }
  for (const auto& s : subs) s->Push(event);
}

int JobEventHub::watchers(absl::string_view job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = subscribers_.find(job_id);
  return it == subscribers_.end() ? 0 : static_cast<int>(it->second.size());
}

}  // namespace driftscope::coordinator
