// engine_bench: training and inference throughput of the CPU engine, in
// samples per second (items_per_second), for the models of DESIGN §11:
//   small: LSTM(64, seq) -> LSTM(32, seq), T=10, F=1, batch 32
//   large: LSTM(256, seq) -> LSTM(256, seq), T=100, F=32, batch 64
// fp32, Adam (lr 1e-3, clipnorm 1), MSE. One training step is exactly what
// RunJob does per step: forward, batch loss, loss gradient, backward,
// optimizer (with clipping), SHA-256 fingerprint of all weights.
// bench/compare_pytorch.py runs this next to PyTorch and prints the ratios.
// Each model benchmark reports its GEMM work (counter gflop: GFLOP per step)
// and peak/fp32_fma measures this core's fp32 multiply-add peak, so the
// fraction of peak follows from the CPU times (compare_pytorch.py prints it).
//
//   build/bench/engine_bench [--threads=N] [--profile=P] [benchmark flags]
//   build/bench/engine_bench --knob-costs --benchmark_filter=knob/
//     (issue "Profiles": each knob's cost relative to plain fp32)
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/core/sha256.h"
#include "engine/init/initializers.h"
#include "engine/job/job_spec.h"
#include "engine/loss/loss.h"
#include "engine/numerics/context.h"
#include "engine/optim/optimizer.h"
#include "engine/train/model.h"

namespace driftscope {
namespace {

std::string g_profile = "fp32";  // --profile; --threads=N appends threads=N

struct Config {
  int timesteps, features, batch;
  std::vector<int> units;
};
const Config kSmall = {10, 1, 32, {64, 32}};
const Config kLarge = {100, 32, 64, {256, 256}};

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
  return spec;
}

// GFLOP of the GEMMs in one step of `c` (2 per multiply-add): per LSTM
// layer x·W over all steps, h·R over steps 1..T-1 and, when training,
// δA·Rᵀ, dW = Xᵀ·δA, dR = Hᵀ·δA and (above the first layer) δX = δA·Wᵀ.
double GemmGflop(const Config& c, bool train) {
  const double tb = static_cast<double>(c.timesteps) * c.batch;
  const double tb1 = static_cast<double>(c.timesteps - 1) * c.batch;
  double flop = 0;
  int d = c.features;
  for (size_t l = 0; l < c.units.size(); ++l) {
    const double u = c.units[l], g = 4 * u;
    flop += 2 * tb * d * g + 2 * tb1 * u * g;
    if (train) {
      flop += 2 * tb1 * g * u + 2 * tb * d * g + 2 * tb1 * u * g;
      if (l > 0) flop += 2 * tb * g * d;
    }
    d = c.units[l];
  }
  return flop * 1e-9;
}

std::vector<float> Fill(int64_t n, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  uint32_t s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>((s >> 8) * (1.0 / 8388608.0) - 1.0);
  }
  return v;
}

struct Fixture {
  std::unique_ptr<Context> ctx;
  std::unique_ptr<Model<float>> model;
  std::unique_ptr<Optimizer<float>> opt;
  std::vector<float> x, y, dy;
  int batch = 0;
  int64_t out_size = 0;

  bool Setup(const Config& c, benchmark::State& state,
             const std::string& profile_text = g_profile) {
    JobSpec spec = SpecFor(c);
    absl::StatusOr<Profile> profile = Profile::Parse(profile_text);
    if (!profile.ok()) {
      state.SkipWithError(std::string(profile.status().message()).c_str());
      return false;
    }
    ctx = std::make_unique<Context>(*profile, spec.seed);
    absl::StatusOr<std::unique_ptr<Model<float>>> m =
        Model<float>::Create(spec.model, c.batch);
    if (!m.ok()) {
      state.SkipWithError(std::string(m.status().message()).c_str());
      return false;
    }
    model = std::move(*m);
    // Keras initial weights, as a run would start.
    for (int i = 0; i < model->num_layers(); ++i) {
      std::vector<std::vector<int64_t>> shapes;
      for (const WeightShape& w : model->layer(i).weights()) {
        shapes.push_back(w.shape);
      }
      std::vector<float> values;
      absl::Status s =
          InitializeLayer(spec.model.layers[i], shapes, spec.seed, i, &values);
      if (!s.ok()) {
        state.SkipWithError(std::string(s.message()).c_str());
        return false;
      }
      std::memcpy(model->params() + model->layer_offset(i), values.data(),
                  values.size() * sizeof(float));
    }
    absl::StatusOr<std::unique_ptr<Optimizer<float>>> o =
        Optimizer<float>::Create(spec.optimizer, model->variables());
    if (!o.ok()) {
      state.SkipWithError(std::string(o.status().message()).c_str());
      return false;
    }
    opt = std::move(*o);
    batch = c.batch;
    out_size = model->output_shape().per_sample();
    x = Fill(int64_t{batch} * model->input_shape().per_sample(), 1);
    y = Fill(int64_t{batch} * out_size, 2);
    dy.resize(y.size());
    return true;
  }
};

