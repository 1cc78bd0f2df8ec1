#include "server/coordinator/scheduler.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proto/lib/environment_convert.h"
#include "proto/lib/status.h"
#include "proto/lib/tensor_stream.h"
#include "server/coordinator/job_plan.h"
#include "server/coordinator/placement.h"
#include "server/coordinator/result_check.h"

namespace driftscope::coordinator {

namespace {

// The worker of an attempt that found no eligible worker.
constexpr char kNoWorker[] = "(none)";

// Attempts a run may spend on busy workers beyond --max_attempts.
constexpr int kBusyRetries = 30;

// Workers a run may lose before it is taken for the cause: a run that
// crashes every worker it is sent to would otherwise take down the fleet
// one worker at a time (issue: one submission killed both workers).
constexpr int kMaxWorkersLost = 2;
// How a lost worker's attempt message starts: "worker \"NAME\" lost: ...".
// RecoverUnfinished counts these after a restart.
constexpr char kLostMarker[] = "\" lost: ";

// Whether an attempt ended because its worker went away under it: its
// lease expired, or the connection broke (UNAVAILABLE), unless the worker
// said it was draining.
bool WorkerLost(bool lease_expired, const absl::Status& s) {
  return lease_expired || (s.code() == absl::StatusCode::kUnavailable &&
                           ErrorReason(s) != kReasonWorkerDraining);
}

// Whether another attempt may succeed where this one failed.
bool Retryable(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kCancelled:  // the worker drained
      return true;
    case absl::StatusCode::kResourceExhausted:
      // The slot check, not a size limit.
      return ErrorReason(s) == kReasonWorkerBusy;
    default:
      return false;
  }
}

}  // namespace

struct Scheduler::ActiveJob {
  std::string job_id;
  JobSpec spec;
  std::vector<NdArray> init_weights;
  int64_t total_steps = 0;
  int unfinished = 0;
  bool any_failed = false;
};

struct Scheduler::Pending {
  std::string run_id, job_id, worker, profile;
  int next_attempt = 1;
  int failures = 0;      // attempts that failed (not interrupted ones)
  int workers_lost = 0;  // attempts whose worker went away under them
  absl::Time queued_since;
  absl::Time not_before = absl::InfinitePast();
};

struct Scheduler::Attempt {
  Pending run;  // run.next_attempt is this attempt's number
  std::string worker, address;
  std::shared_ptr<ActiveJob> job;
  v1::RunInfo info;  // as of the start, for progress events
  std::atomic<bool> cancel{false};
  Abort abort = Abort::kNone;  // under mu_
  std::thread thread;
};

struct Scheduler::Outcome {
  Pending run;  // run.next_attempt: the attempt that ended
  int32_t code = 0;
  std::string message;
  // Set: the run goes back to the queue as this; unset: the run fails.
  std::optional<Pending> requeue;
};

// What the scheduler knows of a run from its row: the next attempt and the
// budgets its earlier attempts used.
std::unique_ptr<Scheduler::Pending> Scheduler::PendingFromRow(const RunRow& r,
                                                              absl::Time now) {
  auto p = std::make_unique<Pending>();
  p->run_id = r.run_id;
  p->job_id = r.job_id;
  p->worker = r.worker;
  p->profile = r.profile;
  p->next_attempt = r.current_attempt + 1;
  for (const AttemptRow& a : r.attempts) {
    if (a.outcome == "failed") ++p->failures;
    if (a.outcome == "failed" &&
        a.code == static_cast<int32_t>(absl::StatusCode::kUnavailable) &&
        absl::StrContains(a.message, kLostMarker)) {
      ++p->workers_lost;
    }
  }
  p->queued_since = now;
  return p;
}

Scheduler::Scheduler(Store* store, WorkerRegistry* registry,
                     WorkerConnector* connector, JobEventHub* events,
                     SchedulerOptions options)
    : store_(store),
      registry_(registry),
      connector_(connector),
      events_(events),
      options_(std::move(options)) {}

