// Per-element kernels of CompareArrays (engine/drift/array_drift.h),
// included only by array_drift.cc: the fused first pass over a run of one
// group's elements, the fine histogram keys, and the second-pass filter that
// gathers the elements of a median's key. Pure functions over caller-owned
// state; a Lanes is used by one thread at a time.
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

#if defined(__AVX2__)
#include <immintrin.h>
#endif

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

// ---------------------------------------------------------------------------
// AVX2 kernels: the portable ones, four elements at a time.
#if defined(__AVX2__)

struct VecConsts {
  __m256d abs_mask, dbl_max, floor, min_rel, one, atol, rtol, magic_d;
  __m256i mant, one_bits, c_base, c_base_m1, ulp_bias, junk, magic, sign64;
  uint32_t junk_key;
  explicit VecConsts(const Params& p) {
    abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFF));
    dbl_max = _mm256_set1_pd(DBL_MAX);
    floor = _mm256_set1_pd(p.floor);
    min_rel = _mm256_set1_pd(p.min_rel);
    one = _mm256_set1_pd(1.0);
    atol = _mm256_set1_pd(p.atol);
    rtol = _mm256_set1_pd(p.rtol);
    magic_d = _mm256_set1_pd(4503599627370496.0);  // 2^52
    mant = _mm256_set1_epi64x(kMantBits);
    one_bits = _mm256_set1_epi64x(kOneBits);
    c_base = _mm256_set1_epi64x(static_cast<int64_t>(p.c_base));
    c_base_m1 = _mm256_set1_epi64x(static_cast<int64_t>(p.c_base - kFineStep));
    ulp_bias = _mm256_set1_epi64x(kUlpKeyBias);
    junk_key = JunkKeys(p);
    junk = _mm256_set1_epi64x(junk_key);
    magic = _mm256_set1_epi64x(0x4330000000000000);
    sign64 = _mm256_set1_epi64x(std::numeric_limits<int64_t>::min());
  }
};

inline __m256d Load4(const float* p) {
  return _mm256_cvtps_pd(_mm_loadu_ps(p));
}
inline __m256d Load4(const double* p) { return _mm256_loadu_pd(p); }

// float32 bit patterns of eight elements (float64 rounded as static_cast).
inline __m256i Bits8(const float* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
inline __m256i Bits8(const double* p) {
  const __m128 lo = _mm256_cvtpd_ps(_mm256_loadu_pd(p));
  const __m128 hi = _mm256_cvtpd_ps(_mm256_loadu_pd(p + 4));
  return _mm256_castps_si256(
      _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1));
}

// ULP distance in float32 units of eight elements: key(i) + 2^31 is
// |i| for i < 0 and i | 2^31 otherwise (so +0 and -0 meet), and the
// distance of two such unsigned keys is max - min.
template <typename TA, typename TR>
inline __m256i Dist8(const TA* a, const TR* r) {
  const __m256i sign = _mm256_set1_epi32(std::numeric_limits<int32_t>::min());
  auto biased = [&](__m256i i) {
    return _mm256_or_si256(_mm256_abs_epi32(i), _mm256_andnot_si256(i, sign));
  };
  const __m256i ga = biased(Bits8(a)), gr = biased(Bits8(r));
  return _mm256_sub_epi32(_mm256_max_epu32(ga, gr), _mm256_min_epu32(ga, gr));
}

// key(i) = i >= 0 ? i : MIN - i, selected by the sign of i.
inline __m256i OrderKey(__m256i i, __m256i min) {
  return _mm256_castpd_si256(_mm256_blendv_pd(
      _mm256_castsi256_pd(i), _mm256_castsi256_pd(_mm256_sub_epi64(min, i)),
      _mm256_castsi256_pd(i)));
}

// ULP distance in float64 units of four elements: |ka - kr| modulo 2^64.
inline __m256i Dist4Wide(const double* a, const double* r, const VecConsts& k) {
  const __m256i ka = OrderKey(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)), k.sign64);
  const __m256i kr = OrderKey(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r)), k.sign64);
  const __m256i gt = _mm256_cmpgt_epi64(kr, ka);
  const __m256i d = _mm256_sub_epi64(ka, kr);
  return _mm256_sub_epi64(_mm256_xor_si256(d, gt), gt);
}

