#include "engine/job/job_spec.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/core/sha256.h"

namespace driftscope {

namespace {

// Size limits enforced before any work starts (DESIGN §10).
constexpr int kMaxUnits = 4096;
constexpr int kMaxFeatures = 4096;
constexpr int kMaxTimesteps = 100000;
constexpr int kMaxLayers = 64;
constexpr int kMaxSamples = 10000000;
constexpr int kMaxEpochs = 100000;
constexpr int kMaxBatch = 1 << 20;
constexpr int64_t kMaxParams = 200000000;
// Elements of x for one split: keeps a job's data under ~4 GiB in fp64.
constexpr int64_t kMaxDataElements = int64_t{1} << 29;
// Token ids travel as float32 values (engine/data/synthetic.h), exact up to
// 2^24.
constexpr int kMaxInputDim = 1 << 24;

bool ValidLayerKind(LayerKind k) {
  return k == LayerKind::kLstm || k == LayerKind::kGru ||
         k == LayerKind::kSimpleRnn || k == LayerKind::kDense ||
         k == LayerKind::kEmbedding;
}

const char* ActivationName(Activation a) {
  switch (a) {
    case Activation::kTanh:
      return "tanh";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kHardSigmoidKeras2:
      return "hard_sigmoid_keras2";
    case Activation::kHardSigmoidKeras3:
      return "hard_sigmoid_keras3";
    case Activation::kRelu:
      return "relu";
    case Activation::kLinear:
      return "linear";
  }
  return "unknown";
}

bool ValidActivation(Activation a) {
  return a == Activation::kTanh || a == Activation::kSigmoid ||
         a == Activation::kHardSigmoidKeras2 ||
         a == Activation::kHardSigmoidKeras3 || a == Activation::kRelu ||
         a == Activation::kLinear;
}

const char* InitializerName(InitializerSpec::Kind k) {
  using K = InitializerSpec::Kind;
  switch (k) {
    case K::kGlorotUniform:
      return "glorot_uniform";
    case K::kOrthogonal:
      return "orthogonal";
    case K::kZeros:
      return "zeros";
    case K::kOnes:
      return "ones";
    case K::kRandomUniform:
      return "random_uniform";
    case K::kRandomNormal:
      return "random_normal";
  }
  return "unknown";
}

const char* LossName(LossKind k) {
  switch (k) {
    case LossKind::kMse:
      return "mse";
    case LossKind::kMae:
      return "mae";
  }
  return "unknown";
}

const char* GeneratorName(DataSpec::Generator g) {
  switch (g) {
    case DataSpec::Generator::kSine:
      return "sine";
    case DataSpec::Generator::kRandomWalk:
      return "random_walk";
    case DataSpec::Generator::kDelayedCopy:
      return "delayed_copy";
    case DataSpec::Generator::kTokens:
      return "tokens";
  }
  return "unknown";
}

bool IsRnn(LayerKind k) { return IsRecurrentKind(k); }

bool ValidMergeMode(MergeMode m) {
  return m == MergeMode::kConcat || m == MergeMode::kSum ||
         m == MergeMode::kMul || m == MergeMode::kAve || m == MergeMode::kNone;
}

std::string Num(double v) { return absl::StrFormat("%g", v); }

absl::Status RangeError(const std::string& field, int64_t lo, int64_t hi,
                        int64_t got) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be in [", lo, ", ", hi, "], got ", got));
}

absl::Status CheckRange(const std::string& field, int64_t v, int64_t lo,
                        int64_t hi) {
  if (v < lo || v > hi) return RangeError(field, lo, hi, v);
  return absl::OkStatus();
}

// A finite number > 0 (or ≥ 0 when allow_zero).
absl::Status CheckPositive(const std::string& field, double v,
                           bool allow_zero = false) {
  if (!std::isfinite(v) || v < 0 || (!allow_zero && v == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be a finite number ",
                     allow_zero ? ">=" : ">", " 0, got ", Num(v)));
  }
  return absl::OkStatus();
}