Scheduler::~Scheduler() { Shutdown(absl::ZeroDuration()); }

int64_t Scheduler::NowMs() const {
  return absl::ToUnixMillis(options_.clock());
}

absl::Status Scheduler::Start() {
  started_ = options_.clock();
  ProbeStaticWorkers();
  registry_->SetLossListener(
      [this](const std::string& name) { OnWorkerLost(name); });
  absl::StatusOr<std::vector<std::string>> unfinished =
      store_->RecoverUnfinished(NowMs());
  if (!unfinished.ok()) return unfinished.status();
  for (const std::string& id : *unfinished) {
    if (absl::Status s = AddJob(id); !s.ok()) return s;
  }
  dispatcher_ = std::thread([this] { DispatchLoop(); });
  ticker_ = std::thread([this] { TickLoop(); });
  return absl::OkStatus();
}

absl::Status Scheduler::AddJob(const std::string& job_id) {
  absl::StatusOr<JobRow> job = store_->GetJob(job_id);
  if (!job.ok()) return job.status();
  absl::StatusOr<std::vector<RunRow>> runs = store_->GetRuns(job_id);
  if (!runs.ok()) return runs.status();
  if (IsTerminal(job->state)) return absl::OkStatus();
  absl::StatusOr<JobSpec> spec = CheckedJobSpec(job->spec);
  if (!spec.ok()) {
    return absl::InternalError(absl::StrCat(
        "stored job ", job_id, " has a bad spec: ", spec.status().message()));
  }
  auto active = std::make_shared<ActiveJob>();
  active->job_id = job_id;
  active->spec = *spec;
  for (size_t i = 0; i < job->init_weights.size(); ++i) {
    absl::StatusOr<NdArray> w = TensorFromProto(
        job->init_weights[i], absl::StrCat("init_weights[", i, "]"));
    if (!w.ok()) return w.status();
    active->init_weights.push_back(*std::move(w));
  }
  const int64_t batch = std::max(1, spec->training.batch_size);
  active->total_steps = (spec->data.samples + batch - 1) / batch *
                        static_cast<int64_t>(spec->training.epochs);
  std::list<std::unique_ptr<Pending>> pending;
  const absl::Time now = options_.clock();
  for (const RunRow& r : *runs) {
    if (!IsTerminal(r.state)) ++active->unfinished;
    if (r.state == v1::RUN_FAILED) active->any_failed = true;
    if (r.state != v1::RUN_QUEUED) continue;
    pending.push_back(PendingFromRow(r, now));
  }
  if (active->unfinished == 0) {
    // Every run ended before a crash let the job finish.
    const v1::JobState state =
        active->any_failed ? v1::JOB_FAILED : v1::JOB_SUCCEEDED;
    if (absl::Status s = store_->FinishJob(job_id, state, NowMs()); !s.ok()) {
      return s;
    }
    v1::JobEvent e;
    e.set_job_state(state);
    events_->Publish(job_id, e);
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  if (jobs_.count(job_id) > 0) return absl::OkStatus();
  jobs_[job_id] = std::move(active);
  queue_.splice(queue_.end(), pending);
  dirty_ = true;
  wake_.Signal();
  return absl::OkStatus();
}

void Scheduler::JobCancelled(const std::string& job_id) {
  {
    absl::MutexLock lock(&mu_);
    jobs_.erase(job_id);
    queue_.remove_if(
        [&](const std::unique_ptr<Pending>& p) { return p->job_id == job_id; });
    for (auto& [run_id, a] : in_flight_) {
      if (a->run.job_id != job_id) continue;
      a->abort = Abort::kJobCancelled;
      a->cancel.store(true);
    }
  }
  absl::StatusOr<std::vector<RunRow>> runs = store_->GetRuns(job_id);
  if (runs.ok()) {
    for (const RunRow& r : *runs) {
      v1::JobEvent e;
      *e.mutable_run_update() = RunInfoFromRow(r, std::nullopt);
      events_->Publish(job_id, e);
    }
  }
  v1::JobEvent e;
  e.set_job_state(v1::JOB_CANCELLED);
  events_->Publish(job_id, e);
}

std::optional<RunProgress> Scheduler::Progress(
    const std::string& run_id) const {
  absl::MutexLock lock(&mu_);
  auto it = progress_.find(run_id);
  if (it == progress_.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, int> Scheduler::RunningByWorker() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

void Scheduler::DispatchLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return dirty_ || stopping_;
      };
      // The timeout catches waits that end by time (placement timeouts,
      // back-offs) rather than by an event.
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(250));
      if (stopping_) return;
      dirty_ = false;
    }
    ReapFinished();
    DispatchOnce();
  }
}

