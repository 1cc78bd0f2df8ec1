#include "server/worker/worker_service.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/env/environment.h"
#include "engine/job/job_memory.h"
#include "engine/numerics/context.h"
#include "engine/train/trainer.h"
#include "proto/lib/environment_convert.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/status.h"
#include "proto/lib/tensor_stream.h"

namespace driftscope {

namespace {

// ~150 bytes each: a batch stays far below the 1 MiB of a tensor chunk.
constexpr size_t kFingerprintsPerEvent = 1024;

// --device pins every device=cuda run to the worker's GPU.
void OnThisWorkersGpu(const WorkerServiceOptions& options, Profile* p) {
  if (options.cuda_device >= 0 && p->device == Device::kCuda) {
    p->device_index = options.cuda_device;
  }
}

}  // namespace

absl::Status CheckCudaDeviceFlag(const CudaInfo& cuda, int device) {
  if (device < 0 || device < static_cast<int>(cuda.devices.size())) {
    return absl::OkStatus();
  }
  if (cuda.devices.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--device=", device, ": this host has no usable GPU (",
                     cuda.error.empty() ? "none found" : cuda.error,
                     "); drop --device to run CPU profiles only"));
  }
  std::vector<std::string> gpus;
  for (size_t i = 0; i < cuda.devices.size(); ++i) {
    gpus.push_back(absl::StrCat(i, ": ", cuda.devices[i].name));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "--device=", device, ": this host has ", cuda.devices.size(), " GPU(s) (",
      absl::StrJoin(gpus, ", "), "); pick one of them"));
}

struct WorkerService::Prepared {
  JobSpec spec;
  Profile profile;
  std::string profile_text;  // canonical, isa resolved: what will run
  RunOptions options;
  CaptureSet capture;
  int progress_every = 0;  // steps; 0: at the end of each epoch
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;
  int64_t memory_bytes = 0;  // EstimateJobMemory(...).total()
};

absl::StatusOr<std::unique_ptr<WorkerService>> WorkerService::Create(
    const WorkerServiceOptions& options) {
  absl::StatusOr<Profile> profile = Profile::Parse(options.default_profile);
  if (!profile.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--default_profile: ", profile.status().message()));
  }
  if (absl::Status s = Context::Check(*profile); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--default_profile: ", s.message()));
  }
  if (options.max_concurrent_runs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_concurrent_runs must be at least 1, got ",
                     options.max_concurrent_runs));
  }
  if (absl::Status s =
          CheckCudaDeviceFlag(ProbeEnvironment().cuda, options.cuda_device);
      !s.ok()) {
    return s;
  }
  // The presets this worker can run: the GPU ones only where its device
  // opens (Context::Check loads the CUDA backend for them).
  std::vector<std::string> presets;
  for (const std::string& name : Profile::PresetNames()) {
    absl::StatusOr<Profile> p = Profile::Parse(name);
    if (!p.ok()) continue;
    OnThisWorkersGpu(options, &*p);
    if (Context::Check(*p).ok()) presets.push_back(name);
  }
  return std::unique_ptr<WorkerService>(
      new WorkerService(options, std::move(presets)));
}

WorkerService::WorkerService(const WorkerServiceOptions& options,
                             std::vector<std::string> presets)
    : options_(options), presets_(std::move(presets)) {}

v1::DescribeResponse WorkerService::Describe() const {
  v1::DescribeResponse r;
  *r.mutable_environment() = EnvironmentToProto(ProbeEnvironment());
  absl::StatusOr<Profile> p = Profile::Parse(options_.default_profile);
  r.set_default_profile(p.ok() ? ResolveProfile(*p).ToString()
                               : options_.default_profile);
  for (const std::string& name : presets_) r.add_presets(name);
  r.set_max_concurrent_runs(options_.max_concurrent_runs);
  r.set_max_memory_bytes(options_.max_memory_bytes);
  return r;
}

