// The run-time choice of drift kernel (array_drift_dispatch.h).
#include "engine/drift/array_drift_dispatch.h"

namespace driftscope {
namespace drift_internal {

bool Available(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512:
#if defined(DRIFTSCOPE_DRIFT_AVX512)
      return drift_kernels::Avx512Usable();
#else
      return false;
#endif
    case KernelIsa::kAvx2:
#if defined(__AVX2__)
      return true;
#else
      return false;
#endif
    case KernelIsa::kPortable:
      return true;
  }
  return false;
}

const char* IsaName(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512:
      return "avx512";
    case KernelIsa::kAvx2:
      return "avx2";
    case KernelIsa::kPortable:
      return "portable";
  }
  return "portable";
}

KernelIsa BestIsa() {
  static const KernelIsa best = [] {
    for (KernelIsa isa : kAllIsas) {
      if (Available(isa)) return isa;
    }
    return KernelIsa::kPortable;
  }();
  return best;
}

}  // namespace drift_internal
}  // namespace driftscope
