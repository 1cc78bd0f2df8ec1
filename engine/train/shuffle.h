// Per-epoch sample order: identity, or a Fisher–Yates permutation driven by
// a Philox stream that continues across epochs (seed pair (spec.seed,
// streams::kShuffle)). Bounded integers are drawn by rejection, so every
// permutation is equally likely and the bits are the same everywhere.
// Pure functions of their arguments; one thread per stream.
#ifndef DRIFTSCOPE_ENGINE_TRAIN_SHUFFLE_H_
#define DRIFTSCOPE_ENGINE_TRAIN_SHUFFLE_H_

#include <cstdint>
#include <vector>

#include "engine/rng/philox.h"

namespace driftscope {

// Uniform integer in [0, range), range ≥ 1: 32-bit words below
// 2³² mod range are rejected, then the remainder is taken.
uint32_t UniformBelow(PhiloxStream* rng, uint32_t range);

// Resets *order (size N, kept) to 0..N−1, then, when shuffle is true,
// permutes it in place: for i = N−1 down to 1, swap(order[i],
// order[UniformBelow(i + 1)]). Allocates nothing.
void EpochOrder(bool shuffle, PhiloxStream* rng, std::vector<int64_t>* order);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_TRAIN_SHUFFLE_H_