// UlpKey of four distances.
template <bool kWideU>
inline __m256i UlpKey4(__m256i u, const VecConsts& k) {
  const __m256i zero = _mm256_setzero_si256();
  __m256i t = u;
  __m256i extra = zero;
  if constexpr (kWideU) {
    const __m256i big = _mm256_cmpgt_epi64(_mm256_srli_epi64(u, 52), zero);
    t = _mm256_blendv_epi8(u, _mm256_srli_epi64(u, 12), big);
    extra = _mm256_and_si256(big, _mm256_set1_epi64x(12 * 32));
  }
  const __m256d d = _mm256_sub_pd(
      _mm256_castsi256_pd(_mm256_or_si256(t, k.magic)), k.magic_d);
  __m256i key = _mm256_sub_epi64(
      _mm256_srli_epi64(_mm256_castpd_si256(d), kFineShift), k.ulp_bias);
  if constexpr (kWideU) key = _mm256_add_epi64(key, extra);
  // u = 0 gave a small negative number: both 32-bit halves clamp to 0.
  return _mm256_max_epi32(key, zero);
}

inline __m256i SigKey4(__m256i cb, const VecConsts& k) {
  const __m256i q =
      _mm256_srli_epi64(_mm256_sub_epi64(cb, k.c_base_m1), kFineShift);
  return _mm256_add_epi64(q, _mm256_cmpeq_epi64(cb, k.c_base));
}

// Four lanes of a Lanes held in registers, and whether any element was
// non-numeric.
struct LaneRegs {
  __m256d s_abs, s_d2, s_r2, s_a2, s_ar, prod, m_abs, m_rel;
  __m256i m_ulp, viol, diff, nf = _mm256_setzero_si256();

  __attribute__((always_inline)) LaneRegs(const Lanes& l, int o) {
    s_abs = _mm256_load_pd(l.s_abs + o);
    s_d2 = _mm256_load_pd(l.s_d2 + o);
    s_r2 = _mm256_load_pd(l.s_r2 + o);
    s_a2 = _mm256_load_pd(l.s_a2 + o);
    s_ar = _mm256_load_pd(l.s_ar + o);
    prod = _mm256_load_pd(l.prod + o);
    m_abs = _mm256_load_pd(l.m_abs + o);
    m_rel = _mm256_load_pd(l.m_rel + o);
    m_ulp = _mm256_load_si256(reinterpret_cast<const __m256i*>(l.m_ulp + o));
    viol = _mm256_load_si256(reinterpret_cast<const __m256i*>(l.viol + o));
    diff = _mm256_load_si256(reinterpret_cast<const __m256i*>(l.diff + o));
  }
  __attribute__((always_inline)) void Store(Lanes* l, int o) const {
    _mm256_store_pd(l->s_abs + o, s_abs);
    _mm256_store_pd(l->s_d2 + o, s_d2);
    _mm256_store_pd(l->s_r2 + o, s_r2);
    _mm256_store_pd(l->s_a2 + o, s_a2);
    _mm256_store_pd(l->s_ar + o, s_ar);
    _mm256_store_pd(l->prod + o, prod);
    _mm256_store_pd(l->m_abs + o, m_abs);
    _mm256_store_pd(l->m_rel + o, m_rel);
    _mm256_store_si256(reinterpret_cast<__m256i*>(l->m_ulp + o), m_ulp);
    _mm256_store_si256(reinterpret_cast<__m256i*>(l->viol + o), viol);
    _mm256_store_si256(reinterpret_cast<__m256i*>(l->diff + o), diff);
  }
};

// Permutations of 32-bit slots that gather the low halves of the 64-bit
// lanes set in a 4-bit mask, in order.
alignas(32) inline constexpr int32_t kCompact4[16][8] = {
    {0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0},
    {2, 0, 0, 0, 0, 0, 0, 0}, {0, 2, 0, 0, 0, 0, 0, 0},
    {4, 0, 0, 0, 0, 0, 0, 0}, {0, 4, 0, 0, 0, 0, 0, 0},
    {2, 4, 0, 0, 0, 0, 0, 0}, {0, 2, 4, 0, 0, 0, 0, 0},
    {6, 0, 0, 0, 0, 0, 0, 0}, {0, 6, 0, 0, 0, 0, 0, 0},
    {2, 6, 0, 0, 0, 0, 0, 0}, {0, 2, 6, 0, 0, 0, 0, 0},
    {4, 6, 0, 0, 0, 0, 0, 0}, {0, 4, 6, 0, 0, 0, 0, 0},
    {2, 4, 6, 0, 0, 0, 0, 0}, {0, 2, 4, 6, 0, 0, 0, 0}};