absl::StatusOr<WorkerService::Prepared> WorkerService::Prepare(
    const v1::RunRequest& request) const {
  Prepared p;
  if (!request.has_spec()) {
    return absl::InvalidArgumentError("spec is required");
  }
  absl::StatusOr<JobSpec> spec = JobSpecFromProto(request.spec());
  if (!spec.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.", spec.status().message()));
  }
  p.spec = *std::move(spec);
  if (absl::Status s = ValidateJobSpec(p.spec); !s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat("spec.", EngineFieldToJsonPath(
                                            p.spec, std::string(s.message()))));
  }
  const std::string profile_text = request.has_profile()
                                       ? request.profile().text()
                                       : options_.default_profile;
  absl::StatusOr<Profile> profile = Profile::Parse(profile_text);
  if (!profile.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile.text: ", profile.status().message()));
  }
  OnThisWorkersGpu(options_, &*profile);
  // A GPU profile on a worker without one fails here, with the reason.
  if (absl::Status s = Context::Check(*profile); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("profile \"", profile_text, "\": ", s.message()));
  }
  p.profile = *profile;
  p.profile_text = ResolveProfile(p.profile).ToString();

  auto tensor = [](const v1::Tensor& t,
                   absl::string_view field) -> absl::StatusOr<NdArray> {
    return TensorFromProto(t, field);
  };
  if (request.has_x()) {
    absl::StatusOr<NdArray> x = tensor(request.x(), "x");
    if (!x.ok()) return x.status();
    p.options.x = *std::move(x);
  }
  if (request.has_y()) {
    absl::StatusOr<NdArray> y = tensor(request.y(), "y");
    if (!y.ok()) return y.status();
    p.options.y = *std::move(y);
  }
  if (request.has_eval_x()) {
    absl::StatusOr<NdArray> e = tensor(request.eval_x(), "eval_x");
    if (!e.ok()) return e.status();
    p.options.eval_x = *std::move(e);
  }
  if (request.init_weights_size() > 0) {
    std::vector<NdArray> weights;
    for (int i = 0; i < request.init_weights_size(); ++i) {
      absl::StatusOr<NdArray> w = tensor(request.init_weights(i),
                                         absl::StrCat("init_weights[", i, "]"));
      if (!w.ok()) return w.status();
      weights.push_back(*std::move(w));
    }
    p.options.init_weights = std::move(weights);
  }
  // What RunJob would refuse after `accepted` is refused here, before any
  // event, naming the request's fields (not the CLI's flags).
  if (absl::Status s = CheckRunInputs(
          p.spec, p.options, RunInputNames{"x", "y", "eval_x", "init_weights"});
      !s.ok()) {
    return s;
  }
  auto rows = [](const std::optional<NdArray>& a, int64_t otherwise) {
    return a.has_value() && a->ndim() > 0 ? a->shape()[0] : otherwise;
  };
  const int64_t train_n = rows(p.options.x, p.spec.data.samples);
  const int64_t eval_n =
      rows(p.options.eval_x,
           p.options.x.has_value() ? train_n : p.spec.data.eval_samples);
  if (absl::Status s = CheckJobLimits(p.spec, train_n, eval_n, options_.limits);
      !s.ok()) {
    return s;
  }
  const JobMemory memory =
      EstimateJobMemory(p.spec, p.profile, train_n, eval_n);
  if (absl::Status s = CheckJobMemory(memory, options_.max_memory_bytes,
                                      "this worker's memory limit");
      !s.ok()) {
    return s;
  }
  p.memory_bytes = memory.total();
  const int64_t batch = p.spec.training.batch_size;
  p.steps_per_epoch = (train_n + batch - 1) / batch;
  p.total_steps = p.steps_per_epoch * p.spec.training.epochs;

  const v1::Capture& c = request.capture();
  p.capture = CaptureSet{c.outputs(), c.losses(), c.final_weights(),
                         c.epoch_outputs(), c.states()};
  if (c.progress_every_steps() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("capture.progress_every_steps must be >= 0, got ",
                     c.progress_every_steps()));
  }
  p.progress_every = c.progress_every_steps();
  return p;
}

