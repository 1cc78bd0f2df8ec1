#include "client/import/keras_import.h"

#include <string>
#include <utility>
#include <vector>

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
  const std::string& k = o->class_name;
  absl::StatusOr<double> d = 0.0;
  absl::StatusOr<bool> b = false;
  if (k == "Adam" || k == "adam" || k == "AdamW" || k == "adamw") {
    s.kind = OptimizerKind::kAdam;
    if (k == "AdamW" || k == "adamw") s.weight_decay = 0.004;
    if (!(d = c.Number("beta_1", s.beta_1)).ok()) return d.status();
    s.beta_1 = *d;
    if (!(d = c.Number("beta_2", s.beta_2)).ok()) return d.status();
    s.beta_2 = *d;
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

// Every weight of the file in layout order, each checked against the shape
// the config gives it.
absl::Status MatchWeights(const KerasModel& keras, const KerasFile& file,
                          ImportedModel* out) {
  const ModelSpec& model = out->spec.model;
  size_t used = 0;
  for (size_t i = 0; i < keras.layers.size(); ++i) {
    const KerasLayer& l = keras.layers[i];
    const std::vector<KerasWeight> layout = LayerLayout(model, i);
    auto it = file.weights.find(l.name);
    const size_t have = it == file.weights.end() ? 0 : it->second.size();
    if (have != layout.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the weights do not fit the config: layer '", l.name,
                       "' (", l.class_name, ") has ", have,
                       " weight arrays in the file, its "
                       "config needs ",
                       layout.size()));
    }
    if (have > 0) ++used;
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
  if (used != file.weights.size()) {
    std::vector<std::string> extra;
    for (const auto& [name, w] : file.weights) {
      bool known = false;
      for (const KerasLayer& l : keras.layers) known |= l.name == name;
      if (!known) extra.push_back(name);
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "the weights do not fit the config: the file has weights of layers "
        "the config does not have (",
        absl::StrJoin(extra, ", "), ")"));
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