// Four elements into four lanes. `u32` holds their float32-unit ULP
// distances (unused for float64 units). Writes the keys to key[0..4), with
// kCompact only those that are not 0, and returns their number.
template <typename TA, typename TR, bool kCompact>
__attribute__((always_inline)) inline int Four(const TA* a, const TR* r,
                                               const uint32_t* u32,
                                               const VecConsts& k, LaneRegs* s,
                                               uint32_t* key) {
  constexpr bool kWideU = kWide<TA, TR>;
  constexpr bool kCountDiff = !std::is_same_v<TA, TR>;
  const __m256d av = Load4(a), rv = Load4(r);
  const __m256d ad = _mm256_and_pd(_mm256_sub_pd(av, rv), k.abs_mask);
  __m256d nf;
  if constexpr (kWideU) {
    nf = _mm256_or_pd(
        _mm256_cmp_pd(_mm256_and_pd(av, k.abs_mask), k.dbl_max, _CMP_NLE_UQ),
        _mm256_cmp_pd(_mm256_and_pd(rv, k.abs_mask), k.dbl_max, _CMP_NLE_UQ));
  } else {
    // One side is float32: a difference of finite values is finite, and
    // an Inf or NaN on either side makes it Inf or NaN.
    nf = _mm256_cmp_pd(ad, k.dbl_max, _CMP_NLE_UQ);
  }
  const __m256d adm = _mm256_andnot_pd(nf, ad);
  const __m256d avm = _mm256_andnot_pd(nf, av);
  const __m256d rvm = _mm256_andnot_pd(nf, rv);
  const __m256d ar = _mm256_and_pd(rvm, k.abs_mask);
  const __m256d rel = _mm256_div_pd(adm, _mm256_max_pd(ar, k.floor));
  const __m256i cb =
      _mm256_castpd_si256(_mm256_min_pd(_mm256_max_pd(rel, k.min_rel), k.one));
  s->s_abs = _mm256_add_pd(s->s_abs, adm);
  s->s_d2 = _mm256_add_pd(s->s_d2, _mm256_mul_pd(adm, adm));
  s->s_r2 = _mm256_add_pd(s->s_r2, _mm256_mul_pd(rvm, rvm));
  s->s_a2 = _mm256_add_pd(s->s_a2, _mm256_mul_pd(avm, avm));
  s->s_ar = _mm256_add_pd(s->s_ar, _mm256_mul_pd(avm, rvm));
  s->prod =
      _mm256_mul_pd(s->prod, _mm256_castsi256_pd(_mm256_or_si256(
                                 _mm256_and_si256(cb, k.mant), k.one_bits)));
  s->m_abs = _mm256_max_pd(s->m_abs, adm);
  s->m_rel = _mm256_max_pd(s->m_rel, rel);
  const __m256d viol = _mm256_andnot_pd(
      nf, _mm256_cmp_pd(adm, _mm256_add_pd(k.atol, _mm256_mul_pd(k.rtol, ar)),
                        _CMP_GT_OQ));
  s->viol = _mm256_sub_epi64(s->viol, _mm256_castpd_si256(viol));
  if constexpr (kCountDiff) {
    s->diff =
        _mm256_sub_epi64(s->diff, _mm256_castpd_si256(_mm256_cmp_pd(
                                      adm, _mm256_setzero_pd(), _CMP_NEQ_OQ)));
  }
  const __m256i nfi = _mm256_castpd_si256(nf);
  s->nf = _mm256_or_si256(s->nf, nfi);
  __m256i u;
  if constexpr (kWideU) {
    u = _mm256_andnot_si256(nfi, Dist4Wide(a, r, k));
    const __m256i gt = _mm256_cmpgt_epi64(_mm256_xor_si256(u, k.sign64),
                                          _mm256_xor_si256(s->m_ulp, k.sign64));
    s->m_ulp = _mm256_blendv_epi8(s->m_ulp, u, gt);
  } else {
    u = _mm256_andnot_si256(nfi, _mm256_cvtepu32_epi64(_mm_load_si128(
                                     reinterpret_cast<const __m128i*>(u32))));
    s->m_ulp = _mm256_max_epu32(s->m_ulp, u);  // u < 2^32
  }
  const __m256i keys = _mm256_blendv_epi8(
      _mm256_or_si256(UlpKey4<kWideU>(u, k),
                      _mm256_slli_epi64(SigKey4(cb, k), kSigKeyShift)),
      k.junk, nfi);
  // Keys that are not 0 (identical elements) to key[0..), as 32 bits.
  const int kept =
      kCompact ? 0xF & ~_mm256_movemask_pd(_mm256_castsi256_pd(
                           _mm256_cmpeq_epi64(keys, _mm256_setzero_si256())))
               : 0xF;
  _mm_storeu_si128(reinterpret_cast<__m128i*>(key),
                   _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
                       keys, _mm256_load_si256(reinterpret_cast<const __m256i*>(
                                 kCompact4[kept])))));
  return __builtin_popcount(static_cast<unsigned>(kept));
}

