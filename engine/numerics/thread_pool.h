// ThreadPool: a fixed set of threads that runs index-parallel loops.
//
// ParallelFor(n, fn) calls fn(i) for every i in [0, n) and returns when all
// are done. Which thread runs which index is unspecified, so callers must make
// each fn(i) independent (no shared reductions). Safe for one caller at a time.
#ifndef DRIFTSCOPE_ENGINE_NUMERICS_THREAD_POOL_H_
#define DRIFTSCOPE_ENGINE_NUMERICS_THREAD_POOL_H_

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace driftscope {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void ParallelFor(int n, const std::function<void(int)>& fn);

 private:
  void WorkerLoop();
  void RunIndices();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  const std::function<void(int)>* fn_ = nullptr;  // guarded by mu_
  int n_ = 0;                                     // guarded by mu_
  int next_ = 0;                                  // guarded by mu_
  int active_ = 0;                                // guarded by mu_
  long generation_ = 0;                           // guarded by mu_
  bool stop_ = false;                             // guarded by mu_
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_NUMERICS_THREAD_POOL_H_
