// One function per Keras layer class; kLayerMappers lists them. Mapping a
// new engine layer is one function and one table row.
#include "client/import/keras_layers.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace driftscope {

namespace {

using Mapper = absl::StatusOr<LayerSpec> (*)(const KerasLayer&);

absl::Status Refuse(const KerasLayer& l, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(l.config.where(), ": ", what));
}

// A Keras activation name. "hard_sigmoid" is relu6(x + 3)/6 in Keras 3 and
// clip(0.2x + 0.5, 0, 1) in Keras 2.
absl::StatusOr<Activation> MapActivation(const KerasLayer& l,
                                         const std::string& key,
                                         const std::string& absent) {
  absl::StatusOr<std::string> name = l.config.String(key, absent);
  if (!name.ok()) return name.status();
  if (*name == "tanh") return Activation::kTanh;
  if (*name == "sigmoid") return Activation::kSigmoid;
  if (*name == "relu") return Activation::kRelu;
  if (*name == "linear") return Activation::kLinear;
  if (*name == "hard_sigmoid") {
    return l.keras2 ? Activation::kHardSigmoidKeras2
                    : Activation::kHardSigmoidKeras3;
  }
  return l.config.Error(key, absl::StrCat("\"", *name,
                                          "\" is not supported (supported: "
                                          "tanh, sigmoid, hard_sigmoid, relu, "
                                          "linear)"));
}

// Keras initializer classes (Keras 3 and Keras 2 spellings). The imported
// weights replace what they would draw, but the spec names them so that a
// run without the file's weights draws like Keras.
absl::StatusOr<InitializerSpec> MapInitializer(const KerasLayer& l,
                                               const std::string& key,
                                               InitializerSpec::Kind absent) {
  InitializerSpec init{absent};
  const google::protobuf::Value* v = l.config.Get(key);
  if (v == nullptr) return init;
  absl::StatusOr<KerasObject> o =
      ReadKerasObject(*v, absl::StrCat(l.config.where(), ": ", key));
  if (!o.ok()) return o.status();
  const std::string& c = o->class_name;
  auto number = [&](const char* k, double d) -> absl::StatusOr<double> {
    if (!o->config.has_value()) return d;
    return o->config->Number(k, d);
  };
  absl::StatusOr<double> a = 0.0, b = 0.0;
  if (c == "GlorotUniform" || c == "glorot_uniform") {
    init.kind = InitializerSpec::Kind::kGlorotUniform;
  } else if (c == "Orthogonal" || c == "orthogonal") {
    init.kind = InitializerSpec::Kind::kOrthogonal;
    if (!(a = number("gain", 1.0)).ok()) return a.status();
    init.gain = *a;
  } else if (c == "Zeros" || c == "zeros") {
    init.kind = InitializerSpec::Kind::kZeros;
  } else if (c == "Ones" || c == "ones") {
    init.kind = InitializerSpec::Kind::kOnes;
  } else if (c == "RandomUniform" || c == "random_uniform") {
    init.kind = InitializerSpec::Kind::kRandomUniform;
    if (!(a = number("minval", -0.05)).ok()) return a.status();
    if (!(b = number("maxval", 0.05)).ok()) return b.status();
    init.minval = *a;
    init.maxval = *b;
  } else if (c == "RandomNormal" || c == "random_normal") {
    init.kind = InitializerSpec::Kind::kRandomNormal;
    if (!(a = number("mean", 0.0)).ok()) return a.status();
    if (!(b = number("stddev", 0.05)).ok()) return b.status();
    init.mean = *a;
    init.stddev = *b;
  } else {
    return l.config.Error(
        key, absl::StrCat(c,
                          " is not supported (supported: GlorotUniform, "
                          "Orthogonal, Zeros, Ones, RandomUniform, "
                          "RandomNormal)"));
  }
  return init;
}