// lo ≤ v < hi (hi_open) or lo ≤ v ≤ hi.
absl::Status CheckInterval(const std::string& field, double v, double lo,
                           double hi, bool hi_open) {
  if (!std::isfinite(v) || v < lo || (hi_open ? v >= hi : v > hi)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be in [", Num(lo), ", ", Num(hi),
                     hi_open ? ")" : "]", ", got ", Num(v)));
  }
  return absl::OkStatus();
}

absl::Status ValidateInitializer(const std::string& field,
                                 const InitializerSpec& init) {
  using K = InitializerSpec::Kind;
  switch (init.kind) {
    case K::kGlorotUniform:
    case K::kZeros:
    case K::kOnes:
      return absl::OkStatus();
    case K::kOrthogonal:
      if (!std::isfinite(init.gain)) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ".gain must be a finite number, got ", Num(init.gain)));
      }
      return absl::OkStatus();
    case K::kRandomUniform:
      if (!std::isfinite(init.minval) || !std::isfinite(init.maxval) ||
          !(init.minval < init.maxval)) {
        return absl::InvalidArgumentError(absl::StrCat(
            field,
            ".minval and .maxval must be finite with minval < maxval, "
            "got ",
            Num(init.minval), " and ", Num(init.maxval)));
      }
      return absl::OkStatus();
    case K::kRandomNormal:
      if (!std::isfinite(init.mean)) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ".mean must be a finite number, got ", Num(init.mean)));
      }
      return CheckPositive(field + ".stddev", init.stddev);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ".kind is not a known initializer, got ",
                   static_cast<int>(init.kind)));
}

absl::Status ValidateActivation(const std::string& field, Activation a) {
  if (!ValidActivation(a)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field,
                     " must be one of tanh, sigmoid, hard_sigmoid_keras2, "
                     "hard_sigmoid_keras3, relu, linear, got ",
                     static_cast<int>(a)));
  }
  return absl::OkStatus();
}

// Weights of one layer given its input width, as Layer::weights() has them.
int64_t LayerParams(const LayerSpec& l, int64_t in) {
  const int64_t u = l.units;
  const int64_t bias = l.use_bias ? 1 : 0;
  if (l.bidirectional) return 2 * LayerParams(DirectionSpec(l, false), in);
  switch (l.kind) {
    case LayerKind::kLstm:
      return in * 4 * u + u * 4 * u + bias * 4 * u;
    case LayerKind::kGru:
      return in * 3 * u + u * 3 * u + bias * (l.reset_after ? 6 : 3) * u;
    case LayerKind::kSimpleRnn:
      return in * u + u * u + bias * u;
    case LayerKind::kDense:
      return in * u + bias * u;
    case LayerKind::kEmbedding:
      return int64_t{l.input_dim} * u;
  }
  return 0;
}

// keras.layers.Embedding: first layer only (its input is token ids).
absl::Status ValidateEmbedding(const std::string& f, const LayerSpec& l,
                               int index) {
  if (index != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        f,
        ": embedding must be the first layer (model.layers[0]); its "
        "input is the model's token ids"));
  }
  if (absl::Status s =
          CheckRange(f + ".input_dim", l.input_dim, 1, kMaxInputDim);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckRange(f + ".output_dim", l.units, 1, kMaxUnits);
      !s.ok()) {
    return s;
  }
  if (l.bidirectional || l.dropout != 0 || l.recurrent_dropout != 0 ||
      l.return_sequences || l.return_state || l.go_backwards) {
    return absl::InvalidArgumentError(absl::StrCat(
        f,
        ": bidirectional, dropout, recurrent_dropout, return_sequences, "
        "return_state and go_backwards do not apply to an embedding"));
  }
  return ValidateInitializer(f + ".embeddings_initializer",
                             l.kernel_initializer);
}

