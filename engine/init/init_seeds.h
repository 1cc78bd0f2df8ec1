// Which stateless seed pair each initial weight is drawn with, for the job's
// SeedMode (docs/keras.md). Pure functions; thread-compatible.
#ifndef DRIFTSCOPE_ENGINE_INIT_INIT_SEEDS_H_
#define DRIFTSCOPE_ENGINE_INIT_INIT_SEEDS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "engine/job/job_spec.h"

namespace driftscope {

// A tf.random.stateless_* seed [s0, s1].
struct SeedPair {
  uint64_t s0 = 0, s1 = 0;
  bool operator==(const SeedPair& o) const { return s0 == o.s0 && s1 == o.s1; }
  bool operator!=(const SeedPair& o) const { return !(*this == o); }
};

struct LayerSeeds {
  // One per Layer::weights() entry (kernel, [recurrent kernel], [bias]).
  // Weights whose initializer draws nothing (zeros, ones) still get an
  // entry; it is unused.
  std::vector<SeedPair> weights;
  // kKeras, RNN layers: the first word g of the layer's dropout
  // SeedGenerator (its k-th mask uses [g, k]); unset otherwise.
  std::optional<uint64_t> dropout;
  // kKeras, Bidirectional layers: `dropout` is the forward copy's word and
  // this the backward copy's (each copy has its own SeedGenerator).
  std::optional<uint64_t> backward_dropout;
};

// For every layer of spec.model, in order:
// - kStreams: weight w of layer k gets [seed, streams::Init(k, w)].
// - kKeras: replays the Python draws Keras 3 makes while the layers are
//   constructed after keras.utils.set_random_seed(seed): per layer, in this
//   order, one draw g = randint(1, 10**9) for every slot below whose
//   initializer is random (glorot_uniform, orthogonal, random_uniform,
//   random_normal) and always one for an RNN's dropout SeedGenerator:
//     LSTM, GRU:  kernel, recurrent kernel, bias, SeedGenerator
//     SimpleRNN:  SeedGenerator, kernel, recurrent kernel, bias
//     Dense:      kernel, bias
//     Embedding:  embeddings (no SeedGenerator)
//   and the weight is drawn with [g, 0]. A Bidirectional layer replays the
//   wrapped layer's draws (unused), then its forward copy's, then its
//   backward copy's; its weights are the two copies' seeds in that order,
//   `dropout` the forward copy's SeedGenerator word and `backward_dropout`
//   the backward copy's.
//   (kStreams: weights 0..2n-1 of the layer.)
// The spec is assumed valid (ValidateJobSpec).
std::vector<LayerSeeds> ModelInitSeeds(const JobSpec& spec);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_INIT_INIT_SEEDS_H_
