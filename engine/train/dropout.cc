#include "engine/train/dropout.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "engine/rng/philox.h"

namespace driftscope {

SeedPair DropoutSeed(const JobSpec& spec, const LayerSeeds& seeds, int layer,
                     int64_t counter, bool backward) {
  const std::optional<uint64_t>& g =
      backward ? seeds.backward_dropout : seeds.dropout;
  if (spec.seed_mode == SeedMode::kKeras && g.has_value()) {
    // SeedGenerator.next(): the state [g, c] before adding [0, 1].
    return {*g, static_cast<uint64_t>(counter)};
  }
  return {spec.seed, backward ? streams::BackwardDropout(layer, counter)
                              : streams::Dropout(layer, counter)};
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
  copies_.resize(layers);
  direction_views_.resize(layers);
  size_t widest = 0;
  for (size_t i = 0; i < layers; ++i) {
    const LayerSpec& l = spec.model.layers[i];
    features_.push_back(width);
    bidirectional_.push_back(l.bidirectional);
    const bool drops = l.dropout > 0 || l.recurrent_dropout > 0;
    drops_.push_back(drops);
    any_ = any_ || drops;
    // A Bidirectional layer's copies are the wrapped layer (the same rates).
    const int n_copies = l.bidirectional ? 2 : 1;
    const bool gated = UsesGateMasks(l);
    for (int k = 0; k < n_copies; ++k) {
      Copy& c = copies_[i][k];
      if (l.dropout > 0 && !gated) {
        c.shared.resize(static_cast<size_t>(int64_t{max_batch} * width));
      }
      if (gated) {
        c.input.resize(static_cast<size_t>(InputMasksPerStep(l)) * max_batch *
                       width);
        c.recurrent.resize(static_cast<size_t>(RecurrentMasksPerStep(l)) *
                           max_batch * l.units);
        widest = std::max<size_t>(
            widest, static_cast<size_t>(max_batch) * std::max(width, l.units));
      }
      widest = std::max(widest, c.shared.size());
      direction_views_[i][k].input =
          c.shared.empty() ? nullptr : c.shared.data();
      direction_views_[i][k].gates = gated ? &c.view : nullptr;
    }
    width = LayerOutputUnits(l);
  }
  uniforms_.resize(widest);
}

template <typename T>
void DropoutMasks<T>::DrawCopy(int layer, bool backward, int64_t step,
                               int batch) {
  const LayerSpec& l = spec_.model.layers[layer];
  const LayerSeeds& seeds = seeds_[layer];
  Copy& c = copies_[layer][backward ? 1 : 0];
  const int64_t in_size = int64_t{batch} * features_[layer];
  if (!c.shared.empty()) {
    DrawDropoutMask<T>(DropoutSeed(spec_, seeds, layer, step, backward),
                       l.dropout, in_size, uniforms_.data(), c.shared.data());
    return;
  }
  if (!c.gated()) return;
  const int n_in = InputMasksPerStep(l), n_rec = RecurrentMasksPerStep(l);
  const int64_t n = n_in + n_rec;
  const int64_t rec_size = int64_t{batch} * l.units;
  for (int j = 0; j < n_in; ++j) {
    DrawDropoutMask<T>(DropoutSeed(spec_, seeds, layer, step * n + j, backward),
                       l.dropout, in_size, uniforms_.data(),
                       c.input.data() + j * in_size);
  }
  for (int j = 0; j < n_rec; ++j) {
    DrawDropoutMask<T>(
        DropoutSeed(spec_, seeds, layer, step * n + n_in + j, backward),
        l.recurrent_dropout, rec_size, uniforms_.data(),
        c.recurrent.data() + j * rec_size);
  }
  c.view.input = n_in > 0 ? c.input.data() : nullptr;
  c.view.recurrent = n_rec > 0 ? c.recurrent.data() : nullptr;
}

template <typename T>
void DropoutMasks<T>::Draw(int64_t step, int batch) {
  for (size_t i = 0; i < copies_.size(); ++i) {
    if (!drops_[i]) continue;
    const int layer = static_cast<int>(i);
    DrawCopy(layer, /*backward=*/false, step, batch);
    if (bidirectional_[i]) DrawCopy(layer, /*backward=*/true, step, batch);
  }
}

template class DropoutMasks<float>;
template class DropoutMasks<double>;

}  // namespace driftscope