absl::Status ValidateLayer(const std::string& f, const LayerSpec& l, int index,
                           int num_layers, bool input_is_sequence) {
  if (!ValidLayerKind(l.kind)) {
    return absl::InvalidArgumentError(absl::StrCat(
        f, ".kind must be one of LSTM, GRU, SimpleRNN, Dense, got ",
        static_cast<int>(l.kind)));
  }
  const char* kind = LayerKindName(l.kind);
  if (l.kind == LayerKind::kEmbedding) {
    return ValidateEmbedding(f, l, index);
  }
  if (absl::Status s = CheckRange(f + ".units", l.units, 1, kMaxUnits);
      !s.ok()) {
    return s;
  }
  if (IsRnn(l.kind) && !input_is_sequence) {
    return absl::InvalidArgumentError(absl::StrCat(
        f, " is a ", kind, " layer and needs a sequence input, but ",
        "model.layers[", index - 1,
        "] returns no sequence (set its return_sequences to true)"));
  }
  if (!IsRnn(l.kind)) {
    if (l.return_sequences || l.return_state || l.go_backwards) {
      return absl::InvalidArgumentError(absl::StrCat(
          f,
          ": return_sequences, return_state and go_backwards apply to RNN "
          "layers only; Dense keeps its input rank"));
    }
  }
  if (l.bidirectional) {
    if (!IsRnn(l.kind)) {
      return absl::InvalidArgumentError(absl::StrCat(
          f, ": bidirectional wraps LSTM, GRU or SimpleRNN only, got ", kind));
    }
    if (!ValidMergeMode(l.merge_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat(f,
                       ".merge_mode must be one of concat, sum, mul, ave, "
                       "none, "
                       "got ",
                       static_cast<int>(l.merge_mode)));
    }
    if (l.merge_mode == MergeMode::kNone && index != num_layers - 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          f,
          ".merge_mode none gives two outputs (forward and backward) and is "
          "only supported on the last layer, but model.layers[",
          index + 1,
          "] comes after it; remove that layer or use concat, sum, mul or "
          "ave"));
    }
    if (l.return_state) {
      return absl::InvalidArgumentError(absl::StrCat(
          f, ": return_state in a bidirectional layer is not supported yet"));
    }
    if (l.go_backwards) {
      return absl::InvalidArgumentError(absl::StrCat(
          f,
          ".go_backwards must be false in a bidirectional layer (Keras makes "
          "the backward copy itself and refuses a wrapped layer that goes "
          "backwards)"));
    }
  }
  if (l.return_state && index != num_layers - 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        f, ".return_state is only supported on the last layer (index ",
        num_layers - 1, "), got it on layer ", index));
  }
  if (l.implementation != 1 && l.implementation != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        f, ".implementation must be 1 or 2, got ", l.implementation));
  }
  if (absl::Status s = ValidateActivation(f + ".activation", l.activation);
      !s.ok()) {
    return s;
  }
  const bool gated = l.kind == LayerKind::kLstm || l.kind == LayerKind::kGru;
  if (gated) {
    if (absl::Status s = ValidateActivation(f + ".recurrent_activation",
                                            l.recurrent_activation);
        !s.ok()) {
      return s;
    }
  } else if (l.recurrent_activation != Activation::kSigmoid) {
    return absl::InvalidArgumentError(absl::StrCat(
        f, ".recurrent_activation applies to LSTM and GRU only, got ",
        ActivationName(l.recurrent_activation), " on a ", kind, " layer"));
  }
  if (!IsRnn(l.kind) && (l.dropout != 0 || l.recurrent_dropout != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        f, ": dropout and recurrent_dropout apply to RNN layers only"));
  }
  if (absl::Status s = CheckInterval(f + ".dropout", l.dropout, 0, 1, true);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckInterval(f + ".recurrent_dropout",
                                     l.recurrent_dropout, 0, 1, true);
      !s.ok()) {
    return s;
  }
  if (l.kind != LayerKind::kGru && !l.reset_after) {
    return absl::InvalidArgumentError(
        absl::StrCat(f, ".reset_after applies to GRU only, got false on a ",
                     kind, " layer"));
  }
  if (absl::Status s =
          ValidateInitializer(f + ".kernel_initializer", l.kernel_initializer);
      !s.ok()) {
    return s;
  }
  if (IsRnn(l.kind)) {
    if (absl::Status s = ValidateInitializer(f + ".recurrent_initializer",
                                             l.recurrent_initializer);
        !s.ok()) {
      return s;
    }
  }
  return ValidateInitializer(f + ".bias_initializer", l.bias_initializer);
}

