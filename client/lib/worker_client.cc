#include "client/lib/worker_client.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/lib/grpc_channel.h"
#include "driftscope/v1/worker.grpc.pb.h"
#include "proto/lib/environment_convert.h"
#include "proto/lib/event_wire.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/status.h"
#include "proto/lib/tensor_stream.h"

namespace driftscope {

namespace {

std::string RandomRunId() {
  std::random_device rd;
  char buf[33];
  for (int i = 0; i < 4; ++i) {
    std::snprintf(buf + 8 * i, 9, "%08x", static_cast<unsigned>(rd()));
  }
  return std::string("run-") + buf;
}

void Prepare(const WorkerClientOptions& o, absl::Duration deadline,
             grpc::ClientContext* ctx) {
  PrepareCall(o, deadline, ctx);
}

// Cancels `ctx` as soon as *cancel turns true, until the call has ended.
class CancelWatcher {
 public:
  CancelWatcher(const std::atomic<bool>* cancel, grpc::ClientContext* ctx) {
    if (cancel == nullptr) return;
    thread_ = std::thread([this, cancel, ctx] {
      absl::MutexLock lock(&mu_);
      while (!done_) {
        if (cancel->load()) {
          ctx->TryCancel();
          return;
        }
        cv_.WaitWithTimeout(&mu_, absl::Milliseconds(5));
      }
    });
  }
  ~CancelWatcher() {
    if (!thread_.joinable()) return;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      cv_.Signal();
    }
    thread_.join();
  }

 private:
  absl::Mutex mu_;
  absl::CondVar cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeWorkerChannel(
    const WorkerClientOptions& options) {
  if (options.address.empty()) {
    return absl::InvalidArgumentError("worker address is empty");
  }
  return MakeChannel(options);
}

absl::StatusOr<std::unique_ptr<WorkerClient>> WorkerClient::Create(
    const WorkerClientOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeWorkerChannel(options);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<WorkerClient>(
      new WorkerClient(options, *std::move(channel)));
}

WorkerClient::WorkerClient(const WorkerClientOptions& options,
                           std::shared_ptr<grpc::Channel> channel)
    : options_(options), channel_(std::move(channel)) {}

absl::StatusOr<WorkerDescription> WorkerClient::Describe() const {
  auto stub = v1::Worker::NewStub(channel_);
  absl::Duration backoff = options_.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext ctx;
    Prepare(options_, options_.describe_deadline, &ctx);
    v1::DescribeResponse response;
    const grpc::Status s =
        stub->Describe(&ctx, v1::DescribeRequest(), &response);
    if (s.ok()) {
      WorkerDescription d;
      d.environment = EnvironmentFromProto(response.environment());
      d.default_profile = response.default_profile();
      d.presets.assign(response.presets().begin(), response.presets().end());
      d.max_concurrent_runs = response.max_concurrent_runs();
      d.max_memory_bytes = response.max_memory_bytes();
      return d;
    }
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE ||
        attempt >= options_.max_attempts) {
      absl::Status st = FromGrpcStatus(s);
      return absl::Status(st.code(), absl::StrCat("worker ", options_.address,
                                                  ": ", st.message()));
    }
    absl::SleepFor(backoff);
    backoff *= 2;
  }
}

absl::StatusOr<RunResult> WorkerClient::Run(
    const JobSpec& spec, absl::string_view profile, const RunOptions& options,
    const RemoteRunOptions& remote) const {
  RemoteRunOptions r = remote;
  if (r.run_id.empty()) r.run_id = RandomRunId();
  absl::Duration backoff = options_.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    bool accepted = false;
    absl::StatusOr<RunResult> result =
        RunOnce(spec, profile, options, r, &accepted);
    const bool cancelled = options.cancel != nullptr && options.cancel->load();
    if (result.ok() || accepted || cancelled ||
        result.status().code() != absl::StatusCode::kUnavailable ||
        attempt >= options_.max_attempts) {
      if (result.ok()) return result;
      // The worker's address in front; the error reason kept.
      absl::Status s(result.status().code(),
                     absl::StrCat("worker ", options_.address, ": ",
                                  result.status().message()));
      const std::string reason = ErrorReason(result.status());
      return reason.empty() ? s : WithErrorReason(std::move(s), reason);
    }
    absl::SleepFor(backoff);
    backoff *= 2;
  }
}

