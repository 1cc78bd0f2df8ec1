// Which of the drift kernels a comparison runs, and the one object that
// calls it (part of CompareArrays, engine/drift/array_drift.h). The kernels
// themselves live one instruction set per header: array_drift_kernels.h
// (portable, the reference the others match bit for bit), array_drift_avx2.h
// and array_drift_avx512.h. The choice is made once per comparison, here,
// and not sprinkled through the accumulation.
//
// Thread-safety: the functions are pure and safe for concurrent use; a
// Kernel is immutable once built and may be shared by threads. Private to
// engine/drift.
#ifndef DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_DISPATCH_H_
#define DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_DISPATCH_H_

#include <cstdint>
#include <memory>

#include "engine/drift/array_drift_avx2.h"
#include "engine/drift/array_drift_avx512.h"
#include "engine/drift/array_drift_kernels.h"

namespace driftscope {
namespace drift_internal {

using drift_kernels::BlockSums;
using drift_kernels::Gather;
using drift_kernels::GatherFilter;
using drift_kernels::Lanes;
using drift_kernels::Params;

// The kernels a build and CPU can run, best first.
enum class KernelIsa { kAvx512, kAvx2, kPortable };

// Whether this build and CPU can run `isa`.
bool Available(KernelIsa isa);

// "avx512", "avx2" or "portable".
const char* IsaName(KernelIsa isa);

inline constexpr KernelIsa kAllIsas[] = {KernelIsa::kAvx512, KernelIsa::kAvx2,
                                         KernelIsa::kPortable};

// The best kernel available, found once.
KernelIsa BestIsa();

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

}  // namespace drift_internal
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_DISPATCH_H_
