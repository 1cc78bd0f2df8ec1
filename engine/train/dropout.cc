#include "engine/train/dropout.h"

#include <utility>
#include <vector>

#include "engine/rng/philox.h"

namespace driftscope {

SeedPair DropoutSeed(const JobSpec& spec, const LayerSeeds& seeds, int layer,
                     int64_t step) {
  if (spec.seed_mode == SeedMode::kKeras && seeds.dropout.has_value()) {
    // SeedGenerator.next(): the state [g, k] before adding [0, 1].
    return {*seeds.dropout, static_cast<uint64_t>(step)};
  }
  return {spec.seed, streams::Dropout(layer, step)};
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
  for (const LayerSpec& l : spec.model.layers) {
    features_.push_back(width);
    masks_.emplace_back(
        l.dropout > 0 ? static_cast<size_t>(int64_t{max_batch} * width) : 0);
    any_ = any_ || l.dropout > 0;
    if (masks_.back().size() > uniforms_.size()) {
      uniforms_.resize(masks_.back().size());
    }
    width = l.units;
  }
}

template <typename T>
void DropoutMasks<T>::Draw(int64_t step, int batch) {
  for (size_t i = 0; i < masks_.size(); ++i) {
    if (masks_[i].empty()) continue;
    const int layer = static_cast<int>(i);
    DrawDropoutMask<T>(DropoutSeed(spec_, seeds_[i], layer, step),
                       spec_.model.layers[i].dropout,
                       int64_t{batch} * features_[i], uniforms_.data(),
                       masks_[i].data());
  }
}

template class DropoutMasks<float>;
template class DropoutMasks<double>;

}  // namespace driftscope
