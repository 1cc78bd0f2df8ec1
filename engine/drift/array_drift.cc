// One streaming pass computes every sum, extreme and histogram; a second pass
// runs only when a median falls in a multi-valued histogram bucket, and then
// keeps only the elements of that bucket. The per-element work is written as
// plain loops over fixed-size blocks so that the compiler vectorizes it, and
// each sum has 8 independent lanes so the vectorized and scalar code add in
// the same order.
#include "engine/drift/array_drift.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"

namespace driftscope {
namespace {

constexpr int kBlock = 256;
constexpr int kLanes = 8;
constexpr int64_t kMinDirectRow = 32;  // shorter rows are staged
constexpr int kCopies = 4;  // interleaved histograms: no store-forward stalls
constexpr int kMaxSigBuckets = 54;
constexpr uint64_t kInfBits = 0x7FF0000000000000;

template <typename To, typename From>
inline To BitCast(From f) {
  static_assert(sizeof(To) == sizeof(From));
  To t;
  std::memcpy(&t, &f, sizeof(t));
  return t;
}

// log2 for x in [2^-1022, 1]: exact exponent plus the atanh series of the
// mantissa reduced to [sqrt(1/2), sqrt(2)); absolute error < 1e-13. Our own
// code instead of libm so that results do not depend on the libm version, and
// integer-only range reduction so that the loop vectorizes (a floating-point
// select here is turned into a branch under -ftrapping-math).
inline double Log2Unit(double x) {
  constexpr double k2OverLn2 = 2.8853900817779268;  // 2 / ln 2
  const uint64_t bits = BitCast<uint64_t>(x);
  const uint64_t mant = bits & uint64_t{0x000FFFFFFFFFFFFF};
  const uint64_t big = mant > uint64_t{0x6A09E667F3BCD};  // m > sqrt(2)
  const double m =
      BitCast<double>((mant | uint64_t{0x3FF0000000000000}) - (big << 52));
  // Exponent field as a double, without an int64 -> double conversion.
  const double e =
      BitCast<double>(uint64_t{0x4330000000000000} | ((bits >> 52) + big)) -
      (4503599627370496.0 + 1023.0);
  const double z = (m - 1.0) / (m + 1.0);
  const double z2 = z * z;
  double p = k2OverLn2 / 17.0;
  p = k2OverLn2 / 15.0 + z2 * p;
  p = k2OverLn2 / 13.0 + z2 * p;
  p = k2OverLn2 / 11.0 + z2 * p;
  p = k2OverLn2 / 9.0 + z2 * p;
  p = k2OverLn2 / 7.0 + z2 * p;
  p = k2OverLn2 / 5.0 + z2 * p;
  p = k2OverLn2 / 3.0 + z2 * p;
  p = k2OverLn2 + z2 * p;
  return e + z * p;
}

// min / max of non-negative doubles (or +Inf) through their bit patterns,
// which order the same way; no floating-point compare for the same reason.
inline double MaxNonNeg(double x, double y) {
  return BitCast<double>(std::max(BitCast<uint64_t>(x), BitCast<uint64_t>(y)));
}
inline double MinNonNeg(double x, double y) {
  return BitCast<double>(std::min(BitCast<uint64_t>(x), BitCast<uint64_t>(y)));
}

inline double Masked(double x, uint64_t mask) {
  return BitCast<double>(BitCast<uint64_t>(x) & mask);
}

inline int UlpBucket(uint64_t u) {
  return u == 0 ? 0 : 64 - __builtin_clzll(u);
}

struct Params {
  double floor = 0;
  double atol = 0, rtol = 0;
  double cap = 24;
  double min_rel = 0;  // 2^-cap
};

// Per-element results of one block. Elements that are not numeric hold
// neutral values: 0 for sums and maxima, c = 1 (log 0) for the products.
// c is the relative error clamped to [2^-cap, 1], so that the significant
// bits are -log2(c); it is kept as exponent and mantissa so the mean of the
// logs comes from exact exponent sums and a product of mantissas, with no
// logarithm per element.
struct Block {
  alignas(64) double ad[kBlock];
  alignas(64) double av[kBlock];
  alignas(64) double rv[kBlock];
  alignas(64) double rel[kBlock];
  alignas(64) double c[kBlock];
  alignas(64) double c_mant[kBlock];        // in [1, 2)
  alignas(64) int64_t c_exp[kBlock];        // unbiased, <= 0
  alignas(64) uint64_t sig_bucket[kBlock];  // floor(-log2 c), exact
  alignas(64) double ok[kBlock];
  alignas(64) double viol[kBlock];
  alignas(64) uint64_t ulp[kBlock];
};

template <typename TA, typename TR>
constexpr bool kWide = std::is_same_v<TA, double>&& std::is_same_v<TR, double>;

template <typename TA, typename TR>
inline uint64_t UlpDistance(TA a, TR r) {
  if constexpr (kWide<TA, TR>) {
    const int64_t ia = BitCast<int64_t>(a), ir = BitCast<int64_t>(r);
    const int64_t ka = ia >= 0 ? ia : std::numeric_limits<int64_t>::min() - ia;
    const int64_t kr = ir >= 0 ? ir : std::numeric_limits<int64_t>::min() - ir;
    const uint64_t ua = static_cast<uint64_t>(ka),
                   ur = static_cast<uint64_t>(kr);
    return ka >= kr ? ua - ur : ur - ua;
  } else {
    const int32_t ia = BitCast<int32_t>(static_cast<float>(a));
    const int32_t ir = BitCast<int32_t>(static_cast<float>(r));
    const int64_t ka = ia >= 0 ? ia : std::numeric_limits<int32_t>::min() - ia;
    const int64_t kr = ir >= 0 ? ir : std::numeric_limits<int32_t>::min() - ir;
    const int64_t d = ka - kr;
    return static_cast<uint64_t>(d >= 0 ? d : -d);
  }
}

// kFull = false computes only what the median pass reads (ulp, c, bucket,
// ok); the compiler drops the rest.
template <bool kFull = true, typename TA, typename TR>
void ComputeBlock(const TA* a, const TR* r, int n, const Params& p, Block* b) {
  constexpr uint64_t kOne = 0x3FF0000000000000, kMant = 0x000FFFFFFFFFFFFF;
  // Everything is computed unconditionally and combined with bit masks and
  // integer min/max: under -ftrapping-math the compiler will not speculate
  // a floating-point operation that sits under a condition, and any such
  // condition would keep this loop scalar.
  for (int i = 0; i < n; ++i) {
    const double av = a[i], rv = r[i];
    const uint64_t ea = (BitCast<uint64_t>(av) >> 52) & 0x7FF;
    const uint64_t er = (BitCast<uint64_t>(rv) >> 52) & 0x7FF;
    // 1 iff either exponent field is all ones (Inf or NaN).
    const uint64_t nonfinite = ((ea + 1) | (er + 1)) >> 11;
    const uint64_t mask = nonfinite - 1;
    const double ad = Masked(std::fabs(av - rv), mask);
    const double ar = Masked(std::fabs(rv), mask);
    const double rel = ad / MaxNonNeg(ar, p.floor);  // floor > 0
    const uint64_t cb =
        (BitCast<uint64_t>(MinNonNeg(MaxNonNeg(rel, p.min_rel), 1.0)) & mask) |
        (kOne & ~mask);
    const uint64_t c_field = cb >> 52, c_mant = cb & kMant;
    if constexpr (kFull) {
      b->ad[i] = ad;
      b->av[i] = Masked(av, mask);
      b->rv[i] = Masked(rv, mask);
      b->rel[i] = rel;
      b->c_mant[i] = BitCast<double>(c_mant | kOne);
      b->c_exp[i] = static_cast<int64_t>(c_field) - 1023;
      b->viol[i] = (ad > p.atol + p.rtol * ar) ? 1.0 : 0.0;
    }
    b->c[i] = BitCast<double>(cb);
    b->sig_bucket[i] = (1023 - c_field) - (c_mant != 0);
    b->ok[i] = static_cast<double>(1 - static_cast<int>(nonfinite));
    b->ulp[i] = UlpDistance(a[i], r[i]) & mask;
  }
  for (int i = n; i < (n + kLanes - 1) / kLanes * kLanes; ++i) {
    b->ad[i] = b->av[i] = b->rv[i] = b->rel[i] = 0.0;
    b->c[i] = b->c_mant[i] = 1.0;
    b->c_exp[i] = 0;
    b->sig_bucket[i] = 0;
    b->ok[i] = b->viol[i] = 0.0;
    b->ulp[i] = 0;
  }
}

// Accumulated metrics of one group of elements (the array or one timestep).
struct Acc {
  int64_t count = 0, numeric = 0, differing = 0, nan_mm = 0, inf_mm = 0,
          nf_match = 0, viol = 0;
  double sum_abs = 0, sum_d2 = 0, sum_r2 = 0, sum_a2 = 0, sum_ar = 0;
  // Σ log2 c = sum_c_exp + sum_log2_mant.
  int64_t sum_c_exp = 0;
  double sum_log2_mant = 0;
  double max_abs = 0, max_rel = 0;
  uint64_t max_ulp = 0;
  int64_t ulp_hist[kCopies][kUlpBuckets] = {};
  int64_t sig_hist[kCopies][kMaxSigBuckets] = {};

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
    for (int c = 0; c < kCopies; ++c) {
      for (int k = 0; k < kUlpBuckets; ++k) ulp_hist[c][k] += o.ulp_hist[c][k];
      for (int k = 0; k < kMaxSigBuckets; ++k) {
        sig_hist[c][k] += o.sig_hist[c][k];
      }
    }
  }
};

inline double SumLanes(const double* l) {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

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

template <typename TA, typename TR>
void AccumulateBlock(const TA* a, const TR* r, int n, const Params& p, Block* b,
                     Acc* acc) {
  ComputeBlock(a, r, n, p, b);
  const int padded = (n + kLanes - 1) / kLanes * kLanes;
  double s_abs[kLanes] = {}, s_d2[kLanes] = {}, s_r2[kLanes] = {},
         s_a2[kLanes] = {}, s_ar[kLanes] = {}, s_ok[kLanes] = {},
         s_diff[kLanes] = {}, s_viol[kLanes] = {}, m_abs[kLanes] = {},
         m_rel[kLanes] = {};
  // At most kBlock / kLanes = 32 mantissas in [1, 2) per lane: < 2^32.
  double prod[kLanes] = {1, 1, 1, 1, 1, 1, 1, 1};
  int64_t s_exp[kLanes] = {};
  uint64_t m_ulp[kLanes] = {};
  for (int i = 0; i < padded; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const double ad = b->ad[i + j], av = b->av[i + j], rv = b->rv[i + j];
      s_abs[j] += ad;
      s_d2[j] += ad * ad;
      s_r2[j] += rv * rv;
      s_a2[j] += av * av;
      s_ar[j] += av * rv;
      s_ok[j] += b->ok[i + j];
      s_diff[j] += ad != 0.0 ? 1.0 : 0.0;
      s_viol[j] += b->viol[i + j];
      m_abs[j] = std::max(m_abs[j], ad);
      m_rel[j] = std::max(m_rel[j], b->rel[i + j]);
      prod[j] *= b->c_mant[i + j];
      s_exp[j] += b->c_exp[i + j];
      m_ulp[j] = std::max(m_ulp[j], b->ulp[i + j]);
    }
  }
  for (int i = 0; i < n; ++i) {
    ++acc->ulp_hist[i & (kCopies - 1)][UlpBucket(b->ulp[i])];
    ++acc->sig_hist[i & (kCopies - 1)][b->sig_bucket[i]];
  }
  const int64_t numeric = static_cast<int64_t>(SumLanes(s_ok));
  if (numeric != n) {
    // Non-numeric elements were counted in bucket 0 by the loop above.
    acc->ulp_hist[0][0] -= n - numeric;
    acc->sig_hist[0][0] -= n - numeric;
    ClassifyNonFinite(a, r, n, acc);
  }
  acc->count += n;
  acc->numeric += numeric;
  acc->differing += static_cast<int64_t>(SumLanes(s_diff));
  acc->viol += static_cast<int64_t>(SumLanes(s_viol));
  acc->sum_abs += SumLanes(s_abs);
  acc->sum_d2 += SumLanes(s_d2);
  acc->sum_r2 += SumLanes(s_r2);
  acc->sum_a2 += SumLanes(s_a2);
  acc->sum_ar += SumLanes(s_ar);
  double log2_prod[kLanes];
  for (int j = 0; j < kLanes; ++j) log2_prod[j] = Log2Unit(prod[j]);
  acc->sum_log2_mant += SumLanes(log2_prod);
  for (int j = 0; j < kLanes; ++j) {
    acc->sum_c_exp += s_exp[j];
    acc->max_abs = std::max(acc->max_abs, m_abs[j]);
    acc->max_rel = std::max(acc->max_rel, m_rel[j]);
    acc->max_ulp = std::max(acc->max_ulp, m_ulp[j]);
  }
}

// Exact median by selection: the histogram names the bucket(s) holding the
// two middle ranks; pass 2 gathers the values of those buckets only.
struct MedianTarget {
  bool need_values = false;
  int lo_bucket = 0, hi_bucket = -1;
  int64_t below = 0;  // elements in buckets < lo_bucket
  int64_t rank_lo = 0, rank_hi = 0;
  double known = 0;  // the median when need_values is false
};

// `single` says whether bucket k holds a single value, and `value_of` gives
// that value.
template <typename SingleFn>
MedianTarget PlanMedian(const int64_t* hist, int buckets, int64_t total,
                        SingleFn single) {
  MedianTarget t;
  if (total == 0) return t;
  t.rank_lo = (total - 1) / 2;
  t.rank_hi = total / 2;
  int64_t cum = 0;
  int b_lo = -1, b_hi = -1;
  int64_t below_lo = 0;
  for (int k = 0; k < buckets; ++k) {
    if (b_lo < 0 && cum + hist[k] > t.rank_lo) {
      b_lo = k;
      below_lo = cum;
    }
    if (cum + hist[k] > t.rank_hi) {
      b_hi = k;
      break;
    }
    cum += hist[k];
  }
  t.lo_bucket = b_lo;
  t.hi_bucket = b_hi;
  t.below = below_lo;
  double v_lo = 0, v_hi = 0;
  const bool s_lo = single(b_lo, &v_lo), s_hi = single(b_hi, &v_hi);
  if (s_lo && s_hi) {
    t.known = 0.5 * (v_lo + v_hi);
  } else {
    t.need_values = true;
  }
  return t;
}

struct GroupMedians {
  MedianTarget ulp, sig;
  std::vector<uint64_t> ulp_values;
  std::vector<double> sig_values;     // c = 2^-sig, not sig itself
  size_t ulp_size = 0, sig_size = 0;  // gathered so far
};

// `less` orders the gathered values the way the ranks count; `value` maps a
// gathered value to the metric.
template <typename T, typename Less, typename Value>
double MedianOf(const MedianTarget& t, std::vector<T>* v, Less less,
                Value value) {
  if (!t.need_values) return t.known;
  const size_t lo = static_cast<size_t>(t.rank_lo - t.below);
  const size_t hi = static_cast<size_t>(t.rank_hi - t.below);
  std::nth_element(v->begin(), v->begin() + lo, v->end(), less);
  const double v_lo = value((*v)[lo]);
  if (hi == lo) return v_lo;
  // The next rank is the first of the upper part.
  const double v_hi = value(*std::min_element(v->begin() + hi, v->end(), less));
  return 0.5 * (v_lo + v_hi);
}

void PrepareGroup(const Acc& acc, int sig_buckets, double cap,
                  GroupMedians* g) {
  int64_t uh[kUlpBuckets] = {}, sh[kMaxSigBuckets] = {};
  for (int c = 0; c < kCopies; ++c) {
    for (int k = 0; k < kUlpBuckets; ++k) uh[k] += acc.ulp_hist[c][k];
    for (int k = 0; k < kMaxSigBuckets; ++k) sh[k] += acc.sig_hist[c][k];
  }
  g->ulp = PlanMedian(uh, kUlpBuckets, acc.numeric, [](int k, double* v) {
    *v = k;
    return k <= 1;
  });
  g->sig = PlanMedian(sh, sig_buckets, acc.numeric, [cap](int k, double* v) {
    *v = cap;
    return k == static_cast<int>(cap);
  });
  if (g->ulp.need_values) {
    int64_t n = 0;
    for (int k = g->ulp.lo_bucket; k <= g->ulp.hi_bucket; ++k) n += uh[k];
    g->ulp_values.resize(static_cast<size_t>(n) + kBlock);
  }
  if (g->sig.need_values) {
    int64_t n = 0;
    for (int k = g->sig.lo_bucket; k <= g->sig.hi_bucket; ++k) n += sh[k];
    g->sig_values.resize(static_cast<size_t>(n) + kBlock);
  }
}

// Branch-free: every element is written at the end of the gathered values
// and kept only when it falls in the target buckets (about half of them are,
// so a branch would mispredict all the time). The vectors are sized up
// front from the histogram counts plus one block of slack.
void GatherBlock(const Block& b, int n, GroupMedians* g) {
  if (g->ulp.need_values) {
    uint64_t* out = g->ulp_values.data();
    size_t k = g->ulp_size;
    const uint64_t lo = g->ulp.lo_bucket, span = g->ulp.hi_bucket - lo;
    for (int i = 0; i < n; ++i) {
      out[k] = b.ulp[i];
      k += (static_cast<uint64_t>(UlpBucket(b.ulp[i])) - lo <= span) &
           (b.ok[i] != 0.0);
    }
    g->ulp_size = k;
  }
  if (g->sig.need_values) {
    double* out = g->sig_values.data();
    size_t k = g->sig_size;
    const uint64_t lo = g->sig.lo_bucket, span = g->sig.hi_bucket - lo;
    for (int i = 0; i < n; ++i) {
      out[k] = b.c[i];
      k += (b.sig_bucket[i] - lo <= span) & (b.ok[i] != 0.0);
    }
    g->sig_size = k;
  }
}

double SigBits(double rel, double cap) {
  const double c =
      std::min(std::max(rel, std::ldexp(1.0, -static_cast<int>(cap))), 1.0);
  return 0.0 - Log2Unit(c);
}

DriftStats Finish(const Acc& acc, GroupMedians* g, const DriftOptions& o,
                  double cap) {
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
  for (int c = 0; c < kCopies; ++c) {
    for (int k = 0; k < kUlpBuckets; ++k) {
      s.ulp_histogram[k] += acc.ulp_hist[c][k];
    }
  }
  g->ulp_values.resize(g->ulp_size);
  g->sig_values.resize(g->sig_size);
  s.median_ulp = MedianOf(g->ulp, &g->ulp_values, std::less<uint64_t>(),
                          [](uint64_t u) { return static_cast<double>(u); });
  // More significant bits = smaller c.
  s.median_sig_bits = MedianOf(g->sig, &g->sig_values, std::greater<double>(),
                               [](double c) { return 0.0 - Log2Unit(c); });
  s.pass = s.nan_mismatches == 0 && s.inf_mismatches == 0 &&
           (!o.check_tolerance || s.tolerance_violations == 0) &&
           (!o.max_ulp.has_value() || s.max_ulp <= *o.max_ulp);
  return s;
}

// Calls fn(a_block, r_block, length <= kBlock, group) over every element
// once, in a fixed order. For (N, T, U) curves the group is t and the
// rows are visited in index order; when U is small the U-element rows of
// one t are instead staged (t-major) into full blocks, so that U = 1 costs
// no more per element than a flat array.
template <typename TA, typename TR, typename Fn>
void ForEachBlock(const TA* a, const TR* r, const std::vector<int64_t>& shape,
                  bool per_t, int64_t n, Fn fn) {
  if (!per_t) {
    for (int64_t b = 0; b < n; b += kBlock) {
      fn(a + b, r + b, static_cast<int>(std::min<int64_t>(kBlock, n - b)),
         int64_t{0});
    }
    return;
  }
  const int64_t N = shape[0], T = shape[1], U = shape[2];
  if (U >= kMinDirectRow) {
    // Index order: rows are long enough to fill the vector loops.
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t t = 0; t < T; ++t) {
        const int64_t base = (i * T + t) * U;
        for (int64_t u = 0; u < U; u += kBlock) {
          fn(a + base + u, r + base + u,
             static_cast<int>(std::min<int64_t>(kBlock, U - u)), t);
        }
      }
    }
    return;
  }
  alignas(64) TA sa[kBlock];
  alignas(64) TR sr[kBlock];
  for (int64_t t = 0; t < T; ++t) {
    int fill = 0;
    for (int64_t i = 0; i < N; ++i) {
      if (fill + U > kBlock) {
        fn(sa, sr, fill, t);
        fill = 0;
      }
      const int64_t base = (i * T + t) * U;
      std::memcpy(sa + fill, a + base, static_cast<size_t>(U) * sizeof(TA));
      std::memcpy(sr + fill, r + base, static_cast<size_t>(U) * sizeof(TR));
      fill += static_cast<int>(U);
    }
    if (fill > 0) fn(sa, sr, fill, t);
  }
}

