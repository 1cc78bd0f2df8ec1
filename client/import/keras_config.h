// A Keras model config (config.json of a .keras file, model_config of an
// .h5 file) read as JSON with protobuf's JSON parser: the input shape and
// the layers in the order data flows through them, for a Sequential model
// or a Functional chain (one input, every layer called once on the output
// of the one before). Typed reads of a layer's config name the layer and
// the key in their errors. Pure; safe for concurrent use.
#ifndef DRIFTSCOPE_CLIENT_IMPORT_KERAS_CONFIG_H_
#define DRIFTSCOPE_CLIENT_IMPORT_KERAS_CONFIG_H_

#include <google/protobuf/struct.pb.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace driftscope {

// One JSON object of a config, with reads that fail naming `where` (e.g.
// "layer 'l1' (LSTM)") and the key. A key whose value is null counts as
// absent.
class KerasConfig {
 public:
  KerasConfig(google::protobuf::Struct object, std::string where)
      : object_(std::move(object)), where_(std::move(where)) {}

  const std::string& where() const { return where_; }
  bool Has(const std::string& key) const;
  // The value, or nullptr when absent or null.
  const google::protobuf::Value* Get(const std::string& key) const;

  absl::StatusOr<double> Number(const std::string& key, double absent) const;
  absl::StatusOr<int> Int(const std::string& key, int absent) const;
  absl::StatusOr<bool> Bool(const std::string& key, bool absent) const;
  absl::StatusOr<std::string> String(const std::string& key,
                                     const std::string& absent) const;

  // InvalidArgument "<where>: <key> <what>".
  absl::Status Error(const std::string& key, const std::string& what) const;

 private:
  google::protobuf::Struct object_;
  std::string where_;
};

// A Keras object written as {"class_name": ..., "config": {...}} (an
// initializer, an optimizer, a loss) or as a plain string ("mse").
struct KerasObject {
  std::string class_name;  // or the string itself
  std::optional<KerasConfig> config;
};
absl::StatusOr<KerasObject> ReadKerasObject(const google::protobuf::Value& v,
                                            const std::string& where);

struct KerasLayer {
  std::string class_name;  // "LSTM"
  std::string name;        // the config's "name"
  KerasConfig config;
  bool keras2 = false;  // saved by Keras 2 / tf.keras (hard_sigmoid differs)
};

struct KerasModel {
  std::string class_name;  // "Sequential" or "Functional"/"Model"
  int timesteps = 0, features = 0;
  std::vector<KerasLayer> layers;  // input layer left out
  // A Functional model's outputs (config "output_layers"): the layer's name
  // and which of its output tensors, in order. Empty for Sequential.
  std::vector<std::pair<std::string, int>> outputs;
  // The compile_config (.keras) or training_config (.h5); nullopt when the
  // model was saved uncompiled.
  std::optional<KerasConfig> compile;
};

// `config_json`: the model config; `training_json`: the .h5 training_config
// ("" when absent); `keras_version`: "2.x" marks a Keras 2 file. Errors are
// InvalidArgument naming what is wrong (not JSON, not a model, a branching
// Functional model, no fixed input shape).
absl::StatusOr<KerasModel> ParseKerasModel(const std::string& config_json,
                                           const std::string& training_json,
                                           const std::string& keras_version);

}  // namespace driftscope

#endif  // DRIFTSCOPE_CLIENT_IMPORT_KERAS_CONFIG_H_