void Scheduler::TickLoop() {
  const absl::Duration tick = std::clamp(
      registry_->lease() / 4, absl::Milliseconds(50), absl::Seconds(1));
  absl::Time next_probe = options_.clock() + options_.probe_interval;
  // The first pass right after the start.
  absl::Time next_reconcile = absl::InfinitePast();
  for (;;) {
    if (options_.clock() >= next_reconcile) {
      Reconcile();
      next_reconcile = options_.clock() + options_.reconcile_interval;
    }
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), tick)) return;
    }
    registry_->ExpireLeases();
    if (!options_.static_workers.empty() && options_.clock() >= next_probe) {
      ProbeStaticWorkers();
      next_probe = options_.clock() + options_.probe_interval;
      absl::MutexLock lock(&mu_);
      dirty_ = true;
    }
  }
}

void Scheduler::ProbeStaticWorkers() {
  std::vector<std::thread> probes;
  for (const std::string& address : options_.static_workers) {
    probes.emplace_back([this, address] {
      absl::StatusOr<WorkerDescription> d =
          connector_->Describe({address, {WorkerCredential::Kind::kFleet, ""}});
      v1::WorkerInfo info;
      info.set_name(address);
      info.set_address(address);
      if (d.ok()) info = WorkerInfoFromDescription(address, address, *d);
      registry_->UpdateStatic(info, d.ok());
    });
  }
  for (std::thread& t : probes) t.join();
}

void Scheduler::OnWorkerLost(const std::string& name) {
  absl::MutexLock lock(&mu_);
  for (auto& [run_id, a] : in_flight_) {
    if (a->worker != name || a->abort != Abort::kNone) continue;
    a->abort = Abort::kWorkerLost;
    a->cancel.store(true);
  }
  dirty_ = true;
}

