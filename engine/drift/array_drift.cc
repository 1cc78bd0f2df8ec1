// One fused pass computes, per block of 256 elements, every sum, extreme and
// a fine histogram key per element; a second pass runs only when a median
// falls in a histogram bucket that holds more than one value, and then keeps
// only the elements of that bucket (well under 1% of them for real drift).
//
// Fine keys. ULP distance u: u itself below 64, else the bit width and the
// five bits below the leading one (1/32 relative resolution); the ULP
// histogram of the report (by bit width) is a coarsening of it. Significant
// bits: the bit pattern of c = clamp(relative error, 2^-cap, 1), rounded up
// to 1/32 binade steps, with c = 2^-cap (identical values) and c = 1 in keys
// of their own. So the medians of identical-or-few-ulp drift come straight
// from the histogram, and otherwise the second pass gathers one bucket.
//
// Per-timestep curves visit the (N, T, U) array t-major (for each t, rows
// i = 0..N-1 in index order), so one working histogram serves every t;
// block order inside a t, and hence every sum, is the same as an index-order
// walk would give.
//
// Kernels: AVX2 intrinsics when the engine is built for it, else portable
// loops; both do the same IEEE operations in the same order (lane j of 8
// takes elements j, j+8, ... of a block), so results are bit-for-bit the
// same. Everything is computed unconditionally and combined with bit masks:
// under -ftrapping-math a floating-point operation under a condition is
// neither vectorized nor speculated.
#include "engine/drift/array_drift.h"

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <type_traits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "absl/strings/str_cat.h"
#include "engine/drift/array_drift_internal.h"

namespace driftscope {
namespace {

constexpr int kBlock = 256;
constexpr int kLanes = 8;
constexpr int64_t kMinDirectRow = 32;  // shorter rows are staged
constexpr int kCopies = 4;  // interleaved histograms: no store-forward stalls
constexpr size_t kMaxGroupHistBytes = size_t{64} << 20;
constexpr uint64_t kOneBits = 0x3FF0000000000000;
constexpr uint64_t kMantBits = 0x000FFFFFFFFFFFFF;
constexpr uint64_t kExpBits = 0x7FF0000000000000;
constexpr int kFineBits = 5;
constexpr int kSigShift = 52 - kFineBits;
constexpr uint64_t kSigStep = uint64_t{1} << kSigShift;

template <typename To, typename From>
inline To BitCast(From f) {
  static_assert(sizeof(To) == sizeof(From));
  To t;
  std::memcpy(&t, &f, sizeof(t));
  return t;
}

template <typename TA, typename TR>
constexpr bool kWide = std::is_same_v<TA, double>&& std::is_same_v<TR, double>;

// log2 for x in [2^-1022, 1]: exact exponent plus the atanh series of the
// mantissa reduced to [sqrt(1/2), sqrt(2)); absolute error < 1e-13. Our own
// code instead of libm so that results do not depend on the libm version.
// The AVX2 Log2Unit4 below does the same operations.
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

inline int BitWidth(uint64_t u) { return u == 0 ? 0 : 64 - __builtin_clzll(u); }

// ULP fine key: u below 64; else (s << 5) + (u >> s) with s = width - 6,
// which lies in [64, 1920).
inline uint64_t UlpKey(uint64_t u) {
  if (u < 64) return u;
  const int s = BitWidth(u) - 6;
  return (static_cast<uint64_t>(s) << 5) + (u >> s);
}
inline int UlpKeyWidth(uint64_t k) {
  return k < 64 ? BitWidth(k) : static_cast<int>(k >> 5) + 5;
}
// Keys of distances < 2^64 (float64 units) or < 2^32 (float32 units).
constexpr int UlpKeyCount(bool wide) { return wide ? 1920 : 896; }

// Significant-bits fine key of c's bit pattern cb in [base, bits(1)]:
// 0 for c = 2^-cap, k for cb in (base + (k-1)·step, base + k·step],
// cap·32 + 1 for c = 1.
inline uint64_t SigKey(uint64_t cb, uint64_t base) {
  return ((cb - base + (kSigStep - 1)) >> kSigShift) + (cb == kOneBits);
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

// Per-block results of the pass-1 kernels, lane j holding elements j, j+8...
// Non-numeric elements add neutral values (0, and c = 1) and the junk key.
struct BlockOut {
  alignas(32) double s_abs[kLanes];
  alignas(32) double s_d2[kLanes];
  alignas(32) double s_r2[kLanes];
  alignas(32) double s_a2[kLanes];
  alignas(32) double s_ar[kLanes];
  // Product of the mantissas of c (at most 32 values in [1, 2) per lane, so
  // < 2^32) and the sum of its exponents: Σ log2 c without a log per element.
  alignas(32) double prod[kLanes];
  alignas(32) double m_abs[kLanes];
  alignas(32) double m_rel[kLanes];
  alignas(32) int64_t s_exp[kLanes];
  alignas(32) uint64_t m_ulp[kLanes];
  int64_t differing = 0, viol = 0;
  bool nonfinite = false;
  // ULP key | significant-bits key << 32 (both < 2^11).
  alignas(32) uint64_t key[kBlock];
};

// ---------------------------------------------------------------------------
// Portable kernels.

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

// The per-element quantities both passes use.
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
  e.ar = Masked(std::fabs(rv), mask);
  e.rel = e.ad / std::max(e.ar, p.floor);  // floor > 0: no 0/0
  e.cb = (BitCast<uint64_t>(std::min(std::max(e.rel, p.min_rel), 1.0)) & mask) |
         (kOneBits & ~mask);
  e.u = UlpDistance(a, r) & mask;
  return e;
}

template <typename TA, typename TR>
void Pass1BlockPortable(const TA* a, const TR* r, int n, const Params& p,
                        BlockOut* b) {
  for (int j = 0; j < kLanes; ++j) {
    b->s_abs[j] = b->s_d2[j] = b->s_r2[j] = b->s_a2[j] = b->s_ar[j] = 0.0;
    b->m_abs[j] = b->m_rel[j] = 0.0;
    b->prod[j] = 1.0;
    b->s_exp[j] = 0;
    b->m_ulp[j] = 0;
  }
  b->differing = b->viol = 0;
  b->nonfinite = false;
  for (int i = 0; i < n; ++i) {
    const int j = i & (kLanes - 1);
    const Elem e = ComputeElem(a[i], r[i], p);
    b->s_abs[j] += e.ad;
    b->s_d2[j] += e.ad * e.ad;
    b->s_r2[j] += e.rv * e.rv;
    b->s_a2[j] += e.av * e.av;
    b->s_ar[j] += e.av * e.rv;
    b->m_abs[j] = std::max(b->m_abs[j], e.ad);
    b->m_rel[j] = std::max(b->m_rel[j], e.rel);
    b->prod[j] *= BitCast<double>((e.cb & kMantBits) | kOneBits);
    b->s_exp[j] += static_cast<int64_t>(e.cb >> 52) - 1023;
    b->m_ulp[j] = std::max(b->m_ulp[j], e.u);
    b->differing += e.ad != 0.0;
    b->viol += !e.nonfinite && e.ad > p.atol + p.rtol * e.ar;
    b->nonfinite |= e.nonfinite;
    b->key[i] = e.nonfinite ? static_cast<uint64_t>(p.ulp_keys) |
                                  static_cast<uint64_t>(p.sig_keys) << 32
                            : UlpKey(e.u) | SigKey(e.cb, p.c_base) << 32;
  }
}

// Key ranges whose elements pass 2 keeps (empty: lo > hi).
struct KeyRange {
  int64_t lo = 1, hi = 0;
  bool Contains(int64_t k) const { return k >= lo && k <= hi; }
};

struct Gather {
  KeyRange ulp_all, ulp_grp, sig_all, sig_grp;
  std::vector<uint64_t>* ulp_all_v = nullptr;
  std::vector<uint64_t>* ulp_grp_v = nullptr;
  std::vector<uint64_t>* sig_all_v = nullptr;
  std::vector<uint64_t>* sig_grp_v = nullptr;

