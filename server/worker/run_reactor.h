// RunReactor: one driftscope.v1.Worker/Run call on gRPC's callback API.
//
// The job runs through WorkerService::Run on one of the worker's job threads
// (never on a gRPC thread). Its events go into a bounded queue that the reactor
// writes one after the other, so the job prepares the next tensor chunk
// while the previous one is on the wire, and a burst of fingerprints or
// chunks costs the job no thread hop per event. The method is registered raw
// (byte buffers): the job thread serializes each event itself, and a tensor
// chunk's buffer refers to the result array instead of a copy of it
// (event_wire.h). The last event (done or
// failed) travels with the status. Cancellation (the client cancels, the
// deadline passes, a drain runs out of grace) arrives as OnCancel and is a
// flag the job reads after every training step at no cost (the sync API's
// IsCancelled() polled the call, ~4% of a small job's time).
//
// A reader that stops reading would otherwise hold the run's slot for as
// long as it keeps the call open: the job waits for room in the queue. When
// the job has waited and no write has completed for `reader_timeout`, the
// call is cancelled, the job stops and its slot is free.
//
// Owned by gRPC: created per call, deleted in OnDone, which comes only after
// the job has finished the call (the job touches nothing of the reactor
// after that). Its methods are called by gRPC and by the job thread; shared
// state is under mu_.
#ifndef DRIFTSCOPE_SERVER_WORKER_RUN_REACTOR_H_
#define DRIFTSCOPE_SERVER_WORKER_RUN_REACTOR_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "driftscope/v1/worker.pb.h"
#include "server/worker/job_threads.h"
#include "server/worker/worker_service.h"

namespace driftscope {

class RunReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // Parses `request` and starts the run on `threads`, or finishes the call at
  // once with `refusal` when it is not OK (authentication), or with
  // INVALID_ARGUMENT when the request does not parse. `service` and
  // `threads` outlive the reactor. `reader_timeout`: see above (infinite:
  // never).
  RunReactor(grpc::CallbackServerContext* context, WorkerService* service,
             JobThreads* threads, const grpc::ByteBuffer& request,
             const grpc::Status& refusal, absl::Duration reader_timeout);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  ~RunReactor() override = default;

  // The job thread's sinks: queue an event, serialized, waiting while the
  // queue is full. False once the call is cancelled or broken.
  bool Enqueue(const v1::RunEvent& event);
  bool EnqueueChunk(const v1::RunEvent& event,
                    std::shared_ptr<const NdArray> owner, const uint8_t* data,
                    size_t size);
  bool Push(grpc::ByteBuffer buffer, bool last);
  // The job has ended with `status` (its error reason, if any, goes into
  // the trailing metadata). The job's last touch of the reactor.
  void Complete(const absl::Status& status);

  // What to hand gRPC next: decided under mu_, done without it (gRPC is
  // never called under the lock).
  struct Step {
    enum Action { kNone, kWrite, kWriteAndFinish, kFinish } action = kNone;
    grpc::WriteOptions options;
    grpc::Status status;
  };
  // The next write when none is in flight, or the finish once the job has
  // completed (or the call broke) and the queue is empty.
  Step NextStep() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Take(Step step);
  bool HasRoomOrBroken() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::CallbackServerContext* const context_;
  WorkerService* const service_;
  const absl::Duration reader_timeout_;
  v1::RunRequest request_;  // read by the job thread only
  std::atomic<bool> cancelled_{false};

  absl::Mutex mu_;
  std::deque<grpc::ByteBuffer> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // done/failed, held back to travel with the status.
  std::optional<grpc::ByteBuffer> last_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> status_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;  // a write is in flight
  bool broken_ ABSL_GUARDED_BY(mu_) = false;   // cancelled or a write failed
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // When the reader last took something: the start, or a write that
  // completed.
  absl::Time last_progress_ ABSL_GUARDED_BY(mu_);
  // The buffer gRPC is writing; untouched until its OnWriteDone (or, for
  // the last one, until OnDone).
  grpc::ByteBuffer in_flight_;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_SERVER_WORKER_RUN_REACTOR_H_
