// The reference implementation: plain double-precision loops, the oracle that
// tests hold the engine (and golden files) to.
//
// Straight from docs/numerics.md §1-§3, §5, §9, one sample and one time step
// at a time, with no Context, no Eigen, no caching tricks: easy to read
// against the formulas, slow on purpose. It shares nothing with the engine's
// layers except the LayerSpec/ActivationShape types, and it evaluates
// activation derivatives from the pre-activation x (the engine uses outputs),
// so the two are independent. Keras' addition orders (implementation 1 vs 2,
// bias before/after the recurrent term) are followed, but in double they only
// matter at the 1e-16 level.
//
// Conventions (the same as engine/layers/layer.h):
//  - x is batch-major row-major: (batch, T, D) when in.sequence, else
//    (batch, D); outputs likewise (batch, T, U) or (batch, U).
//  - weights: one vector per Keras weight, in get_weights() order with Keras
//    shapes, row-major: LSTM kernel (D,4U) [i|f|c|o], recurrent_kernel
//    (U,4U), bias (4U) if use_bias; GRU kernel (D,3U) [z|r|h],
//    recurrent_kernel (U,3U), bias (2,3U) when reset_after (row 0 input
//    bias, row 1 recurrent bias) else (3U); SimpleRNN kernel (D,U),
//    recurrent_kernel (U,U), bias (U); Dense kernel (D,U), bias (U);
//    Embedding embeddings (input_dim, U), its x (batch, T, 1) token ids
//    (dx is all zeros: ids have no gradient).
//  - go_backwards: the time axis of x is consumed from T-1 down to 0 and a
//    returned sequence is in processing order (§1.7).
//  - initial states are zero; final states get no gradient.
//  - keep, when given, is Keras' timestep mask (batch, T) in time order
//    (0 = the step is skipped): an RNN keeps its states at a skipped step
//    and outputs the previous output there (zeros when the spec's
//    zero_output_for_mask is set), so δ passes through it unchanged.
// Preconditions (not checked; the oracle trusts its caller): the spec is one
// MakeLayer accepts for `in`, weights have RefWeightShapes' sizes, x has
// batch·in.per_sample() values, dy has batch·output per_sample() values.
// Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_REFERENCE_REFERENCE_H_
#define DRIFTSCOPE_ENGINE_REFERENCE_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"

namespace driftscope {

// One layer's weights in get_weights() order, each flattened row-major.
using RefWeights = std::vector<std::vector<double>>;

// Keras shapes of the layer's weights, in get_weights() order.
std::vector<std::vector<int64_t>> RefWeightShapes(const LayerSpec& spec,
                                                  const ActivationShape& in);
// Shape of the layer's output for input shape `in` (a non-sequence output
// has timesteps = 1).
ActivationShape RefOutputShape(const LayerSpec& spec,
                               const ActivationShape& in);

// Per-gate dropout masks of one RNN layer (Keras implementation 1, which
// Keras uses whenever a layer has recurrent_dropout): input[g] (batch, D)
// multiplies the input gate g's kernel reads, recurrent[g] (batch, U) the
// h_{t-1} its recurrent kernel reads (LSTM 4 gates [i|f|c|o], GRU 3 [z|r|h],
// SimpleRNN 1); the same masks at every timestep; either may be empty (no
// mask). GRU's update z ⊙ h_{t-1} and LSTM's carry use the unmasked state.
// With masks, an LSTM adds in implementation 1's order.
// For a Bidirectional layer, input and recurrent are the forward copy's
// masks and backward_input, backward_recurrent the backward copy's (a copy
// with one input mask shared by all gates passes it once per gate).
struct RefGateMasks {
  std::vector<std::vector<double>> input, recurrent;
  std::vector<std::vector<double>> backward_input, backward_recurrent;
};

// Forward pass. When final_states is not null it receives the RNN final
// states, each (batch, U) row-major: LSTM {h_T, c_T}, GRU/SimpleRNN {h_T};
// empty for Dense.
std::vector<double> RefForward(
    const LayerSpec& spec, const ActivationShape& in, const RefWeights& weights,
    const std::vector<double>& x, int batch,
    std::vector<std::vector<double>>* final_states = nullptr,
    const RefGateMasks* gate_masks = nullptr,
    const std::vector<uint8_t>* keep = nullptr);

// Gradients of L = Σ dy ⊙ y(x, weights), i.e. back-propagation of the output
// gradient dy through the layer (full BPTT over all timesteps).
struct RefLayerGrads {
  RefWeights dweights;     // same layout as the weights
  std::vector<double> dx;  // same layout as x
};
RefLayerGrads RefBackward(const LayerSpec& spec, const ActivationShape& in,
                          const RefWeights& weights,
                          const std::vector<double>& x, int batch,
                          const std::vector<double>& dy,
                          const RefGateMasks* gate_masks = nullptr,
                          const std::vector<uint8_t>* keep = nullptr);

// keras.layers.Masking(mask_value)'s mask of x (batch, steps, dim): 1 where
// any feature of the step differs from mask_value.
std::vector<uint8_t> RefMaskingKeep(const std::vector<double>& x, int batch,
                                    int steps, int dim, double mask_value);

// keras.layers.Embedding(mask_zero=True)'s mask of token ids (batch, steps)
// (given as values): 1 where the id is not 0.
std::vector<uint8_t> RefMaskZeroKeep(const std::vector<double>& ids);

// Input dropout masks of a stack: masks[i] is empty when layer i does not
// drop, else (batch, input dim of layer i) row-major; layer i then sees
// x[b, t, d] · masks[i][b, d] (the same mask at every timestep).
using RefMasks = std::vector<std::vector<double>>;

// A stack of layers, layer i feeding layer i+1 (the model's input shape is
// `in`). weights[i] are layer i's weights; gates[i], when given and not
// empty, layer i's per-gate masks. keep: a Masking layer in front (its
// mask, from RefMaskingKeep): the input's skipped steps become zeros and
// every layer whose input is a sequence gets the mask; or, when layers[0]
// is an Embedding, its mask_zero mask (RefMaskZeroKeep): the ids stay, and
// the layers after the embedding get the mask.
std::vector<double> RefModelForward(
    const std::vector<LayerSpec>& layers, const ActivationShape& in,
    const std::vector<RefWeights>& weights, const std::vector<double>& x,
    int batch, const RefMasks* masks = nullptr,
    const std::vector<RefGateMasks>* gates = nullptr,
    const std::vector<uint8_t>* keep = nullptr);
// Back-propagates dy (the gradient w.r.t. the last layer's output) through
// the whole stack: element i holds layer i's weight gradients and the
// gradient w.r.t. layer i's input (element 0's dx is d/d(model input)).
std::vector<RefLayerGrads> RefModelBackward(
    const std::vector<LayerSpec>& layers, const ActivationShape& in,
    const std::vector<RefWeights>& weights, const std::vector<double>& x,
    int batch, const std::vector<double>& dy, const RefMasks* masks = nullptr,
    const std::vector<RefGateMasks>* gates = nullptr,
    const std::vector<uint8_t>* keep = nullptr);

// The activation and its derivative at pre-activation x, in double.
double RefActivation(Activation a, double x);
double RefActivationDerivative(Activation a, double x);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_REFERENCE_REFERENCE_H_
