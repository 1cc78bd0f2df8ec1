// gpu_bench: training throughput (samples per second, items_per_second) of
// the device backends on the engine_bench models, through RunJob exactly as
// a worker runs them (per-step loss and weight fingerprint included):
//   small: LSTM(64, seq) -> LSTM(32, seq), T=10, F=1, batch 32
//   large: LSTM(256, seq) -> LSTM(256, seq), T=100, F=32, batch 64
// Profiles: fp32 (the CPU engine, the baseline), cuda-det-emu (the
// deterministic GPU path on this CPU), and the GPU presets cuda, cuda-tf32,
// cuda-cudnn, cuda-det, cuda-nondet. A GPU preset on a host without a usable
// device is reported as skipped with the reason. Time is the training loop
// only (RunResult::timings.train_seconds), not set-up or evaluation.
//
//   build/bench/gpu_bench [--benchmark_filter=small/] [benchmark flags]
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "engine/job/job_spec.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"

namespace driftscope {
namespace {

struct Config {
  const char* name;
  int timesteps, features, batch, steps;
  std::vector<int> units;
};

JobSpec SpecFor(const Config& c) {
  JobSpec spec = DefaultJobSpec();
  spec.model.timesteps = c.timesteps;
  spec.model.features = c.features;
  spec.model.layers.clear();
  for (int u : c.units) {
    LayerSpec l;
    l.kind = LayerKind::kLstm;
    l.units = u;
    l.return_sequences = true;
    spec.model.layers.push_back(l);
  }
  spec.training.batch_size = c.batch;
  spec.training.epochs = 1;
  spec.data.samples = c.batch * c.steps;
  spec.data.eval_samples = c.batch;
  return spec;
}

void Train(benchmark::State& state, const Config& c, const std::string& name) {
  const Profile profile = *Profile::Parse(name);
  if (absl::Status s = Context::Check(profile); !s.ok()) {
    state.SkipWithError(std::string(s.message()).c_str());
    return;
  }
  const JobSpec spec = SpecFor(c);
  int64_t samples = 0;
  for (auto _ : state) {
    absl::StatusOr<RunResult> r = RunJob(spec, profile);
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      return;
    }
    state.SetIterationTime(r->timings.train_seconds);
    samples += spec.data.samples;
    state.SetLabel(r->device.backend.empty()
                       ? "cpu"
                       : r->device.backend + " " + r->device.gpu_name);
  }
  state.SetItemsProcessed(samples);
}

const Config kSmall = {"small", 10, 1, 32, 32, {64, 32}};
const Config kLarge = {"large", 100, 32, 64, 8, {256, 256}};

int Register() {
  for (const Config* c : {&kSmall, &kLarge}) {
    for (const char* p : {"fp32", "cuda-det-emu", "cuda", "cuda-tf32",
                          "cuda-cudnn", "cuda-det", "cuda-nondet"}) {
      benchmark::RegisterBenchmark(
          (std::string(c->name) + "/" + p).c_str(),
          [c, p](benchmark::State& s) { Train(s, *c, p); })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.5);
    }
  }
  return 0;
}
const int kRegistered = Register();

}  // namespace
}  // namespace driftscope

BENCHMARK_MAIN();
