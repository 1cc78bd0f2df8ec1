// CompareArrays throughput (DESIGN §11: analysis at >= 2 GB/s of tensor data
// per core). Two 64 MB arrays that differ the way real runs do: most
// elements a few ulps apart, some identical; flat, and as (N, 100, 64) with
// per-timestep curves. Every SIMD kernel this CPU runs is measured (the
// first is what CompareArrays uses). Bytes processed counts both inputs.
// Throughput is per CPU second (the default), not wall time: the target is
// per core, and wall time on a shared machine counts other processes' turns.
//
// Baseline, in the same run: BM_ReadBothArrays streams both arrays and does
// nothing else (what "at memory bandwidth" would be); each comparison also
// reports vs_read = its throughput / that baseline's, measured alongside.
#include <algorithm>
#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/core/ndarray.h"
#include "engine/drift/array_drift.h"
#include "engine/drift/array_drift_internal.h"

namespace driftscope {
namespace {

constexpr int64_t kBytes = int64_t{64} << 20;

// A cheap deterministic generator (splitmix64) keeps the bench independent
// of the RNG module.
uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

template <typename T>
void MakePair(std::vector<int64_t> shape, NdArray* a, NdArray* r) {
  *r = NdArray(DTypeOf<T>(), shape);
  const int64_t n = r->size();
  T* rp = r->data<T>();
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t u = Mix(static_cast<uint64_t>(i));
    rp[i] =
        static_cast<T>((static_cast<double>(u >> 11) * 0x1.0p-53) * 2.0 - 1.0);
  }
  *a = *r;
  T* ap = a->data<T>();
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t u = Mix(static_cast<uint64_t>(i) ^ 0xABCDEFull);
    // ~70% of elements perturbed by up to +-2^-20 relative (a few fp32 ulps).
    if ((u & 0xFF) < 180) {
      const double rel =
          (static_cast<double>(u >> 40) * 0x1.0p-24 - 0.5) * 0x1.0p-19;
      ap[i] = static_cast<T>(ap[i] * (1.0 + rel));
    }
  }
}

template <typename T>
std::vector<int64_t> Shape(bool per_timestep) {
  const int64_t n = kBytes / static_cast<int64_t>(sizeof(T));
  if (per_timestep) return {n / (100 * 64), 100, 64};  // (N, T, U)
  return {n};
}

double CpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Streams both arrays once (a sum of their 64-bit words).
uint64_t ReadBoth(const NdArray& a, const NdArray& r) {
  uint64_t s = 0;
  for (const NdArray* x : {&a, &r}) {
    const uint64_t* w = reinterpret_cast<const uint64_t*>(x->raw());
    const int64_t n = static_cast<int64_t>(x->nbytes() / sizeof(uint64_t));
    for (int64_t i = 0; i < n; ++i) s += w[i];
  }
  return s;
}

// CPU seconds of the fastest of a few ReadBoth passes.
double ReadSeconds(const NdArray& a, const NdArray& r) {
  double best = 1e300;
  for (int i = 0; i < 3; ++i) {
    const double t0 = CpuSeconds();
    benchmark::DoNotOptimize(ReadBoth(a, r));
    best = std::min(best, CpuSeconds() - t0);
  }
  return best;
}

template <typename T>
void BM_ReadBothArrays(benchmark::State& state) {
  NdArray a, r;
  MakePair<T>(Shape<T>(false), &a, &r);
  for (auto _ : state) benchmark::DoNotOptimize(ReadBoth(a, r));
  state.SetBytesProcessed(state.iterations() * 2 * kBytes);
  state.counters["vs_read"] = 1.0;  // every row has it (CSV needs that)
}

template <typename T>
void BM_CompareArrays(benchmark::State& state, bool per_timestep,
                      const std::string& kernel) {
  NdArray a, r;
  MakePair<T>(Shape<T>(per_timestep), &a, &r);
  DriftOptions options;
  const double read_s = ReadSeconds(a, r);
  const double t0 = CpuSeconds();
  for (auto _ : state) {
    auto d = drift_internal::CompareArraysWithKernel(a, r, options, kernel);
    if (!d.ok()) state.SkipWithError(d.status().ToString().c_str());
    benchmark::DoNotOptimize(d);
  }
  const double compare_s =
      (CpuSeconds() - t0) / static_cast<double>(state.iterations());
  state.SetBytesProcessed(state.iterations() * 2 * kBytes);
  state.counters["vs_read"] = read_s / compare_s;
}

template <typename T>
void Register(const char* type) {
  benchmark::RegisterBenchmark(
      (std::string("BM_ReadBothArrays<") + type + ">").c_str(),
      BM_ReadBothArrays<T>)
      ->Unit(benchmark::kMillisecond);
  for (const std::string& kernel : drift_internal::KernelNames()) {
    if (kernel == "portable") continue;
    for (bool per_t : {false, true}) {
      benchmark::RegisterBenchmark(
          (std::string("BM_CompareArrays<") + type + ">/" +
           (per_t ? "per_timestep/" : "flat/") + kernel)
              .c_str(),
          [per_t, kernel](benchmark::State& state) {
            BM_CompareArrays<T>(state, per_t, kernel);
          })
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace
}  // namespace driftscope

int main(int argc, char** argv) {
  driftscope::Register<float>("float");
  driftscope::Register<double>("double");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
