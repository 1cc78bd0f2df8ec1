// Accumulation of the drift metrics (part of CompareArrays,
// engine/drift/array_drift.h): a group (the whole array, or one timestep of
// the per-timestep curves) is fed its elements in order; the kernel adds
// them to the lane sums of the open block of 256, to the running extremes
// and counts, and writes a fine histogram key per element, which is
// buffered and counted kKeyBuffer at a time. EndGroup closes a group into
// its Acc and single-copy ULP and significant-bits histograms (the medians
// are array_drift_medians.h). MaxAbsFinite is the pass before, for the
// default relative-error floor.
//
// Thread-safety: a Group (and the GroupArena that owns its memory) is used
// by one thread at a time; the functions touch only what they are given.
// Private to engine/drift.
#ifndef DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_ACCUMULATE_H_
#define DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_ACCUMULATE_H_

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <type_traits>
#include <vector>

#include "engine/drift/array_drift_dispatch.h"
#include "engine/drift/array_drift_kernels.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace driftscope {
namespace drift_internal {

using drift_kernels::kBlock;
using drift_kernels::kExpBits;
using drift_kernels::kLanes;

// Interleaved histogram copies: no store-forward stalls.
inline constexpr int kCopies = 4;
inline constexpr int kKeyBuffer = 1024;  // keys counted at a time

// Accumulated scalar metrics of one group (the array or one timestep).
struct Acc {
  int64_t count = 0, numeric = 0, differing = 0, nan_mm = 0, inf_mm = 0,
          nf_match = 0, viol = 0;
  double sum_abs = 0, sum_d2 = 0, sum_r2 = 0, sum_a2 = 0, sum_ar = 0;
  // Σ log2 c = sum_c_exp + sum_log2_mant.
  int64_t sum_c_exp = 0;
  double sum_log2_mant = 0;
  double max_abs = 0, max_rel = 0;
  uint64_t max_ulp = 0;

  void Add(const BlockSums& b) {
    sum_abs += b.abs;
    sum_d2 += b.d2;
    sum_r2 += b.r2;
    sum_a2 += b.a2;
    sum_ar += b.ar;
    sum_log2_mant += b.log2_mant;
  }
  void Merge(const Acc& o) {
    count += o.count;
    numeric += o.numeric;
    differing += o.differing;
    nan_mm += o.nan_mm;
    inf_mm += o.inf_mm;
    nf_match += o.nf_match;
    viol += o.viol;
    sum_abs += o.sum_abs;
    sum_d2 += o.sum_d2;
    sum_r2 += o.sum_r2;
    sum_a2 += o.sum_a2;
    sum_ar += o.sum_ar;
    sum_c_exp += o.sum_c_exp;
    sum_log2_mant += o.sum_log2_mant;
    max_abs = std::max(max_abs, o.max_abs);
    max_rel = std::max(max_rel, o.max_rel);
    max_ulp = std::max(max_ulp, o.max_ulp);
  }
};

template <typename TA, typename TR>
void ClassifyNonFinite(const TA* a, const TR* r, int n, Acc* acc) {
  for (int i = 0; i < n; ++i) {
    const double av = a[i], rv = r[i];
    if (std::isfinite(av) && std::isfinite(rv)) continue;
    const bool na = std::isnan(av), nr = std::isnan(rv);
    if (na != nr) {
      ++acc->nan_mm;
    } else if (na || av == rv) {
      ++acc->nf_match;
    } else {
      ++acc->inf_mm;
    }
  }
}

// A group being accumulated. Its keys are buffered and counted kKeyBuffer
// at a time, so that the histograms of many interleaved groups (index-order
// per-timestep curves) are not pulled into L1 for every short row. The
// fine-key histograms keep kCopies interleaved counters per key so that
// runs of equal keys do not serialize.
struct Group {
  Lanes lanes;
  int fill = 0;  // elements in the open block
  int buffered = 0;
  int64_t identical = 0;  // keys 0 left out of the buffer
  Acc acc;
  uint32_t* keys = nullptr;  // kKeyBuffer (+ slack)
  // [key * kCopies + copy], junk key last
  int64_t* ulp = nullptr;
  int64_t* sig = nullptr;
};

// The groups' key buffers and histograms, in two allocations. The
// histograms come from calloc: fresh pages are zero without a memset, and
// only the pages of keys that occur are ever touched.
class GroupArena {
 public:
  GroupArena(std::vector<Group>* groups, const Params& p);
  bool ok() const { return hist_ != nullptr; }
  void Release() {
    keys_.reset();
    hist_.reset();
  }