void Scheduler::DispatchOnce() {
  const std::vector<WorkerView> workers = registry_->All();
  const absl::Time now = options_.clock();
  const absl::Duration grace = options_.startup_grace < absl::ZeroDuration()
                                   ? registry_->lease()
                                   : options_.startup_grace;
  struct Launchable {
    std::unique_ptr<Pending> run;
    std::string worker, address;
  };
  std::vector<Launchable> launches;
  std::vector<std::unique_ptr<Pending>> unplaceable;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    std::vector<WorkerSlots> slots;
    slots.reserve(workers.size());
    for (const WorkerView& w : workers) {
      auto it = running_.find(w.info.name());
      slots.push_back({&w.info, w.state == v1::WORKER_AVAILABLE,
                       w.info.max_concurrent_runs() -
                           (it == running_.end() ? 0 : it->second)});
    }
    const PlacementClock clock{now, now - started_ > grace,
                               options_.placement_timeout};
    for (auto it = queue_.begin(); it != queue_.end();) {
      Pending& p = **it;
      if (jobs_.count(p.job_id) == 0) {
        it = queue_.erase(it);
        continue;
      }
      if (p.not_before > now) {
        ++it;
        continue;
      }
      const Placement placed =
          PlaceRun({p.worker, p.profile, p.queued_since}, slots, clock);
      if (placed.kind == Placement::kStart) {
        WorkerSlots& target = slots[static_cast<size_t>(placed.worker)];
        --target.free_slots;
        ++running_[target.info->name()];
        writing_.insert(p.run_id);
        launches.push_back(
            {std::move(*it), target.info->name(), target.info->address()});
        it = queue_.erase(it);
      } else if (placed.kind == Placement::kGiveUp) {
        writing_.insert(p.run_id);
        unplaceable.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Launchable& l : launches) {
    std::unique_ptr<Pending> run = std::move(l.run);
    const std::string job_id = run->job_id, run_id = run->run_id;
    const int attempt = run->next_attempt;
    absl::Status s = store_->StartAttempt(run_id, attempt, l.worker, NowMs());
    auto a = std::make_unique<Attempt>();
    {
      absl::MutexLock lock(&mu_);
      auto job = jobs_.find(job_id);
      if (!s.ok() || job == jobs_.end()) {
        --running_[l.worker];
        Unmark(run_id);
        dirty_ = true;
        // FailedPrecondition: cancelled or finished meanwhile; drop it.
        if (!s.ok() && s.code() != absl::StatusCode::kFailedPrecondition &&
            job != jobs_.end()) {
          run->not_before = options_.clock() + absl::Seconds(1);
          queue_.push_back(std::move(run));
        }
        continue;
      }
      a->job = job->second;
    }
    absl::StatusOr<RunRow> row = store_->GetRun(run_id);
    if (row.ok()) a->info = RunInfoFromRow(*row, std::nullopt, false);
    if (events_->watchers(job_id) > 0) {
      v1::JobEvent e;
      *e.mutable_run_update() = a->info;
      events_->Publish(job_id, e);
    }
    a->run = std::move(*run);
    a->worker = l.worker;
    a->address = l.address;
    absl::MutexLock lock(&mu_);
    progress_[run_id] = RunProgress{0, a->job->total_steps};
    Attempt* raw = a.get();
    in_flight_[run_id] = std::move(a);
    Unmark(run_id);
    raw->thread = std::thread([this, raw] { RunAttempt(raw); });
  }
  for (std::unique_ptr<Pending>& p : unplaceable) {
    std::string reason = absl::StrCat(
        "no eligible worker for profile \"", p->profile, "\" within ",
        absl::FormatDuration(options_.placement_timeout), " (worker \"",
        p->worker,
        "\" is gone and no other available worker can run the profile)");
    FailUnplaceable(std::move(p), reason);
  }
}

void Scheduler::FailUnplaceable(std::unique_ptr<Pending> p,
                                const std::string& reason) {
  // A failure is recorded against an attempt: this one never reached a
  // worker, so its worker is kNoWorker.
  const absl::Status s =
      store_->StartAttempt(p->run_id, p->next_attempt, kNoWorker, NowMs());
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    Unmark(p->run_id);
    if (s.code() == absl::StatusCode::kFailedPrecondition) return;  // ended
    p->not_before = options_.clock() + absl::Seconds(1);
    queue_.push_back(std::move(p));
    return;
  }
  Outcome outcome;
  outcome.run = *p;
  outcome.code = static_cast<int32_t>(absl::StatusCode::kUnavailable);
  outcome.message = reason;
  Record(std::move(outcome));
}

