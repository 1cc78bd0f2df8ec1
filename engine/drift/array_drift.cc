// One fused pass visits every element once and adds it to its group (the
// array, or one timestep of the per-timestep curves): lane sums of the open
// block of 256, running extremes and counts, and a fine histogram key per
// element (kernels: array_drift_kernels.h portable, array_drift_avx2.h, and
// array_drift_avx512.h, chosen at run time). A second pass runs only when a
// median falls in a histogram key that holds more than one value, and then
// keeps only the elements of that key (a vectorized filter on the relative
// error admits a superset; the exact key decides).
//
// The keys carry more than the medians: the exponent sum of the relative
// errors is read off the significant-bits histogram, and for arrays of one
// dtype the number of differing elements off the ULP histogram's key 0, so
// the kernels do not count them per element. Keys are buffered per group
// and counted a thousand at a time; the SIMD kernels leave out key 0
// (identical elements, often most of them) and the group counts those in
// bulk.
//
// Per-timestep curves of an (N, T, U) array: each t is its own group, fed
// its rows in order of i. When the T groups' working histograms fit, the
// array is walked in index order, a tile of 256/U rows at a time (each group
// gets about a block while its state is in L1; the tile's rows are prefetched
// as separate streams); otherwise t-major with one group at a time, staging
// short rows into a contiguous buffer. Either walk gives every group the same
// sequence, and the kernels cut a group's sequence into the same blocks and
// lanes wherever a run starts, so results do not depend on the walk.
#include "engine/drift/array_drift.h"

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/drift/array_drift_avx2.h"
#include "engine/drift/array_drift_avx512.h"
#include "engine/drift/array_drift_internal.h"
#include "engine/drift/array_drift_kernels.h"

namespace driftscope {
namespace {

using drift_kernels::BitCast;
using drift_kernels::BlockSums;
using drift_kernels::Gather;
using drift_kernels::GatherFilter;
using drift_kernels::KeyRange;
using drift_kernels::kLanes;
using drift_kernels::Lanes;
using drift_kernels::Log2Unit;
using drift_kernels::Params;
using drift_kernels::SigKey;
using drift_kernels::UlpKey;

constexpr int kBlock = drift_kernels::kBlock;
constexpr int64_t kMinDirectRow = 32;  // shorter rows are staged (t-major)
constexpr int64_t kStage = 1024;       // staged elements per run
constexpr int kCopies = 4;  // interleaved histograms: no store-forward stalls
constexpr int kKeyBuffer = 1024;  // keys counted at a time
constexpr size_t kMaxGroupBytes = size_t{64} << 20;
constexpr uint64_t kExpBits = drift_kernels::kExpBits;

// ---------------------------------------------------------------------------
// Accumulation.

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
  GroupArena(std::vector<Group>* groups, const Params& p) {
    const size_t ulp_n = static_cast<size_t>(p.ulp_keys + 1) * kCopies;
    const size_t sig_n = static_cast<size_t>(p.sig_keys + 1) * kCopies;
    const size_t n = groups->size();
    // kLanes slots of slack after each buffer (the SIMD kernels write
    // whole vectors).
    constexpr size_t kStride = kKeyBuffer + kLanes;
    keys_.reset(new uint32_t[n * kStride]);
    // At least one element: calloc(0) may return null.
    hist_.reset(static_cast<int64_t*>(std::calloc(
        std::max<size_t>(1, n * (ulp_n + sig_n)), sizeof(int64_t))));
    for (size_t g = 0; g < n; ++g) {
      Group& x = (*groups)[g];
      x.keys = keys_.get() + g * kStride;
      x.ulp = hist_.get() + g * (ulp_n + sig_n);
      x.sig = x.ulp + ulp_n;
    }
  }
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

void CountKeys(Group* g) {
  const uint32_t* keys = g->keys;
  const int n = g->buffered;
  int64_t* hu = g->ulp;
  int64_t* hs = g->sig;
  constexpr uint32_t kUlpMask = (1u << drift_kernels::kSigKeyShift) - 1;
  constexpr int kSigShift = drift_kernels::kSigKeyShift;
  static_assert(kCopies == 4);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int c = 0; c < 4; ++c) {
      const uint32_t k = keys[i + c];
      ++hu[(k & kUlpMask) * kCopies + c];
      ++hs[(k >> kSigShift) * kCopies + c];
    }
  }
  for (; i < n; ++i) {
    ++hu[(keys[i] & kUlpMask) * kCopies];
    ++hs[(keys[i] >> kSigShift) * kCopies];
  }
  hu[0] += g->identical;
  hs[0] += g->identical;
  g->buffered = 0;
  g->identical = 0;
}