absl::Status ValidateOptimizer(const OptimizerSpec& o) {
  if (o.kind != OptimizerKind::kAdam && o.kind != OptimizerKind::kSgd &&
      o.kind != OptimizerKind::kRmsprop) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.kind must be one of adam, sgd, rmsprop, got ",
                     static_cast<int>(o.kind)));
  }
  if (absl::Status s =
          CheckPositive("optimizer.learning_rate", o.learning_rate);
      !s.ok()) {
    return s;
  }
  if (o.kind == OptimizerKind::kAdam) {
    if (absl::Status s =
            CheckInterval("optimizer.beta_1", o.beta_1, 0, 1, true);
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            CheckInterval("optimizer.beta_2", o.beta_2, 0, 1, true);
        !s.ok()) {
      return s;
    }
  }
  if (o.kind != OptimizerKind::kSgd) {
    if (absl::Status s = CheckPositive("optimizer.epsilon", o.epsilon);
        !s.ok()) {
      return s;
    }
  }
  if (o.kind != OptimizerKind::kAdam) {
    if (absl::Status s =
            CheckInterval("optimizer.momentum", o.momentum, 0, 1, false);
        !s.ok()) {
      return s;
    }
  }
  if (o.kind == OptimizerKind::kRmsprop) {
    if (absl::Status s = CheckInterval("optimizer.rho", o.rho, 0, 1, true);
        !s.ok()) {
      return s;
    }
  }
  std::string set;
  int n = 0;
  for (const auto& [name, value] :
       {std::pair<const char*, const std::optional<double>*>{"clipnorm",
                                                             &o.clipnorm},
        {"global_clipnorm", &o.global_clipnorm},
        {"clipvalue", &o.clipvalue}}) {
    if (!value->has_value()) continue;
    if (absl::Status s =
            CheckPositive(absl::StrCat("optimizer.", name), **value);
        !s.ok()) {
      return s;
    }
    absl::StrAppend(&set, n++ ? " and " : "", name);
  }
  if (n > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer: at most one of clipnorm, global_clipnorm, clipvalue may "
        "be set, got ",
        set));
  }
  if (o.weight_decay.has_value()) {
    return CheckPositive("optimizer.weight_decay", *o.weight_decay,
                         /*allow_zero=*/true);
  }
  return absl::OkStatus();
}

absl::Status ValidateData(const DataSpec& d, int timesteps) {
  const DataSpec::Generator g = d.generator;
  if (g != DataSpec::Generator::kSine &&
      g != DataSpec::Generator::kRandomWalk &&
      g != DataSpec::Generator::kDelayedCopy &&
      g != DataSpec::Generator::kTokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data.synthetic.generator must be one of sine, random_walk, "
        "delayed_copy, tokens, got ",
        static_cast<int>(g)));
  }
  if (absl::Status s =
          CheckRange("data.synthetic.samples", d.samples, 1, kMaxSamples);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckRange("data.synthetic.eval_samples", d.eval_samples,
                                  1, kMaxSamples);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckInterval("data.synthetic.noise", d.noise, 0, 100, false);
      !s.ok()) {
    return s;
  }
  if (g == DataSpec::Generator::kDelayedCopy) {
    return CheckRange("data.synthetic.delay", d.delay, 0, timesteps - 1);
  }
  return absl::OkStatus();
}

}  // namespace