// `nv` vectors of eight elements into all eight lanes: lanes 0-3 over the
// run, then lanes 4-7 (from L1), so that one set of accumulators is live at
// a time. Keys as Four; *written gets their number.
template <typename TA, typename TR, bool kCompact>
inline bool VectorsAvx2(const TA* a, const TR* r, int nv, const VecConsts& k,
                        Lanes* l, uint32_t* keys, int* written) {
  int w = 0;
  __m256i nf = _mm256_setzero_si256();
  alignas(32) uint32_t u32[kBlock];
  if constexpr (!kWide<TA, TR>) {
    for (int v = 0; v < nv; ++v) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(u32 + 8 * v),
                         Dist8(a + 8 * v, r + 8 * v));
    }
  }
  for (int o = 0; o < kLanes; o += 4) {
    LaneRegs s(*l, o);
    for (int v = 0; v < nv; ++v) {
      const int i = 8 * v + o;
      w += Four<TA, TR, kCompact>(a + i, r + i, u32 + i, k, &s, keys + w);
    }
    s.Store(l, o);
    nf = _mm256_or_si256(nf, s.nf);
  }
  *written = w;
  return !_mm256_testz_si256(nf, nf);
}

// `n` elements starting at lane `lane0`, padded with NaN to whole vectors.
// Writes all n keys.
template <typename TA, typename TR>
inline bool PartialAvx2(const TA* a, const TR* r, int n, int lane0,
                        const VecConsts& k, Lanes* l, uint32_t* keys) {
  alignas(32) TA ta[kLanes];
  alignas(32) TR tr[kLanes];
  alignas(32) uint32_t tk[kLanes];
  std::fill(ta, ta + kLanes, std::numeric_limits<TA>::quiet_NaN());
  std::fill(tr, tr + kLanes, std::numeric_limits<TR>::quiet_NaN());
  std::copy(a, a + n, ta + lane0);
  std::copy(r, r + n, tr + lane0);
  int written;
  VectorsAvx2<TA, TR, false>(ta, tr, 1, k, l, tk, &written);
  // The padding is non-numeric; the elements' own keys tell.
  bool nonfinite = false;
  for (int i = lane0; i < lane0 + n; ++i) {
    keys[i - lane0] = tk[i];
    nonfinite |= tk[i] == k.junk_key;
  }
  return nonfinite;
}

// RunPortable, vectorized, except that some keys 0 (identical elements)
// are left out: *written is the number of keys written, and keys[] needs 3
// slots of slack.
template <typename TA, typename TR>
bool RunAvx2(const TA* a, const TR* r, int n, int lane0, const VecConsts& k,
             Lanes* l, uint32_t* keys, int* written) {
  bool nonfinite = false;
  int w = 0;
  if (lane0 != 0) {
    const int head = std::min(n, kLanes - lane0);
    nonfinite = PartialAvx2(a, r, head, lane0, k, l, keys);
    a += head;
    r += head;
    w = head;
    n -= head;
  }
  const int nv = n / kLanes;
  if (nv > 0) {
    int body;
    nonfinite |= VectorsAvx2<TA, TR, true>(a, r, nv, k, l, keys + w, &body);
    w += body;
  }
  if (const int done = nv * kLanes; done < n) {
    nonfinite |= PartialAvx2(a + done, r + done, n - done, 0, k, l, keys + w);
    w += n - done;
  }
  *written = w;
  return nonfinite;
}

