// What a saved Keras model holds, read from the file as Keras wrote it: a
// Keras 3 `.keras` file (a zip of config.json, metadata.json and
// model.weights.h5) or a Keras 2 / tf.keras `.h5` file (the model_config and
// training_config attributes and the model_weights group). The zip is read
// with libzip and the HDF5 parts with HDF5's C library; nothing is
// interpreted here beyond finding each layer's weights (keras_import.h maps
// the model).
//
// HDF5's serial library is not thread-safe: one thread at a time.
#ifndef DRIFTSCOPE_CLIENT_IMPORT_KERAS_FILE_H_
#define DRIFTSCOPE_CLIENT_IMPORT_KERAS_FILE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/core/ndarray.h"

namespace driftscope {

struct KerasFile {
  enum class Format { kKeras3, kLegacyH5 };
  Format format = Format::kKeras3;
  std::string keras_version;  // "3.15.1"; empty when the file does not say
  // .keras: config.json (the model config with its compile_config);
  // .h5: the model_config attribute.
  std::string model_config;
  // .h5 only: the training_config attribute (empty when not compiled).
  std::string training_config;
  // Every layer's weights by layer name (the config's "name"), in the
  // layer's get_weights() order, with the dtype stored in the file. Layers
  // without weights may be absent. A .keras file that does not record the
  // layer names (tf.keras 2's) keys them by their group instead:
  // "layers/lstm", "layers/lstm_1", ... (the class in snake case, numbered
  // in the order of the model's layers).
  std::map<std::string, std::vector<NdArray>> weights;
};

// InvalidArgument naming `path` and what is wrong (neither a zip nor an
// HDF5 file, truncated or corrupt, config.json or model.weights.h5 missing,
// a weight that is not a float32/float64 array); NotFound when `path` does
// not exist. FailedPrecondition when this build has no HDF5/libzip.
absl::StatusOr<KerasFile> ReadKerasFile(const std::string& path);

}  // namespace driftscope

#endif  // DRIFTSCOPE_CLIENT_IMPORT_KERAS_FILE_H_
