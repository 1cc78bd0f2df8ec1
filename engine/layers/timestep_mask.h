// Keras' timestep mask: which (sample, timestep) pairs a model skips.
//
// Keras attaches a (batch, T) boolean mask to a layer's output when the
// layer computes one (keras.layers.Masking today; Embedding(mask_zero=True)
// makes one from token ids the same way). Layers that support masking pass
// it on (Dense; an RNN with return_sequences), RNN layers keep their state
// at a skipped step, an RNN without return_sequences ends it, and the loss
// averages over the steps it keeps. Here the mask is made once per Forward
// from the model input (ComputeTimestepMask), and every layer whose input
// is a sequence gets it through Layer::SetTimestepMask.
//
// Where a new mask-making first layer plugs in: ModelHasTimestepMask and
// ComputeTimestepMask (one branch each), plus what the layer outputs at
// skipped steps (ApplyMasking for Masking; Embedding(mask_zero) outputs its
// table's row 0 there, as Keras does, so it needs nothing more). Pure
// functions; thread-safe.
#ifndef DRIFTSCOPE_ENGINE_LAYERS_TIMESTEP_MASK_H_
#define DRIFTSCOPE_ENGINE_LAYERS_TIMESTEP_MASK_H_

#include <cstdint>

#include "engine/job/job_spec.h"

namespace driftscope {

// Whether `model` computes with a timestep mask.
bool ModelHasTimestepMask(const ModelSpec& model);
// Whether layers[0] is an Embedding with mask_zero (token id 0 is padding).
bool EmbeddingMasksZero(const ModelSpec& model);

// keep[b·T + t] for the model input x (batch, T, F), batch-major: with
// Masking, 1 where any feature of step t differs from mask_value (compared
// in T, as Keras compares in the layer's dtype), else 0; with
// Embedding(mask_zero), x holds token ids (F = 1) and a step is kept where
// its id is not 0. Needs ModelHasTimestepMask(model).
template <typename T>
void ComputeTimestepMask(const ModelSpec& model, const T* x, int batch,
                         uint8_t* keep);

// The Masking layer's output: y = x where the step is kept, else 0
// (Keras: where(mask, inputs, 0)). x and y (batch, steps, dim) may alias.
template <typename T>
void ApplyMasking(const T* x, const uint8_t* keep, int batch, int steps,
                  int dim, T* y);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_LAYERS_TIMESTEP_MASK_H_
