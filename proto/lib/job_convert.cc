#include "proto/lib/job_convert.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace driftscope {

namespace {

constexpr struct {
  const char* name;
  Activation activation;
} kActivations[] = {
    {"tanh", Activation::kTanh},
    {"sigmoid", Activation::kSigmoid},
    {"hard_sigmoid", Activation::kHardSigmoidKeras3},
    {"hard_sigmoid_keras2", Activation::kHardSigmoidKeras2},
    {"relu", Activation::kRelu},
    {"linear", Activation::kLinear},
    // The engine's own spelling of the Keras 3 form, accepted as an alias.
    {"hard_sigmoid_keras3", Activation::kHardSigmoidKeras3},
};

constexpr struct {
  const char* name;
  InitializerSpec::Kind kind;
} kInitializers[] = {
    {"glorot_uniform", InitializerSpec::Kind::kGlorotUniform},
    {"orthogonal", InitializerSpec::Kind::kOrthogonal},
    {"zeros", InitializerSpec::Kind::kZeros},
    {"ones", InitializerSpec::Kind::kOnes},
    {"random_uniform", InitializerSpec::Kind::kRandomUniform},
    {"random_normal", InitializerSpec::Kind::kRandomNormal},
};

absl::Status Invalid(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// An empty name keeps `*out` (the layer's default).
absl::Status ParseActivation(const std::string& path, const std::string& name,
                             Activation* out) {
  if (name.empty()) return absl::OkStatus();
  for (const auto& a : kActivations) {
    if (name == a.name) {
      *out = a.activation;
      return absl::OkStatus();
    }
  }
  return Invalid(path,
                 absl::StrCat("unknown activation \"", absl::CHexEscape(name),
                              "\"; valid: tanh, sigmoid, hard_sigmoid "
                              "(Keras 3), hard_sigmoid_keras2, relu, "
                              "linear"));
}

// A field that is not set keeps `*out` (the layer's default).
absl::Status ParseInitializer(const std::string& path, bool has,
                              const v1::Initializer& proto,
                              InitializerSpec* out) {
  if (!has) return absl::OkStatus();
  InitializerSpec spec;  // Keras default parameters
  switch (proto.kind_case()) {
    case v1::Initializer::kName: {
      bool found = false;
      for (const auto& i : kInitializers) {
        if (proto.name() == i.name) {
          spec.kind = i.kind;
          found = true;
        }
      }
      if (!found) {
        return Invalid(
            path + ".name",
            absl::StrCat("unknown initializer \"",
                         absl::CHexEscape(proto.name()),
                         "\"; valid: glorot_uniform, orthogonal, zeros, ones, "
                         "random_uniform, random_normal"));
      }
      break;
    }
    case v1::Initializer::kRandomUniform:
      spec.kind = InitializerSpec::Kind::kRandomUniform;
      if (proto.random_uniform().has_minval()) {
        spec.minval = proto.random_uniform().minval();
      }
      if (proto.random_uniform().has_maxval()) {
        spec.maxval = proto.random_uniform().maxval();
      }
      break;
    case v1::Initializer::kRandomNormal:
      spec.kind = InitializerSpec::Kind::kRandomNormal;
      if (proto.random_normal().has_mean()) {
        spec.mean = proto.random_normal().mean();
      }
      if (proto.random_normal().has_stddev()) {
        spec.stddev = proto.random_normal().stddev();
      }
      break;
    case v1::Initializer::kOrthogonal:
      spec.kind = InitializerSpec::Kind::kOrthogonal;
      if (proto.orthogonal().has_gain()) spec.gain = proto.orthogonal().gain();
      break;
    case v1::Initializer::KIND_NOT_SET:
      return Invalid(path,
                     "exactly one of name, random_uniform, random_normal, "
                     "orthogonal must be set, e.g. {\"name\": "
                     "\"glorot_uniform\"}");
  }
  *out = spec;
  return absl::OkStatus();
}

// The fields LSTM, GRU and SimpleRNN share.
template <typename Rnn>
absl::Status ParseRnnCommon(const std::string& path, const Rnn& p,
                            LayerSpec* l) {
  l->units = p.units();
  l->return_sequences = p.return_sequences();
  l->return_state = p.return_state();
  l->go_backwards = p.go_backwards();
  if (p.has_use_bias()) l->use_bias = p.use_bias();
  l->dropout = p.dropout();
  l->recurrent_dropout = p.recurrent_dropout();
  if (absl::Status s =
          ParseActivation(path + ".activation", p.activation(), &l->activation);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ParseInitializer(
          path + ".kernel_initializer", p.has_kernel_initializer(),
          p.kernel_initializer(), &l->kernel_initializer);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ParseInitializer(
          path + ".recurrent_initializer", p.has_recurrent_initializer(),
          p.recurrent_initializer(), &l->recurrent_initializer);
      !s.ok()) {
    return s;
  }
  return ParseInitializer(path + ".bias_initializer", p.has_bias_initializer(),
                          p.bias_initializer(), &l->bias_initializer);
}

// LSTM and GRU: the gated cells.
template <typename Gated>
absl::Status ParseGated(const std::string& path, const Gated& p, LayerSpec* l) {
  if (absl::Status s = ParseRnnCommon(path, p, l); !s.ok()) return s;
  if (p.has_implementation()) l->implementation = p.implementation();
  return ParseActivation(path + ".recurrent_activation",
                         p.recurrent_activation(), &l->recurrent_activation);
}

absl::StatusOr<LayerSpec> ParseLayer(const std::string& path,
                                     const v1::Layer& proto) {
  LayerSpec l;  // Keras defaults
  absl::Status s;
  switch (proto.kind_case()) {
    case v1::Layer::kLstm:
      l.kind = LayerKind::kLstm;
      s = ParseGated(path + ".lstm", proto.lstm(), &l);
      if (proto.lstm().has_unit_forget_bias()) {
        l.unit_forget_bias = proto.lstm().unit_forget_bias();
      }
      break;
    case v1::Layer::kGru:
      l.kind = LayerKind::kGru;
      s = ParseGated(path + ".gru", proto.gru(), &l);
      if (proto.gru().has_reset_after()) {
        l.reset_after = proto.gru().reset_after();
      }
      break;
    case v1::Layer::kSimpleRnn:
      l.kind = LayerKind::kSimpleRnn;
      s = ParseRnnCommon(path + ".simple_rnn", proto.simple_rnn(), &l);
      break;
    case v1::Layer::kDense: {
      const v1::Dense& d = proto.dense();
      const std::string p = path + ".dense";
      l.kind = LayerKind::kDense;
      l.units = d.units();
      l.activation = Activation::kLinear;
      if (d.has_use_bias()) l.use_bias = d.use_bias();
      s = ParseActivation(p + ".activation", d.activation(), &l.activation);
      if (s.ok()) {
        s = ParseInitializer(p + ".kernel_initializer",
                             d.has_kernel_initializer(), d.kernel_initializer(),
                             &l.kernel_initializer);
      }
      if (s.ok()) {
        s = ParseInitializer(p + ".bias_initializer", d.has_bias_initializer(),
                             d.bias_initializer(), &l.bias_initializer);
      }
      break;
    }
    case v1::Layer::kEmbedding: {
      const v1::Embedding& e = proto.embedding();
      l = EmbeddingLayerSpec(e.input_dim(), e.output_dim());
      l.mask_zero = e.mask_zero();
      s = ParseInitializer(path + ".embedding.embeddings_initializer",
                           e.has_embeddings_initializer(),
                           e.embeddings_initializer(), &l.kernel_initializer);
      break;
    }
    case v1::Layer::kBidirectional: {
      const v1::Bidirectional& b = proto.bidirectional();
      const std::string p = path + ".bidirectional";
      const std::string& mode = b.merge_mode();
      if (!b.has_layer()) return Invalid(p + ".layer", "must be set");
      const v1::Layer::KindCase inner = b.layer().kind_case();
      if (inner == v1::Layer::kDense || inner == v1::Layer::kBidirectional ||
          inner == v1::Layer::kEmbedding) {
        return Invalid(p + ".layer",
                       "must be one of lstm, gru, simple_rnn (Keras' "
                       "Bidirectional wraps an RNN layer)");
      }
      absl::StatusOr<LayerSpec> wrapped = ParseLayer(p + ".layer", b.layer());
      if (!wrapped.ok()) return wrapped.status();
      l = *std::move(wrapped);
      l.bidirectional = true;
      if (mode.empty() || mode == "concat") {
        l.merge_mode = MergeMode::kConcat;
      } else if (mode == "sum") {
        l.merge_mode = MergeMode::kSum;
      } else if (mode == "mul") {
        l.merge_mode = MergeMode::kMul;
      } else if (mode == "ave") {
        l.merge_mode = MergeMode::kAve;
      } else if (mode == "none") {
        l.merge_mode = MergeMode::kNone;
      } else {
        return Invalid(
            p + ".merge_mode",
            absl::StrCat("must be one of concat, sum, mul, ave, none, got \"",
                         mode, "\""));
      }
      break;
    }
    case v1::Layer::kMasking:
      return Invalid(path + ".masking",
                     "Masking is supported only as the model's first layer "
                     "(layers[0]), once");
    case v1::Layer::KIND_NOT_SET:
      return Invalid(path,
                     "exactly one of lstm, gru, simple_rnn, dense, "
                     "bidirectional, embedding must be set");
  }
  if (!s.ok()) return s;
  return l;
}

absl::Status ParseOptimizer(const v1::Optimizer& p, OptimizerSpec* o) {
  *o = OptimizerSpec{};
  switch (p.kind_case()) {
    case v1::Optimizer::kAdam:
    case v1::Optimizer::kAdamw:
    case v1::Optimizer::KIND_NOT_SET: {
      const bool adamw = p.kind_case() == v1::Optimizer::kAdamw;
      // The default instance when unset.
      const v1::Adam& a = adamw ? p.adamw() : p.adam();
      o->kind = OptimizerKind::kAdam;
      if (adamw) o->weight_decay = 0.004;  // keras.optimizers.AdamW default
      o->learning_rate = a.has_learning_rate() ? a.learning_rate() : 0.001;
      if (a.has_beta_1()) o->beta_1 = a.beta_1();
      if (a.has_beta_2()) o->beta_2 = a.beta_2();
      if (a.has_epsilon()) o->epsilon = a.epsilon();
      o->amsgrad = a.amsgrad();
      break;
    }
    case v1::Optimizer::kSgd: {
      const v1::Sgd& g = p.sgd();
      o->kind = OptimizerKind::kSgd;
      o->learning_rate = g.has_learning_rate() ? g.learning_rate() : 0.01;
      o->momentum = g.momentum();
      o->nesterov = g.nesterov();
      break;
    }
    case v1::Optimizer::kRmsprop: {
      const v1::RmsProp& r = p.rmsprop();
      o->kind = OptimizerKind::kRmsprop;
      o->learning_rate = r.has_learning_rate() ? r.learning_rate() : 0.001;
      if (r.has_rho()) o->rho = r.rho();
      o->momentum = r.momentum();
      if (r.has_epsilon()) o->epsilon = r.epsilon();
      o->centered = r.centered();
      break;
    }
  }
  if (p.has_clipnorm()) o->clipnorm = p.clipnorm();
  if (p.has_global_clipnorm()) o->global_clipnorm = p.global_clipnorm();
  if (p.has_clipvalue()) o->clipvalue = p.clipvalue();
  if (p.has_weight_decay()) o->weight_decay = p.weight_decay();
  return absl::OkStatus();
}

absl::Status ParseData(const v1::Data& p, DataSpec* d,
                       SuppliedDataPaths* supplied) {
  *d = DataSpec{};
  switch (p.source_case()) {
    case v1::Data::kSynthetic:
    case v1::Data::SOURCE_NOT_SET: {
      const v1::SyntheticData& s = p.synthetic();
      switch (s.generator()) {
        case v1::SyntheticData::GENERATOR_UNSPECIFIED:
        case v1::SyntheticData::SINE:
          d->generator = DataSpec::Generator::kSine;
          break;
        case v1::SyntheticData::RANDOM_WALK:
          d->generator = DataSpec::Generator::kRandomWalk;
          break;
        case v1::SyntheticData::DELAYED_COPY:
          d->generator = DataSpec::Generator::kDelayedCopy;
          break;
        case v1::SyntheticData::TOKENS:
          d->generator = DataSpec::Generator::kTokens;
          break;
        default:
          return Invalid("data.synthetic.generator",
                         absl::StrCat("unknown generator ", s.generator(),
                                      "; valid: SINE, RANDOM_WALK, "
                                      "DELAYED_COPY, TOKENS"));
      }
      if (s.has_samples()) d->samples = s.samples();
      if (s.has_eval_samples()) d->eval_samples = s.eval_samples();
      if (s.has_noise()) d->noise = s.noise();
      if (s.has_delay()) d->delay = s.delay();
      d->pad_tail_max = s.pad_tail_max();
      return absl::OkStatus();
    }
    case v1::Data::kSupplied: {
      if (supplied == nullptr) {
        return Invalid("data.supplied",
                       ".npy paths are read by the driftscope CLI only; "
                       "send the tensors themselves");
      }
      const v1::SuppliedData& s = p.supplied();
      if (s.x().empty() || s.y().empty()) {
        return Invalid("data.supplied", "both x and y must be given");
      }
      supplied->x = s.x();
      supplied->y = s.y();
      supplied->eval_x = s.eval_x();
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

void InitializerToProto(const InitializerSpec& s, v1::Initializer* p) {
  switch (s.kind) {
    case InitializerSpec::Kind::kRandomUniform:
      p->mutable_random_uniform()->set_minval(s.minval);
      p->mutable_random_uniform()->set_maxval(s.maxval);
      return;
    case InitializerSpec::Kind::kRandomNormal:
      p->mutable_random_normal()->set_mean(s.mean);
      p->mutable_random_normal()->set_stddev(s.stddev);
      return;
    case InitializerSpec::Kind::kOrthogonal:
      p->mutable_orthogonal()->set_gain(s.gain);
      return;
    default:
      for (const auto& i : kInitializers) {
        if (i.kind == s.kind) p->set_name(i.name);
      }
  }
}

template <typename Rnn>
void RnnCommonToProto(const LayerSpec& l, Rnn* p) {
  p->set_units(l.units);
  p->set_return_sequences(l.return_sequences);
  p->set_return_state(l.return_state);
  p->set_go_backwards(l.go_backwards);
  p->set_activation(ActivationJsonName(l.activation));
  p->set_use_bias(l.use_bias);
  p->set_dropout(l.dropout);
  p->set_recurrent_dropout(l.recurrent_dropout);
  InitializerToProto(l.kernel_initializer, p->mutable_kernel_initializer());
  InitializerToProto(l.recurrent_initializer,
                     p->mutable_recurrent_initializer());
  InitializerToProto(l.bias_initializer, p->mutable_bias_initializer());
}

template <typename Gated>
void GatedToProto(const LayerSpec& l, Gated* p) {
  RnnCommonToProto(l, p);
  p->set_recurrent_activation(ActivationJsonName(l.recurrent_activation));
  p->set_implementation(l.implementation);
}

void LayerToProto(const LayerSpec& l, v1::Layer* layer) {
  if (l.bidirectional) {
    v1::Bidirectional* b = layer->mutable_bidirectional();
    b->set_merge_mode(MergeModeName(l.merge_mode));
    LayerToProto(DirectionSpec(l, false), b->mutable_layer());
    return;
  }
  switch (l.kind) {
    case LayerKind::kLstm:
      GatedToProto(l, layer->mutable_lstm());
      layer->mutable_lstm()->set_unit_forget_bias(l.unit_forget_bias);
      break;
    case LayerKind::kGru:
      GatedToProto(l, layer->mutable_gru());
      layer->mutable_gru()->set_reset_after(l.reset_after);
      break;
    case LayerKind::kSimpleRnn:
      RnnCommonToProto(l, layer->mutable_simple_rnn());
      break;
    case LayerKind::kEmbedding: {
      v1::Embedding* e = layer->mutable_embedding();
      e->set_input_dim(l.input_dim);
      e->set_output_dim(l.units);
      e->set_mask_zero(l.mask_zero);
      InitializerToProto(l.kernel_initializer,
                         e->mutable_embeddings_initializer());
      break;
    }
    case LayerKind::kDense: {
      v1::Dense* d = layer->mutable_dense();
      d->set_units(l.units);
      d->set_activation(ActivationJsonName(l.activation));
      d->set_use_bias(l.use_bias);
      InitializerToProto(l.kernel_initializer, d->mutable_kernel_initializer());
      InitializerToProto(l.bias_initializer, d->mutable_bias_initializer());
      break;
    }
  }
}

}  // namespace

const char* ActivationJsonName(Activation activation) {
  for (const auto& a : kActivations) {
    if (a.activation == activation) return a.name;
  }
  return "unknown";
}

absl::StatusOr<JobSpec> JobSpecFromProto(const v1::JobSpec& proto,
                                         SuppliedDataPaths* supplied) {
  JobSpec spec;
  spec.seed = proto.has_seed() ? proto.seed() : 42;
  switch (proto.seed_mode()) {
    case v1::JobSpec::SEED_MODE_UNSPECIFIED:
    case v1::JobSpec::STREAMS:
      spec.seed_mode = SeedMode::kStreams;
      break;
    case v1::JobSpec::KERAS:
      spec.seed_mode = SeedMode::kKeras;
      break;
    default:
      return Invalid("seed_mode",
                     absl::StrCat("unknown seed mode ", proto.seed_mode(),
                                  "; valid: STREAMS, KERAS"));
  }

  if (!proto.has_model()) {
    return Invalid("model",
                   "required: {\"input\": {\"timesteps\": T, \"features\": "
                   "F}, \"layers\": [...]}");
  }
  const v1::Model& model = proto.model();
  if (!model.has_input()) {
    return Invalid("model.input",
                   "required: {\"timesteps\": T, \"features\": F}");
  }
  spec.model.timesteps = model.input().timesteps();
  spec.model.features = model.input().features();
  if (model.layers().empty()) {
    return Invalid("model.layers", "at least one layer is required");
  }
  for (int i = 0; i < model.layers_size(); ++i) {
    if (i == 0 && model.layers(0).has_masking()) {
      // keras.layers.Masking: the model's mask_value, not an engine layer.
      spec.model.mask_value = model.layers(0).masking().mask_value();
      if (model.layers_size() == 1) {
        return Invalid("model.layers",
                       "at least one layer is required after masking");
      }
      continue;
    }
    absl::StatusOr<LayerSpec> layer =
        ParseLayer(absl::StrCat("model.layers[", i, "]"), model.layers(i));
    if (!layer.ok()) return layer.status();
    spec.model.layers.push_back(*std::move(layer));
  }
  // An embedding's input is one token id per timestep: features may be
  // left out (ValidateJobSpec refuses any value other than 1).
  if (spec.model.layers.front().kind == LayerKind::kEmbedding &&
      spec.model.features == 0) {
    spec.model.features = 1;
  }

  if (absl::Status s = ParseOptimizer(proto.optimizer(), &spec.optimizer);
      !s.ok()) {
    return s;
  }
  switch (proto.loss()) {
    case v1::LOSS_UNSPECIFIED:
    case v1::MSE:
      spec.loss = LossKind::kMse;
      break;
    case v1::MAE:
      spec.loss = LossKind::kMae;
      break;
    default:
      return Invalid("loss", absl::StrCat("unknown loss ", proto.loss(),
                                          "; valid: MSE, MAE"));
  }
  if (absl::Status s = ParseData(proto.data(), &spec.data, supplied); !s.ok()) {
    return s;
  }

  const v1::Training& t = proto.training();
  spec.training.epochs = t.has_epochs() ? t.epochs() : 1;  // Keras fit()
  spec.training.batch_size = t.has_batch_size() ? t.batch_size() : 32;
  spec.training.shuffle = t.has_shuffle() ? t.shuffle() : true;
  spec.training.capture_epoch_outputs = t.capture_epoch_outputs();
  return spec;
}

v1::JobSpec JobSpecToProto(const JobSpec& spec) {
  v1::JobSpec p;
  p.set_seed(spec.seed);
  p.set_seed_mode(spec.seed_mode == SeedMode::kKeras ? v1::JobSpec::KERAS
                                                     : v1::JobSpec::STREAMS);
  v1::Model* model = p.mutable_model();
  model->mutable_input()->set_timesteps(spec.model.timesteps);
  model->mutable_input()->set_features(spec.model.features);
  if (spec.model.mask_value.has_value()) {
    model->add_layers()->mutable_masking()->set_mask_value(
        *spec.model.mask_value);
  }
  for (const LayerSpec& l : spec.model.layers) {
    LayerToProto(l, model->add_layers());
  }

  const OptimizerSpec& o = spec.optimizer;
  v1::Optimizer* opt = p.mutable_optimizer();
  switch (o.kind) {
    case OptimizerKind::kAdam: {
      v1::Adam* a = opt->mutable_adam();
      a->set_learning_rate(o.learning_rate);
      a->set_beta_1(o.beta_1);
      a->set_beta_2(o.beta_2);
      a->set_epsilon(o.epsilon);
      a->set_amsgrad(o.amsgrad);
      break;
    }
    case OptimizerKind::kSgd: {
      v1::Sgd* g = opt->mutable_sgd();
      g->set_learning_rate(o.learning_rate);
      g->set_momentum(o.momentum);
      g->set_nesterov(o.nesterov);
      break;
    }
    case OptimizerKind::kRmsprop: {
      v1::RmsProp* r = opt->mutable_rmsprop();
      r->set_learning_rate(o.learning_rate);
      r->set_rho(o.rho);
      r->set_momentum(o.momentum);
      r->set_epsilon(o.epsilon);
      r->set_centered(o.centered);
      break;
    }
  }
  if (o.clipnorm) opt->set_clipnorm(*o.clipnorm);
  if (o.global_clipnorm) opt->set_global_clipnorm(*o.global_clipnorm);
  if (o.clipvalue) opt->set_clipvalue(*o.clipvalue);
  if (o.weight_decay) opt->set_weight_decay(*o.weight_decay);

  p.set_loss(spec.loss == LossKind::kMae ? v1::MAE : v1::MSE);

  v1::SyntheticData* data = p.mutable_data()->mutable_synthetic();
  switch (spec.data.generator) {
    case DataSpec::Generator::kSine:
      data->set_generator(v1::SyntheticData::SINE);
      break;
    case DataSpec::Generator::kRandomWalk:
      data->set_generator(v1::SyntheticData::RANDOM_WALK);
      break;
    case DataSpec::Generator::kDelayedCopy:
      data->set_generator(v1::SyntheticData::DELAYED_COPY);
      break;
    case DataSpec::Generator::kTokens:
      data->set_generator(v1::SyntheticData::TOKENS);
      break;
  }
  data->set_samples(spec.data.samples);
  data->set_eval_samples(spec.data.eval_samples);
  data->set_noise(spec.data.noise);
  data->set_delay(spec.data.delay);
  data->set_pad_tail_max(spec.data.pad_tail_max);

  v1::Training* t = p.mutable_training();
  t->set_epochs(spec.training.epochs);
  t->set_batch_size(spec.training.batch_size);
  t->set_shuffle(spec.training.shuffle);
  t->set_capture_epoch_outputs(spec.training.capture_epoch_outputs);
  return p;
}

std::string EngineFieldToJsonPath(const JobSpec& spec,
                                  const std::string& message) {
  for (const char* f : {"timesteps", "features"}) {
    const std::string engine = absl::StrCat("model.", f);
    if (absl::StartsWith(message, engine)) {
      return absl::StrCat("model.input.", f, message.substr(engine.size()));
    }
  }
  constexpr absl::string_view kLayers = "model.layers[";
  if (absl::StartsWith(message, kLayers)) {
    const size_t close = message.find(']');
    int index = 0;
    if (close != std::string::npos && close + 1 < message.size() &&
        message[close + 1] == '.' &&
        absl::SimpleAtoi(absl::string_view(message).substr(
                             kLayers.size(), close - kLayers.size()),
                         &index) &&
        index >= 0 && index < static_cast<int>(spec.model.layers.size())) {
      return absl::StrCat(message.substr(0, close + 1), ".",
                          LayerJsonKey(spec.model.layers[index].kind),
                          message.substr(close + 1));
    }
    return message;
  }
  constexpr absl::string_view kOptimizer = "optimizer.";
  if (absl::StartsWith(message, kOptimizer)) {
    const absl::string_view rest =
        absl::string_view(message).substr(kOptimizer.size());
    if (absl::StartsWith(rest, "clip") || absl::StartsWith(rest, "global_") ||
        absl::StartsWith(rest, "kind") ||
        absl::StartsWith(rest, "weight_decay")) {
      return message;
    }
    return absl::StrCat(kOptimizer, OptimizerKindName(spec.optimizer.kind), ".",
                        rest);
  }
  return message;
}

}  // namespace driftscope