absl::Status WorkerService::AcquireSlot(const std::string& run_id,
                                        int64_t memory_bytes) {
  absl::MutexLock lock(&mu_);
  if (!accepting_) {
    return WithErrorReason(
        absl::UnavailableError(
            "this worker is shutting down (draining after SIGTERM) and takes "
            "no new runs; run the job on another worker"),
        kReasonWorkerDraining);
  }
  if (!run_id.empty() && run_ids_.count(run_id) > 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("run_id \"", run_id, "\" was already run here"));
  }
  if (active_ >= options_.max_concurrent_runs) {
    return WithErrorReason(absl::ResourceExhaustedError(absl::StrCat(
                               "worker busy: ", active_,
                               " runs in progress, --max_concurrent_runs=",
                               options_.max_concurrent_runs, "; retry later")),
                           kReasonWorkerBusy);
  }
  if (options_.max_memory_bytes > 0 && active_ > 0 &&
      reserved_bytes_ + memory_bytes > options_.max_memory_bytes) {
    return WithErrorReason(absl::ResourceExhaustedError(absl::StrCat(
                               "worker busy: the runs in progress hold ",
                               FormatBytes(reserved_bytes_), " of its ",
                               FormatBytes(options_.max_memory_bytes),
                               " memory limit and this run needs about ",
                               FormatBytes(memory_bytes), "; retry later")),
                           kReasonWorkerBusy);
  }
  ++active_;
  reserved_bytes_ += memory_bytes;
  if (!run_id.empty()) run_ids_.insert(run_id);
  return absl::OkStatus();
}

void WorkerService::ReleaseSlot(int64_t memory_bytes) {
  absl::MutexLock lock(&mu_);
  --active_;
  reserved_bytes_ -= memory_bytes;
}

int WorkerService::active_runs() const {
  absl::MutexLock lock(&mu_);
  return active_;
}

void WorkerService::StopAccepting() {
  absl::MutexLock lock(&mu_);
  accepting_ = false;
}

