// AVX-512 kernels of CompareArrays (engine/drift/array_drift.h), included
// only by array_drift_dispatch.h: RunPortable of array_drift_kernels.h eight
// elements at a time, one zmm register holding all eight lanes, and the
// second-pass filter. Compiled with a target attribute whatever the engine's
// -march, and run only when the CPU has AVX-512 F, DQ, BW and VL
// (Avx512Usable). Same IEEE operations in the same order per lane as the
// portable kernel, so results are bit-for-bit the same. Pure functions over
// caller-owned state.
#ifndef DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_AVX512_H_
#define DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_AVX512_H_

#include "engine/drift/array_drift_avx2.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define DRIFTSCOPE_DRIFT_AVX512 1
#include <immintrin.h>

// GCC 12 false positive inside avx512fintrin.h (its _mm512_undefined_pd
// pass-through operands), as for the engine's AVX-512 kernel libraries.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// Functions using AVX-512 intrinsics need the target enabled themselves.
#define DRIFT_AVX512_FN \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))
#define DRIFT_AVX512_INLINE \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"), always_inline))

namespace driftscope {
namespace drift_kernels {

inline bool Avx512Usable() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}

struct Consts512 {
  __m512d abs_mask, dbl_max, floor, min_rel, one, atol, rtol;
  __m512i mant, one_bits, c_base, c_base_m1, ulp_bias, junk, minus_one, sign64,
      wide_extra;
  DRIFT_AVX512_FN explicit Consts512(const Params& p) {
    abs_mask = _mm512_castsi512_pd(_mm512_set1_epi64(0x7FFFFFFFFFFFFFFF));
    dbl_max = _mm512_set1_pd(DBL_MAX);
    floor = _mm512_set1_pd(p.floor);
    min_rel = _mm512_set1_pd(p.min_rel);
    one = _mm512_set1_pd(1.0);
    atol = _mm512_set1_pd(p.atol);
    rtol = _mm512_set1_pd(p.rtol);
    mant = _mm512_set1_epi64(kMantBits);
    one_bits = _mm512_set1_epi64(kOneBits);
    c_base = _mm512_set1_epi64(static_cast<int64_t>(p.c_base));
    c_base_m1 = _mm512_set1_epi64(static_cast<int64_t>(p.c_base - kFineStep));
    ulp_bias = _mm512_set1_epi64(kUlpKeyBias);
    junk = _mm512_set1_epi64(JunkKeys(p));
    minus_one = _mm512_set1_epi64(-1);
    sign64 = _mm512_set1_epi64(std::numeric_limits<int64_t>::min());
    wide_extra = _mm512_set1_epi64(12 * 32);
  }
};

// Eight elements as doubles, and their float32 bit patterns (the float64
// side rounded as static_cast does; unused for float64 units). Lanes outside
// `valid` are 0. Call with a constant 0xFF for whole vectors: masked loads
// stream from memory much more slowly than plain ones.
struct Loaded8 {
  __m512d v;
  __m256i f32;
};

DRIFT_AVX512_INLINE inline Loaded8 Load8(const float* p, __mmask8 valid,
                                         bool expand) {
  const __m256 x = expand ? _mm256_maskz_expandloadu_ps(valid, p)
                          : _mm256_maskz_loadu_ps(valid, p);
  return {_mm512_cvtps_pd(x), _mm256_castps_si256(x)};
}
DRIFT_AVX512_INLINE inline Loaded8 Load8(const double* p, __mmask8 valid,
                                         bool expand) {
  const __m512d x = expand ? _mm512_maskz_expandloadu_pd(valid, p)
                           : _mm512_maskz_loadu_pd(valid, p);
  return {x, _mm256_castps_si256(_mm512_cvtpd_ps(x))};
}

// float32-unit ULP distances (see Dist8 in array_drift_kernels.h).
DRIFT_AVX512_INLINE inline __m512i Dist8F32(__m256i ia, __m256i ir) {
  const __m256i sign = _mm256_set1_epi32(std::numeric_limits<int32_t>::min());
  const __m256i ga =
      _mm256_or_si256(_mm256_abs_epi32(ia), _mm256_andnot_si256(ia, sign));
  const __m256i gr =
      _mm256_or_si256(_mm256_abs_epi32(ir), _mm256_andnot_si256(ir, sign));
  return _mm512_cvtepu32_epi64(
      _mm256_sub_epi32(_mm256_max_epu32(ga, gr), _mm256_min_epu32(ga, gr)));
}

// float64-unit ULP distances: |key(a) - key(r)| modulo 2^64.
DRIFT_AVX512_INLINE inline __m512i Dist8F64(__m512d av, __m512d rv,
                                            const Consts512& k) {
  const __m512i ia = _mm512_castpd_si512(av), ir = _mm512_castpd_si512(rv);
  const __m512i ka =
      _mm512_mask_sub_epi64(ia, _mm512_movepi64_mask(ia), k.sign64, ia);
  const __m512i kr =
      _mm512_mask_sub_epi64(ir, _mm512_movepi64_mask(ir), k.sign64, ir);
  const __m512i d = _mm512_sub_epi64(ka, kr);
  return _mm512_mask_sub_epi64(d, _mm512_cmpgt_epi64_mask(kr, ka),
                               _mm512_setzero_si512(), d);
}

// UlpKey of eight distances; u < 2^52 converts to double exactly.
template <bool kWideU>
DRIFT_AVX512_INLINE inline __m512i UlpKey8(__m512i u, const Consts512& k) {
  __m512i t = u;
  __mmask8 big = 0;
  if constexpr (kWideU) {
    big =
        _mm512_test_epi64_mask(u, _mm512_set1_epi64(~((int64_t{1} << 52) - 1)));
    t = _mm512_mask_srli_epi64(u, big, u, 12);
  }
  __m512i key = _mm512_sub_epi64(
      _mm512_srli_epi64(_mm512_castpd_si512(_mm512_cvtepu64_pd(t)), kFineShift),
      k.ulp_bias);
  if constexpr (kWideU)
    key = _mm512_mask_add_epi64(key, big, key, k.wide_extra);
  return _mm512_max_epi64(key, _mm512_setzero_si512());
}

struct Regs512 {
  __m512d s_abs, s_d2, s_r2, s_a2, s_ar, prod, m_abs, m_rel;
  __m512i m_ulp, viol, diff;
  __mmask8 nf = 0;