// SumLanes of four 8-lane sums at once, same additions: returns
// {A, C, B, D} for lanes (a_lo, a_hi), ... .
inline __m256d SumLanes4(__m256d a0, __m256d a1, __m256d b0, __m256d b1,
                         __m256d c0, __m256d c1, __m256d d0, __m256d d1) {
  const __m256d ha = _mm256_hadd_pd(a0, a1);  // a01 a45 a23 a67
  const __m256d hb = _mm256_hadd_pd(b0, b1);
  const __m256d hc = _mm256_hadd_pd(c0, c1);
  const __m256d hd = _mm256_hadd_pd(d0, d1);
  const __m256d ab = _mm256_add_pd(_mm256_permute2f128_pd(ha, hb, 0x20),
                                   _mm256_permute2f128_pd(ha, hb, 0x31));
  const __m256d cd = _mm256_add_pd(_mm256_permute2f128_pd(hc, hd, 0x20),
                                   _mm256_permute2f128_pd(hc, hd, 0x31));
  return _mm256_hadd_pd(ab, cd);
}

inline __m256d Log2Unit4(__m256d x) {
  const __m256i bits = _mm256_castpd_si256(x);
  const __m256i mant = _mm256_and_si256(bits, _mm256_set1_epi64x(kMantBits));
  const __m256i big = _mm256_srli_epi64(
      _mm256_cmpgt_epi64(mant, _mm256_set1_epi64x(kSqrt2Mant)), 63);
  const __m256d m = _mm256_castsi256_pd(
      _mm256_sub_epi64(_mm256_or_si256(mant, _mm256_set1_epi64x(kOneBits)),
                       _mm256_slli_epi64(big, 52)));
  const __m256d e =
      _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(
                        _mm256_set1_epi64x(0x4330000000000000),
                        _mm256_add_epi64(_mm256_srli_epi64(bits, 52), big))),
                    _mm256_set1_pd(kExpBias));
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d z = _mm256_div_pd(_mm256_sub_pd(m, one), _mm256_add_pd(m, one));
  const __m256d z2 = _mm256_mul_pd(z, z);
  __m256d p = _mm256_set1_pd(kLogCoef[0]);
  for (int i = 1; i < 9; ++i) {
    p = _mm256_add_pd(_mm256_set1_pd(kLogCoef[i]), _mm256_mul_pd(z2, p));
  }
  return _mm256_add_pd(e, _mm256_mul_pd(z, p));
}

// CloseBlockPortable, same additions.
inline BlockSums CloseBlockAvx2(const Lanes& l) {
  alignas(32) double s[8];
  _mm256_store_pd(
      s, SumLanes4(_mm256_load_pd(l.s_abs), _mm256_load_pd(l.s_abs + 4),
                   _mm256_load_pd(l.s_d2), _mm256_load_pd(l.s_d2 + 4),
                   _mm256_load_pd(l.s_r2), _mm256_load_pd(l.s_r2 + 4),
                   _mm256_load_pd(l.s_a2), _mm256_load_pd(l.s_a2 + 4)));
  const __m256d zero = _mm256_setzero_pd();
  _mm256_store_pd(
      s + 4,
      SumLanes4(_mm256_load_pd(l.s_ar), _mm256_load_pd(l.s_ar + 4),
                Log2Unit4(_mm256_load_pd(l.prod)),
                Log2Unit4(_mm256_load_pd(l.prod + 4)), zero, zero, zero, zero));
  return BlockSums{s[0], s[2], s[1], s[3], s[4], s[6]};
}

struct FilterRegs {
  __m256d lo0, hi0, lo1, hi1;
  __m256i ulo0, uhi0, ulo1, uhi1;
  explicit FilterRegs(const GatherFilter& f)
      : lo0(_mm256_set1_pd(f.sig_lo[0])),
        hi0(_mm256_set1_pd(f.sig_hi[0])),
        lo1(_mm256_set1_pd(f.sig_lo[1])),
        hi1(_mm256_set1_pd(f.sig_hi[1])),
        ulo0(_mm256_set1_epi64x(f.ulp[0].lo - 1)),
        uhi0(_mm256_set1_epi64x(f.ulp[0].hi + 1)),
        ulo1(_mm256_set1_epi64x(f.ulp[1].lo - 1)),
        uhi1(_mm256_set1_epi64x(f.ulp[1].hi + 1)) {}
};

