// The walk over a comparison's elements (part of CompareArrays,
// engine/drift/array_drift.h): which group (the array, or timestep t of the
// per-timestep curves) receives which run of elements, in what order.
// Every group receives its elements in index order and its end after its
// last run, whichever walk is taken, so the groups' results do not depend
// on the walk. For an (N, T, U) array in index order the groups' runs
// interleave, a tile of rows at a time; t-major each group's runs come
// together, and rows shorter than kMinDirectRow are staged into a
// contiguous buffer.
//
// Thread-safety: ForEachRun calls its callbacks on the caller's thread, in
// order; it reads the arrays and writes only the staging buffers it is
// given. Private to engine/drift.
#ifndef DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_TRAVERSAL_H_
#define DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_TRAVERSAL_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/drift/array_drift_kernels.h"

namespace driftscope {
namespace drift_internal {

inline constexpr int64_t kMinDirectRow =
    32;                                  // shorter rows are staged (t-major)
inline constexpr int64_t kStage = 1024;  // staged elements per run

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
    const int64_t tile = std::clamp<int64_t>(drift_kernels::kBlock / U, 1, 16);
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
        // An empty array's data pointer may be null, which memcpy must not
        // be given even for no bytes.
        if (U == 0) continue;
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

}  // namespace drift_internal
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_TRAVERSAL_H_
