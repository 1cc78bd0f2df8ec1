// Keras layer -> JobSpec layer: the one place that knows what each Keras
// layer's config means to driftscope, one function per Keras class (see
// keras_layers.cc). A layer or option driftscope cannot compute the same
// way is refused, naming the layer and what is unsupported. Pure; safe for
// concurrent use.
#ifndef DRIFTSCOPE_CLIENT_IMPORT_KERAS_LAYERS_H_
#define DRIFTSCOPE_CLIENT_IMPORT_KERAS_LAYERS_H_

#include <string>

#include "absl/status/statusor.h"
#include "client/import/keras_config.h"
#include "engine/job/job_spec.h"

namespace driftscope {

// InvalidArgument "layer 'name' (Class): ..." for an unsupported class or
// option (Unimplemented-like cases say "not supported yet").
absl::StatusOr<LayerSpec> MapKerasLayer(const KerasLayer& layer);

// keras.layers.Masking as the model's first layer: its mask_value (absent:
// 0.0), for ModelSpec::mask_value. A later Masking is refused by
// MapKerasLayer.
absl::StatusOr<double> MapKerasMasking(const KerasLayer& layer);

// "LSTM, GRU, SimpleRNN, Dense, Bidirectional": for messages and docs.
std::string SupportedKerasLayers();

}  // namespace driftscope

#endif  // DRIFTSCOPE_CLIENT_IMPORT_KERAS_LAYERS_H_