void Scheduler::RunAttempt(Attempt* a) {
  RunOptions options;
  if (!a->job->init_weights.empty())
    options.init_weights = a->job->init_weights;
  options.cancel = &a->cancel;
  const std::string& job_id = a->run.job_id;
  options.on_progress = [this, a, &job_id](const ProgressEvent& e) {
    {
      absl::MutexLock lock(&mu_);
      progress_[a->run.run_id] = RunProgress{e.step, e.total_steps};
    }
    if (events_->watchers(job_id) == 0) return;
    v1::JobEvent event;
    v1::RunInfo* info = event.mutable_run_update();
    *info = a->info;
    info->set_step(e.step);
    info->set_total_steps(e.total_steps);
    events_->Publish(job_id, event);
  };
  RemoteRunOptions remote;
  // Per attempt: a worker refuses a run id it has seen before.
  remote.run_id = absl::StrCat(a->run.run_id, ".", a->run.next_attempt);
  remote.capture.progress_every_steps =
      static_cast<int>(std::max<int64_t>(1, a->job->total_steps / 50));
  absl::StatusOr<RunResult> result =
      connector_->Run(registry_->Target(a->worker, a->address), a->job->spec,
                      a->run.profile, options, remote);
  EndAttempt(a, &result);
}

absl::Status Scheduler::StoreResult(const Attempt& a, RunResult* result_ptr) {
  RunResult& result = *result_ptr;
  v1::RunSummary summary;
  summary.set_spec_digest(result.spec_digest);
  summary.set_profile(result.profile);
  if (std::optional<WorkerView> w = registry_->Get(a.worker)) {
    *summary.mutable_environment() = w->info.environment();
  }
  summary.set_steps(result.steps);
  summary.set_final_loss(result.steps > 0 && result.losses.size() > 0
                             ? result.losses.at(result.losses.size() - 1)
                             : std::numeric_limits<double>::quiet_NaN());
  for (const Fingerprint& f : result.fingerprints) {
    v1::Fingerprint* fp = summary.add_fingerprints();
    fp->set_step(f.step);
    fp->set_sha256(f.sha256);
    fp->set_sha256_f32(f.sha256_f32);
  }
  summary.mutable_timings()->set_init_seconds(result.timings.init_seconds);
  summary.mutable_timings()->set_train_seconds(result.timings.train_seconds);
  summary.mutable_timings()->set_eval_seconds(result.timings.eval_seconds);
  for (int64_t d : result.outputs.shape()) summary.add_output_shape(d);
  SetDeviceRun(result.device, &summary);
  for (const NamedArray& t : TakeResultTensors(&result, CaptureSet{})) {
    const absl::string_view bytes(reinterpret_cast<const char*>(t.array.raw()),
                                  static_cast<size_t>(t.array.nbytes()));
    // The client checked a received tensor against its digest: not hashed
    // a second time here.
    const auto verified = result.tensor_sha256.find(t.name);
    absl::StatusOr<std::string> sha =
        verified != result.tensor_sha256.end()
            ? store_->blobs().PutVerified(bytes, verified->second)
            : store_->blobs().Put(bytes);
    if (!sha.ok()) return sha.status();
    v1::TensorInfo* info = summary.add_tensors();
    info->set_name(t.name);
    info->set_dtype(DTypeToProto(t.array.dtype()));
    for (int64_t d : t.array.shape()) info->add_shape(d);
    info->set_size_bytes(t.array.nbytes());
    info->set_sha256(*sha);
  }
  return store_->CompleteRun(a.run.run_id, a.run.next_attempt, summary,
                             NowMs());
}