// Options that change what Keras computes and that no spec field holds.
absl::Status RefuseUnsupportedOptions(const KerasLayer& l) {
  for (const char* key :
       {"kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
        "activity_regularizer", "kernel_constraint", "recurrent_constraint",
        "bias_constraint"}) {
    if (l.config.Has(key)) {
      return l.config.Error(key, "is not supported (it must be None)");
    }
  }
  absl::StatusOr<bool> trainable = l.config.Bool("trainable", true);
  if (!trainable.ok()) return trainable.status();
  if (!*trainable) {
    return Refuse(l,
                  "trainable=False is not supported (driftscope trains every "
                  "weight)");
  }
  for (const char* key : {"stateful", "time_major"}) {
    absl::StatusOr<bool> on = l.config.Bool(key, false);
    if (!on.ok()) return on.status();
    if (*on) return Refuse(l, absl::StrCat(key, "=True is not supported"));
  }
  return absl::OkStatus();
}

// What LSTM, GRU and SimpleRNN share. `activation_absent`: Keras' default.
absl::Status MapRecurrentCommon(const KerasLayer& l, LayerSpec* s) {
  if (absl::Status st = RefuseUnsupportedOptions(l); !st.ok()) return st;
  absl::StatusOr<int> units = l.config.Int("units", 0);
  if (!units.ok()) return units.status();
  s->units = *units;
  absl::StatusOr<bool> b = l.config.Bool("return_sequences", false);
  if (!b.ok()) return b.status();
  s->return_sequences = *b;
  if (!(b = l.config.Bool("return_state", false)).ok()) return b.status();
  s->return_state = *b;
  if (!(b = l.config.Bool("go_backwards", false)).ok()) return b.status();
  s->go_backwards = *b;
  if (!(b = l.config.Bool("use_bias", true)).ok()) return b.status();
  s->use_bias = *b;
  absl::StatusOr<Activation> act = MapActivation(l, "activation", "tanh");
  if (!act.ok()) return act.status();
  s->activation = *act;
  absl::StatusOr<double> d = l.config.Number("dropout", 0.0);
  if (!d.ok()) return d.status();
  s->dropout = *d;
  absl::StatusOr<double> rd = l.config.Number("recurrent_dropout", 0.0);
  if (!rd.ok()) return rd.status();
  s->recurrent_dropout = *rd;
  absl::StatusOr<InitializerSpec> init = MapInitializer(
      l, "kernel_initializer", InitializerSpec::Kind::kGlorotUniform);
  if (!init.ok()) return init.status();
  s->kernel_initializer = *init;
  init = MapInitializer(l, "recurrent_initializer",
                        InitializerSpec::Kind::kOrthogonal);
  if (!init.ok()) return init.status();
  s->recurrent_initializer = *init;
  init = MapInitializer(l, "bias_initializer", InitializerSpec::Kind::kZeros);
  if (!init.ok()) return init.status();
  s->bias_initializer = *init;
  return absl::OkStatus();
}

absl::Status MapImplementation(const KerasLayer& l, LayerSpec* s) {
  absl::StatusOr<int> impl = l.config.Int("implementation", 2);
  if (!impl.ok()) return impl.status();
  if (*impl != 1 && *impl != 2) {
    return l.config.Error("implementation",
                          absl::StrCat("must be 1 or 2, got ", *impl));
  }
  s->implementation = *impl;
  return absl::OkStatus();
}

absl::StatusOr<LayerSpec> MapLstm(const KerasLayer& l) {
  LayerSpec s;
  s.kind = LayerKind::kLstm;
  if (absl::Status st = MapRecurrentCommon(l, &s); !st.ok()) return st;
  if (absl::Status st = MapImplementation(l, &s); !st.ok()) return st;
  absl::StatusOr<Activation> act =
      MapActivation(l, "recurrent_activation", "sigmoid");
  if (!act.ok()) return act.status();
  s.recurrent_activation = *act;
  absl::StatusOr<bool> b = l.config.Bool("unit_forget_bias", true);
  if (!b.ok()) return b.status();
  s.unit_forget_bias = *b;
  return s;
}

