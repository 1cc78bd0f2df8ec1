// Per-element kernels of CompareArrays (engine/drift/array_drift.h), the
// portable ones (the AVX2 and AVX-512 forms are array_drift_avx2.h and
// array_drift_avx512.h), included only by the array_drift_*.{h,cc}: the fused
// first pass over a run of one group's elements, the fine histogram keys, and
// the second-pass filter that gathers the elements of a median's key. Pure
// functions over caller-owned state; a Lanes is used by one thread at a time.
//
// Lane layout. A group (the array, or one timestep) is the sequence of its
// elements in index order, cut into blocks of kBlock; lane j of kLanes takes
// the block's elements j, j+8, ... . A run may start at any lane: the AVX2
// kernel pads partial vectors with NaN, which adds exact identities (+0 to
// the sums, a mantissa of 1 to the products) and no key. The portable and
// AVX2 kernels do the same IEEE operations in the same order per lane, so
// their results are bit-for-bit the same. Everything is computed
// unconditionally and combined with bit masks: under -ftrapping-math a
// floating-point operation under a condition is neither vectorized nor
// speculated.
#ifndef DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_KERNELS_H_
#define DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_KERNELS_H_

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace driftscope {
namespace drift_kernels {

constexpr int kBlock = 256;
constexpr int kLanes = 8;
constexpr uint64_t kOneBits = 0x3FF0000000000000;
constexpr uint64_t kMantBits = 0x000FFFFFFFFFFFFF;
constexpr uint64_t kExpBits = 0x7FF0000000000000;
// Fine keys resolve 1/32 of a binade: the five bits below the leading one.
constexpr int kFineShift = 52 - 5;
constexpr uint64_t kFineStep = uint64_t{1} << kFineShift;

template <typename To, typename From>
inline To BitCast(From f) {
  static_assert(sizeof(To) == sizeof(From));
  To t;
  std::memcpy(&t, &f, sizeof(t));
  return t;
}

// Both arrays float64: ULPs in float64 units, significant bits capped at 53.
template <typename TA, typename TR>
constexpr bool kWide = std::is_same_v<TA, double>&& std::is_same_v<TR, double>;

// ---------------------------------------------------------------------------
// Fine keys.
//
// ULP distance u: 0 for u = 0, else the exponent and five mantissa bits of
// double(u), so that every u < 64 has a key of its own and the keys of one
// bit width make up one bucket of the report's histogram. u >= 2^52 (float64
// units only) is shifted right by 12 first so that the conversion is exact.
constexpr uint64_t kUlpKeyBias = 1023 * 32 - 1;
constexpr uint64_t kUlpKeyMaxSingle = 192;  // keys of u < 64

inline uint64_t UlpKey(uint64_t u) {
  if (u == 0) return 0;
  uint64_t extra = 0;
  if ((u >> 52) != 0) {
    u >>= 12;
    extra = 12 * 32;
  }
  return (BitCast<uint64_t>(static_cast<double>(u)) >> kFineShift) -
         kUlpKeyBias + extra;
}
// Keys of distances < 2^64 (float64 units) or < 2^32 (float32 units).
constexpr int UlpKeyCount(bool wide) { return wide ? 2049 : 1025; }
// The smallest distance of key k > 0 is 2^e (1 + m/32).
inline int UlpKeyExponent(uint64_t k) {
  return static_cast<int>((k + kUlpKeyBias) >> 5) - 1023;
}
inline uint64_t UlpKeyLow(uint64_t k) {
  return k == 0 ? 0
                : static_cast<uint64_t>(
                      BitCast<double>((k + kUlpKeyBias) << kFineShift));
}
// Bucket b of the report holds [2^(b-1), 2^b), bucket 0 holds 0.
inline int UlpKeyBucket(uint64_t k) {
  return k == 0 ? 0 : UlpKeyExponent(k) + 1;
}

// Significant bits, by c = clamp(relative error, 2^-cap, 1) with bit
// pattern cb >= base = bits(2^-cap): key 0 is c = 2^-cap alone; key k > 0
// holds cb in [base + (k-1)·step, base + k·step), so the top key
// cap·32 + 1 is c = 1 alone and the exponent of c is -cap + (k-1)/32.
inline uint64_t SigKey(uint64_t cb, uint64_t base) {
  return cb == base ? 0 : ((cb - base) >> kFineShift) + 1;
}
inline int SigKeyExponent(uint64_t k, int cap) {
  return k == 0 ? -cap : -cap + static_cast<int>((k - 1) >> 5);
}

struct Params {
  double floor = 0;
  double atol = 0, rtol = 0;
  int cap = 24;
  double min_rel = 0;   // 2^-cap
  uint64_t c_base = 0;  // bits of 2^-cap
  int ulp_keys = 0;     // the junk key (non-numeric elements) is ulp_keys
  int sig_keys = 0;     // likewise
};

// The lanes of one group: the open block's sums and mantissa products, and
// extremes and counts over the whole group.
struct alignas(64) Lanes {
  double s_abs[kLanes], s_d2[kLanes], s_r2[kLanes], s_a2[kLanes], s_ar[kLanes];
  // Product of the mantissas of c (at most 32 values in [1, 2) per lane and
  // block, so < 2^32): Σ log2 c without a log per element.
  double prod[kLanes];
  double m_abs[kLanes], m_rel[kLanes];
  uint64_t m_ulp[kLanes];
  int64_t viol[kLanes];
  int64_t diff[kLanes];  // Δ != 0; only counted for mixed dtypes

  Lanes() { ResetGroup(); }
  void ResetBlock() {
    for (int j = 0; j < kLanes; ++j) {
      s_abs[j] = s_d2[j] = s_r2[j] = s_a2[j] = s_ar[j] = 0.0;
      prod[j] = 1.0;
    }
  }
  void ResetGroup() {
    ResetBlock();
    for (int j = 0; j < kLanes; ++j) {
      m_abs[j] = m_rel[j] = 0.0;
      m_ulp[j] = 0;
      viol[j] = diff[j] = 0;
    }
  }
};

// log2 for x in [2^-1022, 2^64): exact exponent plus the atanh series of
// the mantissa reduced to [sqrt(1/2), sqrt(2)); absolute error < 1e-13. Our
// own code instead of libm so that results do not depend on the libm
// version. The AVX2 Log2Unit4 below does the same operations.
constexpr double k2OverLn2 = 2.8853900817779268;  // 2 / ln 2
constexpr uint64_t kSqrt2Mant = 0x6A09E667F3BCD;
constexpr double kLogCoef[9] = {
    k2OverLn2 / 17.0, k2OverLn2 / 15.0, k2OverLn2 / 13.0,
    k2OverLn2 / 11.0, k2OverLn2 / 9.0,  k2OverLn2 / 7.0,
    k2OverLn2 / 5.0,  k2OverLn2 / 3.0,  k2OverLn2};
constexpr double kExpBias = 4503599627370496.0 + 1023.0;

inline double Log2Unit(double x) {
  const uint64_t bits = BitCast<uint64_t>(x);
  const uint64_t mant = bits & kMantBits;
  const uint64_t big = mant > kSqrt2Mant;  // m > sqrt(2)
  const double m = BitCast<double>((mant | kOneBits) - (big << 52));
  // Exponent field as a double, without an int64 -> double conversion.
  const double e =
      BitCast<double>(uint64_t{0x4330000000000000} | ((bits >> 52) + big)) -
      kExpBias;
  const double z = (m - 1.0) / (m + 1.0);
  const double z2 = z * z;
  double p = kLogCoef[0];
  for (int i = 1; i < 9; ++i) p = kLogCoef[i] + z2 * p;
  return e + z * p;
}

inline double SumLanes(const double* l) {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// What a closed block adds to its group's sums.
struct BlockSums {
  double abs, d2, r2, a2, ar, log2_mant;
};

inline BlockSums CloseBlockPortable(const Lanes& l) {
  BlockSums s;
  s.abs = SumLanes(l.s_abs);
  s.d2 = SumLanes(l.s_d2);
  s.r2 = SumLanes(l.s_r2);
  s.a2 = SumLanes(l.s_a2);
  s.ar = SumLanes(l.s_ar);
  double log2_prod[kLanes];
  for (int j = 0; j < kLanes; ++j) log2_prod[j] = Log2Unit(l.prod[j]);
  s.log2_mant = SumLanes(log2_prod);
  return s;
}

// ---------------------------------------------------------------------------
// Portable kernel.

inline double Masked(double x, uint64_t mask) {
  return BitCast<double>(BitCast<uint64_t>(x) & mask);
}

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

// The per-element quantities both passes use; non-numeric elements get
// neutral values (0, and c = 2^-cap whose mantissa is 1).
struct Elem {
  double ad, av, rv, ar, rel;
  uint64_t cb, u;
  bool nonfinite;
};

template <typename TA, typename TR>
__attribute__((always_inline)) inline Elem ComputeElem(TA a, TR r,
                                                       const Params& p) {
  Elem e;
  const double av = a, rv = r;
  const uint64_t ea = (BitCast<uint64_t>(av) >> 52) & 0x7FF;
  const uint64_t er = (BitCast<uint64_t>(rv) >> 52) & 0x7FF;
  // 1 iff either exponent field is all ones (Inf or NaN).
  const uint64_t nonfinite = ((ea + 1) | (er + 1)) >> 11;
  const uint64_t mask = nonfinite - 1;
  e.nonfinite = nonfinite != 0;
  e.ad = Masked(std::fabs(av - rv), mask);
  e.av = Masked(av, mask);
  e.rv = Masked(rv, mask);
  e.ar = std::fabs(e.rv);
  e.rel = e.ad / std::max(e.ar, p.floor);  // floor > 0: no 0/0
  e.cb = BitCast<uint64_t>(std::min(std::max(e.rel, p.min_rel), 1.0));
  e.u = UlpDistance(a, r) & mask;
  return e;
}

// Packed key of one element: ULP key | significant-bits key << 16 (both
// below 2^12).
constexpr int kSigKeyShift = 16;
inline uint32_t PackKeys(uint64_t ulp_key, uint64_t sig_key) {
  return static_cast<uint32_t>(ulp_key | sig_key << kSigKeyShift);
}
inline uint32_t JunkKeys(const Params& p) {
  return PackKeys(static_cast<uint64_t>(p.ulp_keys),
                  static_cast<uint64_t>(p.sig_keys));
}

// Adds elements [0, n) of a run to the lanes, the first at lane `lane0`,
// and writes their keys. Returns whether any was non-numeric.
template <typename TA, typename TR>
bool RunPortable(const TA* a, const TR* r, int n, int lane0, const Params& p,
                 Lanes* l, uint32_t* keys) {
  const uint32_t junk = JunkKeys(p);
  bool nonfinite = false;
  for (int i = 0; i < n; ++i) {
    const int j = (lane0 + i) & (kLanes - 1);
    const Elem e = ComputeElem(a[i], r[i], p);
    l->s_abs[j] += e.ad;
    l->s_d2[j] += e.ad * e.ad;
    l->s_r2[j] += e.rv * e.rv;
    l->s_a2[j] += e.av * e.av;
    l->s_ar[j] += e.av * e.rv;
    l->prod[j] *= BitCast<double>((e.cb & kMantBits) | kOneBits);
    l->m_abs[j] = std::max(l->m_abs[j], e.ad);
    l->m_rel[j] = std::max(l->m_rel[j], e.rel);
    l->m_ulp[j] = std::max(l->m_ulp[j], e.u);
    l->viol[j] += !e.nonfinite && e.ad > p.atol + p.rtol * e.ar;
    l->diff[j] += e.ad != 0.0;
    keys[i] =
        e.nonfinite ? junk : PackKeys(UlpKey(e.u), SigKey(e.cb, p.c_base));
    nonfinite |= e.nonfinite;
  }
  return nonfinite;
}

// ---------------------------------------------------------------------------
// Second pass: gathers the exact values of the elements whose keys lie in
// the key ranges of the medians still open.

struct KeyRange {
  int64_t lo = 1, hi = 0;  // empty when lo > hi
  bool Contains(int64_t k) const { return k >= lo && k <= hi; }
};

// The key ranges of one group's run: the whole array's open medians and
// the group's own. Keep() tests them exactly.
struct Gather {
  KeyRange ulp_all, ulp_grp, sig_all, sig_grp;
  std::vector<uint64_t>* ulp_all_v = nullptr;
  std::vector<uint64_t>* ulp_grp_v = nullptr;
  std::vector<uint64_t>* sig_all_v = nullptr;
  std::vector<uint64_t>* sig_grp_v = nullptr;

  void Keep(uint64_t u, int64_t uk, uint64_t cb, int64_t sk) const {
    if (ulp_all.Contains(uk)) ulp_all_v->push_back(u);
    if (ulp_grp.Contains(uk)) ulp_grp_v->push_back(u);
    if (sig_all.Contains(sk)) sig_all_v->push_back(cb);
    if (sig_grp.Contains(sk)) sig_grp_v->push_back(cb);
  }
};

// What the vectorized filter of a run admits: at most two ULP key ranges
// and two relative-error intervals (the two ranges of a Gather, merged when
// they are close). It admits a superset; Keep() decides.
struct GatherFilter {
  KeyRange ulp[2];
  double sig_lo[2] = {HUGE_VAL, HUGE_VAL}, sig_hi[2] = {-1, -1};
  bool need_ulp = false, need_sig = false, two = false;

  GatherFilter(const Gather& g, const Params& p) {
    KeyRange sig[2];
    need_ulp = Split(g.ulp_all, g.ulp_grp, ulp);
    need_sig = Split(g.sig_all, g.sig_grp, sig);
    two = ulp[1].lo <= ulp[1].hi || sig[1].lo <= sig[1].hi;
    for (int i = 0; i < 2; ++i) Widen(sig[i], p, &sig_lo[i], &sig_hi[i]);
  }

  // Two ranges as one when at most kMergeGap keys apart, else as they are;
  // returns whether any is non-empty.
  static bool Split(const KeyRange& x, const KeyRange& y, KeyRange out[2]) {
    constexpr int64_t kMergeGap = 2;
    const bool has_x = x.lo <= x.hi, has_y = y.lo <= y.hi;
    out[0] = has_x ? x : y;
    out[1] = has_x && has_y ? y : KeyRange();
    if (has_x && has_y && y.lo - x.hi <= kMergeGap + 1 &&
        x.lo - y.hi <= kMergeGap + 1) {
      out[0] = {std::min(x.lo, y.lo), std::max(x.hi, y.hi)};
      out[1] = KeyRange();
    }
    return has_x || has_y;
  }

  // Bounds on the relative error of the significant-bits keys in `keys`,
  // widened by 2^-40 (see GatherAvx2); empty ranges admit nothing.
  static void Widen(const KeyRange& keys, const Params& p, double* lo,
                    double* hi) {
    if (keys.lo > keys.hi) {
      *lo = HUGE_VAL;
      *hi = -1;
      return;
    }
    // Key 0 is c = 2^-cap (every rel <= 2^-cap); key k > 0 holds c in
    // [C(k-1), C(k)) with C(j) = base + j·step; the top key is rel >= 1.
    auto c_at = [&](int64_t j) {
      return BitCast<double>(p.c_base + static_cast<uint64_t>(j) * kFineStep);
    };
    *lo = keys.lo == 0 ? -1.0 : c_at(keys.lo - 1) * (1 - 0x1p-40);
    *hi = keys.hi >= p.cap * 32 ? HUGE_VAL : c_at(keys.hi) * (1 + 0x1p-40);
  }
};

// The vectorized filters test lo·den < |Δ| <= hi·den with the widened bounds,
// which admits every element whose rounded quotient lies in the key range (and
// a few more) for the price of two products instead of a division; the admitted
// ones are recomputed exactly. Needs den >= floor >= 2^-900 so that the
// products stay normal.
constexpr double kMinFilterFloor = 0x1p-900;
// The float32 filters (float32 pairs) need floor >= 2^-90 instead, so that
// their products stay normal float32.
constexpr double kMinFloatFilterFloor = 0x1p-90;
// Elements whose candidates are compacted into one index list.
constexpr int kGatherChunk = 4096;

template <typename TA, typename TR>
inline void GatherExact(const TA* a, const TR* r, int64_t n, const Params& p,
                        const Gather& g) {
  for (int64_t i = 0; i < n; ++i) {
    const Elem e = ComputeElem(a[i], r[i], p);
    if (e.nonfinite) continue;
    g.Keep(e.u, static_cast<int64_t>(UlpKey(e.u)), e.cb,
           static_cast<int64_t>(SigKey(e.cb, p.c_base)));
  }
}

}  // namespace drift_kernels
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_KERNELS_H_