template <typename TA, typename TR, bool kUlp, bool kSig, bool kTwo>
inline __m256i Candidates4(const TA* a, const TR* r, const uint32_t* u32,
                           const VecConsts& k, const FilterRegs& f) {
  __m256i hit = _mm256_setzero_si256();
  if constexpr (kSig) {
    // NaN anywhere fails every comparison; the exact check drops Inf.
    const __m256d av = Load4(a), rv = Load4(r);
    const __m256d ad = _mm256_and_pd(_mm256_sub_pd(av, rv), k.abs_mask);
    const __m256d den = _mm256_max_pd(_mm256_and_pd(rv, k.abs_mask), k.floor);
    __m256d in =
        _mm256_and_pd(_mm256_cmp_pd(ad, _mm256_mul_pd(f.lo0, den), _CMP_GT_OQ),
                      _mm256_cmp_pd(ad, _mm256_mul_pd(f.hi0, den), _CMP_LE_OQ));
    if constexpr (kTwo) {
      in = _mm256_or_pd(
          in, _mm256_and_pd(
                  _mm256_cmp_pd(ad, _mm256_mul_pd(f.lo1, den), _CMP_GT_OQ),
                  _mm256_cmp_pd(ad, _mm256_mul_pd(f.hi1, den), _CMP_LE_OQ)));
    }
    hit = _mm256_castpd_si256(in);
  }
  if constexpr (kUlp) {
    // Keys of non-finite pairs are garbage here; the exact check drops them.
    __m256i uk;
    if constexpr (kWide<TA, TR>) {
      uk = UlpKey4<true>(Dist4Wide(a, r, k), k);
    } else {
      uk = UlpKey4<false>(_mm256_cvtepu32_epi64(_mm_load_si128(
                              reinterpret_cast<const __m128i*>(u32))),
                          k);
    }
    hit =
        _mm256_or_si256(hit, _mm256_and_si256(_mm256_cmpgt_epi64(uk, f.ulo0),
                                              _mm256_cmpgt_epi64(f.uhi0, uk)));
    if constexpr (kTwo) {
      hit = _mm256_or_si256(hit,
                            _mm256_and_si256(_mm256_cmpgt_epi64(uk, f.ulo1),
                                             _mm256_cmpgt_epi64(f.uhi1, uk)));
    }
  }
  return hit;
}

template <typename TA, typename TR, bool kUlp, bool kSig, bool kTwo>
void GatherAvx2(const TA* a, const TR* r, int64_t n, const Params& p,
                const VecConsts& k, const Gather& g, const FilterRegs& f) {
  alignas(32) uint32_t u32[kLanes];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    if constexpr (kUlp && !kWide<TA, TR>) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(u32), Dist8(a + i, r + i));
    }
    const __m256i h0 =
        Candidates4<TA, TR, kUlp, kSig, kTwo>(a + i, r + i, u32, k, f);
    const __m256i h1 = Candidates4<TA, TR, kUlp, kSig, kTwo>(
        a + i + 4, r + i + 4, u32 + 4, k, f);
    const __m256i any = _mm256_or_si256(h0, h1);
    if (_mm256_testz_si256(any, any)) continue;
    unsigned bits =
        static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(h0))) |
        static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(h1))) << 4;
    while (bits != 0) {
      const int j = __builtin_ctz(bits);
      bits &= bits - 1;
      GatherExact(a + i + j, r + i + j, 1, p, g);
    }
  }
  if (i < n) GatherExact(a + i, r + i, n - i, p, g);
}

// Float32 pairs, significant bits only: the filter in float32, eight
// elements at a time, bounds widened by a further 2^-20 (see
// GatherSigF32Avx512), candidates compacted into an index list without
// branches and then checked exactly.

// The set bits of a byte as eight byte-sized positions, in order.
struct BitPositions {
  alignas(8) uint8_t pos[256][8];
  constexpr BitPositions() : pos() {
    for (int m = 0; m < 256; ++m) {
      int c = 0;
      for (int j = 0; j < 8; ++j) {
        if ((m >> j) & 1) pos[m][c++] = static_cast<uint8_t>(j);
      }
    }
  }
};
inline constexpr BitPositions kBitPositions;

