#include "engine/train/dropout.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "engine/rng/philox.h"

namespace driftscope {

SeedPair DropoutSeed(const JobSpec& spec, const LayerSeeds& seeds, int layer,
                     int64_t counter) {
  if (spec.seed_mode == SeedMode::kKeras && seeds.dropout.has_value()) {
    // SeedGenerator.next(): the state [g, c] before adding [0, 1].
    return {*seeds.dropout, static_cast<uint64_t>(counter)};
  }
  return {spec.seed, streams::Dropout(layer, counter)};
}

template <typename T>
void DrawDropoutMask(const SeedPair& seed, double rate, int64_t n, float* u,
                     T* mask) {
  StatelessUniform(seed.s0, seed.s1, n, u);
  // TF: scale = 1 / (1 - rate) in Python double, then converted to x's
  // dtype; keep = uniform >= rate, the rate converted to float32.
  const T scale = static_cast<T>(1.0 / (1.0 - rate));
  const float threshold = static_cast<float>(rate);
  for (int64_t i = 0; i < n; ++i) mask[i] = u[i] >= threshold ? scale : T(0);
}

template void DrawDropoutMask<float>(const SeedPair&, double, int64_t, float*,
                                     float*);
template void DrawDropoutMask<double>(const SeedPair&, double, int64_t, float*,
                                      double*);

template <typename T>
DropoutMasks<T>::DropoutMasks(const JobSpec& spec,
                              std::vector<LayerSeeds> seeds, int max_batch)
    : spec_(spec), seeds_(std::move(seeds)) {
  int width = spec.model.features;
  const size_t layers = spec.model.layers.size();
  gate_.resize(layers);
  gate_views_.resize(layers);
  size_t widest = 0;
  for (size_t i = 0; i < layers; ++i) {
    const LayerSpec& l = spec.model.layers[i];
    features_.push_back(width);
    const bool gated = UsesGateMasks(l);
    masks_.emplace_back(l.dropout > 0 && !gated
                            ? static_cast<size_t>(int64_t{max_batch} * width)
                            : 0);
    if (gated) {
      gate_[i].input.resize(static_cast<size_t>(InputMasksPerStep(l)) *
                            max_batch * width);
      gate_[i].recurrent.resize(static_cast<size_t>(RecurrentMasksPerStep(l)) *
                                max_batch * l.units);
      widest = std::max<size_t>(
          widest, static_cast<size_t>(max_batch) * std::max(width, l.units));
    }
    any_ = any_ || l.dropout > 0 || l.recurrent_dropout > 0;
    widest = std::max(widest, masks_.back().size());
    width = LayerOutputUnits(l);
  }
  uniforms_.resize(widest);
}

template <typename T>
void DropoutMasks<T>::Draw(int64_t step, int batch) {
  for (size_t i = 0; i < masks_.size(); ++i) {
    const int layer = static_cast<int>(i);
    const LayerSpec& l = spec_.model.layers[i];
    if (!masks_[i].empty()) {
      DrawDropoutMask<T>(DropoutSeed(spec_, seeds_[i], layer, step), l.dropout,
                         int64_t{batch} * features_[i], uniforms_.data(),
                         masks_[i].data());
      continue;
    }
    if (!UsesGateMasks(l)) continue;
    const int n_in = InputMasksPerStep(l), n_rec = RecurrentMasksPerStep(l);
    const int64_t n = n_in + n_rec;
    const int64_t in_size = int64_t{batch} * features_[i];
    const int64_t rec_size = int64_t{batch} * l.units;
    for (int j = 0; j < n_in; ++j) {
      DrawDropoutMask<T>(DropoutSeed(spec_, seeds_[i], layer, step * n + j),
                         l.dropout, in_size, uniforms_.data(),
                         gate_[i].input.data() + j * in_size);
    }
    for (int j = 0; j < n_rec; ++j) {
      DrawDropoutMask<T>(
          DropoutSeed(spec_, seeds_[i], layer, step * n + n_in + j),
          l.recurrent_dropout, rec_size, uniforms_.data(),
          gate_[i].recurrent.data() + j * rec_size);
    }
    gate_views_[i].input = n_in > 0 ? gate_[i].input.data() : nullptr;
    gate_views_[i].recurrent = n_rec > 0 ? gate_[i].recurrent.data() : nullptr;
  }
}

template class DropoutMasks<float>;
template class DropoutMasks<double>;

}  // namespace driftscope