void TrainStep(Fixture& f, Sha256& hasher, double* loss_sink) {
  const float* out = f.model->Forward(*f.ctx, f.x.data(), f.batch);
  const int units = f.model->output_shape().dim;
  const int64_t rows = int64_t{f.batch} * f.out_size / units;
  *loss_sink += LossForward(LossKind::kMse, out, f.y.data(), rows, units);
  LossBackward(LossKind::kMse, out, f.y.data(), rows, units, f.dy.data());
  f.model->Backward(*f.ctx, f.dy.data());
  f.opt->Apply(f.model->params(), f.model->grads());
  hasher.Update(f.model->params(), f.model->num_params() * sizeof(float));
  Sha256Digest d = hasher.Digest();
  benchmark::DoNotOptimize(d);
}

void BM_Train(benchmark::State& state, const Config* c) {
  Fixture f;
  if (!f.Setup(*c, state)) return;
  Sha256 hasher;
  double loss = 0;
  // Warm-up outside the timing, as compare_pytorch.py does for PyTorch: the
  // first step touches tens of MB of fresh buffers (page faults).
  TrainStep(f, hasher, &loss);
  for (auto _ : state) TrainStep(f, hasher, &loss);
  benchmark::DoNotOptimize(loss);
  state.SetItemsProcessed(state.iterations() * c->batch);
  state.counters["gflop"] = GemmGflop(*c, true);
  state.SetLabel(g_profile + " kernels=" + f.ctx->kernel_isa());
}

void BM_Infer(benchmark::State& state, const Config* c) {
  Fixture f;
  if (!f.Setup(*c, state)) return;
  benchmark::DoNotOptimize(f.model->Forward(*f.ctx, f.x.data(), f.batch));
  for (auto _ : state) {
    const float* out = f.model->Forward(*f.ctx, f.x.data(), f.batch);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * c->batch);
  state.counters["gflop"] = GemmGflop(*c, false);
  state.SetLabel(g_profile + " kernels=" + f.ctx->kernel_isa());
}