template <typename T>
double MaxAbsFinite(const T* r, int64_t n) {
  double m[kLanes] = {};
  int64_t i = 0;
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
void Compare(const NdArray& a_arr, const NdArray& r_arr, const DriftOptions& o,
             ArrayDrift* out) {
  const TA* a = a_arr.data<TA>();
  const TR* r = r_arr.data<TR>();
  const int64_t n = a_arr.size();
  Params p;
  p.atol = o.atol;
  p.rtol = o.rtol;
  p.cap = kWide<TA, TR> ? 53 : 24;
  p.min_rel = std::ldexp(1.0, -static_cast<int>(p.cap));
  p.floor = o.rel_floor > 0 ? o.rel_floor : 1e-6 * MaxAbsFinite(r, n);
  // A positive floor keeps 0/0 out of the relative error.
  if (!(p.floor >= DBL_MIN)) p.floor = DBL_MIN;
  out->ulp_unit = kWide<TA, TR> ? "float64" : "float32";
  out->sig_bits_cap = static_cast<int>(p.cap);
  out->rel_floor = p.floor;
  const int sig_buckets = static_cast<int>(p.cap) + 1;

  const bool per_t = o.per_timestep && a_arr.ndim() == 3;
  const int64_t groups = per_t ? a_arr.shape()[1] : 1;
  std::vector<Acc> acc(static_cast<size_t>(groups));
  Block block;
  ForEachBlock(a, r, a_arr.shape(), per_t, n,
               [&](const TA* pa, const TR* pr, int m, int64_t g) {
                 AccumulateBlock(pa, pr, m, p, &block, &acc[g]);
               });
  Acc total;
  for (const Acc& x : acc) total.Merge(x);

  std::vector<GroupMedians> med(static_cast<size_t>(per_t ? groups : 0));
  GroupMedians total_med;
  PrepareGroup(total, sig_buckets, p.cap, &total_med);
  bool need_pass2 = total_med.ulp.need_values || total_med.sig.need_values;
  for (int64_t g = 0; g < static_cast<int64_t>(med.size()); ++g) {
    PrepareGroup(acc[g], sig_buckets, p.cap, &med[g]);
    need_pass2 |= med[g].ulp.need_values || med[g].sig.need_values;
  }
  if (need_pass2) {
    ForEachBlock(a, r, a_arr.shape(), per_t, n,
                 [&](const TA* pa, const TR* pr, int m, int64_t g) {
                   ComputeBlock<false>(pa, pr, m, p, &block);
                   GatherBlock(block, m, &total_med);
                   if (per_t) GatherBlock(block, m, &med[g]);
                 });
  }

  out->overall = Finish(total, &total_med, o, p.cap);
  for (size_t g = 0; g < med.size(); ++g) {
    out->per_timestep.push_back(Finish(acc[g], &med[g], o, p.cap));
  }
  out->pass = out->overall.pass;
}

}  // namespace

absl::StatusOr<ArrayDrift> CompareArrays(const NdArray& a, const NdArray& ref,
                                         const DriftOptions& options) {
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
  if (fa && fr) {
    Compare<float, float>(a, ref, options, &out);
  } else if (fa) {
    Compare<float, double>(a, ref, options, &out);
  } else if (fr) {
    Compare<double, float>(a, ref, options, &out);
  } else {
    Compare<double, double>(a, ref, options, &out);
  }
  return out;
}

}  // namespace driftscope
