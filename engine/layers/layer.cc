// MakeLayer: argument checks and dispatch to the concrete layers.
#include "engine/layers/layer.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/layers/layer_internal.h"

namespace driftscope {
namespace {

absl::Status CheckSpec(const LayerSpec& spec, const ActivationShape& in,
                       const std::string& field) {
  if (spec.units < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".units must be >= 1, got ", spec.units));
  }
  if (in.dim < 1 || (in.sequence && in.timesteps < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": input must have dim >= 1 and timesteps >= 1, got dim ",
        in.dim, ", timesteps ", in.timesteps));
  }
  if (spec.kind == LayerKind::kEmbedding) {
    if (spec.input_dim < 1 || in.dim != 1 || !in.sequence) {
      return absl::InvalidArgumentError(absl::StrCat(
          field,
          ": embedding needs input_dim >= 1 and the model's token ids "
          "(features 1) as its input, got input_dim ",
          spec.input_dim, ", input dim ", in.dim));
    }
    return absl::OkStatus();
  }
  if (spec.kind == LayerKind::kDense) return absl::OkStatus();
  if (!in.sequence) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", LayerJsonKey(spec.kind),
        " needs a sequence input; set return_sequences=true on the layer "
        "before it"));
  }
  if (spec.kind != LayerKind::kSimpleRnn && spec.implementation != 1 &&
      spec.implementation != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".implementation must be 1 or 2, got ", spec.implementation));
  }
  return absl::OkStatus();
}

}  // namespace

template <typename T>
absl::StatusOr<std::unique_ptr<Layer<T>>> MakeLayer(const LayerSpec& spec,
                                                    const ActivationShape& in,
                                                    const std::string& field) {
  absl::Status s = CheckSpec(spec, in, field);
  if (!s.ok()) return s;
  if (spec.bidirectional) {
    if (!IsRecurrentKind(spec.kind)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": bidirectional wraps RNN layers only"));
    }
    absl::StatusOr<std::unique_ptr<Layer<T>>> forward =
        MakeLayer<T>(DirectionSpec(spec, false), in, field);
    if (!forward.ok()) return forward.status();
    absl::StatusOr<std::unique_ptr<Layer<T>>> backward =
        MakeLayer<T>(DirectionSpec(spec, true), in, field);
    if (!backward.ok()) return backward.status();
    return NewBidirectionalLayer<T>(spec, in, *std::move(forward),
                                    *std::move(backward));
  }
  if (UsesGateMasks(spec)) return NewGateMaskedRnnLayer<T>(spec, in);
  switch (spec.kind) {
    case LayerKind::kLstm:
      return NewLstmLayer<T>(spec, in);
    case LayerKind::kGru:
      return NewGruLayer<T>(spec, in);
    case LayerKind::kSimpleRnn:
      return NewSimpleRnnLayer<T>(spec, in);
    case LayerKind::kEmbedding:
      return NewEmbeddingLayer<T>(spec, in);
    case LayerKind::kDense:
      break;
  }
  return NewDenseLayer<T>(spec, in);
}

template absl::StatusOr<std::unique_ptr<Layer<float>>> MakeLayer<float>(
    const LayerSpec&, const ActivationShape&, const std::string&);
template absl::StatusOr<std::unique_ptr<Layer<double>>> MakeLayer<double>(
    const LayerSpec&, const ActivationShape&, const std::string&);

}  // namespace driftscope
