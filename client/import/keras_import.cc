#include "client/import/keras_import.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/import/keras_config.h"
#include "client/import/keras_layers.h"
#include "engine/io/init_weights.h"

namespace driftscope {

namespace {

absl::Status Prefixed(const std::string& source, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(source, ": ", s.message()));
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("(", absl::StrJoin(shape, ", "),
                      shape.size() == 1 ? ",)" : ")");
}

// Caution: Debian's GCC 12.2 at -O2/-O3 has dropped the round trip when
// two adjacent fields were rounded one after the other in one block (the
// SLP vectorizer; reproduced with a 10-line program), so each field is
// rounded where it is read. This test fails if the rounding is lost:
// TfKeras2Import.LegacyOptimizersCarryTheirFloat32HyperParameters.
double ThroughFloat32(double v) {
  return static_cast<double>(static_cast<float>(v));
}

// Keras' base optimizer options; `o` is {"class_name", "config"}.
absl::Status MapOptimizerCommon(const KerasConfig& c, OptimizerSpec* s) {
  if (const google::protobuf::Value* lr = c.Get("learning_rate");
      lr != nullptr && !lr->has_number_value()) {
    return c.Error("learning_rate",
                   "is a schedule; only a constant learning rate is "
                   "supported");
  }
  absl::StatusOr<double> lr = c.Number("learning_rate", s->learning_rate);
  if (!lr.ok()) return lr.status();
  absl::StatusOr<double> keras2_lr = c.Number("lr", *lr);  // Keras 2
  if (!keras2_lr.ok()) return keras2_lr.status();
  s->learning_rate = *keras2_lr;
  for (const char* key :
       {"clipnorm", "global_clipnorm", "clipvalue", "weight_decay"}) {
    if (!c.Has(key)) continue;
    absl::StatusOr<double> v = c.Number(key, 0.0);
    if (!v.ok()) return v.status();
    std::optional<double>* field =
        std::string(key) == "clipnorm"          ? &s->clipnorm
        : std::string(key) == "global_clipnorm" ? &s->global_clipnorm
        : std::string(key) == "clipvalue"       ? &s->clipvalue
                                                : &s->weight_decay;
    *field = *v;
  }
  absl::StatusOr<bool> ema = c.Bool("use_ema", false);
  if (!ema.ok()) return ema.status();
  if (*ema) {
    return absl::InvalidArgumentError(
        absl::StrCat(c.where(), ": use_ema=True is not supported"));
  }
  for (const char* key : {"loss_scale_factor", "gradient_accumulation_steps"}) {
    if (c.Has(key)) return c.Error(key, "is not supported (it must be None)");
  }
  absl::StatusOr<double> decay = c.Number("decay", 0.0);  // Keras 2
  if (!decay.ok()) return decay.status();
  if (*decay != 0.0) {
    return c.Error("decay", "(a learning rate decay) is not supported");
  }
  return absl::OkStatus();
}

absl::StatusOr<OptimizerSpec> MapOptimizer(const google::protobuf::Value& v,
                                           const std::string& where) {
  absl::StatusOr<KerasObject> o = ReadKerasObject(v, where);
  if (!o.ok()) return o.status();
  const KerasConfig c =
      o->config.has_value()
          ? *o->config
          : KerasConfig({}, absl::StrCat(where, " (", o->class_name, ")"));
  OptimizerSpec s;
  // tf.keras 2 (2.11 and later) writes its own optimizers into the
  // training_config as "Custom>Adam", "Custom>SGD", ...: the name they are
  // registered under, not a user's class (an unknown name is refused below
  // either way).
  const std::string k = absl::StartsWith(o->class_name, "Custom>")
                            ? o->class_name.substr(7)
                            : o->class_name;
  // tf.keras' OptimizerV2 (every tf.keras optimizer before 2.11, and
  // tf.keras.optimizers.legacy.* since; only its config has "decay") keeps
  // its hyper-parameters as Python floats and casts them to the variable's
  // dtype through a float32 tensor, then computes 1 - beta from the cast
  // value: it trains with the float32 roundings of lr, beta_1 and beta_2,
  // which the spec then holds (the engine does the rest as that optimizer
  // does). Its RMSprop adds epsilon outside the square root, Keras 3 inside.
  const bool legacy = c.Has("decay");
  absl::StatusOr<double> d = 0.0;
  absl::StatusOr<bool> b = false;
  if (k == "Adam" || k == "adam" || k == "AdamW" || k == "adamw") {
    s.kind = OptimizerKind::kAdam;
    if (k == "AdamW" || k == "adamw") s.weight_decay = 0.004;
    if (!(d = c.Number("beta_1", s.beta_1)).ok()) return d.status();
    s.beta_1 = legacy ? ThroughFloat32(*d) : *d;
    if (!(d = c.Number("beta_2", s.beta_2)).ok()) return d.status();
    s.beta_2 = legacy ? ThroughFloat32(*d) : *d;
    if (!(d = c.Number("epsilon", s.epsilon)).ok()) return d.status();
    s.epsilon = *d;
    if (!(b = c.Bool("amsgrad", false)).ok()) return b.status();
    s.amsgrad = *b;
  } else if (k == "SGD" || k == "sgd") {
    s.kind = OptimizerKind::kSgd;
    s.learning_rate = 0.01;
    if (!(d = c.Number("momentum", 0.0)).ok()) return d.status();
    s.momentum = *d;
    if (!(b = c.Bool("nesterov", false)).ok()) return b.status();
    s.nesterov = *b;
  } else if (legacy && (k == "RMSprop" || k == "rmsprop")) {
    return absl::InvalidArgumentError(absl::StrCat(
        c.where(),
        ": tf.keras' legacy RMSprop (OptimizerV2: epsilon added outside "
        "the square root) is not supported; driftscope computes Keras 3's "
        "RMSprop (tf.keras 2.11 and later: tf.keras.optimizers.RMSprop)"));
  } else if (k == "RMSprop" || k == "rmsprop") {
    s.kind = OptimizerKind::kRmsprop;
    if (!(d = c.Number("rho", s.rho)).ok()) return d.status();
    s.rho = *d;
    if (!(d = c.Number("momentum", 0.0)).ok()) return d.status();
    s.momentum = *d;
    if (!(d = c.Number("epsilon", s.epsilon)).ok()) return d.status();
    s.epsilon = *d;
    if (!(b = c.Bool("centered", false)).ok()) return b.status();
    s.centered = *b;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": the optimizer ", k,
        " is not supported (supported: Adam, AdamW, SGD, RMSprop)"));
  }
  if (absl::Status st = MapOptimizerCommon(c, &s); !st.ok()) return st;
  if (legacy) s.learning_rate = ThroughFloat32(s.learning_rate);
  return s;
}

