#include "engine/init/init_seeds.h"

#include <utility>
#include <vector>

#include "engine/rng/philox.h"
#include "engine/rng/python_random.h"

namespace driftscope {
namespace {

bool IsRandom(const InitializerSpec& init) {
  using K = InitializerSpec::Kind;
  return init.kind != K::kZeros && init.kind != K::kOnes;
}

// keras.src.random.seed_generator.make_default_seed().
uint64_t MakeDefaultSeed(PythonRandom* rng) {
  return static_cast<uint64_t>(rng->RandInt(1, 1000000000));
}

// The seed of one initializer slot: a random initializer draws in its
// constructor whether or not the layer later uses it.
SeedPair SlotSeed(const InitializerSpec& init, PythonRandom* rng) {
  if (!IsRandom(init)) return {};
  return {MakeDefaultSeed(rng), 0};
}

LayerSeeds KerasLayerSeeds(const LayerSpec& l, PythonRandom* rng) {
  LayerSeeds out;
  if (l.kind == LayerKind::kEmbedding) {
    // Embedding.__init__: its embeddings_initializer is its only draw (no
    // SeedGenerator: the layer has no dropout).
    out.weights.push_back(SlotSeed(l.kernel_initializer, rng));
    return out;
  }
  if (l.kind == LayerKind::kDense) {
    out.weights.push_back(SlotSeed(l.kernel_initializer, rng));
    const SeedPair bias = SlotSeed(l.bias_initializer, rng);
    if (l.use_bias) out.weights.push_back(bias);
    return out;
  }
  // SimpleRNNCell.__init__ makes its SeedGenerator before its initializers;
  // LSTMCell and GRUCell make it after them.
  const bool generator_first = l.kind == LayerKind::kSimpleRnn;
  if (generator_first) out.dropout = MakeDefaultSeed(rng);
  out.weights.push_back(SlotSeed(l.kernel_initializer, rng));
  out.weights.push_back(SlotSeed(l.recurrent_initializer, rng));
  // The bias initializer is constructed (and draws) even with use_bias off.
  const SeedPair bias = SlotSeed(l.bias_initializer, rng);
  if (l.use_bias) out.weights.push_back(bias);
  if (!generator_first) out.dropout = MakeDefaultSeed(rng);
  return out;
}

}  // namespace

std::vector<LayerSeeds> ModelInitSeeds(const JobSpec& spec) {
  std::vector<LayerSeeds> out;
  out.reserve(spec.model.layers.size());
  if (spec.seed_mode == SeedMode::kKeras) {
    PythonRandom rng(spec.seed);
    for (const LayerSpec& l : spec.model.layers) {
      if (!l.bidirectional) {
        out.push_back(KerasLayerSeeds(l, &rng));
        continue;
      }
      // Bidirectional(RNN(...)): the wrapped layer the user constructed
      // draws (its weights are never used), then Bidirectional.__init__
      // rebuilds a forward copy and a backward copy from its config, each
      // drawing anew.
      KerasLayerSeeds(DirectionSpec(l, false), &rng);
      LayerSeeds both = KerasLayerSeeds(DirectionSpec(l, false), &rng);
      const LayerSeeds backward = KerasLayerSeeds(DirectionSpec(l, true), &rng);
      both.weights.insert(both.weights.end(), backward.weights.begin(),
                          backward.weights.end());
      both.backward_dropout = backward.dropout;
      out.push_back(std::move(both));
    }
    return out;
  }
  for (size_t k = 0; k < spec.model.layers.size(); ++k) {
    const LayerSpec& l = spec.model.layers[k];
    const int n =
        l.kind == LayerKind::kEmbedding
            ? 1
            : ((l.kind == LayerKind::kDense ? 1 : 2) + (l.use_bias ? 1 : 0)) *
                  (l.bidirectional ? 2 : 1);
    LayerSeeds seeds;
    for (int w = 0; w < n; ++w) {
      seeds.weights.push_back(
          {spec.seed, streams::Init(static_cast<int>(k), w)});
    }
    out.push_back(std::move(seeds));
  }
  return out;
}

}  // namespace driftscope
