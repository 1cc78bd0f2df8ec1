// Model<T>: a stack of Layer<T> over ONE contiguous parameter buffer and one
// gradient buffer (llm.c style), with activation buffers sized once.
//
// The parameter buffer holds every layer's weights back to back in Keras
// get_weights() order, so fingerprinting, zeroing, copying and the optimizer
// each see one span. All buffers are allocated by Create() for at most
// `max_batch` samples: Forward/Backward never allocate. One thread at a time;
// the model owns its layers and buffers.
#ifndef DRIFTSCOPE_ENGINE_TRAIN_MODEL_H_
#define DRIFTSCOPE_ENGINE_TRAIN_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"
#include "engine/numerics/context.h"
#include "engine/optim/optimizer.h"
#include "engine/train/dropout.h"

namespace driftscope {

// One Keras weight inside the flat buffer.
struct ModelWeight {
  int layer = 0;
  std::string name;  // "layer{i}_{kernel|recurrent_kernel|bias}"
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t size = 0;
};

template <typename T>
class Model {
 public:
  // InvalidArgument (from MakeLayer, naming "model.layers[i]") when a layer
  // cannot take its input; max_batch must be ≥ 1.
  static absl::StatusOr<std::unique_ptr<Model<T>>> Create(const ModelSpec& spec,
                                                          int max_batch);

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  int num_layers() const { return static_cast<int>(layers_.size()); }
  int64_t num_params() const { return static_cast<int64_t>(params_.size()); }
  int max_batch() const { return max_batch_; }
  T* params() { return params_.data(); }
  const T* params() const { return params_.data(); }
  T* grads() { return grads_.data(); }
  // Every weight in get_weights() order, and the same as optimizer slices.
  const std::vector<ModelWeight>& weights() const { return weights_; }
  std::vector<VariableSlice> variables() const;
  // Per variable (variables() order), the layer's occurrence squares
  // (Layer::occurrence_squares) or null; valid after a Backward.
  std::vector<T*> occurrence_squares();
  // Offset of layer i's block in the flat buffers.
  int64_t layer_offset(int i) const { return layer_offsets_[i]; }
  Layer<T>& layer(int i) { return *layers_[i]; }
  ActivationShape input_shape() const { return layers_.front()->input_shape(); }
  ActivationShape output_shape() const {
    return layers_.back()->output_shape();
  }

  // Runs the stack on `batch` ≤ max_batch() samples of x (which must stay
  // valid until Backward returns). Returns the output buffer (batch ·
  // output_shape().per_sample() values), valid until the next Forward.
  // With `dropout` (training), a layer that has a mask sees its input times
  // the mask, broadcast over timesteps; `dropout` must outlive Backward.
  const T* Forward(const Context& ctx, const T* x, int batch,
                   const DropoutMasks<T>* dropout = nullptr);
  // Back-propagates dy (gradient w.r.t. the last Forward's output) and
  // overwrites grads() with the parameter gradients.
  void Backward(const Context& ctx, const T* dy);
  // The last Forward's timestep mask as it reaches the output ((batch, T),
  // layer.h's layout), for the loss to average over the kept steps; null
  // when the model has no mask or its output is not a sequence.
  const uint8_t* output_mask() const {
    return !keep_.empty() && output_shape().sequence ? keep_.data() : nullptr;
  }

 private:
  Model() = default;

  std::vector<std::unique_ptr<Layer<T>>> layers_;
  std::vector<int64_t> layer_offsets_;
  std::vector<ModelWeight> weights_;
  std::vector<T> params_, grads_;
  std::vector<std::vector<T>> acts_;  // acts_[i]: output of layer i
  // dropped_[i]: layer i's masked input (layers with one shared input mask
  // only; a Bidirectional layer masks its copies' inputs itself).
  std::vector<std::vector<T>> dropped_;
  std::vector<ActivationShape> inputs_;  // input shape of each layer
  // With a timestep mask (engine/layers/timestep_mask.h): the spec that
  // makes it, the mask of the last Forward, and the Masking layer's output.
  ModelSpec spec_;
  std::vector<uint8_t> keep_;
  std::vector<T> masked_x_;
  const DropoutMasks<T>* last_dropout_ = nullptr;
  int last_batch_ = 0;
  std::vector<T> dbuf_[2];  // ping-pong input gradients
  int max_batch_ = 0;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_TRAIN_MODEL_H_