LayerSpec EmbeddingLayerSpec(int input_dim, int output_dim) {
  LayerSpec l;
  l.kind = LayerKind::kEmbedding;
  l.input_dim = input_dim;
  l.units = output_dim;
  l.activation = Activation::kLinear;
  l.use_bias = false;
  l.kernel_initializer.kind = InitializerSpec::Kind::kRandomUniform;
  return l;
}

JobSpec DefaultJobSpec() {
  JobSpec spec;
  spec.seed = 42;
  spec.model.timesteps = 10;
  spec.model.features = 1;
  LayerSpec l0;
  l0.kind = LayerKind::kLstm;
  l0.units = 64;
  l0.return_sequences = true;
  LayerSpec l1 = l0;
  l1.units = 32;
  spec.model.layers = {l0, l1};
  spec.optimizer.kind = OptimizerKind::kAdam;
  spec.optimizer.learning_rate = 0.001;
  spec.optimizer.clipnorm = 1.0;
  spec.loss = LossKind::kMse;
  spec.data.generator = DataSpec::Generator::kSine;
  spec.data.samples = 1024;
  spec.data.eval_samples = 128;
  spec.training.epochs = 3;
  spec.training.batch_size = 32;
  spec.training.shuffle = true;
  return spec;
}

absl::Status ValidateJobSpec(const JobSpec& spec) {
  const ModelSpec& m = spec.model;
  if (spec.seed_mode != SeedMode::kStreams &&
      spec.seed_mode != SeedMode::kKeras) {
    return absl::InvalidArgumentError(
        absl::StrCat("seed_mode must be one of STREAMS, KERAS, got ",
                     static_cast<int>(spec.seed_mode)));
  }
  // keras.utils.set_random_seed passes the seed to numpy, which refuses
  // anything outside [0, 2^32 - 1].
  if (spec.seed_mode == SeedMode::kKeras && spec.seed > 0xFFFFFFFFu) {
    return absl::InvalidArgumentError(absl::StrCat(
        "seed must be in [0, 4294967295] with seed_mode KERAS (Keras' "
        "set_random_seed refuses larger seeds), got ",
        spec.seed));
  }
  if (absl::Status s =
          CheckRange("model.timesteps", m.timesteps, 1, kMaxTimesteps);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckRange("model.features", m.features, 1, kMaxFeatures);
      !s.ok()) {
    return s;
  }
  if (m.layers.empty() || static_cast<int>(m.layers.size()) > kMaxLayers) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.layers must hold 1 to ", kMaxLayers,
                     " layers, got ", m.layers.size()));
  }
  // Any finite value, as Keras' Masking takes it (NaN would mask nothing:
  // NaN != NaN).
  if (m.mask_value.has_value() && !std::isfinite(*m.mask_value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.layers[0].masking.mask_value must be finite, got ",
                     *m.mask_value));
  }
  const bool embedding = m.layers.front().kind == LayerKind::kEmbedding;
  // Keras would combine the two masks (Masking zeroes the ids it skips,
  // then mask_zero skips every 0); one mask per model is reproduced.
  if (embedding && m.layers.front().mask_zero && m.mask_value.has_value()) {
    return absl::InvalidArgumentError(
        "model.layers[0]: a Masking layer and an embedding with mask_zero "
        "cannot be combined; drop the masking layer (mask_zero already "
        "skips the steps whose token id is 0) or set mask_zero to false");
  }
  if (embedding && m.features != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.features must be 1 (or absent) when model.layers[0] is an "
        "embedding: the input is one token id per timestep, got ",
        m.features));
  }
  // (An embedding model with another generator is refused by the generator:
  // supplied data leave the generator field at its default.)
  if (!embedding && spec.data.generator == DataSpec::Generator::kTokens) {
    return absl::InvalidArgumentError(
        "data.synthetic.generator tokens needs an embedding as "
        "model.layers[0]");
  }
  bool sequence = true;
  int64_t width = m.features;
  int64_t params = 0;
  const int n = static_cast<int>(m.layers.size());
  for (int i = 0; i < n; ++i) {
    const LayerSpec& l = m.layers[i];
    if (absl::Status s = ValidateLayer(absl::StrCat("model.layers[", i, "]"), l,
                                       i, n, sequence);
        !s.ok()) {
      return s;
    }
    params += LayerParams(l, width);
    width = LayerOutputUnits(l);
    if (IsRnn(l.kind)) sequence = l.return_sequences;
  }
  if (params > kMaxParams) {
    return absl::InvalidArgumentError(absl::StrCat("model has ", params,
                                                   " parameters, at most ",
                                                   kMaxParams, " are allowed"));
  }
  if (absl::Status s = ValidateOptimizer(spec.optimizer); !s.ok()) return s;
  if (embedding && (spec.optimizer.global_clipnorm.has_value() ||
                    spec.optimizer.clipvalue.has_value())) {
    // Keras clips an embedding's IndexedSlices gradient per token
    // occurrence (clipvalue) or makes it dense first (global_clipnorm);
    // neither is reproduced yet.
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.",
                     spec.optimizer.clipvalue ? "clipvalue" : "global_clipnorm",
                     " with an embedding layer is not supported yet; use "
                     "clipnorm or no clipping"));
  }
  if (spec.loss != LossKind::kMse && spec.loss != LossKind::kMae) {
    return absl::InvalidArgumentError(absl::StrCat(
        "loss must be one of mse, mae, got ", static_cast<int>(spec.loss)));
  }
  if (absl::Status s = ValidateData(spec.data, m.timesteps); !s.ok()) return s;
  if (spec.data.pad_tail_max != 0) {
    if (absl::Status s = CheckRange("data.synthetic.pad_tail_max",
                                    spec.data.pad_tail_max, 0, m.timesteps);
        !s.ok()) {
      return s;
    }
    if (!m.mask_value.has_value()) {
      return absl::InvalidArgumentError(
          "data.synthetic.pad_tail_max pads with the Masking layer's "
          "mask_value: add {\"masking\": {\"mask_value\": ...}} as the "
          "first layer, or set pad_tail_max to 0");
    }
    // The data are float32 values; fp64 runs must see the same mask.
    if (static_cast<double>(static_cast<float>(*m.mask_value)) !=
        *m.mask_value) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.layers[0].masking.mask_value must be a float32 value when "
          "data.synthetic.pad_tail_max pads with it, got ",
          *m.mask_value));
    }
  }
  const int64_t per_sample = int64_t{m.timesteps} * m.features;
  for (const auto& [field, samples] :
       {std::pair<const char*, int>{"data.synthetic.samples",
                                    spec.data.samples},
        {"data.synthetic.eval_samples", spec.data.eval_samples}}) {
    if (samples * per_sample > kMaxDataElements) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " × model.timesteps × model.features must be at most ",
          kMaxDataElements, ", got ", samples * per_sample));
    }
  }
  const TrainingSpec& t = spec.training;
  if (absl::Status s = CheckRange("training.epochs", t.epochs, 0, kMaxEpochs);
      !s.ok()) {
    return s;
  }
  return CheckRange("training.batch_size", t.batch_size, 1, kMaxBatch);
}