  // Bounds on the relative error for the sig ranges (see Pass2BlockAvx2);
  // empty ranges admit nothing.
  double sig_all_lo = HUGE_VAL, sig_all_hi = -1;
  double sig_grp_lo = HUGE_VAL, sig_grp_hi = -1;

  static void Widen(const KeyRange& keys, const Params& p, double* lo,
                    double* hi) {
    if (keys.lo > keys.hi) {
      *lo = HUGE_VAL;
      *hi = -1;
      return;
    }
    // Key k >= 1 holds c in (base + (k-1)·step, base + k·step]; key 0 is
    // c = 2^-cap (every rel <= 2^-cap), the top keys reach c = 1 (rel >= 1).
    *lo = keys.lo == 0 ? -1.0
                       : BitCast<double>(p.c_base + (keys.lo - 1) * kSigStep) *
                             (1 - 0x1p-40);
    *hi = keys.hi >= p.cap * 32
              ? HUGE_VAL
              : BitCast<double>(p.c_base + keys.hi * kSigStep) * (1 + 0x1p-40);
  }

  void Keep(uint64_t u, int64_t uk, uint64_t cb, int64_t sk) const {
    if (ulp_all.Contains(uk)) ulp_all_v->push_back(u);
    if (ulp_grp.Contains(uk)) ulp_grp_v->push_back(u);
    if (sig_all.Contains(sk)) sig_all_v->push_back(cb);
    if (sig_grp.Contains(sk)) sig_grp_v->push_back(cb);
  }
};

template <typename TA, typename TR>
void Pass2BlockPortable(const TA* a, const TR* r, int n, const Params& p,
                        const Gather& g) {
  for (int i = 0; i < n; ++i) {
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
  __m256d abs_mask, floor, min_rel, one, atol, rtol, magic_d;
  __m256i exp_mask, mant, one_bits, k1023, c_base, sig_round, ulp_junk, junk,
      magic, sign64;
  explicit VecConsts(const Params& p) {
    abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFF));
    floor = _mm256_set1_pd(p.floor);
    min_rel = _mm256_set1_pd(p.min_rel);
    one = _mm256_set1_pd(1.0);
    atol = _mm256_set1_pd(p.atol);
    rtol = _mm256_set1_pd(p.rtol);
    magic_d = _mm256_set1_pd(4503599627370496.0);  // 2^52
    exp_mask = _mm256_set1_epi64x(kExpBits);
    mant = _mm256_set1_epi64x(kMantBits);
    one_bits = _mm256_set1_epi64x(kOneBits);
    k1023 = _mm256_set1_epi64x(1023);
    c_base = _mm256_set1_epi64x(static_cast<int64_t>(p.c_base));
    sig_round = _mm256_set1_epi64x(kSigStep - 1);
    ulp_junk = _mm256_set1_epi64x(p.ulp_keys);
    junk = _mm256_set1_epi64x(
        static_cast<int64_t>(static_cast<uint64_t>(p.ulp_keys) |
                             static_cast<uint64_t>(p.sig_keys) << 32));
    magic = _mm256_set1_epi64x(0x4330000000000000);
    sign64 = _mm256_set1_epi64x(std::numeric_limits<int64_t>::min());
  }
};

inline __m256d Load4(const float* p) {
  return _mm256_cvtps_pd(_mm_loadu_ps(p));
}
inline __m256d Load4(const double* p) { return _mm256_loadu_pd(p); }

// float32 bit patterns, sign-extended to 64-bit lanes (the float64 side
// rounded to float32 as static_cast does).
inline __m256i F32Bits(const float* p, __m256d) {
  return _mm256_cvtepi32_epi64(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256i F32Bits(const double*, __m256d v) {
  return _mm256_cvtepi32_epi64(_mm_castps_si128(_mm256_cvtpd_ps(v)));
}

// key(i) = i >= 0 ? i : MIN - i, selected by the sign of i.
inline __m256i OrderKey(__m256i i, __m256i min) {
  return _mm256_castpd_si256(_mm256_blendv_pd(
      _mm256_castsi256_pd(i), _mm256_castsi256_pd(_mm256_sub_epi64(min, i)),
      _mm256_castsi256_pd(i)));
}

struct Core {
  __m256d ad, avm, rvm, ar, rel;
  __m256i nf, cb, u;
};

template <typename TA, typename TR>
inline Core ComputeCore(const TA* a, const TR* r, const VecConsts& k) {
  Core c;
  const __m256d av = Load4(a), rv = Load4(r);
  const __m256i ab = _mm256_castpd_si256(av), rb = _mm256_castpd_si256(rv);
  c.nf = _mm256_or_si256(
      _mm256_cmpeq_epi64(_mm256_and_si256(ab, k.exp_mask), k.exp_mask),
      _mm256_cmpeq_epi64(_mm256_and_si256(rb, k.exp_mask), k.exp_mask));
  const __m256d nfd = _mm256_castsi256_pd(c.nf);
  c.ad =
      _mm256_andnot_pd(nfd, _mm256_and_pd(_mm256_sub_pd(av, rv), k.abs_mask));
  c.avm = _mm256_andnot_pd(nfd, av);
  c.rvm = _mm256_andnot_pd(nfd, rv);
  c.ar = _mm256_and_pd(c.rvm, k.abs_mask);
  c.rel = _mm256_div_pd(c.ad, _mm256_max_pd(c.ar, k.floor));
  const __m256d cl = _mm256_min_pd(_mm256_max_pd(c.rel, k.min_rel), k.one);
  c.cb = _mm256_castpd_si256(_mm256_blendv_pd(cl, k.one, nfd));
  __m256i ka, kr;
  if constexpr (kWide<TA, TR>) {
    ka = OrderKey(ab, k.sign64);
    kr = OrderKey(rb, k.sign64);
  } else {
    const __m256i min32 =
        _mm256_set1_epi64x(std::numeric_limits<int32_t>::min());
    ka = OrderKey(F32Bits(a, av), min32);
    kr = OrderKey(F32Bits(r, rv), min32);
  }
  // |ka - kr| modulo 2^64: negate the difference where kr > ka.
  const __m256i gt = _mm256_cmpgt_epi64(kr, ka);
  const __m256i d = _mm256_sub_epi64(ka, kr);
  c.u =
      _mm256_andnot_si256(c.nf, _mm256_sub_epi64(_mm256_xor_si256(d, gt), gt));
  return c;
}

// UlpKey of four distances; the bit width comes from the exponent of the
// distance converted exactly to double (after a 12-bit shift when it has
// more than 52 bits, which only float64 units need).
template <bool kWideU>
inline __m256i UlpKey4(__m256i u, const VecConsts& k) {
  const __m256i zero = _mm256_setzero_si256();
  __m256i t = u, extra = zero;
  if constexpr (kWideU) {
    const __m256i small = _mm256_cmpeq_epi64(_mm256_srli_epi64(u, 52), zero);
    t = _mm256_blendv_epi8(_mm256_srli_epi64(u, 12), u, small);
    extra = _mm256_andnot_si256(small, _mm256_set1_epi64x(12));
  }
  const __m256d d = _mm256_sub_pd(
      _mm256_castsi256_pd(_mm256_or_si256(t, k.magic)), k.magic_d);
  const __m256i width = _mm256_add_epi64(
      _mm256_sub_epi64(_mm256_srli_epi64(_mm256_castpd_si256(d), 52),
                       _mm256_set1_epi64x(1022)),
      extra);
  const __m256i s = _mm256_sub_epi64(width, _mm256_set1_epi64x(6));
  const __m256i big =
      _mm256_add_epi64(_mm256_slli_epi64(s, 5), _mm256_srlv_epi64(u, s));
  const __m256i lt64 = _mm256_cmpeq_epi64(_mm256_srli_epi64(u, 6), zero);
  return _mm256_blendv_epi8(big, u, lt64);
}

inline __m256i SigKey4(__m256i cb, const VecConsts& k) {
  const __m256i q = _mm256_srli_epi64(
      _mm256_add_epi64(_mm256_sub_epi64(cb, k.c_base), k.sig_round), kSigShift);
  return _mm256_sub_epi64(q, _mm256_cmpeq_epi64(cb, k.one_bits));
}

struct LaneAcc {
  __m256d s_abs, s_d2, s_r2, s_a2, s_ar, prod, m_abs, m_rel;
  __m256i s_exp, m_ulp, diff, viol, nf;
  LaneAcc() {
    s_abs = s_d2 = s_r2 = s_a2 = s_ar = m_abs = m_rel = _mm256_setzero_pd();
    prod = _mm256_set1_pd(1.0);
    s_exp = m_ulp = diff = viol = nf = _mm256_setzero_si256();
  }
};

template <typename TA, typename TR, bool kTail>
inline void Pass1Four(const TA* a, const TR* r, const VecConsts& k,
                      __m256i valid, LaneAcc* l, uint64_t* key) {
  constexpr bool kWideU = kWide<TA, TR>;
  const Core c = ComputeCore(a, r, k);
  const __m256d nfd = _mm256_castsi256_pd(c.nf);
  l->s_abs = _mm256_add_pd(l->s_abs, c.ad);
  l->s_d2 = _mm256_add_pd(l->s_d2, _mm256_mul_pd(c.ad, c.ad));
  l->s_r2 = _mm256_add_pd(l->s_r2, _mm256_mul_pd(c.rvm, c.rvm));
  l->s_a2 = _mm256_add_pd(l->s_a2, _mm256_mul_pd(c.avm, c.avm));
  l->s_ar = _mm256_add_pd(l->s_ar, _mm256_mul_pd(c.avm, c.rvm));
  l->m_abs = _mm256_max_pd(l->m_abs, c.ad);
  l->m_rel = _mm256_max_pd(l->m_rel, c.rel);
  l->prod =
      _mm256_mul_pd(l->prod, _mm256_castsi256_pd(_mm256_or_si256(
                                 _mm256_and_si256(c.cb, k.mant), k.one_bits)));
  l->s_exp = _mm256_add_epi64(
      l->s_exp, _mm256_sub_epi64(_mm256_srli_epi64(c.cb, 52), k.k1023));
  l->diff =
      _mm256_sub_epi64(l->diff, _mm256_castpd_si256(_mm256_cmp_pd(
                                    c.ad, _mm256_setzero_pd(), _CMP_NEQ_OQ)));
  const __m256d viol = _mm256_andnot_pd(
      nfd,
      _mm256_cmp_pd(c.ad, _mm256_add_pd(k.atol, _mm256_mul_pd(k.rtol, c.ar)),
                    _CMP_GT_OQ));
  l->viol = _mm256_sub_epi64(l->viol, _mm256_castpd_si256(viol));
  l->nf = _mm256_or_si256(l->nf, kTail ? _mm256_and_si256(c.nf, valid) : c.nf);
  if constexpr (kWideU) {
    const __m256i gt = _mm256_cmpgt_epi64(_mm256_xor_si256(c.u, k.sign64),
                                          _mm256_xor_si256(l->m_ulp, k.sign64));
    l->m_ulp = _mm256_blendv_epi8(l->m_ulp, c.u, gt);
  } else {
    l->m_ulp =
        _mm256_blendv_epi8(l->m_ulp, c.u, _mm256_cmpgt_epi64(c.u, l->m_ulp));
  }
  _mm256_store_si256(
      reinterpret_cast<__m256i*>(key),
      _mm256_blendv_epi8(
          _mm256_or_si256(UlpKey4<kWideU>(c.u, k),
                          _mm256_slli_epi64(SigKey4(c.cb, k), 32)),
          k.junk, c.nf));
}

inline int64_t HSum(__m256i v) {
  alignas(32) int64_t x[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(x), v);
  return (x[0] + x[1]) + (x[2] + x[3]);
}

template <typename TA, typename TR>
void Pass1BlockAvx2(const TA* a, const TR* r, int n, const VecConsts& k,
                    BlockOut* b) {
  LaneAcc lo, hi;  // lanes 0-3 and 4-7
  const __m256i all = _mm256_set1_epi64x(-1);
  const int full = n / kLanes * kLanes;
  // Lanes 0-3 over the block, then lanes 4-7 (from L1): one set of
  // accumulators live at a time instead of spilling two.
  for (int i = 0; i < full; i += kLanes) {
    Pass1Four<TA, TR, false>(a + i, r + i, k, all, &lo, b->key + i);
  }
  for (int i = 0; i < full; i += kLanes) {
    Pass1Four<TA, TR, false>(a + i + 4, r + i + 4, k, all, &hi, b->key + i + 4);
  }
  if (const int i = full; i < n) {
    // Pad with NaN: non-numeric lanes add neutral values; `valid` keeps
    // them out of the non-finite flag.
    TA ta[kLanes];
    TR tr[kLanes];
    std::fill(ta, ta + kLanes, std::numeric_limits<TA>::quiet_NaN());
    std::fill(tr, tr + kLanes, std::numeric_limits<TR>::quiet_NaN());
    std::copy(a + i, a + n, ta);
    std::copy(r + i, r + n, tr);
    const __m256i rem = _mm256_set1_epi64x(n - i);
    Pass1Four<TA, TR, true>(
        ta, tr, k, _mm256_cmpgt_epi64(rem, _mm256_setr_epi64x(0, 1, 2, 3)), &lo,
        b->key + i);
    Pass1Four<TA, TR, true>(
        ta + 4, tr + 4, k,
        _mm256_cmpgt_epi64(rem, _mm256_setr_epi64x(4, 5, 6, 7)), &hi,
        b->key + i + 4);
  }
  auto store2 = [](double* out, __m256d x, __m256d y) {
    _mm256_store_pd(out, x);
    _mm256_store_pd(out + 4, y);
  };
  auto store2i = [](auto* out, __m256i x, __m256i y) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(out), x);
    _mm256_store_si256(reinterpret_cast<__m256i*>(out + 4), y);
  };
  store2(b->s_abs, lo.s_abs, hi.s_abs);
  store2(b->s_d2, lo.s_d2, hi.s_d2);
  store2(b->s_r2, lo.s_r2, hi.s_r2);
  store2(b->s_a2, lo.s_a2, hi.s_a2);
  store2(b->s_ar, lo.s_ar, hi.s_ar);
  store2(b->prod, lo.prod, hi.prod);
  store2(b->m_abs, lo.m_abs, hi.m_abs);
  store2(b->m_rel, lo.m_rel, hi.m_rel);
  store2i(b->s_exp, lo.s_exp, hi.s_exp);
  store2i(b->m_ulp, lo.m_ulp, hi.m_ulp);
  b->differing = HSum(_mm256_add_epi64(lo.diff, hi.diff));
  b->viol = HSum(_mm256_add_epi64(lo.viol, hi.viol));
  const __m256i nf = _mm256_or_si256(lo.nf, hi.nf);
  b->nonfinite = !_mm256_testz_si256(nf, nf);
}

inline __m256i InRange(__m256i key, const KeyRange& r) {
  return _mm256_and_si256(
      _mm256_cmpgt_epi64(key, _mm256_set1_epi64x(r.lo - 1)),
      _mm256_cmpgt_epi64(_mm256_set1_epi64x(r.hi + 1), key));
}

// Pass 2 needs the exact relative error only near the median keys. It
// tests lo·den < |Δ| <= hi·den with bounds widened by 2^-40 (Gather::Widen),
// which admits every element whose rounded quotient lies in the key range
// (and a few more) for the price of two products instead of a division;
// the admitted ones are recomputed exactly. Needs den >= floor >= 2^-900 so
// that the products stay normal.
constexpr double kMinFilterFloor = 0x1p-900;

// Lanes of four elements that may fall in the gathered key ranges.
template <typename TA, typename TR, bool kUlp, bool kSig, bool kGrp>
inline __m256i Pass2Candidates(const TA* a, const TR* r, const VecConsts& k,
                               const Gather& g, __m256d lo_all, __m256d hi_all,
                               __m256d lo_grp, __m256d hi_grp) {
  __m256i hit = _mm256_setzero_si256();
  if constexpr (kSig) {
    // NaN anywhere fails every comparison; the exact check drops Inf.
    const __m256d av = Load4(a), rv = Load4(r);
    const __m256d ad = _mm256_and_pd(_mm256_sub_pd(av, rv), k.abs_mask);
    const __m256d den = _mm256_max_pd(_mm256_and_pd(rv, k.abs_mask), k.floor);
    __m256d in = _mm256_and_pd(
        _mm256_cmp_pd(ad, _mm256_mul_pd(lo_all, den), _CMP_GT_OQ),
        _mm256_cmp_pd(ad, _mm256_mul_pd(hi_all, den), _CMP_LE_OQ));
    if constexpr (kGrp) {
      in = _mm256_or_pd(
          in, _mm256_and_pd(
                  _mm256_cmp_pd(ad, _mm256_mul_pd(lo_grp, den), _CMP_GT_OQ),
                  _mm256_cmp_pd(ad, _mm256_mul_pd(hi_grp, den), _CMP_LE_OQ)));
    }
    hit = _mm256_castpd_si256(in);
  }
  if constexpr (kUlp) {
    const Core c = ComputeCore(a, r, k);  // only u and nf are used
    const __m256i uk =
        _mm256_blendv_epi8(UlpKey4<kWide<TA, TR>>(c.u, k), k.ulp_junk, c.nf);
    hit = _mm256_or_si256(hit, InRange(uk, g.ulp_all));
    if constexpr (kGrp) hit = _mm256_or_si256(hit, InRange(uk, g.ulp_grp));
  }
  return hit;
}

template <typename TA, typename TR, bool kUlp, bool kSig, bool kGrp>
void Pass2BlockAvx2(const TA* a, const TR* r, int n, const Params& p,
                    const VecConsts& k, const Gather& g) {
  const __m256d lo_all = _mm256_set1_pd(g.sig_all_lo),
                hi_all = _mm256_set1_pd(g.sig_all_hi),
                lo_grp = _mm256_set1_pd(g.sig_grp_lo),
                hi_grp = _mm256_set1_pd(g.sig_grp_hi);
  auto keep = [&](const TA* pa, const TR* pr, int m) {
    for (int j = 0; j < m; ++j) {
      const Elem e = ComputeElem(pa[j], pr[j], p);
      if (e.nonfinite) continue;
      g.Keep(e.u, static_cast<int64_t>(UlpKey(e.u)), e.cb,
             static_cast<int64_t>(SigKey(e.cb, p.c_base)));
    }
  };
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i h0 = Pass2Candidates<TA, TR, kUlp, kSig, kGrp>(
        a + i, r + i, k, g, lo_all, hi_all, lo_grp, hi_grp);
    const __m256i h1 = Pass2Candidates<TA, TR, kUlp, kSig, kGrp>(
        a + i + 4, r + i + 4, k, g, lo_all, hi_all, lo_grp, hi_grp);
    const __m256i any = _mm256_or_si256(h0, h1);
    if (_mm256_testz_si256(any, any)) continue;
    unsigned bits =
        static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(h0))) |
        static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(h1))) << 4;
    while (bits != 0) {
      const int j = __builtin_ctz(bits);
      bits &= bits - 1;
      keep(a + i + j, r + i + j, 1);
    }
  }
  if (i < n) keep(a + i, r + i, n - i);
}