// How many of n keys are junk (non-numeric elements).
int CountJunk(const uint32_t* keys, int n, uint32_t junk) {
  int count = 0;
  for (int i = 0; i < n; ++i) count += keys[i] == junk;
  return count;
}

// The kernels a build and CPU can run, best first.
enum class KernelIsa { kAvx512, kAvx2, kPortable };

bool Available(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512:
#if defined(DRIFTSCOPE_DRIFT_AVX512)
      return drift_kernels::Avx512Usable();
#else
      return false;
#endif
    case KernelIsa::kAvx2:
#if defined(__AVX2__)
      return true;
#else
      return false;
#endif
    case KernelIsa::kPortable:
      return true;
  }
  return false;
}

const char* IsaName(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512:
      return "avx512";
    case KernelIsa::kAvx2:
      return "avx2";
    case KernelIsa::kPortable:
      return "portable";
  }
  return "portable";
}

constexpr KernelIsa kAllIsas[] = {KernelIsa::kAvx512, KernelIsa::kAvx2,
                                  KernelIsa::kPortable};

KernelIsa BestIsa() {
  static const KernelIsa best = [] {
    for (KernelIsa isa : kAllIsas) {
      if (Available(isa)) return isa;
    }
    return KernelIsa::kPortable;
  }();
  return best;
}

// The kernels of one comparison.
struct Kernel {
  Params p;
  KernelIsa isa;
#if defined(__AVX2__)
  drift_kernels::VecConsts vk;
#endif
#if defined(DRIFTSCOPE_DRIFT_AVX512)
  std::unique_ptr<drift_kernels::Consts512> k512;
#endif

  Kernel(const Params& params, KernelIsa kernel_isa)
      : p(params),
        isa(kernel_isa)
#if defined(__AVX2__)
        ,
        vk(params)
#endif
  {
#if defined(DRIFTSCOPE_DRIFT_AVX512)
    if (isa == KernelIsa::kAvx512) {
      k512 = std::make_unique<drift_kernels::Consts512>(params);
    }
#endif
  }

  // Whether any element was non-numeric. Writes the keys of the n elements
  // to keys[0..*written), leaving out some of those that are 0.
  template <typename TA, typename TR>
  bool Run(const TA* a, const TR* r, int n, int lane0, Lanes* l, uint32_t* keys,
           int* written) const {
#if defined(DRIFTSCOPE_DRIFT_AVX512)
    if (isa == KernelIsa::kAvx512) {
      return drift_kernels::RunAvx512(a, r, n, lane0, *k512, l, keys, written);
    }
#endif
#if defined(__AVX2__)
    if (isa == KernelIsa::kAvx2) {
      return drift_kernels::RunAvx2(a, r, n, lane0, vk, l, keys, written);
    }
#endif
    *written = n;
    return drift_kernels::RunPortable(a, r, n, lane0, p, l, keys);
  }
  BlockSums Close(const Lanes& l) const {
#if defined(__AVX2__)
    if (isa != KernelIsa::kPortable) return drift_kernels::CloseBlockAvx2(l);
#endif
    return drift_kernels::CloseBlockPortable(l);
  }
  // Gathers a run's elements for the open medians.
  template <typename TA, typename TR>
  void Gather(const TA* a, const TR* r, int64_t n, const Gather& g,
              const GatherFilter& f) const {
#if defined(DRIFTSCOPE_DRIFT_AVX512)
    if (isa == KernelIsa::kAvx512 &&
        drift_kernels::GatherSigAvx512Serves<TA, TR>(f, p)) {
      return drift_kernels::GatherSigAvx512(a, r, n, p, g, f, *k512);
    }
#endif
#if defined(__AVX2__)
    if (isa != KernelIsa::kPortable &&
        p.floor >= drift_kernels::kMinFilterFloor) {
      return drift_kernels::GatherRunAvx2(a, r, n, p, vk, g, f);
    }
#endif
    drift_kernels::GatherExact(a, r, n, p, g);
  }
};

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
               std::vector<int64_t>* out) {
  out->assign(static_cast<size_t>(junk), 0);
  const int64_t top =
      std::min<int64_t>(static_cast<int64_t>(max_key), junk - 1);
  for (int64_t k = 0; k <= top; ++k) {
    int64_t s = 0;
    for (int c = 0; c < kCopies; ++c) s += w[k * kCopies + c];
    (*out)[k] = s;
    std::fill(w + k * kCopies, w + (k + 1) * kCopies, 0);
  }
  std::fill(w + int64_t{junk} * kCopies, w + int64_t{junk + 1} * kCopies, 0);
}

