// AVX2 kernels of CompareArrays: the portable ones of array_drift_kernels.h,
// four elements at a time, with the same IEEE operations in the same order
// per lane (so the same bits). Included only by array_drift_dispatch.h;
// compiled when the engine's base ISA has AVX2.
#ifndef DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_AVX2_H_
#define DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_AVX2_H_

#include "engine/drift/array_drift_kernels.h"

#if defined(__AVX2__)
#include <immintrin.h>

namespace driftscope {
namespace drift_kernels {

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

}  // namespace drift_kernels
}  // namespace driftscope

#endif  // __AVX2__
#endif  // DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_AVX2_H_