// Instantiates Pass2BlockAvx2 for what is gathered.
template <typename TA, typename TR>
void Pass2Avx2(const TA* a, const TR* r, int n, const Params& p,
               const VecConsts& k, const Gather& g, bool need_ulp,
               bool need_sig, bool grp) {
  if (grp) {
    if (need_ulp && need_sig) {
      Pass2BlockAvx2<TA, TR, true, true, true>(a, r, n, p, k, g);
    } else if (need_ulp) {
      Pass2BlockAvx2<TA, TR, true, false, true>(a, r, n, p, k, g);
    } else {
      Pass2BlockAvx2<TA, TR, false, true, true>(a, r, n, p, k, g);
    }
  } else {
    if (need_ulp && need_sig) {
      Pass2BlockAvx2<TA, TR, true, true, false>(a, r, n, p, k, g);
    } else if (need_ulp) {
      Pass2BlockAvx2<TA, TR, true, false, false>(a, r, n, p, k, g);
    } else {
      Pass2BlockAvx2<TA, TR, false, true, false>(a, r, n, p, k, g);
    }
  }
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

#endif  // __AVX2__

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

// Fine-key histograms of the group being accumulated, kCopies interleaved
// counters per key so that runs of equal keys do not serialize.
struct WorkHist {
  std::vector<int64_t> ulp, sig;  // [key * kCopies + copy], junk key last
};

template <typename TA, typename TR>
int64_t ClassifyNonFinite(const TA* a, const TR* r, int n, Acc* acc) {
  int64_t count = 0;
  for (int i = 0; i < n; ++i) {
    const double av = a[i], rv = r[i];
    if (std::isfinite(av) && std::isfinite(rv)) continue;
    ++count;
    const bool na = std::isnan(av), nr = std::isnan(rv);
    if (na != nr) {
      ++acc->nan_mm;
    } else if (na || av == rv) {
      ++acc->nf_match;
    } else {
      ++acc->inf_mm;
    }
  }
  return count;
}

template <typename TA, typename TR>
void AddBlock(const BlockOut& b, const TA* a, const TR* r, int n, bool simd,
              Acc* acc, WorkHist* h) {
  int64_t numeric = n;
  if (b.nonfinite) numeric -= ClassifyNonFinite(a, r, n, acc);
  acc->count += n;
  acc->numeric += numeric;
  acc->differing += b.differing;
  acc->viol += b.viol;
  (void)simd;
#if defined(__AVX2__)
  if (simd) {
    alignas(32) double s[8];
    _mm256_store_pd(
        s, SumLanes4(_mm256_load_pd(b.s_abs), _mm256_load_pd(b.s_abs + 4),
                     _mm256_load_pd(b.s_d2), _mm256_load_pd(b.s_d2 + 4),
                     _mm256_load_pd(b.s_r2), _mm256_load_pd(b.s_r2 + 4),
                     _mm256_load_pd(b.s_a2), _mm256_load_pd(b.s_a2 + 4)));
    const __m256d zero = _mm256_setzero_pd();
    _mm256_store_pd(
        s + 4, SumLanes4(_mm256_load_pd(b.s_ar), _mm256_load_pd(b.s_ar + 4),
                         Log2Unit4(_mm256_load_pd(b.prod)),
                         Log2Unit4(_mm256_load_pd(b.prod + 4)), zero, zero,
                         zero, zero));
    acc->sum_abs += s[0];
    acc->sum_r2 += s[1];
    acc->sum_d2 += s[2];
    acc->sum_a2 += s[3];
    acc->sum_ar += s[4];
    acc->sum_log2_mant += s[6];
  } else  // NOLINT(readability/braces)
#endif
  {
    acc->sum_abs += SumLanes(b.s_abs);
    acc->sum_d2 += SumLanes(b.s_d2);
    acc->sum_r2 += SumLanes(b.s_r2);
    acc->sum_a2 += SumLanes(b.s_a2);
    acc->sum_ar += SumLanes(b.s_ar);
    double log2_prod[kLanes];
    for (int j = 0; j < kLanes; ++j) log2_prod[j] = Log2Unit(b.prod[j]);
    acc->sum_log2_mant += SumLanes(log2_prod);
  }
  for (int j = 0; j < kLanes; ++j) {
    acc->sum_c_exp += b.s_exp[j];
    acc->max_abs = std::max(acc->max_abs, b.m_abs[j]);
    acc->max_rel = std::max(acc->max_rel, b.m_rel[j]);
    acc->max_ulp = std::max(acc->max_ulp, b.m_ulp[j]);
  }
  int64_t* hu = h->ulp.data();
  int64_t* hs = h->sig.data();
  static_assert(kCopies == 4);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int c = 0; c < 4; ++c) {
      const uint64_t k = b.key[i + c];
      ++hu[(k & 0xFFFFFFFF) * kCopies + c];
      ++hs[(k >> 32) * kCopies + c];
    }
  }
  for (; i < n; ++i) {
    ++hu[(b.key[i] & 0xFFFFFFFF) * kCopies];
    ++hs[(b.key[i] >> 32) * kCopies];
  }
}