// Closes a group: its Acc and single-copy histograms; the group is left
// empty for the next one.
void EndGroup(const Kernel& k, bool count_diff, Group* g, Acc* acc,
              std::vector<int64_t>* ulp, std::vector<int64_t>* sig) {
  const Params& p = k.p;
  if (g->fill > 0) g->acc.Add(k.Close(g->lanes));
  CountKeys(g);
  Acc& a = g->acc;
  const Lanes& l = g->lanes;
  int64_t diff = 0;
  for (int j = 0; j < kLanes; ++j) {
    a.max_abs = std::max(a.max_abs, l.m_abs[j]);
    a.max_rel = std::max(a.max_rel, l.m_rel[j]);
    a.max_ulp = std::max(a.max_ulp, l.m_ulp[j]);
    a.viol += l.viol[j];
    diff += l.diff[j];
  }
  const double c_max = std::min(std::max(a.max_rel, p.min_rel), 1.0);
  DrainHist(g->ulp, p.ulp_keys, UlpKey(a.max_ulp), ulp);
  DrainHist(g->sig, p.sig_keys, SigKey(BitCast<uint64_t>(c_max), p.c_base),
            sig);
  for (size_t key = 0; key < sig->size(); ++key) {
    a.sum_c_exp += (*sig)[key] * drift_kernels::SigKeyExponent(key, p.cap);
  }
  // Same dtype: Δ = 0 exactly when the ULP distance is 0.
  a.differing = count_diff ? diff : a.numeric - (*ulp)[0];
  *acc = a;
  g->acc = Acc();
  g->lanes.ResetGroup();
  g->fill = 0;
}

// ---------------------------------------------------------------------------
// Medians.

// Exact median over fine keys: the keys holding the two middle ranks, and
// the median itself when both keys hold a single value.
struct MedianTarget {
  bool need_values = false;
  KeyRange keys;
  int64_t in_keys = 0;  // elements with keys in `keys`
  int64_t below = 0;    // elements with smaller keys
  int64_t rank_lo = 0, rank_hi = 0;
  double known = 0;
};

// `single(k, &v)` says whether key k holds a single value, and which.
template <typename SingleFn>
MedianTarget PlanMedian(const std::vector<int64_t>& hist, int64_t total,
                        SingleFn single) {
  MedianTarget t;
  if (total == 0) return t;
  t.rank_lo = (total - 1) / 2;
  t.rank_hi = total / 2;
  int64_t cum = 0;
  int k_lo = -1, k_hi = -1;
  for (int k = 0; k < static_cast<int>(hist.size()); ++k) {
    if (k_lo < 0 && cum + hist[k] > t.rank_lo) {
      k_lo = k;
      t.below = cum;
    }
    if (cum + hist[k] > t.rank_hi) {
      k_hi = k;
      break;
    }
    cum += hist[k];
  }
  double v_lo = 0, v_hi = 0;
  if (single(k_lo, &v_lo) && single(k_hi, &v_hi)) {
    t.known = 0.5 * (v_lo + v_hi);
  } else {
    t.need_values = true;
    t.keys = {k_lo, k_hi};
  }
  return t;
}

// `value` maps a gathered value (ascending = ascending key) to the metric.
// False when the second pass did not find as many values as the histogram
// counted (a bug: the kernels' keys disagree).
template <typename Value>
bool MedianOf(const MedianTarget& t, std::vector<uint64_t>* v, Value value,
              double* median) {
  *median = t.known;
  if (!t.need_values) return true;
  if (static_cast<int64_t>(v->size()) != t.in_keys) return false;
  const size_t lo = static_cast<size_t>(t.rank_lo - t.below);
  const size_t hi = static_cast<size_t>(t.rank_hi - t.below);
  std::nth_element(v->begin(), v->begin() + lo, v->end());
  const double v_lo = value((*v)[lo]);
  if (hi == lo) {
    *median = v_lo;
    return true;
  }
  // The next rank is the first of the upper part.
  const double v_hi = value(*std::min_element(v->begin() + hi, v->end()));
  *median = 0.5 * (v_lo + v_hi);
  return true;
}