void Scheduler::EndAttempt(Attempt* a, absl::StatusOr<RunResult>* result_ptr) {
  absl::StatusOr<RunResult>& result = *result_ptr;
  Abort abort;
  {
    absl::MutexLock lock(&mu_);
    abort = a->abort;
  }
  const std::string& job_id = a->run.job_id;
  const std::string& run_id = a->run.run_id;
  const int attempt = a->run.next_attempt;
  // Leaves in_flight_; `recording`: a Record of this run's end follows (the
  // run is marked as being written until it is done).
  auto finish = [&](bool recording = false) {
    absl::MutexLock lock(&mu_);
    --running_[a->worker];
    progress_.erase(run_id);
    if (recording) writing_.insert(run_id);
    auto it = in_flight_.find(run_id);
    if (it != in_flight_.end() && it->second.get() == a) {
      finished_.push_back(std::move(it->second));
      in_flight_.erase(it);
    }
    dirty_ = true;
  };

  absl::Status failure;
  // A result unlike the job (another spec, another profile, wrong shapes or
  // dtypes) fails the attempt with the reason and is not stored; another
  // worker may give the right one.
  absl::Status unlike_the_job;
  if (result.ok() && abort != Abort::kJobCancelled) {
    unlike_the_job =
        CheckResultAgainstJob(a->job->spec, a->run.profile, *result);
  }
  if (!unlike_the_job.ok()) {
    failure = unlike_the_job;
  } else if (result.ok() && abort != Abort::kJobCancelled) {
    const absl::Status s = StoreResult(*a, &*result);
    if (s.ok()) {
      PublishRun(job_id, run_id);
      RunEnded(job_id, /*failed=*/false);
      return finish();
    }
    // Cancelled meanwhile, or a superseded attempt: nothing was stored.
    if (s.code() == absl::StatusCode::kFailedPrecondition) return finish();
    failure = absl::InternalError(
        absl::StrCat("storing the result failed: ", s.message()));
  } else if (abort == Abort::kJobCancelled || abort == Abort::kShutdown) {
    // Cancelled: the store already ended the attempt. Shut down: it stays
    // in flight and RecoverUnfinished queues it again on the next start.
    return finish();
  } else if (abort == Abort::kWorkerLost) {
    failure = absl::UnavailableError(absl::StrCat(
        "worker \"", a->worker, "\" lost: no heartbeat within its lease"));
  } else {
    failure = result.status();
    if (failure.code() == absl::StatusCode::kUnavailable) {
      registry_->MarkUnreachable(a->worker);
      if (WorkerLost(false, failure)) {
        failure = absl::UnavailableError(absl::StrCat(
            "worker \"", a->worker, kLostMarker, failure.message()));
      }
    }
    if (failure.code() == absl::StatusCode::kDeadlineExceeded) {
      failure = absl::DeadlineExceededError(
          absl::StrCat("the run exceeded the coordinator's --run_deadline: ",
                       failure.message()));
    }
  }
  const bool lost = WorkerLost(abort == Abort::kWorkerLost, failure);
  const int workers_lost = a->run.workers_lost + (lost ? 1 : 0);
  Outcome outcome;
  outcome.run = a->run;
  outcome.code = static_cast<int32_t>(failure.code());
  outcome.message = std::string(failure.message());
  if (lost && workers_lost >= kMaxWorkersLost) {
    outcome.message = absl::StrCat(
        "lost ", workers_lost,
        " workers under this run; it is not sent to another, since the run "
        "itself may be what brings them down (too large, or a crash in the "
        "engine). Last: ",
        failure.message());
    finish(/*recording=*/true);
    return Record(std::move(outcome));
  }
  const bool retryable = abort == Abort::kWorkerLost || Retryable(failure);
  // A worker busy with someone else's run (or with the remains of an
  // attempt orphaned by a coordinator restart) is no failure of the run:
  // it is tried again a second later, within a separate budget.
  const bool busy =
      retryable && failure.code() == absl::StatusCode::kResourceExhausted;
  const int failures = a->run.failures + (busy ? 0 : 1);
  const bool budget_left = busy ? attempt < options_.max_attempts + kBusyRetries
                                : failures < options_.max_attempts;
  if (retryable && budget_left) {
    Pending& next = outcome.requeue.emplace(a->run);
    next.next_attempt = attempt + 1;
    next.failures = failures;
    next.workers_lost = workers_lost;
    next.queued_since = options_.clock();
    if (busy) next.not_before = options_.clock() + absl::Seconds(1);
  } else if (retryable) {
    outcome.message =
        absl::StrCat("gave up after ", attempt,
                     " attempts (--max_attempts=", options_.max_attempts,
                     "); last: ", failure.message());
  }
  finish(/*recording=*/true);
  Record(std::move(outcome));
}

