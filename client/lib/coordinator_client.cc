#include "client/lib/coordinator_client.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "driftscope/v1/coordinator.grpc.pb.h"
#include "proto/lib/status.h"
#include "proto/lib/tensor_stream.h"

namespace driftscope {

namespace {

bool Retryable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable;
}

// Checks one received tensor against what the run's summary announced.
absl::Status MatchesSummary(const NamedArray& t, const v1::TensorInfo& info) {
  absl::StatusOr<DType> dtype = DTypeFromProto(info.dtype());
  const std::vector<int64_t> shape(info.shape().begin(), info.shape().end());
  if (!dtype.ok() || *dtype != t.array.dtype() || shape != t.array.shape()) {
    return absl::DataLossError(absl::StrCat(
        "tensor \"", t.name, "\": dtype or shape differs from the summary"));
  }
  const std::string sha = Sha256Hex(t.array.raw(), t.array.nbytes());
  if (!info.sha256().empty() && sha != info.sha256()) {
    return absl::DataLossError(absl::StrCat("tensor \"", t.name, "\": sha256 ",
                                            sha, " differs from the summary's ",
                                            info.sha256()));
  }
  return absl::OkStatus();
}

}  // namespace

std::string RandomRequestId() {
  std::random_device rd;
  char buf[33];
  for (int i = 0; i < 4; ++i) {
    std::snprintf(buf + 8 * i, 9, "%08x", static_cast<unsigned>(rd()));
  }
  return std::string("req-") + buf;
}

absl::StatusOr<std::unique_ptr<CoordinatorClient>> CoordinatorClient::Create(
    const CoordinatorClientOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(options.channel);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<CoordinatorClient>(
      new CoordinatorClient(options, *std::move(channel)));
}

CoordinatorClient::CoordinatorClient(const CoordinatorClientOptions& options,
                                     std::shared_ptr<grpc::Channel> channel)
    : options_(options), channel_(std::move(channel)) {}

absl::Status CoordinatorClient::Prefixed(const absl::Status& status) const {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat("coordinator ", address(),
                                                  ": ", status.message()));
}