// ---------------------------------------------------------------------------
// Medians.

// Exact median over fine keys: the keys holding the two middle ranks, and
// the median itself when both keys hold a single value.
struct MedianTarget {
  bool need_values = false;
  KeyRange keys;
  int64_t below = 0;  // elements with smaller keys
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
template <typename Value>
double MedianOf(const MedianTarget& t, std::vector<uint64_t>* v, Value value) {
  if (!t.need_values) return t.known;
  const size_t lo = static_cast<size_t>(t.rank_lo - t.below);
  const size_t hi = static_cast<size_t>(t.rank_hi - t.below);
  std::nth_element(v->begin(), v->begin() + lo, v->end());
  const double v_lo = value((*v)[lo]);
  if (hi == lo) return v_lo;
  // The next rank is the first of the upper part.
  const double v_hi = value(*std::min_element(v->begin() + hi, v->end()));
  return 0.5 * (v_lo + v_hi);
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
    g->ulp_buckets[UlpKeyWidth(k)] += ulp_hist[k];
  }
  g->ulp = PlanMedian(ulp_hist, g->acc.numeric, [](int k, double* v) {
    *v = k;
    return k < 64;
  });
  const int last = p.sig_keys - 1;  // c = 1
  const double cap = p.cap;
  g->sig = PlanMedian(sig_hist, g->acc.numeric, [=](int k, double* v) {
    *v = k == 0 ? cap : 0.0;
    return k == 0 || k == last;
  });
  if (g->ulp.need_values) {
    int64_t n = 0;
    for (int k = g->ulp.keys.lo; k <= g->ulp.keys.hi; ++k) n += ulp_hist[k];
    g->ulp_values.reserve(static_cast<size_t>(n));
  }
  if (g->sig.need_values) {
    int64_t n = 0;
    for (int k = g->sig.keys.lo; k <= g->sig.keys.hi; ++k) n += sig_hist[k];
    g->sig_values.reserve(static_cast<size_t>(n));
  }
}

