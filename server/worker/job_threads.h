// JobThreads: the threads worker jobs run on, kept after a job for the
// next one.
//
// A job on a brand-new thread cost the default job ~5% more CPU than the
// same job on a thread that had run one before (thread-local GEMM scratch
// and the allocator's arena start cold), so finished threads wait for the
// next job, up to kMaxIdle of them. Run() never waits: with no idle thread
// it starts one, so a request that will be refused is not queued behind
// long runs. Safe for concurrent use; the destructor joins every thread
// (jobs must have ended by then).
#ifndef DRIFTSCOPE_SERVER_WORKER_JOB_THREADS_H_
#define DRIFTSCOPE_SERVER_WORKER_JOB_THREADS_H_

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace driftscope {

class JobThreads {
 public:
  static constexpr int kMaxIdle = 4;

  JobThreads() = default;
  ~JobThreads();
  JobThreads(const JobThreads&) = delete;
  JobThreads& operator=(const JobThreads&) = delete;

  // Runs `job` on an idle thread, or on a new one.
  void Run(std::function<void()> job);

  // Threads waiting for a job.
  int idle() const;

 private:
  struct Slot {
    std::function<void()> job;  // set while the slot has work
    bool exit = false;          // leave the loop instead of waiting
    std::thread thread;
  };
  void Loop(Slot* slot);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);
  std::vector<Slot*> idle_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_SERVER_WORKER_JOB_THREADS_H_