absl::StatusOr<LossKind> MapLoss(const google::protobuf::Value& v,
                                 const std::string& where) {
  absl::StatusOr<KerasObject> o = ReadKerasObject(v, where);
  if (!o.ok()) return o.status();
  if (o->config.has_value()) {
    absl::StatusOr<std::string> r =
        o->config->String("reduction", "sum_over_batch_size");
    if (!r.ok()) return r.status();
    if (*r != "sum_over_batch_size" && *r != "auto") {
      return o->config->Error("reduction",
                              absl::StrCat("\"", *r,
                                           "\" is not supported (the mean "
                                           "over the batch is)"));
    }
  }
  const std::string& k = o->class_name;
  if (k == "mse" || k == "mean_squared_error" || k == "MeanSquaredError") {
    return LossKind::kMse;
  }
  if (k == "mae" || k == "mean_absolute_error" || k == "MeanAbsoluteError") {
    return LossKind::kMae;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": the loss ", k,
                   " is not supported (supported: mean_squared_error, "
                   "mean_absolute_error)"));
}

// The compile_config / training_config: optimizer and loss.
absl::Status MapCompile(const KerasConfig& c, JobSpec* spec) {
  const google::protobuf::Value* opt = c.Get("optimizer");
  if (opt == nullptr) opt = c.Get("optimizer_config");  // .h5
  if (opt != nullptr) {
    absl::StatusOr<OptimizerSpec> o =
        MapOptimizer(*opt, absl::StrCat(c.where(), ": optimizer"));
    if (!o.ok()) return o.status();
    spec->optimizer = *o;
  }
  const google::protobuf::Value* loss = c.Get("loss");
  if (loss != nullptr) {
    absl::StatusOr<LossKind> l =
        MapLoss(*loss, absl::StrCat(c.where(), ": loss"));
    if (!l.ok()) return l.status();
    spec->loss = *l;
  }
  for (const char* key : {"loss_weights"}) {
    if (c.Has(key)) return c.Error(key, "is not supported (it must be None)");
  }
  return absl::OkStatus();
}