inline __m256 WidenedLo8(double lo) {
  return _mm256_set1_ps(lo < 0 ? -1.0f
                               : static_cast<float>(lo * (1 - 0x1p-20)));
}
inline __m256 WidenedHi8(double hi) {
  return _mm256_set1_ps(hi > FLT_MAX ? HUGE_VALF
                                     : static_cast<float>(hi * (1 + 0x1p-20)));
}

template <bool kTwo>
void GatherSigF32Avx2(const float* a, const float* r, int64_t n,
                      const Params& p, const Gather& g, const GatherFilter& f) {
  const __m256 abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 floor = _mm256_set1_ps(static_cast<float>(p.floor));
  const __m256 lo0 = WidenedLo8(f.sig_lo[0]), hi0 = WidenedHi8(f.sig_hi[0]);
  const __m256 lo1 = WidenedLo8(f.sig_lo[1]), hi1 = WidenedHi8(f.sig_hi[1]);
  alignas(32) int32_t idx[kGatherChunk + 8];
  for (int64_t base = 0; base < n; base += kGatherChunk) {
    const int m = static_cast<int>(std::min<int64_t>(kGatherChunk, n - base));
    const float* pa = a + base;
    const float* pr = r + base;
    int count = 0, i = 0;
    for (; i + 8 <= m; i += 8) {
      const __m256 av = _mm256_loadu_ps(pa + i), rv = _mm256_loadu_ps(pr + i);
      const __m256 ad = _mm256_and_ps(_mm256_sub_ps(av, rv), abs);
      const __m256 den = _mm256_max_ps(_mm256_and_ps(rv, abs), floor);
      __m256 in =
          _mm256_and_ps(_mm256_cmp_ps(ad, _mm256_mul_ps(lo0, den), _CMP_GT_OQ),
                        _mm256_cmp_ps(ad, _mm256_mul_ps(hi0, den), _CMP_LE_OQ));
      if constexpr (kTwo) {
        in = _mm256_or_ps(
            in, _mm256_and_ps(
                    _mm256_cmp_ps(ad, _mm256_mul_ps(lo1, den), _CMP_GT_OQ),
                    _mm256_cmp_ps(ad, _mm256_mul_ps(hi1, den), _CMP_LE_OQ)));
      }
      const unsigned bits = static_cast<unsigned>(_mm256_movemask_ps(in));
      const __m128i pos = _mm_loadl_epi64(
          reinterpret_cast<const __m128i*>(kBitPositions.pos[bits]));
      _mm256_storeu_si256(
          reinterpret_cast<__m256i*>(idx + count),
          _mm256_add_epi32(_mm256_cvtepu8_epi32(pos), _mm256_set1_epi32(i)));
      count += __builtin_popcount(bits);
    }
    for (int c = 0; c < count; ++c) {
      GatherExact(pa + idx[c], pr + idx[c], 1, p, g);
    }
    GatherExact(pa + i, pr + i, m - i, p, g);
  }
}

// GatherExact over a run, vectorized for what the filter needs.
template <typename TA, typename TR>
void GatherRunAvx2(const TA* a, const TR* r, int64_t n, const Params& p,
                   const VecConsts& k, const Gather& g,
                   const GatherFilter& filter) {
  if constexpr (std::is_same_v<TA, float> && std::is_same_v<TR, float>) {
    if (!filter.need_ulp && p.floor >= kMinFloatFilterFloor &&
        p.floor <= FLT_MAX) {
      if (filter.two) return GatherSigF32Avx2<true>(a, r, n, p, g, filter);
      return GatherSigF32Avx2<false>(a, r, n, p, g, filter);
    }
  }
  const FilterRegs f(filter);
  const bool u = filter.need_ulp, s = filter.need_sig;
  if (filter.two) {
    if (u && s)
      return GatherAvx2<TA, TR, true, true, true>(a, r, n, p, k, g, f);
    if (u) return GatherAvx2<TA, TR, true, false, true>(a, r, n, p, k, g, f);
    if (s) return GatherAvx2<TA, TR, false, true, true>(a, r, n, p, k, g, f);
  } else {
    if (u && s) {
      return GatherAvx2<TA, TR, true, true, false>(a, r, n, p, k, g, f);
    }
    if (u) return GatherAvx2<TA, TR, true, false, false>(a, r, n, p, k, g, f);
    if (s) return GatherAvx2<TA, TR, false, true, false>(a, r, n, p, k, g, f);
  }
}

#endif  // __AVX2__

}  // namespace drift_kernels
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_KERNELS_H_