absl::StatusOr<LayerSpec> MapGru(const KerasLayer& l) {
  LayerSpec s;
  s.kind = LayerKind::kGru;
  if (absl::Status st = MapRecurrentCommon(l, &s); !st.ok()) return st;
  if (absl::Status st = MapImplementation(l, &s); !st.ok()) return st;
  absl::StatusOr<Activation> act =
      MapActivation(l, "recurrent_activation", "sigmoid");
  if (!act.ok()) return act.status();
  s.recurrent_activation = *act;
  // Absent only in files older than tf.keras 2.3; Keras' default since.
  absl::StatusOr<bool> b = l.config.Bool("reset_after", true);
  if (!b.ok()) return b.status();
  s.reset_after = *b;
  return s;
}

absl::StatusOr<LayerSpec> MapSimpleRnn(const KerasLayer& l) {
  LayerSpec s;
  s.kind = LayerKind::kSimpleRnn;
  if (absl::Status st = MapRecurrentCommon(l, &s); !st.ok()) return st;
  return s;
}

absl::StatusOr<LayerSpec> MapDense(const KerasLayer& l) {
  LayerSpec s;
  s.kind = LayerKind::kDense;
  if (absl::Status st = RefuseUnsupportedOptions(l); !st.ok()) return st;
  absl::StatusOr<int> units = l.config.Int("units", 0);
  if (!units.ok()) return units.status();
  s.units = *units;
  absl::StatusOr<bool> b = l.config.Bool("use_bias", true);
  if (!b.ok()) return b.status();
  s.use_bias = *b;
  absl::StatusOr<Activation> act = MapActivation(l, "activation", "linear");
  if (!act.ok()) return act.status();
  s.activation = *act;
  absl::StatusOr<InitializerSpec> init = MapInitializer(
      l, "kernel_initializer", InitializerSpec::Kind::kGlorotUniform);
  if (!init.ok()) return init.status();
  s.kernel_initializer = *init;
  init = MapInitializer(l, "bias_initializer", InitializerSpec::Kind::kZeros);
  if (!init.ok()) return init.status();
  s.bias_initializer = *init;
  return s;
}

// Layers the engine is gaining; each becomes a mapper like the ones above
// once the spec has it ({"masking": {"mask_value": ...}}).

// The LSTM, GRU or SimpleRNN config `key` of a Bidirectional, mapped as a
// layer of its own; its messages name the wrapper and the wrapped layer.
absl::StatusOr<LayerSpec> MapWrapped(const KerasLayer& l, const char* key) {
  const google::protobuf::Value* v = l.config.Get(key);
  if (v == nullptr) return l.config.Error(key, "is missing");
  absl::StatusOr<KerasObject> o =
      ReadKerasObject(*v, absl::StrCat(l.config.where(), ": ", key));
  if (!o.ok()) return o.status();
  const std::string& c = o->class_name;
  if (c != "LSTM" && c != "GRU" && c != "SimpleRNN") {
    return l.config.Error(key, absl::StrCat("is a ", c,
                                            "; Bidirectional wraps LSTM, GRU "
                                            "or SimpleRNN only"));
  }
  // ReadKerasObject took a plain string too; a wrapped layer needs its
  // config, and an empty one reads as Keras' defaults (units then fails).
  google::protobuf::Struct cfg;
  if (v->has_struct_value()) {
    auto it = v->struct_value().fields().find("config");
    if (it != v->struct_value().fields().end()) cfg = it->second.struct_value();
  }
  // Keras' Bidirectional sets zero_output_for_mask on both copies itself,
  // so the saved copies carry it; DirectionSpec does the same.
  cfg.mutable_fields()->erase("zero_output_for_mask");
  auto name = cfg.fields().find("name");
  const std::string inner =
      name == cfg.fields().end() ? key : name->second.string_value();
  KerasLayer wrapped{c, inner,
                     KerasConfig(cfg, absl::StrCat(l.config.where(), ": ", key,
                                                   " '", inner, "' (", c, ")")),
                     l.keras2};
  return MapKerasLayer(wrapped);
}