double SigBitsOfC(uint64_t cb) { return 0.0 - Log2Unit(BitCast<double>(cb)); }

// What is kept of a group once its elements are visited.
struct GroupResult {
  Acc acc;
  std::array<int64_t, kUlpBuckets> ulp_buckets{};
  MedianTarget ulp, sig;
  std::vector<uint64_t> ulp_values, sig_values;
  double median_ulp = 0, median_sig = 0;
};

void PlanGroup(const std::vector<int64_t>& ulp_hist,
               const std::vector<int64_t>& sig_hist, const Params& p,
               GroupResult* g) {
  for (size_t k = 0; k < ulp_hist.size(); ++k) {
    g->ulp_buckets[drift_kernels::UlpKeyBucket(k)] += ulp_hist[k];
  }
  g->ulp = PlanMedian(ulp_hist, g->acc.numeric, [](int k, double* v) {
    *v = static_cast<double>(drift_kernels::UlpKeyLow(k));
    return k <= static_cast<int>(drift_kernels::kUlpKeyMaxSingle);
  });
  const int last = p.sig_keys - 1;  // c = 1
  const double cap = p.cap;
  g->sig = PlanMedian(sig_hist, g->acc.numeric, [=](int k, double* v) {
    *v = k == 0 ? cap : 0.0;
    return k == 0 || k == last;
  });
  if (g->ulp.need_values) {
    for (int k = g->ulp.keys.lo; k <= g->ulp.keys.hi; ++k) {
      g->ulp.in_keys += ulp_hist[k];
    }
    g->ulp_values.reserve(static_cast<size_t>(g->ulp.in_keys));
  }
  if (g->sig.need_values) {
    for (int k = g->sig.keys.lo; k <= g->sig.keys.hi; ++k) {
      g->sig.in_keys += sig_hist[k];
    }
    g->sig_values.reserve(static_cast<size_t>(g->sig.in_keys));
  }
}

// False when the gathered values do not match the histograms.
bool FinishMedians(GroupResult* g) {
  const bool ok =
      MedianOf(
          g->ulp, &g->ulp_values,
          [](uint64_t u) { return static_cast<double>(u); }, &g->median_ulp) &&
      MedianOf(g->sig, &g->sig_values, SigBitsOfC, &g->median_sig);
  g->ulp_values = {};
  g->sig_values = {};
  return ok;
}

double SigBits(double rel, double cap) {
  const double c =
      std::min(std::max(rel, std::ldexp(1.0, -static_cast<int>(cap))), 1.0);
  return 0.0 - Log2Unit(c);
}

DriftStats Finish(const GroupResult& g, const DriftOptions& o, double cap) {
  const Acc& acc = g.acc;
  DriftStats s;
  s.count = acc.count;
  s.numeric = acc.numeric;
  s.nan_mismatches = acc.nan_mm;
  s.inf_mismatches = acc.inf_mm;
  s.nonfinite_matches = acc.nf_match;
  s.differing = acc.differing + acc.nan_mm + acc.inf_mm;
  s.differing_fraction = acc.count == 0 ? 0.0
                                        : static_cast<double>(s.differing) /
                                              static_cast<double>(acc.count);
  s.tolerance_violations = acc.viol;
  if (acc.numeric > 0) {
    const double m = static_cast<double>(acc.numeric);
    s.max_abs = acc.max_abs;
    s.mean_abs = acc.sum_abs / m;
    s.rms = std::sqrt(acc.sum_d2 / m);
    s.max_rel = acc.max_rel;
    s.max_ulp = acc.max_ulp;
    // The largest clamped relative error gives the fewest bits.
    s.min_sig_bits = SigBits(acc.max_rel, cap);
    s.mean_sig_bits =
        0.0 - (static_cast<double>(acc.sum_c_exp) + acc.sum_log2_mant) / m;
  }
  s.norm_a = std::sqrt(acc.sum_a2);
  s.norm_ref = std::sqrt(acc.sum_r2);
  s.norm_diff = std::sqrt(acc.sum_d2);
  if (s.norm_ref > 0) {
    s.rel_l2 = s.norm_diff / s.norm_ref;
  } else {
    s.rel_l2 = s.norm_diff > 0 ? HUGE_VAL : 0.0;
  }
  if (s.norm_a > 0 && s.norm_ref > 0) {
    // sqrt(Σa²·Σr²) is exact for a == ±r (cosine exactly ±1); the product
    // of the norms is the fallback when that product over/underflows.
    const double prod = acc.sum_a2 * acc.sum_r2;
    const double denom =
        std::isnormal(prod) ? std::sqrt(prod) : s.norm_a * s.norm_ref;
    s.cosine = std::min(1.0, std::max(-1.0, acc.sum_ar / denom));
  } else {
    s.cosine = (s.norm_a == 0 && s.norm_ref == 0) ? 1.0 : 0.0;
  }
  s.ulp_histogram = g.ulp_buckets;
  s.median_ulp = g.median_ulp;
  s.median_sig_bits = g.median_sig;
  s.pass = s.nan_mismatches == 0 && s.inf_mismatches == 0 &&
           (!o.check_tolerance || s.tolerance_violations == 0) &&
           (!o.max_ulp.has_value() || s.max_ulp <= *o.max_ulp);
  return s;
}

