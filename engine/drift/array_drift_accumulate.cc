// Closing blocks and groups of the drift accumulation
// (array_drift_accumulate.h).
#include "engine/drift/array_drift_accumulate.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace driftscope {
namespace drift_internal {

using drift_kernels::BitCast;
using drift_kernels::SigKey;
using drift_kernels::UlpKey;

GroupArena::GroupArena(std::vector<Group>* groups, const Params& p) {
  const size_t ulp_n = static_cast<size_t>(p.ulp_keys + 1) * kCopies;
  const size_t sig_n = static_cast<size_t>(p.sig_keys + 1) * kCopies;
  const size_t n = groups->size();
  // kLanes slots of slack after each buffer (the SIMD kernels write
  // whole vectors).
  constexpr size_t kStride = kKeyBuffer + kLanes;
  keys_.reset(new uint32_t[n * kStride]);
  // At least one element: calloc(0) may return null.
  hist_.reset(static_cast<int64_t*>(
      std::calloc(std::max<size_t>(1, n * (ulp_n + sig_n)), sizeof(int64_t))));
  for (size_t g = 0; g < n; ++g) {
    Group& x = (*groups)[g];
    x.keys = keys_.get() + g * kStride;
    x.ulp = hist_.get() + g * (ulp_n + sig_n);
    x.sig = x.ulp + ulp_n;
  }
}

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

}  // namespace drift_internal
}  // namespace driftscope
