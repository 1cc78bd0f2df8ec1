#include "server/coordinator/job_plan.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/io/init_weights.h"
#include "engine/job/job_memory.h"
#include "engine/numerics/profile.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/tensor_stream.h"

namespace driftscope::coordinator {

namespace {

constexpr size_t kMaxDescription = 1024;
constexpr size_t kMaxRequestId = 256;

bool IsPreset(absl::string_view profile) {
  for (const std::string& p : Profile::PresetNames()) {
    if (p == profile) return true;
  }
  return false;
}

std::string Names(const std::vector<WorkerView>& workers) {
  std::vector<std::string> names;
  for (const WorkerView& w : workers) names.push_back(w.info.name());
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

// The workers the placement selects, in placement order (or by name).
absl::StatusOr<std::vector<const WorkerView*>> SelectWorkers(
    const v1::Placement& placement, const std::vector<WorkerView>& workers) {
  std::vector<const WorkerView*> chosen;
  if (placement.workers().empty()) {
    for (const WorkerView& w : workers) {
      if (w.state == v1::WORKER_AVAILABLE &&
          LabelsMatch(w.info.labels(), placement.labels())) {
        chosen.push_back(&w);
      }
    }
    if (chosen.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no available worker",
          placement.labels().empty() ? "" : " matches placement.labels",
          " (workers: ", Names(workers),
          "); start workers or pass --workers to the coordinator"));
    }
    return chosen;
  }
  std::set<std::string> seen;
  for (int i = 0; i < placement.workers_size(); ++i) {
    const std::string& name = placement.workers(i);
    auto it = std::find_if(
        workers.begin(), workers.end(),
        [&](const WorkerView& w) { return w.info.name() == name; });
    if (it == workers.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("placement.workers[", i, "]: no worker named \"", name,
                       "\" (known: ", Names(workers), ")"));
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "placement.workers[", i, "]: \"", name, "\" is listed twice"));
    }
    if (!LabelsMatch(it->info.labels(), placement.labels())) {
      return absl::InvalidArgumentError(
          absl::StrCat("placement.workers[", i, "]: worker \"", name,
                       "\" does not have the labels placement.labels asks "
                       "for"));
    }
    chosen.push_back(&*it);
  }
  return chosen;
}

absl::Status CheckProfileFor(const WorkerView& w, const std::string& profile,
                             absl::string_view field) {
  if (CanRunProfile(w.info, profile)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      field, ": worker \"", w.info.name(), "\" cannot run ",
      IsPreset(profile) ? "preset" : "GPU profile", " \"", profile,
      "\" (it offers: ", absl::StrJoin(w.info.presets(), ", "), ")"));
}

// Whether `profile` (preset or knob string) runs on a GPU (device=cuda).
bool NeedsGpu(absl::string_view profile) {
  absl::StatusOr<Profile> p = Profile::Parse(profile);
  return p.ok() && p->device == Device::kCuda;
}

}  // namespace

bool CanRunProfile(const v1::WorkerInfo& worker, absl::string_view profile) {
  auto offers = [&](absl::string_view preset) {
    return std::find(worker.presets().begin(), worker.presets().end(),
                     preset) != worker.presets().end();
  };
  if (profile.empty()) return true;
  if (IsPreset(profile)) return offers(profile);
  if (!NeedsGpu(profile)) return true;
  // A GPU knob string needs a worker whose GPU opened: one that offers the
  // GPU presets.
  const std::vector<std::string> gpu = Profile::GpuPresetNames();
  return std::any_of(gpu.begin(), gpu.end(), offers);
}

absl::StatusOr<JobSpec> CheckedJobSpec(const v1::JobSpec& proto) {
  absl::StatusOr<JobSpec> spec = JobSpecFromProto(proto);
  if (!spec.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.", spec.status().message()));
  }
  if (absl::Status s = ValidateJobSpec(*spec); !s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat("spec.", EngineFieldToJsonPath(
                                            *spec, std::string(s.message()))));
  }
  return spec;
}