// ---------------------------------------------------------------------------
// Traversal.

// Prefetches the cache lines of n elements.
template <typename T>
void Prefetch(const T* p, int64_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < n * static_cast<int64_t>(sizeof(T)); off += 64) {
    __builtin_prefetch(c + off);
  }
}

// Calls run(a, r, length, group) so that every group receives its elements
// in index order, and end(group) after a group's last run. For (N, T, U)
// curves the group is t; in index order the groups' runs interleave (a
// tile of rows at a time), t-major each group's runs come together and
// short rows are staged into `stage_a`/`stage_r` (kStage elements each).
template <typename TA, typename TR, typename Run, typename End>
void ForEachRun(const TA* a, const TR* r, const std::vector<int64_t>& shape,
                bool per_t, bool index_order, int64_t n, TA* stage_a,
                TR* stage_r, Run run, End end) {
  if (!per_t) {
    run(a, r, n, int64_t{0});
    end(int64_t{0});
    return;
  }
  const int64_t N = shape[0], T = shape[1], U = shape[2];
  if (index_order) {
    // A tile of rows i at a time, t-major inside it, so that each group
    // gets about a block of elements while its state is in L1. The tile's
    // rows are as many sequential streams, which the hardware prefetcher
    // does not follow: prefetch about 1 KiB ahead in each.
    const int64_t tile = std::clamp<int64_t>(kBlock / U, 1, 16);
    const int64_t ahead = std::max<int64_t>(
        1, 1024 / (U * static_cast<int64_t>(std::max(sizeof(TA), sizeof(TR)))));
    for (int64_t i0 = 0; i0 < N; i0 += tile) {
      const int64_t i1 = std::min(N, i0 + tile);
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t base = (i * T + t) * U;
          if (tile > 1 && t + ahead < T) {
            Prefetch(a + base + ahead * U, U);
            Prefetch(r + base + ahead * U, U);
          }
          run(a + base, r + base, U, t);
        }
      }
    }
    for (int64_t t = 0; t < T; ++t) end(t);
    return;
  }
  for (int64_t t = 0; t < T; ++t) {
    if (U >= kMinDirectRow) {
      // Rows are T·U elements apart: prefetch a few rows ahead, which the
      // hardware does not do across pages.
      constexpr int64_t kAhead = 8;
      for (int64_t i = 0; i < N; ++i) {
        const int64_t base = (i * T + t) * U;
        if (i + kAhead < N) {
          Prefetch(a + base + kAhead * T * U, U);
          Prefetch(r + base + kAhead * T * U, U);
        }
        run(a + base, r + base, U, t);
      }
    } else {
      int64_t fill = 0;
      for (int64_t i = 0; i < N; ++i) {
        if (fill + U > kStage) {
          run(stage_a, stage_r, fill, t);
          fill = 0;
        }
        const int64_t base = (i * T + t) * U;
        std::memcpy(stage_a + fill, a + base,
                    static_cast<size_t>(U) * sizeof(TA));
        std::memcpy(stage_r + fill, r + base,
                    static_cast<size_t>(U) * sizeof(TR));
        fill += U;
      }
      if (fill > 0) run(stage_a, stage_r, fill, t);
    }
    end(t);
  }
}

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

