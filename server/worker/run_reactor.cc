#include "server/worker/run_reactor.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include <iostream>
#include <utility>

#include "proto/lib/event_wire.h"
#include "proto/lib/status.h"

namespace driftscope {

namespace {

// Events waiting for the wire, in bytes: a few 1 MiB chunks keep the writer
// busy while the job prepares the next, and bound the memory of a run.
constexpr int64_t kMaxQueuedBytes = int64_t{4} << 20;

}  // namespace

RunReactor::RunReactor(grpc::CallbackServerContext* context,
                       WorkerService* service, JobThreads* threads,
                       const grpc::ByteBuffer& request,
                       const grpc::Status& refusal,
                       absl::Duration reader_timeout)
    : context_(context),
      service_(service),
      reader_timeout_(reader_timeout),
      last_progress_(absl::Now()) {
  grpc::Status status = refusal;
  if (status.ok()) {
    grpc::ByteBuffer bytes(request);  // shares the slices
    if (!grpc::SerializationTraits<v1::RunRequest>::Deserialize(&bytes,
                                                                &request_)
             .ok()) {
      status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "the request is not a driftscope.v1.RunRequest");
    }
  }
  if (!status.ok()) {
    {
      absl::MutexLock lock(&mu_);
      finished_ = true;
    }
    Finish(status);
    return;
  }
  threads->Run([this] {
    // Let go of after the last event and the status have been handed over.
    std::vector<std::shared_ptr<const NdArray>> spent;
    const absl::Status s = service_->Run(
        request_, [this] { return cancelled_.load(std::memory_order_relaxed); },
        [this](v1::RunEvent& e) { return Enqueue(e); },
        [this](v1::RunEvent& e, std::shared_ptr<const NdArray> owner,
               const uint8_t* data, size_t size) {
          return EnqueueChunk(e, std::move(owner), data, size);
        },
        &spent);
    Complete(s);
    // `this` may be gone from here on (see Complete).
  });
}

bool RunReactor::HasRoomOrBroken() const {
  return broken_ || queued_bytes_ < kMaxQueuedBytes;
}

bool RunReactor::Enqueue(const v1::RunEvent& event) {
  // Serialized here, on the job thread, outside the lock.
  return Push(SerializeRunEvent(event), event.has_done() || event.has_failed());
}

bool RunReactor::EnqueueChunk(const v1::RunEvent& event,
                              std::shared_ptr<const NdArray> owner,
                              const uint8_t* data, size_t size) {
  return Push(SerializeChunkEvent(event, std::move(owner), data, size), false);
}

bool RunReactor::Push(grpc::ByteBuffer buffer, bool last) {
  Step step;
  bool stalled = false;
  {
    absl::MutexLock lock(&mu_);
    const absl::Condition room(this, &RunReactor::HasRoomOrBroken);
    // Waits while the reader makes progress: a completed write moves
    // last_progress_ on.
    while (!mu_.AwaitWithDeadline(room, last_progress_ + reader_timeout_)) {
      if (absl::Now() - last_progress_ >= reader_timeout_) {
        stalled = true;
        broken_ = true;
        cancelled_.store(true);
        break;
      }
    }
    if (broken_ && !stalled) return false;
    if (!stalled && last) {
      last_.emplace();
      last_->Swap(&buffer);
      return true;  // written with the status when the job completes
    }
    if (!stalled) {
      queued_bytes_ += static_cast<int64_t>(buffer.Length());
      queue_.emplace_back();
      queue_.back().Swap(&buffer);
      step = NextStep();
    }
  }
  if (stalled) {
    std::cerr << "driftscope-worker: run \"" << request_.run_id()
              << "\": the client read nothing for "
              << absl::FormatDuration(reader_timeout_)
              << " (--reader_timeout); the run is cancelled\n";
    // The job has not completed, so the call is not finished and the
    // reactor is alive: OnDone cannot come before the job's Complete.
    context_->TryCancel();
    return false;
  }
  Take(std::move(step));
  return true;
}

void RunReactor::Complete(const absl::Status& status) {
  // Before the status is set: nothing finishes the call until then.
  if (const std::string reason = ErrorReason(status); !reason.empty()) {
    context_->AddTrailingMetadata(kErrorReasonKey, reason);
  }
  // The status and the decision in one critical section: once the status
  // is set another thread may finish the call, and OnDone then deletes the
  // reactor; this thread touches it no more unless it finishes it itself.
  Step step;
  {
    absl::MutexLock lock(&mu_);
    status_ = ToGrpcStatus(status);
    step = NextStep();
  }
  Take(std::move(step));
}

RunReactor::Step RunReactor::NextStep() {
  Step step;
  if (writing_ || finished_) return step;
  if (broken_) {
    if (!status_.has_value()) return step;  // the job stops within a step
    finished_ = true;
    step.status = *status_;
    step.action = Step::kFinish;
  } else if (!queue_.empty()) {
    in_flight_.Swap(&queue_.front());
    queue_.pop_front();
    queued_bytes_ -= static_cast<int64_t>(in_flight_.Length());
    writing_ = true;
    // More is already waiting: gRPC may coalesce this one with it.
    if (!queue_.empty() || last_.has_value()) step.options.set_buffer_hint();
    step.action = Step::kWrite;
  } else if (status_.has_value()) {
    finished_ = true;
    step.status = *status_;
    if (last_.has_value()) {
      in_flight_.Swap(&*last_);
      step.action = Step::kWriteAndFinish;
    } else {
      step.action = Step::kFinish;
    }
  }
  return step;
}

void RunReactor::Take(Step step) {
  // The reactor stays alive through the call below: only a finish lets
  // OnDone run, and only the thread that decided it makes it.
  switch (step.action) {
    case Step::kNone:
      break;
    case Step::kWrite:
      StartWrite(&in_flight_, step.options);
      break;
    case Step::kWriteAndFinish:
      StartWriteAndFinish(&in_flight_, step.options, std::move(step.status));
      break;
    case Step::kFinish:
      Finish(std::move(step.status));
      break;
  }
}

void RunReactor::OnWriteDone(bool ok) {
  Step step;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (ok) last_progress_ = absl::Now();
    if (!ok) {
      broken_ = true;
      cancelled_.store(true);
    }
    step = NextStep();
  }
  Take(std::move(step));
}

void RunReactor::OnCancel() {
  cancelled_.store(true);
  Step step;
  {
    absl::MutexLock lock(&mu_);
    broken_ = true;
    step = NextStep();
  }
  Take(std::move(step));
}

void RunReactor::OnDone() { delete this; }

}  // namespace driftscope
