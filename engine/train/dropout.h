// Dropout masks of RNN layers (Keras DropoutRNNCell), drawn afresh for each
// training step, each the same for every timestep: with implementation 2,
// one input mask per sample and input feature shared by every gate; with
// per-gate masks (UsesGateMasks: recurrent_dropout, or dropout with
// implementation 1) InputMasksPerStep input masks, then
// RecurrentMasksPerStep masks of (batch, units) for h_{t-1}.
//
// Mask j (0-based, in that draw order) of training step k of a layer that
// draws n masks per step uses the stream counter c = k·n + j (n = 1: c = k):
// each mask is TF's stateless_dropout applied to ones: u = stateless_uniform
// float32 of shape (batch, features) with seed pair P, kept where u >=
// float32(rate), and a kept entry is T(1 / (1 − rate)) (the division in
// double). P is [seed, streams::Dropout(layer, c)] in seed mode STREAMS and [g,
// c] in seed mode KERAS, g being the layer's dropout SeedGenerator word
// (ModelInitSeeds): Keras' SeedGenerator advances once per mask, so these
// are the masks Keras 3 draws under fit() in float32.
// The uniforms are float32 in every run precision, so an fp64 run drops the
// same entries as an fp32 run (Keras' float64 would draw float64 uniforms).
// A Bidirectional layer's two copies each draw their masks as above, with
// their own counters: the forward copy with [seed, streams::Dropout(layer,
// c)] or [g_forward, c], the backward copy with [seed,
// streams::BackwardDropout(layer, c)] or [g_backward, c] (Keras builds each
// copy with its own SeedGenerator).
// One thread at a time; buffers are allocated by the constructor.
#ifndef DRIFTSCOPE_ENGINE_TRAIN_DROPOUT_H_
#define DRIFTSCOPE_ENGINE_TRAIN_DROPOUT_H_

#include <array>
#include <cstdint>
#include <vector>

#include "engine/init/init_seeds.h"
#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"

namespace driftscope {

// The seed pair of the mask with stream counter `counter` (c above) of
// layer `layer` (of its backward copy when `backward`).
SeedPair DropoutSeed(const JobSpec& spec, const LayerSeeds& seeds, int layer,
                     int64_t counter, bool backward = false);

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
  DropoutMasks(const DropoutMasks&) = delete;
  DropoutMasks& operator=(const DropoutMasks&) = delete;

  // Whether any layer drops at all (else Draw is a no-op).
  bool any() const { return any_; }
  // Draws the masks of training step `step` for `batch` ≤ max_batch samples.
  void Draw(int64_t step, int batch);
  // Layer i's shared input mask of the last Draw, (batch, input features)
  // row-major, or null when layer i does not drop its input that way (no
  // dropout, or per-gate masks).
  // A Bidirectional layer's masks are its copies' (direction_masks), so
  // mask and gate_masks are null for it.
  const T* mask(int layer) const {
    const Copy& c = copies_[layer][0];
    return bidirectional_[layer] || c.shared.empty() ? nullptr
                                                     : c.shared.data();
  }
  // Layer i's per-gate masks of the last Draw (layer.h's GateMasks), or
  // null when layer i does not use them (UsesGateMasks).
  const GateMasks<T>* gate_masks(int layer) const {
    const Copy& c = copies_[layer][0];
    return bidirectional_[layer] || !c.gated() ? nullptr : &c.view;
  }
  // A Bidirectional layer i's masks of the last Draw, both copies (an array
  // of two: forward, backward), or null when layer i is not Bidirectional
  // or does not drop.
  const DirectionMasks<T>* direction_masks(int layer) const {
    return bidirectional_[layer] && drops_[layer]
               ? direction_views_[layer].data()
               : nullptr;
  }

 private:
  // The masks of one RNN, or of one copy of a Bidirectional layer.
  struct Copy {
    std::vector<T> shared;            // the shared input mask, or empty
    std::vector<T> input, recurrent;  // per-gate masks back to back
    GateMasks<T> view;
    bool gated() const { return !input.empty() || !recurrent.empty(); }
  };
  void DrawCopy(int layer, bool backward, int64_t step, int batch);

  const JobSpec spec_;
  const std::vector<LayerSeeds> seeds_;
  std::vector<int> features_;  // input width of each layer
  std::vector<bool> bidirectional_, drops_;
  std::vector<std::array<Copy, 2>> copies_;  // [layer][0 forward, 1 backward]
  std::vector<std::array<DirectionMasks<T>, 2>> direction_views_;
  std::vector<float> uniforms_;  // scratch for the widest mask
  bool any_ = false;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_TRAIN_DROPOUT_H_