// What a backward copy must share with the forward one for driftscope's
// bidirectional layer (which builds the backward copy from the forward
// config) to compute what Keras computes.
bool SameComputation(const LayerSpec& a, const LayerSpec& b) {
  return a.kind == b.kind && a.units == b.units &&
         a.return_sequences == b.return_sequences &&
         a.return_state == b.return_state && a.use_bias == b.use_bias &&
         a.activation == b.activation &&
         a.recurrent_activation == b.recurrent_activation &&
         a.implementation == b.implementation &&
         a.unit_forget_bias == b.unit_forget_bias &&
         a.reset_after == b.reset_after && a.dropout == b.dropout &&
         a.recurrent_dropout == b.recurrent_dropout;
}

// keras.layers.Bidirectional(layer, merge_mode, backward_layer). Keras 3
// writes the backward copy it made as "backward_layer"; Keras 2 writes one
// only when the model was built with its own backward layer.
absl::StatusOr<LayerSpec> MapBidirectional(const KerasLayer& l) {
  if (absl::Status st = RefuseUnsupportedOptions(l); !st.ok()) return st;
  // Both Keras 2 and Keras 3 always write merge_mode; null is None.
  absl::StatusOr<std::string> mode = l.config.String("merge_mode", "");
  if (!mode.ok()) return mode.status();
  MergeMode merge;
  if (*mode == "concat") {
    merge = MergeMode::kConcat;
  } else if (*mode == "sum") {
    merge = MergeMode::kSum;
  } else if (*mode == "mul") {
    merge = MergeMode::kMul;
  } else if (*mode == "ave") {
    merge = MergeMode::kAve;
  } else if (mode->empty()) {
    // None: two outputs; only as the model's last layer, whose two outputs
    // are the model's (CheckTwoOutputs in keras_import.cc).
    merge = MergeMode::kNone;
  } else {
    return l.config.Error("merge_mode",
                          absl::StrCat("\"", *mode,
                                       "\" is not supported (supported: "
                                       "concat, sum, mul, ave)"));
  }
  absl::StatusOr<LayerSpec> s = MapWrapped(l, "layer");
  if (!s.ok()) return s.status();
  if (s->go_backwards) {
    return Refuse(l,
                  "the wrapped layer has go_backwards=True (Keras makes the "
                  "backward copy itself)");
  }
  if (s->return_state) {
    return Refuse(l,
                  "return_state=True inside Bidirectional is not supported "
                  "yet");
  }
  if (l.config.Has("backward_layer")) {
    absl::StatusOr<LayerSpec> b = MapWrapped(l, "backward_layer");
    if (!b.ok()) return b.status();
    if (!b->go_backwards) {
      return l.config.Error("backward_layer",
                            "must have go_backwards=True (Keras requires it)");
    }
    b->go_backwards = false;
    if (!SameComputation(*s, *b)) {
      return l.config.Error("backward_layer",
                            "differs from the forward layer in more than "
                            "its name and go_backwards; driftscope's "
                            "Bidirectional runs two copies of one layer");
    }
  }
  s->bidirectional = true;
  s->merge_mode = merge;
  return s;
}
// A Masking layer that is not the first (MapKerasMasking maps the first).
absl::StatusOr<LayerSpec> MapMasking(const KerasLayer& l) {
  return Refuse(l,
                "Masking is supported only as the model's first layer, "
                "once");
}
// keras.layers.Embedding(input_dim, output_dim, embeddings_initializer,
// mask_zero). The spec checks that it is the first layer.
absl::StatusOr<LayerSpec> MapEmbedding(const KerasLayer& l) {
  for (const char* key : {"embeddings_regularizer", "activity_regularizer",
                          "embeddings_constraint"}) {
    if (l.config.Has(key)) {
      return l.config.Error(key, "is not supported (it must be None)");
    }
  }
  absl::StatusOr<bool> b = l.config.Bool("trainable", true);
  if (!b.ok()) return b.status();
  if (!*b) {
    return Refuse(l,
                  "trainable=False is not supported (driftscope trains every "
                  "weight)");
  }
  if (!(b = l.config.Bool("sparse", false)).ok()) return b.status();
  if (*b) {
    return Refuse(l,
                  "sparse=True is not supported (driftscope's embedding "
                  "outputs dense rows)");
  }
  for (const char* key : {"lora_rank", "quantization_config"}) {
    if (l.config.Has(key)) {
      return l.config.Error(key, "is not supported (it must be None)");
    }
  }
  absl::StatusOr<int> input_dim = l.config.Int("input_dim", 0);
  if (!input_dim.ok()) return input_dim.status();
  absl::StatusOr<int> output_dim = l.config.Int("output_dim", 0);
  if (!output_dim.ok()) return output_dim.status();
  // Keras requires both (positive integers).
  if (*input_dim < 1) {
    return l.config.Error("input_dim", "must be given and at least 1");
  }
  if (*output_dim < 1) {
    return l.config.Error("output_dim", "must be given and at least 1");
  }
  LayerSpec s = EmbeddingLayerSpec(*input_dim, *output_dim);
  if (!(b = l.config.Bool("mask_zero", false)).ok()) return b.status();
  s.mask_zero = *b;  // token id 0 is padding: the model's timestep mask
  // Keras' default "uniform" is RandomUniform(-0.05, 0.05), which
  // EmbeddingLayerSpec already holds.
  const google::protobuf::Value* v = l.config.Get("embeddings_initializer");
  if (v != nullptr &&
      !(v->has_string_value() && v->string_value() == "uniform")) {
    absl::StatusOr<InitializerSpec> init = MapInitializer(
        l, "embeddings_initializer", InitializerSpec::Kind::kRandomUniform);
    if (!init.ok()) return init.status();
    s.kernel_initializer = *init;
  }
  return s;
}
absl::StatusOr<LayerSpec> MapDropoutLayer(const KerasLayer& l) {
  return Refuse(l,
                "a Dropout layer is not supported yet (the dropout= option "
                "of LSTM, GRU and SimpleRNN is)");
}

