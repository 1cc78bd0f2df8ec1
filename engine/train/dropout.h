// Input dropout masks of RNN layers (Keras `dropout`, implementation 2):
// one mask per sample and input feature, shared by every timestep and every
// gate, drawn afresh for each training step.
//
// Mask k of a layer (k = the 0-based training step) is TF's
// stateless_dropout applied to ones: u = stateless_uniform float32 of shape
// (batch, features) with seed pair P, kept where u >= float32(rate), and a
// kept entry is T(1 / (1 − rate)) (the division in double). P is
// [seed, streams::Dropout(layer, k)] in seed mode STREAMS and [g, k] in
// seed mode KERAS, g being the layer's dropout SeedGenerator word
// (ModelInitSeeds), which is what Keras 3 draws under fit() in float32.
// The uniforms are float32 in every run precision, so an fp64 run drops the
// same entries as an fp32 run (Keras' float64 would draw float64 uniforms).
// One thread at a time; buffers are allocated by the constructor.
#ifndef DRIFTSCOPE_ENGINE_TRAIN_DROPOUT_H_
#define DRIFTSCOPE_ENGINE_TRAIN_DROPOUT_H_

#include <cstdint>
#include <vector>

#include "engine/init/init_seeds.h"
#include "engine/job/job_spec.h"

namespace driftscope {

// The seed pair of mask `step` of layer `layer` (see above).
SeedPair DropoutSeed(const JobSpec& spec, const LayerSeeds& seeds, int layer,
                     int64_t step);

// Fills mask[0 .. n) with 0 or T(1 / (1 − rate)) from the stateless stream
// `seed` (0 ≤ rate < 1); `uniforms` is scratch space for n floats.
template <typename T>
void DrawDropoutMask(const SeedPair& seed, double rate, int64_t n,
                     float* uniforms, T* mask);

template <typename T>
class DropoutMasks {
 public:
  // seeds: ModelInitSeeds(spec). The spec must be valid.
  DropoutMasks(const JobSpec& spec, std::vector<LayerSeeds> seeds,
               int max_batch);

  // Whether any layer drops at all (else Draw is a no-op).
  bool any() const { return any_; }
  // Draws the masks of training step `step` for `batch` ≤ max_batch samples.
  void Draw(int64_t step, int batch);
  // Layer i's mask of the last Draw, (batch, input features) row-major, or
  // null when layer i does not drop.
  const T* mask(int layer) const {
    return masks_[layer].empty() ? nullptr : masks_[layer].data();
  }

 private:
  const JobSpec spec_;
  const std::vector<LayerSeeds> seeds_;
  std::vector<int> features_;          // input width of each layer
  std::vector<std::vector<T>> masks_;  // empty for layers that do not drop
  std::vector<float> uniforms_;        // scratch for the widest mask
  bool any_ = false;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_TRAIN_DROPOUT_H_