absl::StatusOr<RunResult> WorkerClient::RunOnce(const JobSpec& spec,
                                                absl::string_view profile,
                                                const RunOptions& options,
                                                const RemoteRunOptions& remote,
                                                bool* accepted) const {
  v1::RunRequest request;
  request.set_run_id(remote.run_id);
  *request.mutable_spec() = JobSpecToProto(spec);
  if (!profile.empty())
    request.mutable_profile()->set_text(std::string(profile));
  if (options.init_weights.has_value()) {
    for (const NdArray& w : *options.init_weights) {
      *request.add_init_weights() = TensorToProto(w);
    }
  }
  if (options.x.has_value()) *request.mutable_x() = TensorToProto(*options.x);
  if (options.y.has_value()) *request.mutable_y() = TensorToProto(*options.y);
  if (options.eval_x.has_value()) {
    *request.mutable_eval_x() = TensorToProto(*options.eval_x);
  }
  v1::Capture* c = request.mutable_capture();
  c->set_outputs(remote.capture.outputs);
  c->set_losses(remote.capture.losses);
  c->set_final_weights(remote.capture.final_weights);
  c->set_epoch_outputs(remote.capture.epoch_outputs);
  c->set_states(remote.capture.states);
  c->set_progress_every_steps(remote.capture.progress_every_steps);

  grpc::ClientContext ctx;
  Prepare(options_, options_.run_deadline, &ctx);
  RunResult result;
  TensorAssembler assembler;
  std::optional<v1::RunSummary> summary;
  std::optional<absl::Status> failed;
  absl::Status stream_error;
  grpc::Status status;
  {
    CancelWatcher watcher(options.cancel, &ctx);
    // Raw buffers, so a chunk's data is copied once, into its tensor.
    std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader =
        StartRawRun(channel_, &ctx, request);
    grpc::ByteBuffer buffer;
    ReceivedEvent received;
    while (reader->Read(&buffer)) {
      stream_error = ParseRunEvent(buffer, &received);
      if (!stream_error.ok()) {
        ctx.TryCancel();
        break;
      }
      const v1::RunEvent& event = received.event;
      switch (event.event_case()) {
        case v1::RunEvent::kAccepted:
          *accepted = true;
          result.spec_digest = event.accepted().spec_digest();
          result.profile = event.accepted().profile();
          break;
        case v1::RunEvent::kProgress:
          if (options.on_progress) {
            const v1::Progress& p = event.progress();
            options.on_progress(
                ProgressEvent{p.epoch(), p.step(), p.total_steps(), p.loss()});
          }
          break;
        case v1::RunEvent::kFingerprint:
          result.fingerprints.push_back(Fingerprint{
              event.fingerprint().step(), event.fingerprint().sha256(),
              event.fingerprint().sha256_f32()});
          break;
        case v1::RunEvent::kFingerprints:
          for (const v1::Fingerprint& f : event.fingerprints().fingerprints()) {
            result.fingerprints.push_back(
                Fingerprint{f.step(), f.sha256(), f.sha256_f32()});
          }
          break;
        case v1::RunEvent::kTensorChunk:
          stream_error = assembler.Add(event.tensor_chunk(), received.data);
          break;
        case v1::RunEvent::kDone:
          summary = event.done().summary();
          break;
        case v1::RunEvent::kFailed:
          failed =
              absl::Status(static_cast<absl::StatusCode>(event.failed().code()),
                           event.failed().message());
          break;
        default:
          break;
      }
      if (!stream_error.ok()) {
        ctx.TryCancel();
        break;
      }
    }
    status = reader->Finish();
  }
  if (!stream_error.ok()) return stream_error;
  if (failed.has_value()) return *failed;
  if (!status.ok()) {
    if (options.cancel != nullptr && options.cancel->load()) {
      return absl::CancelledError("run cancelled by the client");
    }
    absl::Status s = FromGrpcStatus(status);
    const auto& trailers = ctx.GetServerTrailingMetadata();
    if (auto it = trailers.find(kErrorReasonKey); it != trailers.end()) {
      s = WithErrorReason(std::move(s), absl::string_view(it->second.data(),
                                                          it->second.size()));
    }
    return s;
  }
  if (!summary.has_value()) {
    return absl::DataLossError("the run's event stream ended without done");
  }
  absl::StatusOr<std::vector<NamedArray>> tensors = assembler.Finish();
  if (!tensors.ok()) return tensors.status();
  std::map<std::string, const NdArray*> by_name;
  for (const NamedArray& t : *tensors) by_name[t.name] = &t.array;
  for (const v1::TensorInfo& info : summary->tensors()) {
    if (by_name.count(info.name()) == 0) {
      return absl::DataLossError(
          absl::StrCat("tensor \"", info.name(),
                       "\": announced by the worker but never received"));
    }
  }
  if (static_cast<size_t>(summary->tensors_size()) != tensors->size()) {
    return absl::DataLossError(
        "the worker's summary lists fewer tensors than it sent");
  }
  if (absl::Status s = PlaceResultTensors(*std::move(tensors), &result);
      !s.ok()) {
    return s;
  }
  result.tensor_sha256 = assembler.digests();
  result.spec_digest = summary->spec_digest();
  result.profile = summary->profile();
  result.steps = summary->steps();
  result.timings.init_seconds = summary->timings().init_seconds();
  result.timings.train_seconds = summary->timings().train_seconds();
  result.timings.eval_seconds = summary->timings().eval_seconds();
  if (summary->has_device()) {
    result.device = DeviceRunFromProto(summary->device());
  }
  return result;
}

}  // namespace driftscope
