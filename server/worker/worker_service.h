// WorkerService: what a worker does for one RunRequest, without gRPC.
//
// Checks a request completely (spec, profile, supplied tensors, this
// worker's size limits, free run slots) before any work, then runs the job
// with the engine and hands the RunEvents of worker.proto to a sink:
// accepted, progress, fingerprints, tensor chunks, done or failed. The gRPC
// service (worker_server.h) is a thin layer over this. Safe for concurrent
// use: each Run() call owns its run; slots and run ids are under a mutex.
#ifndef DRIFTSCOPE_SERVER_WORKER_WORKER_SERVICE_H_
#define DRIFTSCOPE_SERVER_WORKER_WORKER_SERVICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "driftscope/v1/worker.pb.h"
#include "engine/job/job_limits.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "engine/train/run_result.h"

namespace driftscope {

struct WorkerServiceOptions {
  std::string default_profile = "fp32";  // preset or knob string
  int max_concurrent_runs = 1;
  JobLimits limits;
  // --device: the GPU every device=cuda run of this worker uses (the run
  // reports cuda:N); -1: the index the profile names (0 for the presets).
  int cuda_device = -1;
  // Memory the runs of this worker may use together, in bytes; a run whose
  // estimate (EstimateJobMemory) is above it is refused before any work,
  // and one that does not fit beside the runs in progress waits (busy).
  // 0: no limit. main.cc defaults it from the machine's or cgroup's memory.
  int64_t max_memory_bytes = 0;
};

struct CudaInfo;
// OK for -1 or a GPU `cuda` lists; otherwise FailedPrecondition naming the
// GPUs there are, or why there are none.
absl::Status CheckCudaDeviceFlag(const CudaInfo& cuda, int device);

class WorkerService {
 public:
  // Returns false when the receiver is gone (the run is then cancelled).
  // May take the event's contents (Swap them out): each event is built
  // afresh for the sink.
  using EventSink = std::function<bool(v1::RunEvent&)>;
  // Takes a tensor chunk without a copy of its data: `event` holds a
  // tensor_chunk with every field but data, which is the `size` bytes at
  // `data` inside `owner` (event_wire.h sends them from there). Returns
  // false when the receiver is gone.
  using ChunkSink =
      std::function<bool(v1::RunEvent& event, std::shared_ptr<const NdArray>,
                         const uint8_t* data, size_t size)>;

  // InvalidArgument when the default profile does not parse, or
  // FailedPrecondition when this machine cannot run it.
  static absl::StatusOr<std::unique_ptr<WorkerService>> Create(
      const WorkerServiceOptions& options);

  WorkerService(const WorkerService&) = delete;
  WorkerService& operator=(const WorkerService&) = delete;

  // Environment, default profile, the presets that pass Context::Check here.
  v1::DescribeResponse Describe() const;

  // Runs `request`. A bad request gets its error (InvalidArgument naming
  // the field, ResourceExhausted for limits or no free slot, Unavailable
  // while draining, FailedPrecondition for a profile this machine cannot
  // run, AlreadyExists for a repeated run_id) before any event. After
  // `accepted` the events end with exactly one `done` or `failed`, and the
  // returned status is the run's. `cancelled` is polled after every
  // training step; when it returns true the run stops before the next step
  // (Cancelled). Tensor chunks go to `chunk_sink` when it is set, else to
  // `sink` with their data copied in. When `spent` is not null it receives
  // the streamed result tensors, for the caller to let go of after the call
  // has ended (unmapping a large result takes tens of milliseconds the client
  // need not wait for).
  absl::Status Run(
      const v1::RunRequest& request, const std::function<bool()>& cancelled,
      const EventSink& sink, const ChunkSink& chunk_sink = nullptr,
      std::vector<std::shared_ptr<const NdArray>>* spent = nullptr);

  int active_runs() const;

  // Draining: from now on Run() refuses new runs with Unavailable (the
  // caller should go to another worker); runs in progress go on.
  void StopAccepting();
  // Waits until no run is in progress or `deadline` has passed; true when
  // none is.
  bool WaitUntilIdle(absl::Time deadline) const;

 private:
  struct Prepared;
  explicit WorkerService(const WorkerServiceOptions& options,
                         std::vector<std::string> presets);
  absl::StatusOr<Prepared> Prepare(const v1::RunRequest& request) const;
  absl::Status AcquireSlot(const std::string& run_id, int64_t memory_bytes);
  void ReleaseSlot(int64_t memory_bytes);

  const WorkerServiceOptions options_;
  const std::vector<std::string> presets_;
  mutable absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t reserved_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // estimates of active_
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  std::set<std::string> run_ids_ ABSL_GUARDED_BY(mu_);
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_SERVER_WORKER_WORKER_SERVICE_H_
