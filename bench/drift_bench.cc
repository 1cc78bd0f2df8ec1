// CompareArrays throughput (DESIGN §11: analysis at >= 2 GB/s of tensor data
// per core). Two 64 MB arrays that differ the way real runs do: most
// elements a few ulps apart, some identical. Bytes processed counts both
// inputs. Throughput is per CPU second (the default), not wall time: the
// target is per core, and wall time on a shared machine counts other
// processes' turns.
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/core/ndarray.h"
#include "engine/drift/array_drift.h"

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
void BM_CompareArrays(benchmark::State& state) {
  const int64_t n = kBytes / static_cast<int64_t>(sizeof(T));
  std::vector<int64_t> shape = {n};
  if (state.range(0) == 1) shape = {n / (100 * 64), 100, 64};  // (N, T, U)
  NdArray a, r;
  MakePair<T>(shape, &a, &r);
  DriftOptions options;
  for (auto _ : state) {
    auto d = CompareArrays(a, r, options);
    benchmark::DoNotOptimize(d);
  }
  state.SetBytesProcessed(state.iterations() * 2 * kBytes);
}

BENCHMARK_TEMPLATE(BM_CompareArrays, float)
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_CompareArrays, double)
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace driftscope

BENCHMARK_MAIN();
