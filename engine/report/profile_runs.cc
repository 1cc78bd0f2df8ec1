#include "engine/report/profile_runs.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/drift/array_drift.h"
#include "engine/env/environment.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile_diff.h"
#include "engine/train/trainer.h"

namespace driftscope {

namespace {

std::optional<double> RelL2(const RunResult& a, const RunResult& ref) {
  DriftOptions o;
  o.per_timestep = false;
  absl::StatusOr<ArrayDrift> d = CompareArrays(a.outputs, ref.outputs, o);
  if (!d.ok()) return std::nullopt;
  return d->overall.rel_l2;
}

// Whether `p` survives a round trip through its text and this CPU runs it.
bool Runnable(const Profile& p) {
  return Profile::Parse(p.ToString()).ok() && Context::Check(p).ok();
}

}  // namespace

absl::StatusOr<Profile> ParseRunnableProfile(const std::string& text) {
  absl::StatusOr<Profile> p = Profile::Parse(text);
  if (!p.ok()) return absl::InvalidArgumentError(p.status().message());
  if (absl::Status s = Context::Check(*p); !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  return p;
}

void RunProfiles(const JobSpec& spec,
                 std::vector<std::unique_ptr<ProfileRun>>& runs, int parallel,
                 const RunsProgressFn& on_progress,
                 const std::optional<std::vector<NdArray>>& init_weights) {
  std::atomic<size_t> next{0};
  std::atomic<int> done{0};
  auto worker = [&] {
    for (size_t i = next++; i < runs.size(); i = next++) {
      ProfileRun& r = *runs[i];
      RunOptions options;
      options.init_weights = init_weights;
      options.on_progress = [&r](const ProgressEvent& e) {
        r.step = e.step;
        r.total = e.total_steps;
      };
      r.result = RunJob(spec, r.profile, options);
      ++done;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < parallel; ++t) threads.emplace_back(worker);
  if (on_progress) {
    while (done < static_cast<int>(runs.size())) {
      RunsProgress p;
      for (const auto& r : runs) {
        p.steps += r->step;
        p.total_steps += std::max<int64_t>(r->total, r->step);
      }
      p.runs_done = done.load();
      p.runs = static_cast<int>(runs.size());
      on_progress(p);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  for (std::thread& t : threads) t.join();
}

RunRecord RecordFromResult(const std::string& name, int repeat,
                           const RunResult& r) {
  RunRecord rec;
  rec.name = name;
  rec.repeat = repeat;
  rec.spec_digest = r.spec_digest;
  rec.outputs = r.outputs;
  rec.losses = r.losses;
  for (const Fingerprint& f : r.fingerprints) {
    rec.fingerprints.push_back(f.sha256);
    rec.fingerprints_f32.push_back(f.sha256_f32);
  }
  rec.epoch_outputs = r.epoch_outputs;
  rec.profile = r.profile;
  // The keys `driftscope run` has always shown in its HTML report (no os,
  // ISA flags or compile flags: one machine, the same for every run).
  const Environment& env = ProbeEnvironment();
  rec.environment = {{"hostname", env.hostname},
                     {"cpu_model", env.cpu_model},
                     {"compiler", env.compiler},
                     {"blas", env.blas},
                     {"engine_version", env.engine_version},
                     {"profile", r.profile}};
  AddDeviceRunEntries(r.device, &rec.environment);
  return rec;
}

absl::StatusOr<std::vector<KnobSweepRow>> SweepKnobs(
    const JobSpec& spec, const Profile& a, const Profile& b, int parallel,
    const RunsProgressFn& on_progress,
    const std::optional<std::vector<NdArray>>& init_weights) {
  std::vector<KnobChange> changes = ProfileDifferences(a, b);
  std::vector<std::unique_ptr<ProfileRun>> runs;
  runs.push_back(std::make_unique<ProfileRun>("A", a, 0));
  std::vector<KnobSweepRow> rows;
  std::vector<int> alone_idx, chain_idx;
  for (size_t i = 0; i < changes.size(); ++i) {
    KnobSweepRow row;
    row.knob = changes[i].value;
    Profile alone = ApplyKnobs(a, b, {changes[i]});
    row.alone_profile = alone.ToString();
    // Some knobs only exist together (tf32 needs fp32): those are measured
    // in the chain only.
    if (Runnable(alone)) {
      alone_idx.push_back(static_cast<int>(runs.size()));
      runs.push_back(std::make_unique<ProfileRun>(row.knob, alone, 0));
    } else {
      alone_idx.push_back(-1);
      row.note = "not valid alone on A";
    }
    std::vector<KnobChange> prefix(changes.begin(), changes.begin() + i + 1);
    Profile chain = ApplyKnobs(a, b, prefix);
    if (Runnable(chain)) {
      chain_idx.push_back(static_cast<int>(runs.size()));
      runs.push_back(std::make_unique<ProfileRun>(row.knob, chain, 0));
    } else {
      chain_idx.push_back(-1);
    }
    rows.push_back(row);
  }
  RunProfiles(spec, runs, parallel, on_progress, init_weights);
  for (const auto& r : runs) {
    if (!r->result.ok()) return r->result.status();
  }
  const RunResult& base = *runs[0]->result;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (alone_idx[i] >= 0) {
      rows[i].alone_rel_l2 = RelL2(*runs[alone_idx[i]]->result, base);
    }
    if (chain_idx[i] >= 0) {
      rows[i].chain_rel_l2 = RelL2(*runs[chain_idx[i]]->result, base);
    }
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const KnobSweepRow& x, const KnobSweepRow& y) {
                     return x.alone_rel_l2.value_or(-1) >
                            y.alone_rel_l2.value_or(-1);
                   });
  return rows;
}

}  // namespace driftscope
