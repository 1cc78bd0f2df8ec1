// Exact medians from the histograms, and a group's DriftStats
// (array_drift_medians.h).
#include "engine/drift/array_drift_medians.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace driftscope {
namespace drift_internal {
namespace {

using drift_kernels::BitCast;
using drift_kernels::Log2Unit;

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

double SigBits(double rel, double cap) {
  const double c =
      std::min(std::max(rel, std::ldexp(1.0, -static_cast<int>(cap))), 1.0);
  return 0.0 - Log2Unit(c);
}

}  // namespace

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

DriftStats GroupStats(const GroupResult& g, const DriftOptions& o, double cap) {
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

}  // namespace drift_internal
}  // namespace driftscope