const char* MergeModeName(MergeMode mode) {
  switch (mode) {
    case MergeMode::kConcat:
      return "concat";
    case MergeMode::kSum:
      return "sum";
    case MergeMode::kMul:
      return "mul";
    case MergeMode::kAve:
      return "ave";
    case MergeMode::kNone:
      return "none";
  }
  return "unknown";
}

bool UsesGateMasks(const LayerSpec& layer) {
  if (!IsRnn(layer.kind)) return false;
  const bool gated =
      layer.kind == LayerKind::kLstm || layer.kind == LayerKind::kGru;
  return layer.recurrent_dropout > 0 ||
         (gated && layer.dropout > 0 && layer.implementation == 1);
}

int GateMaskCount(const LayerSpec& layer) {
  switch (layer.kind) {
    case LayerKind::kLstm:
      return 4;
    case LayerKind::kGru:
      return 3;
    case LayerKind::kSimpleRnn:
      return 1;
    case LayerKind::kDense:
    case LayerKind::kEmbedding:
      break;
  }
  return 0;
}

int InputMasksPerStep(const LayerSpec& layer) {
  if (!IsRnn(layer.kind) || layer.dropout <= 0) return 0;
  return UsesGateMasks(layer) ? GateMaskCount(layer) : 1;
}

int RecurrentMasksPerStep(const LayerSpec& layer) {
  return IsRnn(layer.kind) && layer.recurrent_dropout > 0 ? GateMaskCount(layer)
                                                          : 0;
}

