// Layer: one Keras layer's forward and backward pass over a batch.
//
// A Layer owns the activations it caches for Backward, sized for the largest
// batch it has seen; parameters live outside, in the model's single flat
// buffer (llm.c style), and are passed in as pointers to this layer's block.
// Within the block, weights are in Keras get_weights() order with Keras
// shapes, row-major (e.g. LSTM: kernel (D,4U), recurrent_kernel (U,4U),
// bias (4U,); GRU reset_after: bias (2,3U)). One thread at a time.
#ifndef DRIFTSCOPE_ENGINE_LAYERS_LAYER_H_
#define DRIFTSCOPE_ENGINE_LAYERS_LAYER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/context.h"

namespace driftscope {

struct WeightShape {
  std::string name;  // "kernel", "recurrent_kernel", "bias"
  std::vector<int64_t> shape;
  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// The shape of the activations flowing between layers: (B, timesteps, dim)
// when sequence, else (B, dim). Row-major, batch-major.
struct ActivationShape {
  bool sequence = true;
  int timesteps = 1;
  int dim = 1;
  int64_t per_sample() const {
    return sequence ? int64_t{timesteps} * dim : dim;
  }
};

// The per-gate dropout masks of one training step of an RNN layer that
// computes with them (UsesGateMasks): `input` holds InputMasksPerStep
// masks of (batch, input dim) back to back, `recurrent` holds
// RecurrentMasksPerStep masks of (batch, units), each in gate order; null
// when that count is 0. Owned by the caller.
template <typename T>
struct GateMasks {
  const T* input = nullptr;
  const T* recurrent = nullptr;
};

// The dropout masks of one training step of the two copies of a
// Bidirectional layer, [0] the forward copy's and [1] the backward copy's:
// `input` the copy's one input mask shared by all gates ((batch, input dim);
// null when it has none or uses per-gate masks), `gates` its per-gate
// masks (null when it does not use them). Owned by the caller.
template <typename T>
struct DirectionMasks {
  const T* input = nullptr;
  const GateMasks<T>* gates = nullptr;
};

template <typename T>
class Layer {
 public:
  virtual ~Layer() = default;

  virtual const std::vector<WeightShape>& weights() const = 0;
  int64_t num_params() const {
    int64_t n = 0;
    for (const WeightShape& w : weights()) n += w.size();
    return n;
  }
  virtual ActivationShape input_shape() const = 0;
  virtual ActivationShape output_shape() const = 0;

  // y = layer(x) for `batch` samples. x stays valid until Backward returns.
  virtual void Forward(const Context& ctx, const T* params, const T* x,
                       int batch, T* y) = 0;
  // Gradients of the last Forward: given dy (shape of y), overwrites
  // dparams (num_params values) and, when dx is not null, dx (shape of x).
  virtual void Backward(const Context& ctx, const T* params, const T* dy, T* dx,
                        T* dparams) = 0;
  // For layers that use per-gate dropout masks: the masks the next Forward
  // applies (null: none, as in evaluation); they must stay valid until
  // Backward returns. Other layers ignore it.
  virtual void SetGateMasks(const GateMasks<T>* masks) { (void)masks; }
  // For Bidirectional layers: the masks of both copies (an array of two)
  // the next Forward applies, or null (none, as in evaluation); they must
  // stay valid until Backward returns. Other layers ignore it.
  virtual void SetDirectionMasks(const DirectionMasks<T>* masks) {
    (void)masks;
  }
  // Keras' timestep mask for the next Forward (engine/layers/
  // timestep_mask.h): keep[b·T + t] is 0 where time t of sample b is
  // skipped, 1 where it is used (batch-major, time order, T = this layer's
  // input timesteps); null: no mask. RNN layers keep their state at a
  // skipped step and output the previous output there (zeros with
  // zero_output_for_mask); Dense ignores it (Keras passes the mask on
  // unchanged). Must stay valid until Backward returns.
  virtual void SetTimestepMask(const uint8_t* keep) { (void)keep; }
  // After Forward, for RNN layers: the final states, each (batch, units):
  // LSTM {h, c}; GRU and SimpleRNN {h}. Empty for Dense.
  virtual std::vector<const T*> final_states() const { return {}; }
  // After Backward, for a layer whose Keras gradient is IndexedSlices
  // (Embedding): per parameter, the sum over token occurrences of the
  // squared gradient (Optimizer::SetOccurrenceSquares); null for others.
  // The buffer belongs to the layer and is rewritten by every Backward.
  virtual T* occurrence_squares() { return nullptr; }
};

// Builds the layer for `spec` taking inputs of shape `in`. Fails with
// InvalidArgument (naming `field`, e.g. "model.layers[2]") on a combination
// the layer cannot take.
template <typename T>
absl::StatusOr<std::unique_ptr<Layer<T>>> MakeLayer(const LayerSpec& spec,
                                                    const ActivationShape& in,
                                                    const std::string& field);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_LAYERS_LAYER_H_
