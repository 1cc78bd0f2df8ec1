#include "server/worker/job_threads.h"

#include <pthread.h>

#include <algorithm>
#include <iterator>
#include <utility>

namespace driftscope {

void JobThreads::Run(std::function<void()> job) {
  std::vector<std::unique_ptr<Slot>> exited;
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      Slot* slot = idle_.back();
      idle_.pop_back();
      slot->job = std::move(job);  // its thread wakes in Loop's Await
      return;
    }
    // Threads that left because enough were idle are joined here, so a
    // burst of calls leaves no unjoined threads behind.
    auto left = std::stable_partition(
        slots_.begin(), slots_.end(),
        [](const std::unique_ptr<Slot>& s) { return !s->exit; });
    std::move(left, slots_.end(), std::back_inserter(exited));
    slots_.erase(left, slots_.end());
    auto slot = std::make_unique<Slot>();
    slot->job = std::move(job);
    Slot* s = slot.get();
    slot->thread = std::thread([this, s] { Loop(s); });
    slots_.push_back(std::move(slot));
  }
  for (auto& s : exited) s->thread.join();
}

void JobThreads::Loop(Slot* slot) {
  pthread_setname_np(pthread_self(), "driftscope-run");  // for ps and top
  for (;;) {
    std::function<void()> job;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [slot] { return slot->job != nullptr || slot->exit; };
      mu_.Await(absl::Condition(&ready));
      if (slot->job == nullptr) return;
      job = std::move(slot->job);
      slot->job = nullptr;
    }
    job();
    job = nullptr;  // the job's captures go before the thread idles
    absl::MutexLock lock(&mu_);
    if (stopping_ || static_cast<int>(idle_.size()) >= kMaxIdle) {
      slot->exit = true;  // joined by the destructor
      return;
    }
    idle_.push_back(slot);
  }
}

int JobThreads::idle() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(idle_.size());
}

JobThreads::~JobThreads() {
  std::vector<std::unique_ptr<Slot>> slots;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (Slot* s : idle_) s->exit = true;
    idle_.clear();
    slots = std::move(slots_);
  }
  for (auto& s : slots) s->thread.join();
}

}  // namespace driftscope