void Scheduler::Record(Outcome o) {
  const std::string job_id = o.run.job_id, run_id = o.run.run_id;
  // Clients read the message (GetJob): the operator's log keeps the paths.
  if (std::string shown = RedactServerPaths(o.message); shown != o.message) {
    Log(absl::StrCat("run ", run_id, " attempt ", o.run.next_attempt, ": ",
                     o.message));
    o.message = std::move(shown);
  }
  const bool retry = o.requeue.has_value();
  const absl::Status s = store_->FailAttempt(run_id, o.run.next_attempt, o.code,
                                             o.message, retry, NowMs());
  if (!s.ok() && !absl::IsFailedPrecondition(s)) {
    Log(absl::StrCat("cannot record the end of attempt ", o.run.next_attempt,
                     " of run ", run_id, ": ", s.ToString(),
                     "; the reconciler tries again every ",
                     absl::FormatDuration(options_.reconcile_interval)));
  }
  {
    absl::MutexLock lock(&mu_);
    Unmark(run_id);
    // FailedPrecondition: the run moved on (cancelled): nothing to do.
    if (absl::IsFailedPrecondition(s)) return;
    if (!s.ok()) {
      unrecorded_.push_back(std::move(o));
      return;
    }
    if (retry) {
      queue_.push_back(std::make_unique<Pending>(*std::move(o.requeue)));
      dirty_ = true;
    }
  }
  PublishRun(job_id, run_id);
  if (!retry) RunEnded(job_id, /*failed=*/true);
}

void Scheduler::RunEnded(const std::string& job_id, bool failed) {
  bool any_failed = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return;
    ActiveJob& job = *it->second;
    job.any_failed = job.any_failed || failed;
    if (--job.unfinished > 0) return;
    any_failed = job.any_failed;
    jobs_.erase(it);
  }
  FinishJob(job_id, any_failed ? v1::JOB_FAILED : v1::JOB_SUCCEEDED);
}

void Scheduler::FinishJob(const std::string& job_id, v1::JobState state) {
  const absl::Status s = store_->FinishJob(job_id, state, NowMs());
  if (s.ok()) {
    v1::JobEvent e;
    e.set_job_state(state);
    events_->Publish(job_id, e);
    return;
  }
  if (absl::IsFailedPrecondition(s)) return;  // cancelled meanwhile
  Log(absl::StrCat("cannot record the end of job ", job_id, ": ", s.ToString(),
                   "; the reconciler tries again"));
  absl::MutexLock lock(&mu_);
  unfinished_jobs_[job_id] = state;
}

void Scheduler::Unmark(const std::string& run_id) {
  auto it = writing_.find(run_id);
  if (it != writing_.end()) writing_.erase(it);
}

void Scheduler::Log(const std::string& line) const {
  if (options_.log) return options_.log(line);
  std::cerr << "driftscope-coordinator: " << line << "\n";
}

int Scheduler::Reconcile() {
  std::vector<Outcome> outcomes;
  std::map<std::string, v1::JobState> jobs;
  {
    absl::MutexLock lock(&mu_);
    outcomes.swap(unrecorded_);
    jobs.swap(unfinished_jobs_);
    // Marked while Record writes them, so the scan below leaves them alone.
    for (const Outcome& o : outcomes) writing_.insert(o.run.run_id);
  }
  int recovered = 0;
  for (Outcome& o : outcomes) {
    const std::string run_id = o.run.run_id;
    Record(std::move(o));
    absl::MutexLock lock(&mu_);
    const bool again =
        std::any_of(unrecorded_.begin(), unrecorded_.end(),
                    [&](const Outcome& u) { return u.run.run_id == run_id; });
    if (!again) ++recovered;
  }
  for (const auto& [job_id, state] : jobs) {
    FinishJob(job_id, state);
    absl::MutexLock lock(&mu_);
    if (unfinished_jobs_.count(job_id) == 0) ++recovered;
  }
  return recovered + RequeueOrphans();
}