template <typename TA, typename TR>
absl::Status Compare(const NdArray& a_arr, const NdArray& r_arr,
                     const DriftOptions& o, KernelIsa isa, ArrayDrift* out) {
  const TA* a = a_arr.data<TA>();
  const TR* r = r_arr.data<TR>();
  const int64_t n = a_arr.size();
  constexpr bool kWide = drift_kernels::kWide<TA, TR>;
  Params p;
  p.atol = o.atol;
  p.rtol = o.rtol;
  p.cap = kWide ? 53 : 24;
  p.min_rel = std::ldexp(1.0, -p.cap);
  p.c_base = BitCast<uint64_t>(p.min_rel);
  p.floor = o.rel_floor > 0 ? o.rel_floor : 1e-6 * MaxAbsFinite(r, n);
  // A positive floor keeps 0/0 out of the relative error.
  if (!(p.floor >= DBL_MIN)) p.floor = DBL_MIN;
  p.ulp_keys = drift_kernels::UlpKeyCount(kWide);
  p.sig_keys = p.cap * 32 + 2;
  out->ulp_unit = kWide ? "float64" : "float32";
  out->sig_bits_cap = p.cap;
  out->rel_floor = p.floor;
  const Kernel kernel(p, isa);
  const bool count_diff = !std::is_same_v<TA, TR>;

  const bool per_t = o.per_timestep && a_arr.ndim() == 3;
  const int64_t groups = per_t ? a_arr.shape()[1] : 1;
  std::vector<GroupResult> res(static_cast<size_t>(per_t ? groups : 0));
  GroupResult total;
  std::vector<int64_t> total_ulp(static_cast<size_t>(p.ulp_keys), 0),
      total_sig(static_cast<size_t>(p.sig_keys), 0);
  // Long (N, T, U) rows are walked in index order with a group per t when
  // those fit in kMaxGroupBytes (strided t-major rows cost a TLB miss
  // each); otherwise t-major with one group.
  const size_t group_bytes = sizeof(Group) + kKeyBuffer * sizeof(uint32_t) +
                             static_cast<size_t>(p.ulp_keys + p.sig_keys + 2) *
                                 kCopies * sizeof(int64_t);
  const bool index_order =
      per_t && a_arr.shape()[2] >= kMinDirectRow &&
      static_cast<size_t>(groups) * group_bytes <= kMaxGroupBytes;
  std::vector<Group> work(index_order ? static_cast<size_t>(groups) : 1);
  GroupArena arena(&work, p);
  if (!arena.ok()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate the drift histograms of ", work.size(), " timesteps"));
  }
  std::unique_ptr<TA[]> stage_a;
  std::unique_ptr<TR[]> stage_r;
  if (per_t && !index_order) {
    stage_a = std::make_unique<TA[]>(kStage);
    stage_r = std::make_unique<TR[]>(kStage);
  }
  std::vector<int64_t> ulp1, sig1;

  ForEachRun(
      a, r, a_arr.shape(), per_t, index_order, n, stage_a.get(), stage_r.get(),
      [&](const TA* pa, const TR* pr, int64_t m, int64_t g) {
        Feed(pa, pr, m, kernel,
             &work[index_order ? static_cast<size_t>(g) : 0]);
      },
      [&](int64_t g) {
        Acc acc;
        EndGroup(kernel, count_diff,
                 &work[index_order ? static_cast<size_t>(g) : 0], &acc, &ulp1,
                 &sig1);
        if (per_t) {
          GroupResult& gr = res[static_cast<size_t>(g)];
          gr.acc = acc;
          PlanGroup(ulp1, sig1, p, &gr);
          total.acc.Merge(acc);
          for (size_t k = 0; k < ulp1.size(); ++k) total_ulp[k] += ulp1[k];
          for (size_t k = 0; k < sig1.size(); ++k) total_sig[k] += sig1[k];
        } else {
          total.acc = acc;
          total_ulp.swap(ulp1);
          total_sig.swap(sig1);
        }
      });
  work = {};
  arena.Release();
  PlanGroup(total_ulp, total_sig, p, &total);

  bool medians_ok = true;
  bool need_ulp = total.ulp.need_values, need_sig = total.sig.need_values;
  for (const GroupResult& g : res) {
    need_ulp |= g.ulp.need_values;
    need_sig |= g.sig.need_values;
  }
  if (need_ulp || need_sig) {
    // One Gather per group (the whole array's ranges and the group's own),
    // with its filter, made once: runs of the groups interleave.
    std::vector<Gather> gathers(per_t ? res.size() : 1);
    std::vector<GatherFilter> filters;
    for (size_t g = 0; g < gathers.size(); ++g) {
      Gather& x = gathers[g];
      if (total.ulp.need_values) x.ulp_all = total.ulp.keys;
      if (total.sig.need_values) x.sig_all = total.sig.keys;
      x.ulp_all_v = &total.ulp_values;
      x.sig_all_v = &total.sig_values;
      if (per_t) {
        GroupResult& gr = res[g];
        if (gr.ulp.need_values) x.ulp_grp = gr.ulp.keys;
        if (gr.sig.need_values) x.sig_grp = gr.sig.keys;
        x.ulp_grp_v = &gr.ulp_values;
        x.sig_grp_v = &gr.sig_values;
      }
      filters.emplace_back(x, p);
    }
    ForEachRun(
        a, r, a_arr.shape(), per_t, index_order, n, stage_a.get(),
        stage_r.get(),
        [&](const TA* pa, const TR* pr, int64_t m, int64_t g) {
          const size_t w = per_t ? static_cast<size_t>(g) : 0;
          kernel.Gather(pa, pr, m, gathers[w], filters[w]);
        },
        [&](int64_t g) {
          if (per_t) medians_ok &= FinishMedians(&res[static_cast<size_t>(g)]);
        });
  } else {
    for (GroupResult& g : res) medians_ok &= FinishMedians(&g);
  }
  medians_ok &= FinishMedians(&total);
  if (!medians_ok) {
    return absl::InternalError(
        "drift medians: the second pass disagrees with the histograms");
  }

  out->overall = Finish(total, o, p.cap);
  for (const GroupResult& g : res) {
    out->per_timestep.push_back(Finish(g, o, p.cap));
  }
  out->pass = out->overall.pass;
  return absl::OkStatus();
}

