#include "engine/train/model.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/layers/timestep_mask.h"

namespace driftscope {

template <typename T>
absl::StatusOr<std::unique_ptr<Model<T>>> Model<T>::Create(
    const ModelSpec& spec, int max_batch) {
  if (max_batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: max_batch must be at least 1, got ", max_batch));
  }
  if (spec.layers.empty()) {
    return absl::InvalidArgumentError("model.layers must not be empty");
  }
  std::unique_ptr<Model<T>> m(new Model<T>());
  m->max_batch_ = max_batch;
  m->spec_ = spec;
  if (ModelHasTimestepMask(spec)) {
    m->keep_.assign(static_cast<size_t>(max_batch) * spec.timesteps, 0);
    if (spec.mask_value.has_value()) {
      m->masked_x_.assign(
          static_cast<size_t>(max_batch) * spec.timesteps * spec.features,
          T(0));
    }
  }
  ActivationShape in{true, spec.timesteps, spec.features};
  int64_t offset = 0;
  int64_t max_grad = 0;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    absl::StatusOr<std::unique_ptr<Layer<T>>> layer =
        MakeLayer<T>(spec.layers[i], in, absl::StrCat("model.layers[", i, "]"));
    if (!layer.ok()) return layer.status();
    m->layer_offsets_.push_back(offset);
    for (const WeightShape& w : (*layer)->weights()) {
      m->weights_.push_back(ModelWeight{static_cast<int>(i),
                                        absl::StrCat("layer", i, "_", w.name),
                                        w.shape, offset, w.size()});
      offset += w.size();
    }
    // Layer 0 needs no input gradient; the others get one of two buffers.
    if (i > 0) max_grad = std::max(max_grad, in.per_sample());
    m->inputs_.push_back(in);
    m->dropped_.emplace_back(
        spec.layers[i].dropout > 0 && !UsesGateMasks(spec.layers[i]) &&
                !spec.layers[i].bidirectional
            ? static_cast<size_t>(max_batch * in.per_sample())
            : 0);
    in = (*layer)->output_shape();
    m->acts_.emplace_back(static_cast<size_t>(max_batch * in.per_sample()));
    m->layers_.push_back(*std::move(layer));
  }
  m->params_.assign(static_cast<size_t>(offset), T(0));
  m->grads_.assign(static_cast<size_t>(offset), T(0));
  for (std::vector<T>& d : m->dbuf_) {
    d.assign(static_cast<size_t>(max_batch * max_grad), T(0));
  }
  return m;
}

template <typename T>
std::vector<T*> Model<T>::occurrence_squares() {
  std::vector<T*> out;
  out.reserve(weights_.size());
  for (const ModelWeight& w : weights_) {
    T* q = layers_[w.layer]->occurrence_squares();
    out.push_back(q == nullptr ? nullptr
                               : q + (w.offset - layer_offsets_[w.layer]));
  }
  return out;
}

template <typename T>
std::vector<VariableSlice> Model<T>::variables() const {
  std::vector<VariableSlice> v;
  v.reserve(weights_.size());
  for (const ModelWeight& w : weights_) v.push_back({w.offset, w.size});
  return v;
}

namespace {

// y[b, t, d] = x[b, t, d] · mask[b, d] (or the same for a gradient).
template <typename T>
void ApplyMask(const T* x, const T* mask, int batch, const ActivationShape& s,
               T* y) {
  const int64_t steps = s.sequence ? s.timesteps : 1;
  for (int b = 0; b < batch; ++b) {
    const T* m = mask + int64_t{b} * s.dim;
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t row = (int64_t{b} * steps + t) * s.dim;
      for (int d = 0; d < s.dim; ++d) y[row + d] = x[row + d] * m[d];
    }
  }
}

}  // namespace

template <typename T>
const T* Model<T>::Forward(const Context& ctx, const T* x, int batch,
                           const DropoutMasks<T>* dropout) {
  last_dropout_ = dropout;
  last_batch_ = batch;
  const T* in = x;
  const uint8_t* keep = nullptr;
  if (!keep_.empty()) {
    keep = keep_.data();
    ComputeTimestepMask(spec_, x, batch, keep_.data());
    if (!masked_x_.empty()) {  // the Masking layer's own output
      ApplyMasking(x, keep, batch, spec_.timesteps, spec_.features,
                   masked_x_.data());
      in = masked_x_.data();
    }
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    // Keras passes the mask on while the activations stay sequences (Dense
    // keeps it; an RNN without return_sequences ends it).
    layers_[i]->SetTimestepMask(inputs_[i].sequence ? keep : nullptr);
    const T* mask =
        dropout != nullptr ? dropout->mask(static_cast<int>(i)) : nullptr;
    layers_[i]->SetGateMasks(dropout != nullptr
                                 ? dropout->gate_masks(static_cast<int>(i))
                                 : nullptr);
    layers_[i]->SetDirectionMasks(
        dropout != nullptr ? dropout->direction_masks(static_cast<int>(i))
                           : nullptr);
    if (mask != nullptr && !dropped_[i].empty()) {
      ApplyMask(in, mask, batch, inputs_[i], dropped_[i].data());
      in = dropped_[i].data();
    }
    layers_[i]->Forward(ctx, params_.data() + layer_offsets_[i], in, batch,
                        acts_[i].data());
    in = acts_[i].data();
  }
  return in;
}

template <typename T>
void Model<T>::Backward(const Context& ctx, const T* dy) {
  const T* grad_out = dy;
  for (int i = num_layers() - 1; i >= 0; --i) {
    T* dx = i > 0 ? dbuf_[i % 2].data() : nullptr;
    layers_[i]->Backward(ctx, params_.data() + layer_offsets_[i], grad_out, dx,
                         grads_.data() + layer_offsets_[i]);
    const T* mask = last_dropout_ != nullptr ? last_dropout_->mask(i) : nullptr;
    if (dx != nullptr && mask != nullptr && !dropped_[i].empty()) {
      ApplyMask(dx, mask, last_batch_, inputs_[i], dx);
    }
    grad_out = dx;
  }
}

template class Model<float>;
template class Model<double>;

}  // namespace driftscope