absl::Status CheckInitWeights(const v1::SubmitJobRequest& request,
                              const JobSpec& spec) {
  if (request.init_weights().empty()) return absl::OkStatus();
  std::vector<std::vector<int64_t>> shapes;
  std::vector<NdArray> arrays;
  for (int i = 0; i < request.init_weights_size(); ++i) {
    absl::StatusOr<NdArray> w = TensorFromProto(
        request.init_weights(i), absl::StrCat("init_weights[", i, "]"));
    if (!w.ok()) return w.status();
    shapes.push_back(w->shape());
    arrays.push_back(*std::move(w));
  }
  const std::vector<KerasWeight> layout = KerasWeightLayout(spec.model);
  if (shapes.size() != layout.size()) {
    std::vector<std::string> names;
    for (const KerasWeight& w : layout) names.push_back(w.name);
    return absl::InvalidArgumentError(absl::StrCat(
        "init_weights: the spec's model has ", layout.size(), " weights (",
        absl::StrJoin(names, ", "), "), got ", shapes.size()));
  }
  for (size_t i = 0; i < layout.size(); ++i) {
    if (shapes[i] != layout[i].shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "init_weights[", i, "] (", layout[i].name, "): shape ",
          NumpyShapeText(shapes[i]), ", expected ",
          NumpyShapeText(layout[i].shape), " for the spec's model"));
    }
    // Every run would fail on them at the worker (or train on NaN): refused
    // here, at submission.
    for (int64_t k = 0; k < arrays[i].size(); ++k) {
      const double v = arrays[i].at(k);
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "init_weights[", i, "] (", layout[i].name,
            ") has a non-finite "
            "value (",
            v, ") at flat index ", k, "; initial weights must be finite"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PlannedJob> PlanJob(const v1::SubmitJobRequest& request,
                                   const std::vector<WorkerView>& workers,
                                   const SubmitLimits& limits,
                                   absl::string_view job_id,
                                   int64_t now_unix_ms) {
  if (request.client_request_id().size() > kMaxRequestId) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client_request_id is longer than ", kMaxRequestId, " characters"));
  }
  if (request.description().size() > kMaxDescription) {
    return absl::InvalidArgumentError(absl::StrCat(
        "description is longer than ", kMaxDescription, " characters"));
  }
  if (!request.has_spec()) {
    return absl::InvalidArgumentError("spec is required");
  }
  absl::StatusOr<JobSpec> spec = CheckedJobSpec(request.spec());
  if (!spec.ok()) return spec.status();
  if (absl::Status s = CheckJobLimits(*spec, spec->data.samples,
                                      spec->data.eval_samples, limits.job);
      !s.ok()) {
    return s;
  }
  PlannedJob plan;
  JobRow& job = plan.job;
  if (absl::Status s = CheckInitWeights(request, *spec); !s.ok()) return s;
  for (const v1::Tensor& w : request.init_weights()) {
    job.init_weights.push_back(w);
  }

  const v1::Placement& placement = request.placement();
  const int repeats = placement.has_repeats() ? placement.repeats() : 1;
  if (repeats < 1 || repeats > limits.max_repeats) {
    return absl::InvalidArgumentError(
        absl::StrCat("placement.repeats must be in [1, ", limits.max_repeats,
                     "], got ", repeats));
  }
  for (int i = 0; i < placement.profiles_size(); ++i) {
    absl::StatusOr<Profile> p = Profile::Parse(placement.profiles(i).text());
    if (!p.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "placement.profiles[", i, "].text: ", p.status().message()));
    }
  }
  absl::StatusOr<std::vector<const WorkerView*>> chosen =
      SelectWorkers(placement, workers);
  if (!chosen.ok()) return chosen.status();

  struct Slot {
    const WorkerView* worker;
    std::string profile;
    int repeat;
  };
  std::vector<Slot> slots;
  if (placement.add_reference()) {
    const WorkerView* first = chosen->front();
    if (absl::Status s =
            CheckProfileFor(*first, "ref64", "placement.add_reference");
        !s.ok()) {
      return s;
    }
    bool already = false;
    for (const v1::Profile& p : placement.profiles()) {
      already = already || p.text() == "ref64";
    }
    if (!already) slots.push_back({first, "ref64", 0});
  }
  // Chosen by labels rather than by name, a GPU profile goes only to the
  // workers that offer it; at least one must.
  const bool by_labels = placement.workers().empty();
  for (int i = 0; i < placement.profiles_size() && by_labels; ++i) {
    const std::string& text = placement.profiles(i).text();
    if (!NeedsGpu(text)) continue;
    if (std::none_of(chosen->begin(), chosen->end(), [&](const WorkerView* w) {
          return CanRunProfile(w->info, text);
        })) {
      std::vector<std::string> names;
      for (const WorkerView* w : *chosen) names.push_back(w->info.name());
      return absl::FailedPreconditionError(absl::StrCat(
          "placement.profiles[", i, "]: \"", text,
          "\" runs on a GPU and no available worker offers it (workers: ",
          absl::StrJoin(names, ", "),
          "); start driftscope-worker on a GPU host (--device picks the "
          "GPU)"));
    }
  }
  for (const WorkerView* w : *chosen) {
    std::vector<std::string> profiles;
    for (int i = 0; i < placement.profiles_size(); ++i) {
      const std::string& text = placement.profiles(i).text();
      if (by_labels && NeedsGpu(text) && !CanRunProfile(w->info, text)) {
        continue;
      }
      if (absl::Status s = CheckProfileFor(
              *w, text, absl::StrCat("placement.profiles[", i, "]"));
          !s.ok()) {
        return s;
      }
      profiles.push_back(text);
    }
    // The worker's default, as the canonical text it reported: a retry on
    // another worker then runs the same profile.
    if (placement.profiles().empty()) {
      profiles.push_back(w->info.default_profile());
    }
    for (const std::string& p : profiles) {
      for (int r = 0; r < repeats; ++r) slots.push_back({w, p, r});
    }
  }
  // Each run against the memory its worker advertises: a job that cannot
  // fit is refused here, not sent to crash a worker (and then the next).
  for (const Slot& slot : slots) {
    // A worker's own default text that this build cannot parse: judged as
    // fp32 (the worker checks its own limit exactly).
    absl::StatusOr<Profile> parsed = Profile::Parse(slot.profile);
    const Profile profile = parsed.ok() ? *parsed : Profile{};
    const JobMemory memory = EstimateJobMemory(
        *spec, profile, spec->data.samples, spec->data.eval_samples);
    if (absl::Status s =
            CheckJobMemory(memory, slot.worker->info.max_memory_bytes(),
                           absl::StrCat("the memory limit of worker \"",
                                        slot.worker->info.name(),
                                        "\" (profile ", slot.profile, ")"));
        !s.ok()) {
      return s;
    }
  }
  if (static_cast<int>(slots.size()) > limits.max_runs_per_job) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the placement asks for ", slots.size(),
        " runs (workers × profiles × repeats), above the coordinator's "
        "--max_runs_per_job=",
        limits.max_runs_per_job));
  }

  job.job_id = std::string(job_id);
  job.client_request_id = request.client_request_id();
  job.spec_digest = SpecDigest(*spec);
  job.spec = request.spec();
  job.placement = placement;
  job.description = request.description();
  job.state = v1::JOB_QUEUED;
  job.created_unix_ms = now_unix_ms;
  for (size_t i = 0; i < slots.size(); ++i) {
    RunRow run;
    run.run_id = absl::StrCat(job_id, "-r", i);
    run.job_id = job.job_id;
    run.worker = slots[i].worker->info.name();
    run.profile = slots[i].profile;
    run.repeat = slots[i].repeat;
    run.state = v1::RUN_QUEUED;
    plan.runs.push_back(std::move(run));
  }
  return plan;
}

}  // namespace driftscope::coordinator