// The layout entries of layer `index` alone (the layout of a model cut
// after it, less that of the model cut before it).
std::vector<KerasWeight> LayerLayout(const ModelSpec& model, size_t index) {
  ModelSpec before = model, upto = model;
  before.layers.resize(index);
  upto.layers.resize(index + 1);
  const std::vector<KerasWeight> a = KerasWeightLayout(before);
  std::vector<KerasWeight> b = KerasWeightLayout(upto);
  b.erase(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(a.size()));
  return b;
}

// Keras' generic_utils.to_snake_case: "SimpleRNN" -> "simple_rnn",
// "LSTM" -> "lstm" (its two regular expressions, applied left to right).
std::string SnakeCase(const std::string& name) {
  auto upper = [](char c) { return c >= 'A' && c <= 'Z'; };
  auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  std::string a;  // (.)([A-Z][a-z0-9]+) -> \1_\2
  for (size_t i = 0; i < name.size();) {
    if (i + 2 < name.size() && upper(name[i + 1]) &&
        (lower(name[i + 2]) || digit(name[i + 2]))) {
      a += name[i];
      a += '_';
      a += name[i + 1];
      i += 2;
      while (i < name.size() && (lower(name[i]) || digit(name[i]))) {
        a += name[i++];
      }
    } else {
      a += name[i++];
    }
  }
  std::string b;  // ([a-z])([A-Z]) -> \1_\2
  for (size_t i = 0; i < a.size();) {
    if (i + 1 < a.size() && lower(a[i]) && upper(a[i + 1])) {
      b += a[i];
      b += '_';
      b += a[i + 1];
      i += 2;
    } else {
      b += a[i++];
    }
  }
  for (char& c : b) {
    if (upper(c)) c = static_cast<char>(c - 'A' + 'a');
  }
  return !b.empty() && b[0] == '_' ? "private" + b : b;
}

// Where the file keeps layer i's weights: under its name, or, in a .keras
// file that does not record names (tf.keras 2), under the group Keras'
// saver named after its class: the k-th layer of a class is "<class>" for
// k = 0, "<class>_k" after it.
std::string WeightsKey(const KerasModel& keras, const KerasFile& file,
                       size_t i) {
  const KerasLayer& l = keras.layers[i];
  if (file.format != KerasFile::Format::kKeras3 ||
      file.weights.count(l.name) > 0) {
    return l.name;
  }
  int k = 0;
  for (size_t j = 0; j < i; ++j)
    k += keras.layers[j].class_name == l.class_name;
  const std::string base = "layers/" + SnakeCase(l.class_name);
  return k == 0 ? base : absl::StrCat(base, "_", k);
}

// Every weight of the file in layout order, each checked against the shape
// the config gives it.
absl::Status MatchWeights(const KerasModel& keras, const KerasFile& file,
                          ImportedModel* out) {
  const ModelSpec& model = out->spec.model;
  std::set<std::string> used;
  for (size_t i = 0; i < keras.layers.size(); ++i) {
    const KerasLayer& l = keras.layers[i];
    const std::vector<KerasWeight> layout = LayerLayout(model, i);
    const std::string key = WeightsKey(keras, file, i);
    auto it = file.weights.find(key);
    const size_t have = it == file.weights.end() ? 0 : it->second.size();
    if (have != layout.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the weights do not fit the config: layer '", l.name,
                       "' (", l.class_name, ") has ", have,
                       " weight arrays in the file, its "
                       "config needs ",
                       layout.size()));
    }
    if (have > 0) used.insert(key);
    for (size_t w = 0; w < layout.size(); ++w) {
      const NdArray& a = it->second[w];
      if (a.shape() != layout[w].shape) {
        std::string what = layout[w].name;
        what.erase(0, what.find('_') + 1);  // "layer0_kernel" -> "kernel"
        return absl::InvalidArgumentError(absl::StrCat(
            "the weights do not fit the config: layer '", l.name, "' (",
            l.class_name, ") ", what, " is ", ShapeText(a.shape()),
            " in the file, its config needs ", ShapeText(layout[w].shape)));
      }
      out->init_weights.push_back(a);
    }
  }
  if (used.size() != file.weights.size()) {
    std::vector<std::string> extra;
    for (const auto& [name, w] : file.weights) {
      if (used.count(name) == 0) extra.push_back(name);
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "the weights do not fit the config: the file has weights of layers "
        "the config does not have (",
        absl::StrJoin(extra, ", "), ")"));
  }
  return absl::OkStatus();
}

