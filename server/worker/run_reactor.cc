#include "server/worker/run_reactor.h"

#include <utility>

#include "server/common/status.h"

namespace driftscope {

namespace {

// Events waiting for the wire, in bytes: a few 1 MiB chunks keep the writer
// busy while the job prepares the next, and bound the memory of a run.
constexpr int64_t kMaxQueuedBytes = int64_t{4} << 20;

constexpr size_t kSpareEvents = 2;

int64_t EventBytes(const v1::RunEvent& e) {
  return 64 + (e.has_tensor_chunk()
                   ? static_cast<int64_t>(e.tensor_chunk().data().size())
                   : 0);
}

}  // namespace

RunReactor::RunReactor(WorkerService* service, JobThreads* threads,
                       const v1::RunRequest* request,
                       const grpc::Status& refusal)
    : service_(service), request_(request) {
  if (!refusal.ok()) {
    {
      absl::MutexLock lock(&mu_);
      finished_ = true;
    }
    Finish(refusal);
    return;
  }
  threads->Run([this] {
    std::vector<NamedArray> spent;  // freed once the client has its result
    const absl::Status s = service_->Run(
        *request_,
        [this] { return cancelled_.load(std::memory_order_relaxed); },
        [this](v1::RunEvent& e) { return Enqueue(e); }, &spent);
    Complete(ToGrpcStatus(s));
    // `this` may be gone from here on: OnDone can run once Complete has
    // finished the call.
  });
}

bool RunReactor::HasRoomOrBroken() const {
  return broken_ || queued_bytes_ < kMaxQueuedBytes;
}

bool RunReactor::Enqueue(v1::RunEvent& event) {
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &RunReactor::HasRoomOrBroken));
    if (broken_) return false;
    if (event.has_done() || event.has_failed()) {
      last_.emplace();
      last_->Swap(&event);
      return true;  // written with the status by Complete's Pump
    }
    queued_bytes_ += EventBytes(event);
    queue_.emplace_back();
    queue_.back().Swap(&event);
    if (!spare_.empty()) {
      event.Swap(&spare_.back());
      spare_.pop_back();
    }
  }
  Pump();
  return true;
}

void RunReactor::Complete(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    status_ = status;
  }
  Pump();
}

void RunReactor::Pump() {
  enum class Action { kWrite, kWriteAndFinish, kFinish };
  Action action;
  grpc::WriteOptions options;
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_) return;
    if (broken_) {
      if (!status_.has_value()) return;  // the job stops within a step
      finished_ = true;
      status = *status_;
      action = Action::kFinish;
    } else if (!queue_.empty()) {
      in_flight_.Swap(&queue_.front());
      if (spare_.size() < kSpareEvents) {
        spare_.emplace_back();
        spare_.back().Swap(&queue_.front());
      }
      queue_.pop_front();
      queued_bytes_ -= EventBytes(in_flight_);
      writing_ = true;
      // More is already waiting: gRPC may coalesce this one with it.
      if (!queue_.empty() || last_.has_value()) options.set_buffer_hint();
      action = Action::kWrite;
    } else if (status_.has_value()) {
      finished_ = true;
      status = *status_;
      if (last_.has_value()) {
        in_flight_.Swap(&*last_);
        action = Action::kWriteAndFinish;
      } else {
        action = Action::kFinish;
      }
    } else {
      return;
    }
  }
  // Once the call is finished OnDone may delete this reactor on another
  // thread: nothing below touches a member after the gRPC call.
  switch (action) {
    case Action::kWrite:
      StartWrite(&in_flight_, options);
      break;
    case Action::kWriteAndFinish:
      StartWriteAndFinish(&in_flight_, options, std::move(status));
      break;
    case Action::kFinish:
      Finish(std::move(status));
      break;
  }
}

void RunReactor::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      broken_ = true;
      cancelled_.store(true);
    }
  }
  Pump();
}

void RunReactor::OnCancel() {
  cancelled_.store(true);
  {
    absl::MutexLock lock(&mu_);
    broken_ = true;
  }
  Pump();
}

void RunReactor::OnDone() { delete this; }

}  // namespace driftscope
