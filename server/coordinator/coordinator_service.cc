#include "server/coordinator/coordinator_service.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "proto/lib/tensor_stream.h"
#include "server/coordinator/ids.h"
#include "server/coordinator/job_view.h"
#include "server/coordinator/report_builder.h"

namespace driftscope::coordinator {

namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;

absl::Status RequireId(const std::string& id, absl::string_view field) {
  if (id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  }
  return absl::OkStatus();
}

}  // namespace

CoordinatorService::CoordinatorService(Store* store, WorkerRegistry* registry,
                                       Scheduler* scheduler,
                                       JobEventHub* events,
                                       WorkerConnector* connector,
                                       CoordinatorServiceOptions options)
    : store_(store),
      registry_(registry),
      scheduler_(scheduler),
      events_(events),
      connector_(connector),
      options_(std::move(options)) {}

absl::StatusOr<v1::RegisterWorkerResponse> CoordinatorService::RegisterWorker(
    const v1::RegisterWorkerRequest& request, const std::string& identity) {
  const v1::WorkerInfo& claimed = request.worker();
  const Registrant registrant{
      identity, request.worker_secret(),
      WorkerCredential::ForRegistration(identity, request.worker_token())};
  // Who it is first: a registration refused anyway makes no outgoing call.
  if (absl::Status s = registry_->CheckRegistrant(claimed, registrant);
      !s.ok()) {
    return s;
  }
  // What it is: the worker's own answer at the address runs will go to,
  // not the registration text (the issue: forged gpu and host labels
  // attracted label-placed runs).
  absl::StatusOr<WorkerDescription> described =
      connector_->Describe({claimed.address(), registrant.credential});
  if (!described.ok()) {
    const absl::Status& s = described.status();
    const bool refused = s.code() == absl::StatusCode::kUnauthenticated ||
                         s.code() == absl::StatusCode::kPermissionDenied;
    return absl::Status(
        refused ? absl::StatusCode::kFailedPrecondition
                : absl::StatusCode::kUnavailable,
        absl::StrCat(
            "worker.address ", claimed.address(),
            ": the coordinator describes a worker before registering it, and "
            "Describe failed: ",
            s.message(),
            refused ? " (a worker with --auth_token must send worker_token, "
                      "the token it accepts from the coordinator; "
                      "driftscope-worker does)"
                    : ""));
  }
  v1::WorkerInfo info =
      WorkerInfoFromDescription(claimed.name(), claimed.address(), *described);
  *info.mutable_labels() = claimed.labels();
  return registry_->Register(info, registrant);
}

absl::StatusOr<v1::HeartbeatResponse> CoordinatorService::Heartbeat(
    const v1::HeartbeatRequest& request) {
  if (absl::Status s = RequireId(request.lease_id(), "lease_id"); !s.ok()) {
    return s;
  }
  return registry_->Heartbeat(request);
}

v1::ListWorkersResponse CoordinatorService::ListWorkers() const {
  v1::ListWorkersResponse response;
  for (v1::WorkerStatus& s :
       registry_->Statuses(scheduler_->RunningByWorker())) {
    *response.add_workers() = std::move(s);
  }
  return response;
}

absl::StatusOr<v1::Job> CoordinatorService::SubmitJob(
    const v1::SubmitJobRequest& request) {
  if (stopping_.load()) {
    return absl::UnavailableError(
        "the coordinator is shutting down; submit again (with the same "
        "client_request_id)");
  }
  // A retry finds its job before planning: the workers it was planned
  // against may have gone since, and it must still get the same job.
  if (!request.client_request_id().empty()) {
    absl::StatusOr<std::optional<JobRow>> existing =
        store_->FindJobByRequestId(request.client_request_id());
    if (!existing.ok()) return existing.status();
    if (existing->has_value()) {
      if (!request.has_spec()) {
        return absl::InvalidArgumentError("spec is required");
      }
      absl::StatusOr<JobSpec> spec = CheckedJobSpec(request.spec());
      if (!spec.ok()) return spec.status();
      return SameJobAgain(request, **existing, SpecDigest(*spec));
    }
  }
  const std::string job_id = RandomId("job-", 12);
  absl::StatusOr<PlannedJob> plan =
      PlanJob(request, registry_->All(), options_.limits, job_id,
              absl::ToUnixMillis(options_.clock()));
  if (!plan.ok()) return plan.status();
  absl::StatusOr<CreateJobResult> created =
      store_->CreateJob(plan->job, plan->runs);
  if (!created.ok()) return created.status();
  if (!created->created) {
    // A concurrent submission with the same id won the race.
    JobRow existing;
    existing.job_id = created->job_id;
    existing.spec_digest = created->existing_spec_digest;
    return SameJobAgain(request, existing, plan->job.spec_digest);
  }
  if (absl::Status s = scheduler_->AddJob(created->job_id); !s.ok()) return s;
  return GetJob(created->job_id);
}