// This core's fp32 peak: independent multiply-add chains in registers, the
// widest vectors the CPU has (12 chains cover the FMA latency of two pipes).
// items_per_second is FLOP per second (2 per lane and multiply-add).
// The empty asm keeps the 12 chains apart (they would otherwise be merged
// into one) without adding instructions.
#define DRIFTSCOPE_FMA_CHAINS(V, x, y)                                         \
  V a0 = x, a1 = x + y, a2 = a1 + y, a3 = a2 + y, a4 = a3 + y, a5 = a4 + y,    \
    a6 = a5 + y, a7 = a6 + y, a8 = a7 + y, a9 = a8 + y, a10 = a9 + y,          \
    a11 = a10 + y;                                                             \
  for (int64_t i = 0; i < iters; ++i) {                                        \
    a0 = a0 * x + y;                                                           \
    a1 = a1 * x + y;                                                           \
    a2 = a2 * x + y;                                                           \
    a3 = a3 * x + y;                                                           \
    a4 = a4 * x + y;                                                           \
    a5 = a5 * x + y;                                                           \
    a6 = a6 * x + y;                                                           \
    a7 = a7 * x + y;                                                           \
    a8 = a8 * x + y;                                                           \
    a9 = a9 * x + y;                                                           \
    a10 = a10 * x + y;                                                         \
    a11 = a11 * x + y;                                                         \
    asm volatile(""                                                            \
                 : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), \
                   "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10),          \
                   "+v"(a11));                                                 \
  }                                                                            \
  V sum = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) +                  \
          ((a8 + a9) + (a10 + a11));                                           \
  benchmark::DoNotOptimize(sum);                                               \
  return iters * 12 * 2 * static_cast<int64_t>(sizeof(V) / sizeof(float))

__attribute__((target("avx512f"), optimize("fp-contract=fast"))) int64_t
PeakAvx512(int64_t iters) {
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  DRIFTSCOPE_FMA_CHAINS(__m512, x, y);
}
__attribute__((target("avx2,fma"), optimize("fp-contract=fast"))) int64_t
PeakAvx2(int64_t iters) {
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  DRIFTSCOPE_FMA_CHAINS(__m256, x, y);
}
#undef DRIFTSCOPE_FMA_CHAINS

void BM_PeakFma(benchmark::State& state) {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  if (!avx512 && !__builtin_cpu_supports("fma")) {
    state.SkipWithError("no FMA on this CPU");
    return;
  }
  int64_t flop = 0;
  for (auto _ : state) flop += avx512 ? PeakAvx512(1 << 20) : PeakAvx2(1 << 20);
  state.SetItemsProcessed(flop);
  state.SetLabel(avx512 ? "avx512 fma" : "avx2 fma");
}

// Issue "Profiles": the cost of each knob relative to plain fp32, on the same
// training step. Registered only with --knob-costs (the slow reduction
// orders take tens of seconds per large step).
const char* const kKnobProfiles[] = {"fp32",
                                     "ref64",
                                     "fp32-sse2",
                                     "fp32-avx2",
                                     "fp32-avx512",
                                     "tf32",
                                     "bf16",
                                     "fp16",
                                     "fp32-nondet",
                                     "fp32-perturb",
                                     "fp32,act=libm",
                                     "fp32,act=gpu",
                                     "fp32,impl=1",
                                     "fp32,gemm=split-k=4",
                                     "fp32,gemm=pairwise",
                                     "fp32,gemm=sequential",
                                     "fp32,sr=on",
                                     "fp32,threads=2,reduce=threads"};

void BM_TrainProfile(benchmark::State& state, const Config* c,
                     std::string profile) {
  Fixture f;
  if (!f.Setup(*c, state, profile)) return;
  Sha256 hasher;
  double loss = 0;
  TrainStep(f, hasher, &loss);  // warm-up, as in BM_Train
  for (auto _ : state) TrainStep(f, hasher, &loss);
  benchmark::DoNotOptimize(loss);
  state.SetItemsProcessed(state.iterations() * c->batch);
  state.SetLabel(f.ctx->profile().ToString());
}

void RegisterKnobCosts() {
  for (const auto& [name, config] :
       {std::pair<const char*, const Config*>{"small", &kSmall},
        {"large", &kLarge}}) {
    for (const char* profile : kKnobProfiles) {
      auto* b = benchmark::RegisterBenchmark(
          absl::StrCat("knob/", name, "/", profile).c_str(), BM_TrainProfile,
          config, std::string(profile));
      b->Unit(benchmark::kMillisecond)->UseRealTime();
      // sr=on computes every product in double and draws a random number
      // per output: seconds per large step.
      if (config == &kLarge &&
          std::string(profile).find("sr=on") != std::string::npos) {
        b->Iterations(1);
      }
    }
  }
}

// Prints, after the normal output, each knob's time relative to fp32: by
// wall-clock time, and by the process's CPU time (on a loaded machine the
// steadier of the two: other processes stretch wall-clock time unevenly).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      const std::string name = r.benchmark_name();
      if (name.rfind("knob/", 0) == 0 && r.iterations > 0) {
        times_.push_back(
            {name, r.GetAdjustedRealTime(), r.GetAdjustedCPUTime()});
      }
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    if (times_.empty()) return;
    std::printf(
        "\nknob cost relative to fp32 (time per training step): wall, cpu\n");
    for (const Time& t : times_) {
      const std::string size = t.name.substr(5, 5);  // "small" / "large"
      const Time* base = nullptr;
      for (const Time& b : times_) {
        if (b.name.rfind("knob/" + size + "/fp32/", 0) == 0) base = &b;
      }
      if (base != nullptr) {
        std::printf("  %-56s %6.2fx %6.2fx\n", t.name.c_str(),
                    t.wall / base->wall, t.cpu / base->cpu);
      }
    }
  }

 private:
  struct Time {
    std::string name;
    double wall, cpu;
  };
  std::vector<Time> times_;
};

BENCHMARK_CAPTURE(BM_Train, small_lstm, &kSmall)
    ->Name("train/small_lstm")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Train, large_lstm, &kLarge)
    ->Name("train/large_lstm")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Infer, small_lstm, &kSmall)
    ->Name("infer/small_lstm")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Infer, large_lstm, &kLarge)
    ->Name("infer/large_lstm")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_PeakFma)->Name("peak/fp32_fma")->UseRealTime();

}  // namespace
}  // namespace driftscope

int main(int argc, char** argv) {
  // Our own flags first; the rest goes to Google Benchmark.
  std::vector<char*> rest = {argv[0]};
  std::string threads;
  bool knob_costs = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--threads=", 0) == 0) {
      threads = a.substr(10);
    } else if (a == "--knob-costs") {
      knob_costs = true;
    } else if (a.rfind("--profile=", 0) == 0) {
      driftscope::g_profile = a.substr(10);
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (!threads.empty() && threads != "1") {
    driftscope::g_profile += ",threads=" + threads;
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 2;
  if (knob_costs) {
    driftscope::RegisterKnobCosts();
    driftscope::RatioReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
  } else {
    // The default reporter honours --benchmark_format (compare_pytorch.py
    // reads JSON).
    benchmark::RunSpecifiedBenchmarks();
  }
  benchmark::Shutdown();
  return 0;
}