// A Bidirectional with merge_mode None gives two outputs: driftscope takes
// it as the last layer only, and in a Functional model only when the
// model's outputs are exactly its two, forward then backward.
absl::Status CheckTwoOutputs(const KerasModel& keras, const ModelSpec& model) {
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const LayerSpec& s = model.layers[i];
    if (!s.bidirectional || s.merge_mode != MergeMode::kNone) continue;
    const KerasLayer& l = keras.layers[i];
    const std::string what =
        absl::StrCat("layer '", l.name, "' (", l.class_name,
                     "): merge_mode None gives two outputs (forward, "
                     "backward); driftscope supports it only on the last "
                     "layer, with its two outputs as the model's outputs");
    if (i + 1 != model.layers.size()) {
      const KerasLayer& next = keras.layers[i + 1];
      return absl::InvalidArgumentError(
          absl::StrCat(what, ", but layer '", next.name, "' (", next.class_name,
                       ") comes after it"));
    }
    if (keras.class_name == "Sequential") continue;
    const std::vector<std::pair<std::string, int>> want = {{l.name, 0},
                                                           {l.name, 1}};
    if (keras.outputs != want) {
      std::vector<std::string> got;
      for (const auto& [name, k] : keras.outputs) {
        got.push_back(absl::StrCat(name, "[", k, "]"));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          what, " in this order, got the outputs [", absl::StrJoin(got, ", "),
          "] (want [", l.name, "[0], ", l.name, "[1]])"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

JobSpec ImportDefaults() {
  JobSpec spec = DefaultJobSpec();
  spec.seed = 42;
  spec.model.layers.clear();
  spec.optimizer = OptimizerSpec{};  // Keras' Adam(): no clipping
  spec.loss = LossKind::kMse;
  spec.data = DataSpec{};
  spec.training = TrainingSpec{};
  spec.training.shuffle = false;
  return spec;
}

absl::StatusOr<ImportedModel> ImportKerasFile(const KerasFile& file,
                                              const std::string& source) {
  absl::StatusOr<KerasModel> keras = ParseKerasModel(
      file.model_config, file.training_config, file.keras_version);
  if (!keras.ok()) return Prefixed(source, keras.status());
  ImportedModel out;
  out.spec = ImportDefaults();
  // A first Masking layer is the model's mask_value, not an engine layer
  // (it has no weights either).
  if (!keras->layers.empty() && keras->layers[0].class_name == "Masking") {
    absl::StatusOr<double> mask_value = MapKerasMasking(keras->layers[0]);
    if (!mask_value.ok()) return Prefixed(source, mask_value.status());
    out.spec.model.mask_value = *mask_value;
    keras->layers.erase(keras->layers.begin());
  }
  out.spec.model.timesteps = keras->timesteps;
  out.spec.model.features = keras->features;
  for (const KerasLayer& l : keras->layers) {
    absl::StatusOr<LayerSpec> layer = MapKerasLayer(l);
    if (!layer.ok()) return Prefixed(source, layer.status());
    // Keras 2's Embedding(input_length=...) states the sequence length.
    if (const google::protobuf::Value* len = l.config.Get("input_length");
        layer->kind == LayerKind::kEmbedding && len != nullptr &&
        len->has_number_value() && len->number_value() != keras->timesteps) {
      return Prefixed(
          source, l.config.Error("input_length",
                                 absl::StrCat("is ", len->number_value(),
                                              " but the model's input has ",
                                              keras->timesteps, " timesteps")));
    }
    out.spec.model.layers.push_back(*std::move(layer));
  }
  if (absl::Status s = CheckTwoOutputs(*keras, out.spec.model); !s.ok()) {
    return Prefixed(source, s);
  }
  // A model of token ids trains on the token generator unless data are
  // supplied.
  if (!out.spec.model.layers.empty() &&
      out.spec.model.layers.front().kind == LayerKind::kEmbedding) {
    out.spec.data.generator = DataSpec::Generator::kTokens;
  }
  if (keras->compile.has_value()) {
    if (absl::Status s = MapCompile(*keras->compile, &out.spec); !s.ok()) {
      return Prefixed(source, s);
    }
    out.compiled = true;
  }
  if (absl::Status s = ValidateJobSpec(out.spec); !s.ok()) {
    return Prefixed(source,
                    absl::InvalidArgumentError(absl::StrCat(
                        "the model maps to an invalid spec: ", s.message())));
  }
  if (absl::Status s = MatchWeights(*keras, file, &out); !s.ok()) {
    return Prefixed(source, s);
  }
  return out;
}

absl::StatusOr<ImportedModel> ImportKerasModel(const std::string& path) {
  absl::StatusOr<KerasFile> file = ReadKerasFile(path);
  if (!file.ok()) return file.status();
  return ImportKerasFile(*file, path);
}

}  // namespace driftscope