absl::StatusOr<v1::Job> CoordinatorService::SameJobAgain(
    const v1::SubmitJobRequest& request, const JobRow& existing,
    const std::string& spec_digest) {
  if (existing.spec_digest != spec_digest) {
    return absl::AlreadyExistsError(absl::StrCat(
        "client_request_id \"", request.client_request_id(),
        "\" was used for job ", existing.job_id,
        " with a different spec (digest ", existing.spec_digest, ", this one ",
        spec_digest, "); use a new id for a new job"));
  }
  // The rest of the request too: the same id with other repeats, workers,
  // profiles or initial weights is another job, not a retry (the issue:
  // such a request silently got the old job back).
  absl::StatusOr<JobRow> stored = store_->GetJob(existing.job_id);
  if (!stored.ok()) return stored.status();
  std::string differs;
  if (!google::protobuf::util::MessageDifferencer::Equals(
          stored->placement, request.placement())) {
    differs = "placement";
  } else if (stored->description != request.description()) {
    differs = "description";
  } else if (static_cast<int>(stored->init_weights.size()) !=
             request.init_weights_size()) {
    differs = "init_weights";
  } else {
    for (int i = 0; i < request.init_weights_size(); ++i) {
      if (!google::protobuf::util::MessageDifferencer::Equals(
              stored->init_weights[i], request.init_weights(i))) {
        differs = absl::StrCat("init_weights[", i, "]");
        break;
      }
    }
  }
  if (!differs.empty()) {
    return absl::AlreadyExistsError(absl::StrCat(
        "client_request_id \"", request.client_request_id(),
        "\" was used for job ", existing.job_id, " with a different ", differs,
        "; use a new id for a new job"));
  }
  // Idempotent: a retry of an acknowledged submission queues nothing new.
  if (absl::Status s = scheduler_->AddJob(existing.job_id); !s.ok()) return s;
  return GetJob(existing.job_id);
}

absl::StatusOr<v1::Job> CoordinatorService::GetJob(
    const std::string& job_id) const {
  if (absl::Status s = RequireId(job_id, "job_id"); !s.ok()) return s;
  absl::StatusOr<JobRow> job = store_->GetJob(job_id);
  if (!job.ok()) return job.status();
  absl::StatusOr<std::vector<RunRow>> runs = store_->GetRuns(job_id);
  if (!runs.ok()) return runs.status();
  return JobFromRows(*job, *runs, [this](const std::string& run_id) {
    return scheduler_->Progress(run_id);
  });
}

absl::StatusOr<v1::ListJobsResponse> CoordinatorService::ListJobs(
    const v1::ListJobsRequest& request) const {
  if (request.page_size() < 0 || request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size must be in [0, ",
                                                   kMaxPageSize, "], got ",
                                                   request.page_size()));
  }
  ListJobsQuery query;
  query.page_size =
      request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  query.page_token = request.page_token();
  for (int s : request.states()) {
    query.states.push_back(static_cast<v1::JobState>(s));
  }
  absl::StatusOr<ListJobsPage> page = store_->ListJobs(query);
  if (!page.ok()) return page.status();
  v1::ListJobsResponse response;
  for (const JobRow& job : page->jobs) {
    absl::StatusOr<std::vector<RunRow>> runs = store_->GetRuns(job.job_id);
    if (!runs.ok()) return runs.status();
    *response.add_jobs() = JobFromRows(
        job, *runs,
        [this](const std::string& run_id) {
          return scheduler_->Progress(run_id);
        },
        /*with_details=*/false);
  }
  response.set_next_page_token(page->next_page_token);
  return response;
}

absl::Status CoordinatorService::WatchJob(
    const std::string& job_id, const std::function<bool()>& cancelled,
    const EventSink& sink) {
  if (absl::Status s = RequireId(job_id, "job_id"); !s.ok()) return s;
  // Subscribed before the snapshot is read, so no event falls between.
  std::shared_ptr<JobSubscription> sub = events_->Subscribe(job_id);
  struct Unsubscribe {
    JobEventHub* hub;
    const std::string& id;
    std::shared_ptr<JobSubscription> sub;
    ~Unsubscribe() { hub->Unsubscribe(id, sub); }
  } unsubscribe{events_, job_id, sub};

  const absl::Status gone = absl::CancelledError("the watcher went away");
  // Sends a snapshot; true when the job is terminal (after its job_state).
  auto snapshot = [&](bool* terminal) -> absl::Status {
    absl::StatusOr<v1::Job> job = GetJob(job_id);
    if (!job.ok()) return job.status();
    v1::JobEvent e;
    *e.mutable_snapshot() = *job;
    if (!sink(e)) return gone;
    *terminal = IsTerminal(job->state());
    if (*terminal) {
      v1::JobEvent end;
      end.set_job_state(job->state());
      if (!sink(end)) return gone;
    }
    return absl::OkStatus();
  };
  bool terminal = false;
  if (absl::Status s = snapshot(&terminal); !s.ok() || terminal) return s;
  for (;;) {
    if (cancelled()) return gone;
    if (stopping_.load()) {
      return absl::UnavailableError(
          "the coordinator is shutting down; watch the job again");
    }
    JobSubscription::Batch batch = sub->Next(options_.watch_poll);
    if (batch.gap) {
      if (absl::Status s = snapshot(&terminal); !s.ok() || terminal) return s;
      continue;
    }
    for (const v1::JobEvent& e : batch.events) {
      if (!sink(e)) return gone;
      if (e.has_job_state() && IsTerminal(e.job_state())) {
        return absl::OkStatus();
      }
    }
  }
}

