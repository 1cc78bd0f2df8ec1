// The Keras shapes of a layer's weights and output (layer_internal.h), in
// a file of their own so that the CUDA backend library, which runs cuDNN
// layers, compiles the same definitions without the CPU layers.
#include "engine/layers/layer_internal.h"

namespace driftscope {

std::vector<WeightShape> LayerWeightShapes(const LayerSpec& spec,
                                           const ActivationShape& in) {
  if (spec.bidirectional) {
    // Keras' Bidirectional.get_weights(): the forward copy's, then the
    // backward copy's.
    std::vector<WeightShape> w;
    for (const bool backward : {false, true}) {
      for (WeightShape s :
           LayerWeightShapes(DirectionSpec(spec, backward), in)) {
        s.name = (backward ? "backward_" : "forward_") + s.name;
        w.push_back(std::move(s));
      }
    }
    return w;
  }
  const int64_t d = in.dim, u = spec.units;
  std::vector<WeightShape> w;
  if (spec.kind == LayerKind::kEmbedding) {
    w.push_back({"embeddings", {spec.input_dim, u}});
    return w;
  }
  int64_t gates = 1;
  switch (spec.kind) {
    case LayerKind::kLstm:
      gates = 4;
      break;
    case LayerKind::kGru:
      gates = 3;
      break;
    case LayerKind::kSimpleRnn:
      break;
    case LayerKind::kEmbedding:  // handled above
    case LayerKind::kDense:
      w.push_back({"kernel", {d, u}});
      if (spec.use_bias) w.push_back({"bias", {u}});
      return w;
  }
  w.push_back({"kernel", {d, gates * u}});
  w.push_back({"recurrent_kernel", {u, gates * u}});
  if (spec.use_bias) {
    if (spec.kind == LayerKind::kGru && spec.reset_after) {
      w.push_back({"bias", {2, gates * u}});
    } else {
      w.push_back({"bias", {gates * u}});
    }
  }
  return w;
}

ActivationShape LayerOutputShape(const LayerSpec& spec,
                                 const ActivationShape& in) {
  ActivationShape out;
  out.dim = LayerOutputUnits(spec);
  out.sequence =
      IsRecurrentKind(spec.kind) ? spec.return_sequences : in.sequence;
  out.timesteps = out.sequence ? in.timesteps : 1;
  return out;
}

}  // namespace driftscope