absl::StatusOr<ArrayDrift> CompareImpl(const NdArray& a, const NdArray& ref,
                                       const DriftOptions& options,
                                       KernelIsa isa) {
  if (a.shape() != ref.shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot compare arrays of different shapes: ", a.ShapeString(),
        " vs reference ", ref.ShapeString()));
  }
  ArrayDrift out;
  out.dtype_a = DTypeName(a.dtype());
  out.dtype_ref = DTypeName(ref.dtype());
  out.shape = a.shape();
  out.bitwise_identical =
      a.dtype() == ref.dtype() && a.nbytes() == ref.nbytes() &&
      (a.nbytes() == 0 || std::memcmp(a.raw(), ref.raw(), a.nbytes()) == 0);
  const bool fa = a.dtype() == DType::kFloat32;
  const bool fr = ref.dtype() == DType::kFloat32;
  absl::Status status;
  if (fa && fr) {
    status = Compare<float, float>(a, ref, options, isa, &out);
  } else if (fa) {
    status = Compare<float, double>(a, ref, options, isa, &out);
  } else if (fr) {
    status = Compare<double, float>(a, ref, options, isa, &out);
  } else {
    status = Compare<double, double>(a, ref, options, isa, &out);
  }
  if (!status.ok()) return status;
  return out;
}

}  // namespace

absl::StatusOr<ArrayDrift> CompareArrays(const NdArray& a, const NdArray& ref,
                                         const DriftOptions& options) {
  return CompareImpl(a, ref, options, BestIsa());
}

namespace drift_internal {

const char* KernelName() { return IsaName(BestIsa()); }

std::vector<std::string> KernelNames() {
  std::vector<std::string> names;
  for (KernelIsa isa : kAllIsas) {
    if (Available(isa)) names.push_back(IsaName(isa));
  }
  return names;
}

absl::StatusOr<ArrayDrift> CompareArraysWithKernel(const NdArray& a,
                                                   const NdArray& ref,
                                                   const DriftOptions& options,
                                                   absl::string_view kernel) {
  for (KernelIsa isa : kAllIsas) {
    if (kernel == IsaName(isa) && Available(isa)) {
      return CompareImpl(a, ref, options, isa);
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("drift kernel \"", kernel,
                   "\" is not available in this build on this CPU"));
}

absl::StatusOr<ArrayDrift> CompareArraysPortable(const NdArray& a,
                                                 const NdArray& ref,
                                                 const DriftOptions& options) {
  return CompareImpl(a, ref, options, KernelIsa::kPortable);
}

}  // namespace drift_internal
}  // namespace driftscope