absl::StatusOr<v1::Job> CoordinatorService::CancelJob(
    const std::string& job_id) {
  if (absl::Status s = RequireId(job_id, "job_id"); !s.ok()) return s;
  const absl::Status s =
      store_->CancelJob(job_id, absl::ToUnixMillis(options_.clock()));
  if (s.code() == absl::StatusCode::kFailedPrecondition) {
    absl::StatusOr<v1::Job> job = GetJob(job_id);
    if (job.ok() && job->state() == v1::JOB_CANCELLED) return job;  // again
    if (job.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id, " already ended ", v1::JobState_Name(job->state()),
          "; there is nothing to cancel"));
    }
    return s;
  }
  if (!s.ok()) return s;
  scheduler_->JobCancelled(job_id);
  return GetJob(job_id);
}

absl::StatusOr<v1::DriftReport> CoordinatorService::GetReport(
    const v1::GetReportRequest& request) const {
  return BuildReport(*store_, request);
}

absl::StatusOr<RunRow> CoordinatorService::SucceededRun(
    const std::string& job_id, const std::string& run_id) const {
  if (absl::Status s = RequireId(job_id, "job_id"); !s.ok()) return s;
  if (absl::Status s = RequireId(run_id, "run_id"); !s.ok()) return s;
  absl::StatusOr<RunRow> run = store_->GetRun(run_id);
  if (!run.ok()) return run.status();
  if (run->job_id != job_id) {
    return absl::NotFoundError(
        absl::StrCat("run ", run_id, " is not a run of job ", job_id));
  }
  if (run->state != v1::RUN_SUCCEEDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " is ", v1::RunState_Name(run->state),
                     "; only a succeeded run has results"));
  }
  return run;
}

absl::Status CoordinatorService::FetchResult(
    const v1::FetchResultRequest& request,
    const std::function<bool()>& cancelled, const ChunkSink& sink) const {
  absl::StatusOr<RunRow> run = SucceededRun(request.job_id(), request.run_id());
  if (!run.ok()) return run.status();
  std::vector<const v1::TensorInfo*> wanted;
  std::vector<std::string> names;
  for (const v1::TensorInfo& t : run->summary.tensors()) {
    names.push_back(t.name());
  }
  if (request.names().empty()) {
    for (const v1::TensorInfo& t : run->summary.tensors()) wanted.push_back(&t);
  }
  for (int i = 0; i < request.names_size(); ++i) {
    const v1::TensorInfo* found = nullptr;
    for (const v1::TensorInfo& t : run->summary.tensors()) {
      if (t.name() == request.names(i)) found = &t;
    }
    if (found == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          "names[", i, "]: run ", request.run_id(), " has no tensor \"",
          request.names(i), "\" (it has: ", absl::StrJoin(names, ", "), ")"));
    }
    wanted.push_back(found);
  }
  for (const v1::TensorInfo* info : wanted) {
    // LoadTensor checked the bytes against info->sha256(): not hashed again.
    absl::StatusOr<NdArray> array = LoadTensor(store_->blobs(), *info);
    if (!array.ok()) return array.status();
    if (!EmitTensorChunks(
            info->name(), *array,
            [&](v1::TensorChunk* c) { return !cancelled() && sink(c); },
            nullptr, kMaxChunkBytes, info->sha256())) {
      return absl::CancelledError("the receiver went away");
    }
  }
  return absl::OkStatus();
}

absl::Status CoordinatorService::FetchFingerprints(
    const v1::FetchFingerprintsRequest& request,
    const std::function<bool()>& cancelled, const FingerprintSink& sink) const {
  absl::StatusOr<RunRow> run = SucceededRun(request.job_id(), request.run_id());
  if (!run.ok()) return run.status();
  absl::StatusOr<std::vector<v1::Fingerprint>> fingerprints =
      store_->GetFingerprints(run->run_id);
  if (!fingerprints.ok()) return fingerprints.status();
  const std::vector<v1::Fingerprint>& all = *fingerprints;
  const int total = static_cast<int>(all.size());
  // An empty batch still tells the client the run has no fingerprints.
  for (int from = 0; from == 0 || from < total; from += kFingerprintsPerBatch) {
    v1::FingerprintBatch batch;
    const int to = std::min(total, from + kFingerprintsPerBatch);
    batch.mutable_fingerprints()->Reserve(to - from);
    for (int k = from; k < to; ++k) *batch.add_fingerprints() = all[k];
    if (cancelled() || !sink(batch)) {
      return absl::CancelledError("the receiver went away");
    }
  }
  return absl::OkStatus();
}

}  // namespace driftscope::coordinator