absl::Status CoordinatorClient::Retry(
    const std::function<absl::Status()>& attempt) const {
  absl::Duration backoff = options_.initial_backoff;
  for (int n = 1;; ++n) {
    const absl::Status s = attempt();
    if (s.ok()) return s;
    if (!Retryable(s) || n >= options_.max_attempts) return Prefixed(s);
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::StatusOr<v1::Job> CoordinatorClient::SubmitJob(
    v1::SubmitJobRequest request) const {
  if (request.client_request_id().empty()) {
    request.set_client_request_id(RandomRequestId());
  }
  auto stub = v1::Coordinator::NewStub(channel_);
  v1::Job job;
  absl::Status s = Retry([&] {
    grpc::ClientContext ctx;
    PrepareCall(options_.channel, options_.call_timeout, &ctx);
    return FromGrpcStatus(stub->SubmitJob(&ctx, request, &job));
  });
  if (!s.ok()) return s;
  return job;
}

absl::StatusOr<v1::Job> CoordinatorClient::GetJob(
    const std::string& job_id) const {
  auto stub = v1::Coordinator::NewStub(channel_);
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  absl::Status s = Retry([&] {
    grpc::ClientContext ctx;
    PrepareCall(options_.channel, options_.call_timeout, &ctx);
    return FromGrpcStatus(stub->GetJob(&ctx, request, &job));
  });
  if (!s.ok()) return s;
  return job;
}

absl::StatusOr<v1::ListJobsResponse> CoordinatorClient::ListJobs(
    const v1::ListJobsRequest& request) const {
  auto stub = v1::Coordinator::NewStub(channel_);
  v1::ListJobsResponse response;
  absl::Status s = Retry([&] {
    grpc::ClientContext ctx;
    PrepareCall(options_.channel, options_.call_timeout, &ctx);
    return FromGrpcStatus(stub->ListJobs(&ctx, request, &response));
  });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<std::vector<v1::WorkerStatus>> CoordinatorClient::ListWorkers()
    const {
  auto stub = v1::Coordinator::NewStub(channel_);
  v1::ListWorkersResponse response;
  absl::Status s = Retry([&] {
    grpc::ClientContext ctx;
    PrepareCall(options_.channel, options_.call_timeout, &ctx);
    return FromGrpcStatus(
        stub->ListWorkers(&ctx, v1::ListWorkersRequest(), &response));
  });
  if (!s.ok()) return s;
  return std::vector<v1::WorkerStatus>(response.workers().begin(),
                                       response.workers().end());
}

absl::StatusOr<v1::Job> CoordinatorClient::CancelJob(
    const std::string& job_id) const {
  auto stub = v1::Coordinator::NewStub(channel_);
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  absl::Status s = Retry([&] {
    grpc::ClientContext ctx;
    PrepareCall(options_.channel, options_.call_timeout, &ctx);
    return FromGrpcStatus(stub->CancelJob(&ctx, request, &job));
  });
  if (!s.ok()) return s;
  return job;
}

absl::StatusOr<v1::DriftReport> CoordinatorClient::GetReport(
    const v1::GetReportRequest& request) const {
  auto stub = v1::Coordinator::NewStub(channel_);
  v1::DriftReport report;
  absl::Status s = Retry([&] {
    grpc::ClientContext ctx;
    PrepareCall(options_.channel, options_.call_timeout, &ctx);
    return FromGrpcStatus(stub->GetReport(&ctx, request, &report));
  });
  if (!s.ok()) return s;
  return report;
}

absl::StatusOr<v1::JobState> CoordinatorClient::WatchJob(
    const std::string& job_id,
    const std::function<bool(const v1::JobEvent&)>& on_event) const {
  auto stub = v1::Coordinator::NewStub(channel_);
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  const absl::Time deadline = absl::Now() + options_.watch_timeout;
  absl::Time last_event = absl::Now();
  absl::Duration backoff = options_.initial_backoff;
  for (;;) {
    grpc::ClientContext ctx;
    PrepareCall(options_.channel, deadline - absl::Now(), &ctx);
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
        stub->WatchJob(&ctx, request);
    v1::JobEvent event;
    std::optional<v1::JobState> terminal;
    bool stopped = false;
    while (!terminal && !stopped && reader->Read(&event)) {
      last_event = absl::Now();
      backoff = options_.initial_backoff;
      if (!on_event(event)) stopped = true;
      if (event.has_snapshot() && IsTerminal(event.snapshot().state())) {
        terminal = event.snapshot().state();
      } else if (event.event_case() == v1::JobEvent::kJobState &&
                 IsTerminal(event.job_state())) {
        terminal = event.job_state();
      }
    }
    if (terminal || stopped) ctx.TryCancel();
    const absl::Status s = FromGrpcStatus(reader->Finish());
    if (terminal) return *terminal;
    if (stopped) return absl::CancelledError("watch stopped");
    // A stream that ended without a terminal state, or broke because the
    // coordinator went away, is resumed; anything else is the answer. This
    // client cancels only above, so a CANCELLED here came from the server:
    // gRPC cancels the calls still open when a coordinator's shutdown
    // deadline passes, and the job carries on after the restart.
    if (!s.ok() && !Retryable(s) && s.code() != absl::StatusCode::kCancelled) {
      return Prefixed(s);
    }
    if (absl::Now() - last_event > options_.watch_reconnect ||
        absl::Now() + backoff >= deadline) {
      return Prefixed(s.ok() ? absl::UnavailableError(
                                   "the watch stream ended before the job "
                                   "finished")
                             : s);
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::StatusOr<std::vector<v1::Fingerprint>>
CoordinatorClient::FetchFingerprints(const std::string& job_id,
                                     const v1::RunInfo& run) const {
  if (!run.has_summary()) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run.run_id(), " has no result (state ",
                     v1::RunState_Name(run.state()), ")"));
  }
  auto stub = v1::Coordinator::NewStub(channel_);
  v1::FetchFingerprintsRequest request;
  request.set_job_id(job_id);
  request.set_run_id(run.run_id());
  std::vector<v1::Fingerprint> all;
  absl::Status s = Retry([&] {
    all.clear();
    grpc::ClientContext ctx;
    PrepareCall(options_.channel, options_.fetch_timeout, &ctx);
    std::unique_ptr<grpc::ClientReader<v1::FingerprintBatch>> reader =
        stub->FetchFingerprints(&ctx, request);
    v1::FingerprintBatch batch;
    while (reader->Read(&batch)) {
      for (v1::Fingerprint& f : *batch.mutable_fingerprints()) {
        all.push_back(std::move(f));
      }
    }
    return FromGrpcStatus(reader->Finish());
  });
  if (!s.ok()) return s;
  auto same = [](const v1::Fingerprint& a, const v1::Fingerprint& b) {
    return a.step() == b.step() && a.sha256() == b.sha256() &&
           a.sha256_f32() == b.sha256_f32();
  };
  const auto& announced = run.summary().fingerprints();
  bool consistent = announced.empty() == all.empty();
  if (consistent && !all.empty()) {
    consistent = same(all.front(), announced[0]) &&
                 same(all.back(), announced[announced.size() - 1]);
  }
  for (size_t k = 1; consistent && k < all.size(); ++k) {
    consistent = all[k].step() > all[k - 1].step();
  }
  if (!consistent) {
    return Prefixed(absl::DataLossError(absl::StrCat(
        "run ", run.run_id(), ": the ", all.size(),
        " fingerprints received do not agree with the run's summary (first "
        "and last fingerprint, steps in increasing order)")));
  }
  return all;
}

absl::StatusOr<std::vector<NamedArray>> CoordinatorClient::FetchOnce(
    const v1::FetchResultRequest& request) const {
  auto stub = v1::Coordinator::NewStub(channel_);
  grpc::ClientContext ctx;
  PrepareCall(options_.channel, options_.fetch_timeout, &ctx);
  std::unique_ptr<grpc::ClientReader<v1::TensorChunk>> reader =
      stub->FetchResult(&ctx, request);
  TensorAssembler assembler;
  absl::Status stream_error;
  v1::TensorChunk chunk;
  while (reader->Read(&chunk)) {
    stream_error = assembler.Add(chunk);
    if (!stream_error.ok()) {
      ctx.TryCancel();
      break;
    }
  }
  const absl::Status s = FromGrpcStatus(reader->Finish());
  if (!stream_error.ok()) return stream_error;
  if (!s.ok()) return s;
  return assembler.Finish();
}

absl::StatusOr<std::vector<NamedArray>> CoordinatorClient::FetchResult(
    const std::string& job_id, const v1::RunInfo& run,
    const std::vector<std::string>& names) const {
  if (!run.has_summary()) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run.run_id(), " has no result (state ",
                     v1::RunState_Name(run.state()), ")"));
  }
  std::map<std::string, const v1::TensorInfo*> announced;
  std::vector<std::string> order;
  for (const v1::TensorInfo& info : run.summary().tensors()) {
    announced[info.name()] = &info;
  }
  const std::set<std::string> wanted(names.begin(), names.end());
  for (const std::string& name : wanted) {
    if (announced.count(name) == 0) {
      return absl::NotFoundError(
          absl::StrCat("run ", run.run_id(), " has no tensor \"", name, "\""));
    }
  }
  for (const v1::TensorInfo& info : run.summary().tensors()) {
    if (wanted.empty() || wanted.count(info.name())) {
      order.push_back(info.name());
    }
  }
  v1::FetchResultRequest request;
  request.set_job_id(job_id);
  request.set_run_id(run.run_id());
  for (const std::string& name : names) request.add_names(name);
  std::vector<NamedArray> tensors;
  absl::Status s = Retry([&]() -> absl::Status {
    absl::StatusOr<std::vector<NamedArray>> got = FetchOnce(request);
    if (!got.ok()) return got.status();
    tensors = *std::move(got);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::map<std::string, NamedArray*> by_name;
  for (NamedArray& t : tensors) {
    if (announced.count(t.name) == 0 ||
        (!wanted.empty() && wanted.count(t.name) == 0)) {
      return Prefixed(absl::DataLossError(
          absl::StrCat("run ", run.run_id(), ": tensor \"", t.name,
                       "\" was sent but not asked for")));
    }
    if (absl::Status m = MatchesSummary(t, *announced[t.name]); !m.ok()) {
      return Prefixed(absl::DataLossError(
          absl::StrCat("run ", run.run_id(), ": ", m.message())));
    }
    by_name[t.name] = &t;
  }
  std::vector<NamedArray> out;
  for (const std::string& name : order) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return Prefixed(absl::DataLossError(
          absl::StrCat("run ", run.run_id(), ": tensor \"", name,
                       "\" was announced but never received")));
    }
    out.push_back(std::move(*it->second));
  }
  return out;
}

}  // namespace driftscope