void FinishMedians(GroupResult* g) {
  g->median_ulp = MedianOf(g->ulp, &g->ulp_values,
                           [](uint64_t u) { return static_cast<double>(u); });
  g->median_sig = MedianOf(g->sig, &g->sig_values, SigBitsOfC);
  g->ulp_values = {};
  g->sig_values = {};
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

// Calls fn(a_block, r_block, length <= kBlock, group) over every element
// once, in a fixed order, and end(group) after each group. For (N, T, U)
// curves the group is t, visited t-major, rows in index order within a t;
// when U is small the U-element rows of one t are staged into full blocks,
// so that U = 1 costs no more per element than a flat array.
template <typename TA, typename TR, typename Fn, typename End>
void ForEachBlock(const TA* a, const TR* r, const std::vector<int64_t>& shape,
                  bool per_t, bool index_order, int64_t n, Fn fn, End end) {
  if (!per_t) {
    for (int64_t b = 0; b < n; b += kBlock) {
      fn(a + b, r + b, static_cast<int>(std::min<int64_t>(kBlock, n - b)),
         int64_t{0});
    }
    end(int64_t{0});
    return;
  }
  const int64_t N = shape[0], T = shape[1], U = shape[2];
  if (index_order) {
    // Sequential memory; each t still sees its rows in order of i.
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t t = 0; t < T; ++t) {
        const int64_t base = (i * T + t) * U;
        for (int64_t u = 0; u < U; u += kBlock) {
          fn(a + base + u, r + base + u,
             static_cast<int>(std::min<int64_t>(kBlock, U - u)), t);
        }
      }
    }
    for (int64_t t = 0; t < T; ++t) end(t);
    return;
  }
  alignas(64) TA sa[kBlock];
  alignas(64) TR sr[kBlock];
  for (int64_t t = 0; t < T; ++t) {
    if (U >= kMinDirectRow) {
      // Rows are long enough to fill the vector loops.
      // Rows are T·U elements apart: prefetch a few rows ahead, which the
      // hardware does not do across pages.
      constexpr int64_t kAhead = 8;
      const int64_t row_a = U * static_cast<int64_t>(sizeof(TA));
      const int64_t row_r = U * static_cast<int64_t>(sizeof(TR));
      for (int64_t i = 0; i < N; ++i) {
        const int64_t base = (i * T + t) * U;
        if (i + kAhead < N) {
          const char* na =
              reinterpret_cast<const char*>(a + base + kAhead * T * U);
          const char* nr =
              reinterpret_cast<const char*>(r + base + kAhead * T * U);
          for (int64_t off = 0; off < row_a; off += 64)
            __builtin_prefetch(na + off);
          for (int64_t off = 0; off < row_r; off += 64)
            __builtin_prefetch(nr + off);
        }
        for (int64_t u = 0; u < U; u += kBlock) {
          fn(a + base + u, r + base + u,
             static_cast<int>(std::min<int64_t>(kBlock, U - u)), t);
        }
      }
    } else {
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

// Moves the counts of keys <= max_key (and the junk key) out of the working
// histogram into single-copy histograms.
void DrainHist(std::vector<int64_t>* work, int junk, uint64_t max_key,
               std::vector<int64_t>* out) {
  out->assign(static_cast<size_t>(junk), 0);
  int64_t* w = work->data();
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

template <typename TA, typename TR>
void Compare(const NdArray& a_arr, const NdArray& r_arr, const DriftOptions& o,
             bool simd, ArrayDrift* out) {
  const TA* a = a_arr.data<TA>();
  const TR* r = r_arr.data<TR>();
  const int64_t n = a_arr.size();
  Params p;
  p.atol = o.atol;
  p.rtol = o.rtol;
  p.cap = kWide<TA, TR> ? 53 : 24;
  p.min_rel = std::ldexp(1.0, -p.cap);
  p.c_base = BitCast<uint64_t>(p.min_rel);
  p.floor = o.rel_floor > 0 ? o.rel_floor : 1e-6 * MaxAbsFinite(r, n);
  // A positive floor keeps 0/0 out of the relative error.
  if (!(p.floor >= DBL_MIN)) p.floor = DBL_MIN;
  p.ulp_keys = UlpKeyCount(kWide<TA, TR>);
  p.sig_keys = p.cap * 32 + 2;
  out->ulp_unit = kWide<TA, TR> ? "float64" : "float32";
  out->sig_bits_cap = p.cap;
  out->rel_floor = p.floor;
#if defined(__AVX2__)
  const VecConsts vk(p);
#else
  simd = false;
#endif

  const bool per_t = o.per_timestep && a_arr.ndim() == 3;
  const int64_t groups = per_t ? a_arr.shape()[1] : 1;
  std::vector<GroupResult> res(static_cast<size_t>(per_t ? groups : 0));
  GroupResult total;
  std::vector<int64_t> total_ulp(static_cast<size_t>(p.ulp_keys), 0),
      total_sig(static_cast<size_t>(p.sig_keys), 0);
  // Long (N, T, U) rows are walked in index order with a working histogram
  // per t when those fit in kMaxGroupHistBytes (strided t-major rows cost a
  // TLB miss each); otherwise t-major with one histogram.
  const size_t hist_bytes = static_cast<size_t>(p.ulp_keys + p.sig_keys + 2) *
                            kCopies * sizeof(int64_t);
  const bool index_order =
      per_t && a_arr.shape()[2] >= kMinDirectRow &&
      static_cast<size_t>(groups) * hist_bytes <= kMaxGroupHistBytes;
  const size_t works_n = index_order ? static_cast<size_t>(groups) : 1;
  std::vector<WorkHist> works(works_n);
  for (WorkHist& w : works) {
    w.ulp.assign(static_cast<size_t>(p.ulp_keys + 1) * kCopies, 0);
    w.sig.assign(static_cast<size_t>(p.sig_keys + 1) * kCopies, 0);
  }
  std::vector<Acc> curs(works_n);
  std::vector<int64_t> ulp1, sig1;
  auto block = std::make_unique<BlockOut>();

  ForEachBlock(
      a, r, a_arr.shape(), per_t, index_order, n,
      [&](const TA* pa, const TR* pr, int m, int64_t g) {
        const size_t w = index_order ? static_cast<size_t>(g) : 0;
#if defined(__AVX2__)
        if (simd) {
          Pass1BlockAvx2(pa, pr, m, vk, block.get());
        } else {
          Pass1BlockPortable(pa, pr, m, p, block.get());
        }
#else
        Pass1BlockPortable(pa, pr, m, p, block.get());
#endif
        AddBlock(*block, pa, pr, m, simd, &curs[w], &works[w]);
      },
      [&](int64_t g) {
        const size_t w = index_order ? static_cast<size_t>(g) : 0;
        Acc& cur = curs[w];
        WorkHist& work = works[w];
        const double c_max = std::min(std::max(cur.max_rel, p.min_rel), 1.0);
        DrainHist(&work.ulp, p.ulp_keys, UlpKey(cur.max_ulp), &ulp1);
        DrainHist(&work.sig, p.sig_keys,
                  SigKey(BitCast<uint64_t>(c_max), p.c_base), &sig1);
        if (per_t) {
          GroupResult& gr = res[static_cast<size_t>(g)];
          gr.acc = cur;
          PlanGroup(ulp1, sig1, p, &gr);
          total.acc.Merge(cur);
          for (size_t k = 0; k < ulp1.size(); ++k) total_ulp[k] += ulp1[k];
          for (size_t k = 0; k < sig1.size(); ++k) total_sig[k] += sig1[k];
        } else {
          total.acc = cur;
          total_ulp.swap(ulp1);
          total_sig.swap(sig1);
        }
        cur = Acc();
      });
  works = {};
  PlanGroup(total_ulp, total_sig, p, &total);

  bool need_ulp = total.ulp.need_values, need_sig = total.sig.need_values;
  for (const GroupResult& g : res) {
    need_ulp |= g.ulp.need_values;
    need_sig |= g.sig.need_values;
  }
  if (need_ulp || need_sig) {
    Gather gather;
    if (total.ulp.need_values) gather.ulp_all = total.ulp.keys;
    if (total.sig.need_values) gather.sig_all = total.sig.keys;
    gather.ulp_all_v = &total.ulp_values;
    gather.sig_all_v = &total.sig_values;
    Gather::Widen(gather.sig_all, p, &gather.sig_all_lo, &gather.sig_all_hi);
    auto select_group = [&](int64_t g) {
      gather.ulp_grp = gather.sig_grp = KeyRange();
      if (per_t) {
        GroupResult& gr = res[static_cast<size_t>(g)];
        if (gr.ulp.need_values) gather.ulp_grp = gr.ulp.keys;
        if (gr.sig.need_values) gather.sig_grp = gr.sig.keys;
        gather.ulp_grp_v = &gr.ulp_values;
        gather.sig_grp_v = &gr.sig_values;
      }
      Gather::Widen(gather.sig_grp, p, &gather.sig_grp_lo, &gather.sig_grp_hi);
    };
    select_group(0);
    int64_t selected = 0;
    ForEachBlock(
        a, r, a_arr.shape(), per_t, index_order, n,
        [&](const TA* pa, const TR* pr, int m, int64_t g) {
          if (g != selected) {
            select_group(g);
            selected = g;
          }
#if defined(__AVX2__)
          if (simd && p.floor >= kMinFilterFloor) {
            Pass2Avx2(pa, pr, m, p, vk, gather, need_ulp, need_sig, per_t);
            return;
          }
#endif
          Pass2BlockPortable(pa, pr, m, p, gather);
        },
        [&](int64_t g) {
          if (per_t) FinishMedians(&res[static_cast<size_t>(g)]);
        });
  } else {
    for (GroupResult& g : res) FinishMedians(&g);
  }
  FinishMedians(&total);

  out->overall = Finish(total, o, p.cap);
  for (const GroupResult& g : res) {
    out->per_timestep.push_back(Finish(g, o, p.cap));
  }
  out->pass = out->overall.pass;
}

absl::StatusOr<ArrayDrift> CompareImpl(const NdArray& a, const NdArray& ref,
                                       const DriftOptions& options, bool simd) {
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
    Compare<float, float>(a, ref, options, simd, &out);
  } else if (fa) {
    Compare<float, double>(a, ref, options, simd, &out);
  } else if (fr) {
    Compare<double, float>(a, ref, options, simd, &out);
  } else {
    Compare<double, double>(a, ref, options, simd, &out);
  }
  return out;
}

}  // namespace

absl::StatusOr<ArrayDrift> CompareArrays(const NdArray& a, const NdArray& ref,
                                         const DriftOptions& options) {
  return CompareImpl(a, ref, options, /*simd=*/true);
}

namespace drift_internal {

const char* KernelName() {
#if defined(__AVX2__)
  return "avx2";
#else
  return "portable";
#endif
}

absl::StatusOr<ArrayDrift> CompareArraysPortable(const NdArray& a,
                                                 const NdArray& ref,
                                                 const DriftOptions& options) {
  return CompareImpl(a, ref, options, /*simd=*/false);
}

}  // namespace drift_internal
}  // namespace driftscope