constexpr struct {
  const char* keras_class;
  Mapper map;
  bool supported;  // listed as supported in messages
} kLayerMappers[] = {
    {"LSTM", MapLstm, true},
    {"GRU", MapGru, true},
    {"SimpleRNN", MapSimpleRnn, true},
    {"Dense", MapDense, true},
    {"Bidirectional", MapBidirectional, true},
    {"Masking", MapMasking, true},
    {"Embedding", MapEmbedding, true},
    {"Dropout", MapDropoutLayer, false},
};

}  // namespace

std::string SupportedKerasLayers() {
  std::vector<std::string> names;
  for (const auto& m : kLayerMappers) {
    if (m.supported) names.push_back(m.keras_class);
  }
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<double> MapKerasMasking(const KerasLayer& layer) {
  absl::StatusOr<double> v = layer.config.Number("mask_value", 0.0);
  if (!v.ok()) return v.status();
  if (!std::isfinite(*v)) {
    return layer.config.Error("mask_value", "must be a finite number");
  }
  return *v;
}

absl::StatusOr<LayerSpec> MapKerasLayer(const KerasLayer& layer) {
  // Keras' Bidirectional sets zero_output_for_mask on its two copies itself
  // (to return_sequences, as DirectionSpec does); a plain RNN layer with it
  // set would output zeros at masked steps, which no spec field says.
  const std::string& c = layer.class_name;
  if (c == "LSTM" || c == "GRU" || c == "SimpleRNN") {
    absl::StatusOr<bool> zero =
        layer.config.Bool("zero_output_for_mask", false);
    if (!zero.ok()) return zero.status();
    if (*zero) {
      return Refuse(layer,
                    "zero_output_for_mask=True is not supported outside a "
                    "Bidirectional");
    }
  }
  for (const auto& m : kLayerMappers) {
    if (layer.class_name == m.keras_class) return m.map(layer);
  }
  return Refuse(layer, absl::StrCat("the layer class ", layer.class_name,
                                    " is not supported (supported: ",
                                    SupportedKerasLayers(), ")"));
}

}  // namespace driftscope