 private:
  struct Free {
    void operator()(int64_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint32_t[]> keys_;
  std::unique_ptr<int64_t, Free> hist_;
};

// Counts a group's buffered keys (and the identical elements left out of
// the buffer) into its histograms.
void CountKeys(Group* g);

// How many of n keys are junk (non-numeric elements).
int CountJunk(const uint32_t* keys, int n, uint32_t junk);

// Adds the next n elements of a group's sequence.
template <typename TA, typename TR>
void Feed(const TA* a, const TR* r, int64_t n, const Kernel& k, Group* g) {
  const uint32_t junk = drift_kernels::JunkKeys(k.p);
  while (n > 0) {
    const int m = static_cast<int>(std::min<int64_t>(n, kBlock - g->fill));
    if (g->buffered + m > kKeyBuffer) CountKeys(g);
    uint32_t* keys = g->keys + g->buffered;
    int nonfinite = 0, written = 0;
    if (k.Run(a, r, m, g->fill & (kLanes - 1), &g->lanes, keys, &written)) {
      nonfinite = CountJunk(keys, written, junk);
      ClassifyNonFinite(a, r, m, &g->acc);
    }
    g->buffered += written;
    g->identical += m - written;
    g->acc.count += m;
    g->acc.numeric += m - nonfinite;
    g->fill += m;
    if (g->fill == kBlock) {
      g->acc.Add(k.Close(g->lanes));
      g->lanes.ResetBlock();
      g->fill = 0;
    }
    a += m;
    r += m;
    n -= m;
  }
}

// Moves the counts of keys <= max_key out of a working histogram into a
// single-copy one, and clears the junk key.
void DrainHist(int64_t* w, int junk, uint64_t max_key,
               std::vector<int64_t>* out);

// Closes a group: its Acc and single-copy histograms; the group is left
// empty for the next one.
void EndGroup(const Kernel& k, bool count_diff, Group* g, Acc* acc,
              std::vector<int64_t>* ulp, std::vector<int64_t>* sig);

// The largest finite |r|: the default relative-error floor is 1e-6 of it.
template <typename T>
double MaxAbsFinite(const T* r, int64_t n) {
  double m[kLanes] = {};
  int64_t i = 0;
#if defined(__AVX2__)
  // Non-negative floats order like their bit patterns, and Inf/NaN have the
  // largest ones: an integer max over the masked bits.
  if constexpr (std::is_same_v<T, float>) {
    const __m256i abs = _mm256_set1_epi32(0x7FFFFFFF);
    const __m256i inf = _mm256_set1_epi32(0x7F800000);
    __m256i mx = _mm256_setzero_si256();
    for (; i + 8 <= n; i += 8) {
      const __m256i v = _mm256_and_si256(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + i)), abs);
      mx =
          _mm256_max_epi32(mx, _mm256_and_si256(v, _mm256_cmpgt_epi32(inf, v)));
    }
    alignas(32) float f[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(f), mx);
    for (int j = 0; j < 8; ++j) m[j] = f[j];
  } else {
    const __m256i abs = _mm256_set1_epi64x(0x7FFFFFFFFFFFFFFF);
    const __m256i inf = _mm256_set1_epi64x(kExpBits);
    __m256i mx = _mm256_setzero_si256();
    for (; i + 4 <= n; i += 4) {
      const __m256i v = _mm256_and_si256(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + i)), abs);
      const __m256i fin = _mm256_and_si256(v, _mm256_cmpgt_epi64(inf, v));
      mx = _mm256_blendv_epi8(mx, fin, _mm256_cmpgt_epi64(fin, mx));
    }
    _mm256_storeu_pd(m, _mm256_castsi256_pd(mx));
  }
#endif
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const double v = std::fabs(static_cast<double>(r[i + j]));
      m[j] = std::max(m[j], v <= DBL_MAX ? v : 0.0);
    }
  }
  double out = 0;
  for (; i < n; ++i) {
    const double v = std::fabs(static_cast<double>(r[i]));
    out = std::max(out, v <= DBL_MAX ? v : 0.0);
  }
  for (int j = 0; j < kLanes; ++j) out = std::max(out, m[j]);
  return out;
}

}  // namespace drift_internal
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_ACCUMULATE_H_