int ModelOutputCount(const ModelSpec& model) {
  return !model.layers.empty() && model.layers.back().bidirectional &&
                 model.layers.back().merge_mode == MergeMode::kNone
             ? 2
             : 1;
}

int ModelOutputUnits(const ModelSpec& model) {
  return model.layers.empty() ? model.features
                              : LayerOutputUnits(model.layers.back());
}

bool ModelOutputIsSequence(const ModelSpec& model) {
  bool sequence = true;
  for (const LayerSpec& l : model.layers) {
    if (IsRnn(l.kind)) sequence = l.return_sequences;
  }
  return sequence;
}

std::string CanonicalText(const JobSpec& spec) {
  std::string out = "driftscope-jobspec-v2\n";
  auto put = [&out](absl::string_view key, absl::string_view value) {
    absl::StrAppend(&out, key, "=", value, "\n");
  };
  // %a is exact and locale-independent: equal text ⇔ equal doubles.
  auto hex = [](double v) { return absl::StrFormat("%a", v); };
  auto opt = [&hex](const std::optional<double>& v) {
    return v.has_value() ? hex(*v) : std::string("none");
  };
  auto b = [](bool v) { return v ? "true" : "false"; };
  auto init = [&](const std::string& key, const InitializerSpec& s) {
    put(key + ".kind", InitializerName(s.kind));
    put(key + ".minval", hex(s.minval));
    put(key + ".maxval", hex(s.maxval));
    put(key + ".mean", hex(s.mean));
    put(key + ".stddev", hex(s.stddev));
    put(key + ".gain", hex(s.gain));
  };

  put("seed", absl::StrCat(spec.seed));
  // Only a non-default mode is written, so that every digest made before
  // seed modes existed still names the same computation.
  if (spec.seed_mode != SeedMode::kStreams) {
    put("seed_mode", SeedModeName(spec.seed_mode));
  }
  put("model.timesteps", absl::StrCat(spec.model.timesteps));
  put("model.features", absl::StrCat(spec.model.features));
  // Written only when set: digests of jobs without masking stay as they were.
  if (spec.model.mask_value.has_value())
    put("model.mask_value", hex(*spec.model.mask_value));
  put("model.layers.size", absl::StrCat(spec.model.layers.size()));
  for (size_t i = 0; i < spec.model.layers.size(); ++i) {
    const LayerSpec& l = spec.model.layers[i];
    const std::string p = absl::StrCat("model.layers[", i, "]");
    put(p + ".kind", LayerKindName(l.kind));
    put(p + ".units", absl::StrCat(l.units));
    put(p + ".return_sequences", b(l.return_sequences));
    put(p + ".return_state", b(l.return_state));
    put(p + ".go_backwards", b(l.go_backwards));
    put(p + ".activation", ActivationName(l.activation));
    put(p + ".recurrent_activation", ActivationName(l.recurrent_activation));
    put(p + ".use_bias", b(l.use_bias));
    put(p + ".unit_forget_bias", b(l.unit_forget_bias));
    put(p + ".implementation", absl::StrCat(l.implementation));
    put(p + ".reset_after", b(l.reset_after));
    // Written only when set: digests of jobs without dropout stay as they
    // were.
    if (l.dropout != 0) put(p + ".dropout", hex(l.dropout));
    if (l.recurrent_dropout != 0)
      put(p + ".recurrent_dropout", hex(l.recurrent_dropout));
    if (l.bidirectional) put(p + ".bidirectional", MergeModeName(l.merge_mode));
    if (l.kind == LayerKind::kEmbedding) {
      put(p + ".input_dim", absl::StrCat(l.input_dim));
      put(p + ".mask_zero", b(l.mask_zero));
    }
    init(p + ".kernel_initializer", l.kernel_initializer);
    init(p + ".recurrent_initializer", l.recurrent_initializer);
    init(p + ".bias_initializer", l.bias_initializer);
  }
  const OptimizerSpec& o = spec.optimizer;
  put("optimizer.kind", OptimizerKindName(o.kind));
  put("optimizer.learning_rate", hex(o.learning_rate));
  put("optimizer.beta_1", hex(o.beta_1));
  put("optimizer.beta_2", hex(o.beta_2));
  put("optimizer.epsilon", hex(o.epsilon));
  put("optimizer.amsgrad", b(o.amsgrad));
  put("optimizer.momentum", hex(o.momentum));
  put("optimizer.nesterov", b(o.nesterov));
  put("optimizer.rho", hex(o.rho));
  put("optimizer.centered", b(o.centered));
  put("optimizer.clipnorm", opt(o.clipnorm));
  put("optimizer.global_clipnorm", opt(o.global_clipnorm));
  put("optimizer.clipvalue", opt(o.clipvalue));
  // Written only when set: digests of jobs without it stay as they were.
  if (o.weight_decay.has_value()) {
    put("optimizer.weight_decay", hex(*o.weight_decay));
  }
  put("loss", LossName(spec.loss));
  put("data.synthetic.generator", GeneratorName(spec.data.generator));
  put("data.synthetic.samples", absl::StrCat(spec.data.samples));
  put("data.synthetic.eval_samples", absl::StrCat(spec.data.eval_samples));
  put("data.synthetic.noise", hex(spec.data.noise));
  put("data.synthetic.delay", absl::StrCat(spec.data.delay));
  if (spec.data.pad_tail_max != 0)
    put("data.synthetic.pad_tail_max", absl::StrCat(spec.data.pad_tail_max));
  put("training.epochs", absl::StrCat(spec.training.epochs));
  put("training.batch_size", absl::StrCat(spec.training.batch_size));
  put("training.shuffle", b(spec.training.shuffle));
  // training.capture_epoch_outputs is left out on purpose: it changes what
  // is recorded, not what is computed, so it must not change the digest.
  return out;
}

std::string SpecDigest(const JobSpec& spec) {
  const std::string text = CanonicalText(spec);
  return Sha256Hex(text.data(), text.size());
}

const char* LayerKindName(LayerKind k) {
  switch (k) {
    case LayerKind::kLstm:
      return "LSTM";
    case LayerKind::kGru:
      return "GRU";
    case LayerKind::kSimpleRnn:
      return "SimpleRNN";
    case LayerKind::kDense:
      return "Dense";
    case LayerKind::kEmbedding:
      return "Embedding";
  }
  return "unknown";
}

const char* SeedModeName(SeedMode mode) {
  switch (mode) {
    case SeedMode::kStreams:
      return "streams";
    case SeedMode::kKeras:
      return "keras";
  }
  return "unknown";
}

const char* OptimizerKindName(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kAdam:
      return "adam";
    case OptimizerKind::kSgd:
      return "sgd";
    case OptimizerKind::kRmsprop:
      return "rmsprop";
  }
  return "unknown";
}

}  // namespace driftscope