int Scheduler::RequeueOrphans() {
  // Only jobs with fewer runs queued, in flight or waiting to be recorded
  // than unfinished ones can have an orphan: the others are not read.
  std::vector<std::string> job_ids;
  {
    absl::MutexLock lock(&mu_);
    std::map<std::string, int> accounted;
    for (const auto& p : queue_) ++accounted[p->job_id];
    for (const auto& [run_id, a] : in_flight_) ++accounted[a->run.job_id];
    for (const Outcome& o : unrecorded_) ++accounted[o.run.job_id];
    for (const auto& [id, job] : jobs_) {
      if (accounted[id] < job->unfinished) job_ids.push_back(id);
    }
  }
  int requeued = 0;
  for (const std::string& job_id : job_ids) {
    absl::StatusOr<std::vector<RunRow>> runs = store_->GetRuns(job_id);
    if (!runs.ok()) continue;  // the next pass tries again
    for (const RunRow& r : *runs) {
      if (r.state != v1::RUN_RUNNING) continue;
      {
        absl::MutexLock lock(&mu_);
        if (in_flight_.count(r.run_id) > 0 || writing_.count(r.run_id) > 0 ||
            std::any_of(
                unrecorded_.begin(), unrecorded_.end(),
                [&](const Outcome& u) { return u.run.run_id == r.run_id; })) {
          continue;
        }
      }
      // Nothing here runs it, so no write of its end is coming. The read
      // may be stale; the store ends only the attempt it names, and refuses
      // (FailedPrecondition) when that attempt has ended meanwhile.
      const std::string message = absl::StrCat(
          "attempt ", r.current_attempt,
          " was not running anywhere (its end could not be recorded); the "
          "run was queued again");
      const absl::Status s = store_->FailAttempt(
          r.run_id, r.current_attempt,
          static_cast<int32_t>(absl::StatusCode::kInternal), message,
          /*retry=*/true, NowMs());
      if (!s.ok()) continue;
      absl::StatusOr<RunRow> row = store_->GetRun(r.run_id);
      std::unique_ptr<Pending> p =
          PendingFromRow(row.ok() ? *row : r, options_.clock());
      if (!row.ok()) p->next_attempt = r.current_attempt + 1;
      {
        absl::MutexLock lock(&mu_);
        if (jobs_.count(job_id) == 0) continue;  // cancelled meanwhile
        queue_.push_back(std::move(p));
        dirty_ = true;
      }
      ++requeued;
      PublishRun(job_id, r.run_id);
    }
  }
  return requeued;
}

void Scheduler::PublishRun(const std::string& job_id,
                           const std::string& run_id) {
  if (events_->watchers(job_id) == 0) return;
  absl::StatusOr<RunRow> row = store_->GetRun(run_id);
  if (!row.ok()) return;
  v1::JobEvent e;
  *e.mutable_run_update() = RunInfoFromRow(*row, Progress(run_id));
  events_->Publish(job_id, e);
}

void Scheduler::ReapFinished() {
  std::vector<std::unique_ptr<Attempt>> done;
  {
    absl::MutexLock lock(&mu_);
    done.swap(finished_);
  }
  for (auto& a : done) {
    if (a->thread.joinable()) a->thread.join();
  }
}

void Scheduler::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
  }
  if (dispatcher_.joinable()) dispatcher_.join();
  if (ticker_.joinable()) ticker_.join();
  registry_->SetLossListener(nullptr);
  {
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return in_flight_.empty();
    };
    mu_.AwaitWithTimeout(absl::Condition(&idle), grace);
    for (auto& [run_id, a] : in_flight_) {
      if (a->abort == Abort::kNone) a->abort = Abort::kShutdown;
      a->cancel.store(true);
    }
    mu_.Await(absl::Condition(&idle));
  }
  ReapFinished();
}

}  // namespace driftscope::coordinator