  DRIFT_AVX512_INLINE explicit Regs512(const Lanes& l) {
    s_abs = _mm512_load_pd(l.s_abs);
    s_d2 = _mm512_load_pd(l.s_d2);
    s_r2 = _mm512_load_pd(l.s_r2);
    s_a2 = _mm512_load_pd(l.s_a2);
    s_ar = _mm512_load_pd(l.s_ar);
    prod = _mm512_load_pd(l.prod);
    m_abs = _mm512_load_pd(l.m_abs);
    m_rel = _mm512_load_pd(l.m_rel);
    m_ulp = _mm512_load_si512(l.m_ulp);
    viol = _mm512_load_si512(l.viol);
    diff = _mm512_load_si512(l.diff);
  }
  DRIFT_AVX512_INLINE void Store(Lanes* l) const {
    _mm512_store_pd(l->s_abs, s_abs);
    _mm512_store_pd(l->s_d2, s_d2);
    _mm512_store_pd(l->s_r2, s_r2);
    _mm512_store_pd(l->s_a2, s_a2);
    _mm512_store_pd(l->s_ar, s_ar);
    _mm512_store_pd(l->prod, prod);
    _mm512_store_pd(l->m_abs, m_abs);
    _mm512_store_pd(l->m_rel, m_rel);
    _mm512_store_si512(l->m_ulp, m_ulp);
    _mm512_store_si512(l->viol, viol);
    _mm512_store_si512(l->diff, diff);
  }
};

// Eight lanes; elements outside `valid` (zeros) add nothing and get no key.
// Writes the keys that are not 0 (identical elements) to key[0..), eight
// slots whatever their number, and returns their number.
template <typename TA, typename TR>
DRIFT_AVX512_INLINE inline int Eight(const Loaded8& a, const Loaded8& r,
                                     __mmask8 valid, const Consts512& k,
                                     Regs512* s, uint32_t* key) {
  constexpr bool kWideU = kWide<TA, TR>;
  constexpr bool kCountDiff = !std::is_same_v<TA, TR>;
  const __m512d av = a.v, rv = r.v;
  const __m512d ad = _mm512_and_pd(_mm512_sub_pd(av, rv), k.abs_mask);
  __mmask8 nf;
  if constexpr (kWideU) {
    nf = _mm512_cmp_pd_mask(_mm512_and_pd(av, k.abs_mask), k.dbl_max,
                            _CMP_NLE_UQ) |
         _mm512_cmp_pd_mask(_mm512_and_pd(rv, k.abs_mask), k.dbl_max,
                            _CMP_NLE_UQ);
  } else {
    // One side is float32: see Four in array_drift_kernels.h.
    nf = _mm512_cmp_pd_mask(ad, k.dbl_max, _CMP_NLE_UQ);
  }
  nf &= valid;
  // Lanes outside `ok` keep their accumulators; their c (2^-cap or 1: a
  // NaN quotient clamps to 2^-cap) has mantissa 1.
  const __mmask8 ok = valid & static_cast<__mmask8>(~nf);
  const __m512d ar = _mm512_and_pd(rv, k.abs_mask);
  const __m512d rel = _mm512_div_pd(ad, _mm512_max_pd(ar, k.floor));
  const __m512d c = _mm512_min_pd(_mm512_max_pd(rel, k.min_rel), k.one);
  const __m512i cb = _mm512_castpd_si512(c);
  s->s_abs = _mm512_mask_add_pd(s->s_abs, ok, s->s_abs, ad);
  s->s_d2 = _mm512_mask_add_pd(s->s_d2, ok, s->s_d2, _mm512_mul_pd(ad, ad));
  s->s_r2 = _mm512_mask_add_pd(s->s_r2, ok, s->s_r2, _mm512_mul_pd(rv, rv));
  s->s_a2 = _mm512_mask_add_pd(s->s_a2, ok, s->s_a2, _mm512_mul_pd(av, av));
  s->s_ar = _mm512_mask_add_pd(s->s_ar, ok, s->s_ar, _mm512_mul_pd(av, rv));
  // The mantissa of c in [1, 2): (cb & mant) | bits(1.0).
  s->prod = _mm512_mul_pd(
      s->prod, _mm512_getmant_pd(c, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src));
  s->m_abs = _mm512_mask_max_pd(s->m_abs, ok, s->m_abs, ad);
  s->m_rel = _mm512_mask_max_pd(s->m_rel, ok, s->m_rel, rel);
  const __mmask8 viol = _mm512_mask_cmp_pd_mask(
      ok, ad, _mm512_add_pd(k.atol, _mm512_mul_pd(k.rtol, ar)), _CMP_GT_OQ);
  s->viol = _mm512_mask_sub_epi64(s->viol, viol, s->viol, k.minus_one);
  if constexpr (kCountDiff) {
    const __mmask8 d =
        _mm512_mask_cmp_pd_mask(ok, ad, _mm512_setzero_pd(), _CMP_NEQ_OQ);
    s->diff = _mm512_mask_sub_epi64(s->diff, d, s->diff, k.minus_one);
  }
  __m512i u;
  if constexpr (kWideU) {
    u = _mm512_maskz_mov_epi64(ok, Dist8F64(av, rv, k));
  } else {
    u = _mm512_maskz_mov_epi64(ok, Dist8F32(a.f32, r.f32));
  }
  s->m_ulp = _mm512_max_epu64(s->m_ulp, u);
  const __m512i sq =
      _mm512_srli_epi64(_mm512_sub_epi64(cb, k.c_base_m1), kFineShift);
  const __m512i sk = _mm512_mask_add_epi64(
      sq, _mm512_cmpeq_epi64_mask(cb, k.c_base), sq, k.minus_one);
  const __m512i keys = _mm512_mask_mov_epi64(
      _mm512_or_si512(UlpKey8<kWideU>(u, k),
                      _mm512_slli_epi64(sk, kSigKeyShift)),
      nf, k.junk);
  // A compress into a register and a plain store: the compressing store to
  // memory is microcoded on some CPUs.
  const __mmask8 kept = _mm512_mask_test_epi64_mask(valid, keys, keys);
  _mm256_storeu_si256(
      reinterpret_cast<__m256i*>(key),
      _mm256_maskz_compress_epi32(kept, _mm512_cvtepi64_epi32(keys)));
  s->nf |= nf;
  return __builtin_popcount(kept);
}

// RunPortable, eight elements at a time, except that the keys of identical
// elements (0) are left out: *written is the number of keys written, and
// keys[] needs kLanes - 1 slots of slack. A run starting at lane0 > 0 gets
// its first vector expanded into lanes lane0..7.
template <typename TA, typename TR>
DRIFT_AVX512_FN bool RunAvx512(const TA* a, const TR* r, int n, int lane0,
                               const Consts512& k, Lanes* l, uint32_t* keys,
                               int* written) {
  Regs512 s(*l);
  int i = 0, w = 0;
  if (lane0 != 0) {
    const int head = std::min(n, kLanes - lane0);
    const __mmask8 valid = static_cast<__mmask8>(((1u << head) - 1) << lane0);
    w += Eight<TA, TR>(Load8(a, valid, true), Load8(r, valid, true), valid, k,
                       &s, keys);
    i = head;
  }
  for (; i + kLanes <= n; i += kLanes) {
    w += Eight<TA, TR>(Load8(a + i, 0xFF, false), Load8(r + i, 0xFF, false),
                       0xFF, k, &s, keys + w);
  }
  if (i < n) {
    const __mmask8 valid = static_cast<__mmask8>((1u << (n - i)) - 1);
    w += Eight<TA, TR>(Load8(a + i, valid, false), Load8(r + i, valid, false),
                       valid, k, &s, keys + w);
  }
  s.Store(l);
  *written = w;
  return s.nf != 0;
}

// Second pass, significant-bits keys only (GatherRunAvx512 sends ULP
// gathers elsewhere). The filter is GatherAvx2's: lo·den < |Δ| <= hi·den
// with widened bounds; admitted elements are compacted into an index list
// without branches and then checked exactly.
// Float32 pairs: the filter in float32, sixteen elements at a time. Each of
// |a - r|, max(|r|, floor) and the bound products is within 2^-24 relative
// of its exact value (no underflow: floor >= kMinFloatFilterFloor = 2^-90,
// bounds >= 2^-24), so bounds widened by a further 2^-20 still admit every
// element of the keys.

DRIFT_AVX512_INLINE inline __m512 WidenedLo(double lo) {
  return _mm512_set1_ps(lo < 0 ? -1.0f
                               : static_cast<float>(lo * (1 - 0x1p-20)));
}
DRIFT_AVX512_INLINE inline __m512 WidenedHi(double hi) {
  return _mm512_set1_ps(hi > FLT_MAX ? HUGE_VALF
                                     : static_cast<float>(hi * (1 + 0x1p-20)));
}

template <bool kTwo>
DRIFT_AVX512_FN void GatherSigF32Avx512(const float* a, const float* r,
                                        int64_t n, const Params& p,
                                        const Gather& g,
                                        const GatherFilter& f) {
  const __m512 abs = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512 floor = _mm512_set1_ps(static_cast<float>(p.floor));
  const __m512 lo0 = WidenedLo(f.sig_lo[0]), hi0 = WidenedHi(f.sig_hi[0]);
  const __m512 lo1 = WidenedLo(f.sig_lo[1]), hi1 = WidenedHi(f.sig_hi[1]);
  const __m512i iota =
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  alignas(64) int32_t idx[kGatherChunk + 16];
  for (int64_t base = 0; base < n; base += kGatherChunk) {
    const int m = static_cast<int>(std::min<int64_t>(kGatherChunk, n - base));
    const float* pa = a + base;
    const float* pr = r + base;
    int count = 0;
    for (int i = 0; i < m; i += 16) {
      // Masked loads only for the tail: they are much slower to stream.
      __mmask16 valid = 0xFFFF;
      __m512 av, rv;
      if (m - i >= 16) {
        av = _mm512_loadu_ps(pa + i);
        rv = _mm512_loadu_ps(pr + i);
      } else {
        valid = static_cast<__mmask16>((1u << (m - i)) - 1);
        av = _mm512_maskz_loadu_ps(valid, pa + i);
        rv = _mm512_maskz_loadu_ps(valid, pr + i);
      }
      const __m512 ad = _mm512_and_ps(_mm512_sub_ps(av, rv), abs);
      const __m512 den = _mm512_max_ps(_mm512_and_ps(rv, abs), floor);
      __mmask16 in = _mm512_mask_cmp_ps_mask(
          _mm512_mask_cmp_ps_mask(valid, ad, _mm512_mul_ps(lo0, den),
                                  _CMP_GT_OQ),
          ad, _mm512_mul_ps(hi0, den), _CMP_LE_OQ);
      if constexpr (kTwo) {
        in |= _mm512_mask_cmp_ps_mask(
            _mm512_mask_cmp_ps_mask(valid, ad, _mm512_mul_ps(lo1, den),
                                    _CMP_GT_OQ),
            ad, _mm512_mul_ps(hi1, den), _CMP_LE_OQ);
      }
      _mm512_storeu_si512(
          idx + count, _mm512_maskz_compress_epi32(
                           in, _mm512_add_epi32(iota, _mm512_set1_epi32(i))));
      count += __builtin_popcount(in);
    }
    for (int c = 0; c < count; ++c) {
      GatherExact(pa + idx[c], pr + idx[c], 1, p, g);
    }
  }
}

// Other dtype pairs: the filter in float64, eight elements at a time.
template <typename TA, typename TR, bool kTwo>
DRIFT_AVX512_FN void GatherSigF64Avx512(const TA* a, const TR* r, int64_t n,
                                        const Params& p, const Gather& g,
                                        const GatherFilter& f,
                                        const Consts512& k) {
  const __m512d lo0 = _mm512_set1_pd(f.sig_lo[0]),
                hi0 = _mm512_set1_pd(f.sig_hi[0]);
  const __m512d lo1 = _mm512_set1_pd(f.sig_lo[1]),
                hi1 = _mm512_set1_pd(f.sig_hi[1]);
  const __m512i iota = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  alignas(64) int64_t idx[kGatherChunk + 8];
  for (int64_t base = 0; base < n; base += kGatherChunk) {
    const int m = static_cast<int>(std::min<int64_t>(kGatherChunk, n - base));
    const TA* pa = a + base;
    const TR* pr = r + base;
    int count = 0;
    for (int i = 0; i < m; i += 8) {
      __mmask8 valid = 0xFF;
      __m512d av, rv;
      if (m - i >= 8) {
        av = Load8(pa + i, 0xFF, false).v;
        rv = Load8(pr + i, 0xFF, false).v;
      } else {
        valid = static_cast<__mmask8>((1u << (m - i)) - 1);
        av = Load8(pa + i, valid, false).v;
        rv = Load8(pr + i, valid, false).v;
      }
      const __m512d ad = _mm512_and_pd(_mm512_sub_pd(av, rv), k.abs_mask);
      const __m512d den = _mm512_max_pd(_mm512_and_pd(rv, k.abs_mask), k.floor);
      __mmask8 in = _mm512_mask_cmp_pd_mask(
          _mm512_mask_cmp_pd_mask(valid, ad, _mm512_mul_pd(lo0, den),
                                  _CMP_GT_OQ),
          ad, _mm512_mul_pd(hi0, den), _CMP_LE_OQ);
      if constexpr (kTwo) {
        in |= _mm512_mask_cmp_pd_mask(
            _mm512_mask_cmp_pd_mask(valid, ad, _mm512_mul_pd(lo1, den),
                                    _CMP_GT_OQ),
            ad, _mm512_mul_pd(hi1, den), _CMP_LE_OQ);
      }
      _mm512_storeu_si512(
          idx + count, _mm512_maskz_compress_epi64(
                           in, _mm512_add_epi64(iota, _mm512_set1_epi64(i))));
      count += __builtin_popcount(in);
    }
    for (int c = 0; c < count; ++c) {
      GatherExact(pa + idx[c], pr + idx[c], 1, p, g);
    }
  }
}

// Whether GatherSigAvx512 serves this filter: significant bits only, and a
// floor that keeps the filter's products normal.
template <typename TA, typename TR>
bool GatherSigAvx512Serves(const GatherFilter& f, const Params& p) {
  if (f.need_ulp || !f.need_sig) return false;
  if constexpr (std::is_same_v<TA, float> && std::is_same_v<TR, float>) {
    return p.floor >= kMinFloatFilterFloor && p.floor <= FLT_MAX;
  }
  return p.floor >= kMinFilterFloor;
}

template <typename TA, typename TR>
void GatherSigAvx512(const TA* a, const TR* r, int64_t n, const Params& p,
                     const Gather& g, const GatherFilter& f,
                     const Consts512& k) {
  if constexpr (std::is_same_v<TA, float> && std::is_same_v<TR, float>) {
    if (f.two) return GatherSigF32Avx512<true>(a, r, n, p, g, f);
    return GatherSigF32Avx512<false>(a, r, n, p, g, f);
  } else {
    if (f.two) return GatherSigF64Avx512<TA, TR, true>(a, r, n, p, g, f, k);
    return GatherSigF64Avx512<TA, TR, false>(a, r, n, p, g, f, k);
  }
}

}  // namespace drift_kernels
}  // namespace driftscope

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif  // x86-64 GCC/Clang
#endif  // DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_AVX512_H_
