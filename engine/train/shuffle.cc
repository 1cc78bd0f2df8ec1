#include "engine/train/shuffle.h"

#include <utility>

namespace driftscope {

uint32_t UniformBelow(PhiloxStream* rng, uint32_t range) {
  // (2³² − range) mod range == 2³² mod range, in uint32 arithmetic.
  const uint32_t threshold = (0u - range) % range;
  uint32_t r = rng->NextUint32();
  while (r < threshold) r = rng->NextUint32();
  return r % range;
}

void EpochOrder(bool shuffle, PhiloxStream* rng, std::vector<int64_t>* order) {
  const int64_t n = static_cast<int64_t>(order->size());
  for (int64_t i = 0; i < n; ++i) (*order)[i] = i;
  if (!shuffle) return;
  for (int64_t i = n - 1; i >= 1; --i) {
    const int64_t j = UniformBelow(rng, static_cast<uint32_t>(i + 1));
    std::swap((*order)[i], (*order)[j]);
  }
}

}  // namespace driftscope