bool WorkerService::WaitUntilIdle(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto idle = [this] {
    mu_.AssertReaderHeld();
    return active_ == 0;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

absl::Status WorkerService::Run(
    const v1::RunRequest& request, const std::function<bool()>& cancelled,
    const EventSink& sink, const ChunkSink& chunk_sink,
    std::vector<std::shared_ptr<const NdArray>>* spent) {
  absl::StatusOr<Prepared> prepared = Prepare(request);
  if (!prepared.ok()) return prepared.status();
  Prepared& p = *prepared;
  if (absl::Status s = AcquireSlot(request.run_id(), p.memory_bytes); !s.ok()) {
    return s;
  }
  struct Release {
    WorkerService* self;
    int64_t bytes;
    ~Release() { self->ReleaseSlot(bytes); }
  } release{this, p.memory_bytes};

  // The sink may take an event's contents: the run id goes on every one.
  auto emit = [&sink, &request](v1::RunEvent& e) {
    e.set_run_id(request.run_id());
    return sink(e);
  };
  v1::RunEvent event;
  {
    v1::Accepted* a = event.mutable_accepted();
    a->set_spec_digest(SpecDigest(p.spec));
    a->set_profile(p.profile_text);
    a->set_total_steps(p.total_steps);
  }
  if (!emit(event)) return absl::CancelledError("the receiver went away");

  // The sink is called on this thread only, so events stay in order.
  std::atomic<bool> cancel{false};
  bool sink_broken = false;
  p.options.cancel = &cancel;
  p.options.on_progress = [&](const ProgressEvent& e) {
    const bool due = e.step == e.total_steps ||
                     (p.progress_every > 0 ? e.step % p.progress_every == 0
                                           : e.step % p.steps_per_epoch == 0);
    if (due && !sink_broken) {
      event.clear_event();
      v1::Progress* pr = event.mutable_progress();
      pr->set_epoch(e.epoch);
      pr->set_step(e.step);
      pr->set_total_steps(e.total_steps);
      pr->set_loss(e.loss);
      sink_broken = !emit(event);
    }
    if (sink_broken || cancelled()) cancel.store(true);
  };
  absl::StatusOr<RunResult> result = RunJob(p.spec, p.profile, p.options);
  if (!result.ok()) {
    absl::Status s = result.status();
    if (sink_broken) s = absl::CancelledError("the receiver went away");
    event.clear_event();
    event.mutable_failed()->set_code(static_cast<int>(s.code()));
    // The status itself is redacted (and logged) at the gRPC edge.
    event.mutable_failed()->set_message(RedactServerPaths(s.message()));
    emit(event);
    return s;
  }

  for (size_t i = 0; i < result->fingerprints.size();
       i += kFingerprintsPerEvent) {
    event.clear_event();
    v1::FingerprintBatch* batch = event.mutable_fingerprints();
    const size_t end =
        std::min(result->fingerprints.size(), i + kFingerprintsPerEvent);
    for (size_t k = i; k < end; ++k) {
      const driftscope::Fingerprint& f = result->fingerprints[k];
      v1::Fingerprint* fp = batch->add_fingerprints();
      fp->set_step(f.step);
      fp->set_sha256(f.sha256);
      fp->set_sha256_f32(f.sha256_f32);
    }
    if (!emit(event)) return absl::CancelledError("the receiver went away");
  }

  v1::RunEvent done;
  v1::RunSummary* summary = done.mutable_done()->mutable_summary();
  // Fingerprints went out as events: a long run has too many for one
  // message, so the summary leaves them out.
  summary->set_spec_digest(result->spec_digest);
  summary->set_profile(result->profile);
  *summary->mutable_environment() = EnvironmentToProto(ProbeEnvironment());
  summary->set_steps(result->steps);
  summary->set_final_loss(result->steps > 0 && result->losses.size() > 0
                              ? result->losses.at(result->losses.size() - 1)
                              : std::numeric_limits<double>::quiet_NaN());
  summary->mutable_timings()->set_init_seconds(result->timings.init_seconds);
  summary->mutable_timings()->set_train_seconds(result->timings.train_seconds);
  summary->mutable_timings()->set_eval_seconds(result->timings.eval_seconds);
  for (int64_t d : result->outputs.shape()) summary->add_output_shape(d);
  SetDeviceRun(result->device, summary);

  v1::RunEvent chunk_event;
  for (NamedArray& t : TakeResultTensors(&*result, p.capture)) {
    // Shared with the wire: a chunk's bytes are sent from the array itself.
    auto array = std::make_shared<const NdArray>(std::move(t.array));
    std::string sha;
    const bool sent = EmitTensorChunkViews(
        t.name, *array,
        [&](v1::TensorChunk* c, const uint8_t* data, size_t size) {
          chunk_event.mutable_tensor_chunk()->Swap(c);
          bool ok = false;
          if (chunk_sink) {
            chunk_event.set_run_id(request.run_id());
            ok = chunk_sink(chunk_event, array, data, size);
          } else {
            chunk_event.mutable_tensor_chunk()->set_data(data, size);
            ok = emit(chunk_event);
          }
          return ok && !cancelled();
        },
        &sha);
    if (!sent) return absl::CancelledError("the receiver went away");
    v1::TensorInfo* info = summary->add_tensors();
    info->set_name(t.name);
    info->set_dtype(DTypeToProto(array->dtype()));
    for (int64_t d : array->shape()) info->add_shape(d);
    info->set_size_bytes(array->nbytes());
    info->set_sha256(sha);
    if (spent != nullptr) spent->push_back(std::move(array));
  }
  if (!emit(done)) return absl::CancelledError("the receiver went away");
  return absl::OkStatus();
}

}  // namespace driftscope
