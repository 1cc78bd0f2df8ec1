// JobSpec: everything that defines one seeded training computation.
//
// Plain engine-side value types (no protobuf here; the servers and the CLI
// translate driftscope.v1.JobSpec into these at the edge). Defaults are the
// Keras 3 defaults (docs/numerics.md §1-§7). Thread-compatible.
#ifndef DRIFTSCOPE_ENGINE_JOB_JOB_SPEC_H_
#define DRIFTSCOPE_ENGINE_JOB_JOB_SPEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace driftscope {

// kEmbedding (keras.layers.Embedding) only as the first layer: the model
// input is then (B, T) token ids, carried as (B, T, 1) values of the run
// precision (exact: ids stay below 2^24).
enum class LayerKind { kLstm, kGru, kSimpleRnn, kDense, kEmbedding };

// LSTM, GRU, SimpleRNN (not Dense, not Embedding).
inline bool IsRecurrentKind(LayerKind kind) {
  return kind == LayerKind::kLstm || kind == LayerKind::kGru ||
         kind == LayerKind::kSimpleRnn;
}

enum class Activation {
  kTanh,
  kSigmoid,
  kHardSigmoidKeras2,  // clip(0.2·x + 0.5, 0, 1)
  kHardSigmoidKeras3,  // relu6(x + 3) / 6
  kRelu,
  kLinear,
};

struct InitializerSpec {
  enum class Kind {
    kGlorotUniform,
    kOrthogonal,
    kZeros,
    kOnes,
    kRandomUniform,  // U(minval, maxval)
    kRandomNormal,   // N(mean, stddev), Box-Muller as TF does
  };
  Kind kind = Kind::kZeros;
  double minval = -0.05, maxval = 0.05;  // random_uniform (Keras defaults)
  double mean = 0.0, stddev = 0.05;      // random_normal (Keras defaults)
  double gain = 1.0;                     // orthogonal
};

// keras.layers.Bidirectional's merge_mode. kNone is Keras' None: the
// forward and backward outputs are two model outputs (last layer only);
// driftscope keeps them side by side on the feature axis, [forward |
// backward] as kConcat does, and the loss is the sum of the two outputs'
// losses (ModelOutputCount).
enum class MergeMode { kConcat, kSum, kMul, kAve, kNone };

struct LayerSpec {
  LayerKind kind = LayerKind::kLstm;
  int units = 0;
  bool return_sequences = false;  // RNN layers; Dense keeps its input rank
  bool return_state = false;      // RNN layers: final states are also kept
  bool go_backwards = false;
  Activation activation = Activation::kTanh;  // Dense default: kLinear
  Activation recurrent_activation = Activation::kSigmoid;  // LSTM, GRU
  bool use_bias = true;
  bool unit_forget_bias = true;  // LSTM
  int implementation = 2;        // 1 or 2: order (docs/numerics.md §1.5)
  bool reset_after = true;       // GRU
  // RNN layers: fraction of the input features dropped while training
  // (Keras `dropout`): one mask per sample and feature, the same for every
  // timestep, drawn afresh for every training step; kept values are scaled
  // by 1/(1 − dropout). Only Keras implementation 2 (one mask for all
  // gates) is supported. Evaluation never drops.
  double dropout = 0.0;
  // RNN layers: fraction of the recurrent state h_{t-1} dropped while
  // training (Keras `recurrent_dropout`). As in Keras, a layer with
  // recurrent dropout computes with implementation 1 whatever
  // `implementation` says, and then draws one mask per gate for the input
  // and for the state (GateMaskCount), each the same for every timestep.
  double recurrent_dropout = 0.0;
  // RNN layers: wrapped in keras.layers.Bidirectional. The fields above
  // describe the wrapped layer (go_backwards must be false); Keras runs a
  // forward copy and a backward copy (go_backwards true), the backward
  // output sequence flipped back to time order, and merges them. Weights: the
  // forward copy's, then the backward copy's (get_weights() order). Each copy
  // has the wrapped layer's dropout and recurrent_dropout and draws its own
  // masks (engine/train/dropout.h).
  bool bidirectional = false;
  MergeMode merge_mode = MergeMode::kConcat;
  // RNN layers, Keras' zero_output_for_mask: a step the timestep mask
  // skips outputs zeros instead of the previous output. Not in the JSON
  // form: Keras' Bidirectional sets it on both copies to return_sequences
  // (DirectionSpec does the same), plain layers keep Keras' default false.
  bool zero_output_for_mask = false;
  // Embedding: the vocabulary size (token ids are in [0, input_dim));
  // `units` is Keras' output_dim and `kernel_initializer` its
  // embeddings_initializer (Keras default: random_uniform(-0.05, 0.05)).
  // The one weight is "embeddings" (input_dim, units); activation, use_bias
  // and the RNN fields do not apply. mask_zero (Keras: token 0 is padding):
  // the model's timestep mask skips every step whose id is 0, as Masking's
  // does (engine/layers/timestep_mask.h), and the embedding still outputs
  // row 0 there; not combined with mask_value.
  int input_dim = 0;
  bool mask_zero = false;
  InitializerSpec kernel_initializer{InitializerSpec::Kind::kGlorotUniform};
  InitializerSpec recurrent_initializer{InitializerSpec::Kind::kOrthogonal};
  InitializerSpec bias_initializer{InitializerSpec::Kind::kZeros};
};

// An Embedding layer with Keras' defaults (embeddings_initializer
// random_uniform(-0.05, 0.05), no mask).
LayerSpec EmbeddingLayerSpec(int input_dim, int output_dim);

struct ModelSpec {
  int timesteps = 10;
  int features = 1;
  // keras.layers.Masking(mask_value) in front of layers[0] (the JSON form's
  // {"masking": {"mask_value": v}} as the first layer): a timestep of a
  // sample is skipped where every feature equals mask_value; its input
  // becomes zeros, RNN layers keep their state there, and the loss averages
  // over the steps that are kept (docs/keras.md). Unset: no mask.
  std::optional<double> mask_value;
  std::vector<LayerSpec> layers;
};

enum class OptimizerKind { kAdam, kSgd, kRmsprop };

struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::kAdam;
  double learning_rate = 0.001;
  // Adam
  double beta_1 = 0.9, beta_2 = 0.999;
  double epsilon = 1e-7;  // Adam and RMSprop
  bool amsgrad = false;
  // SGD and RMSprop
  double momentum = 0.0;
  bool nesterov = false;
  // RMSprop
  double rho = 0.9;
  bool centered = false;
  // At most one of the three clipping modes (Keras raises otherwise).
  std::optional<double> clipnorm;         // per variable
  std::optional<double> global_clipnorm;  // over all variables
  std::optional<double> clipvalue;        // elementwise
  // Decoupled weight decay (Keras' base optimizer, so every kind; AdamW is
  // Adam with weight_decay 0.004): after clipping and before the update
  // step, every variable becomes var − (var·wd)·lr. Unset: none.
  std::optional<double> weight_decay;
};

enum class LossKind { kMse, kMae };

struct DataSpec {
  // kTokens: integer token ids for a model that starts with an Embedding
  // (engine/data/synthetic.h).
  enum class Generator { kSine, kRandomWalk, kDelayedCopy, kTokens };
  Generator generator = Generator::kSine;
  int samples = 1024;
  int eval_samples = 128;
  double noise = 0.05;  // sine: stddev of the added noise
  int delay = 2;        // delayed copy: y_t = x_{t-delay}
  // Padding for a model with Masking (engine/data/synthetic.h): each
  // sample's last p timesteps, p uniform in [0, pad_tail_max], hold
  // mask_value in every feature. 0: no padding.
  int pad_tail_max = 0;
};

struct TrainingSpec {
  int epochs = 3;
  int batch_size = 32;
  bool shuffle = true;
  bool capture_epoch_outputs = false;  // eval outputs after every epoch
};

// How the job seed becomes initial weights (docs/keras.md).
enum class SeedMode {
  // Weight w of layer k is drawn from the Philox stream
  // [seed, 1000 + 16·k + w]: every weight has its own stream, so changing
  // one layer leaves the others' initial values alone.
  kStreams,
  // The weights Keras 3 gives the same Sequential model built right after
  // keras.utils.set_random_seed(seed): each random initializer, and each
  // RNN layer's dropout SeedGenerator, draws g = random.randint(1, 10**9)
  // from CPython's MT19937 in constructor order, and the weight is the
  // stateless draw with seed [g, 0]. Needs seed < 2^32 (as Keras does).
  kKeras,
};

struct JobSpec {
  uint64_t seed = 42;
  SeedMode seed_mode = SeedMode::kStreams;
  ModelSpec model;
  OptimizerSpec optimizer;
  LossKind loss = LossKind::kMse;
  DataSpec data;
  TrainingSpec training;
};

// The built-in default job: LSTM(64, seq) -> LSTM(32, seq), T=10, F=1, Adam
// 1e-3 with clipnorm 1, MSE, SINE data 1024/128, 3 epochs, batch 32, shuffle.
JobSpec DefaultJobSpec();

// Checks ranges and combinations. The message names the field and the value,
// e.g. "model.layers[1].units must be in [1, 4096], got 0".
absl::Status ValidateJobSpec(const JobSpec& spec);

// Keras DropoutRNNCell's masks per training step. A layer computes with
// per-gate masks (Keras implementation 1: LSTM 4 gates, GRU 3, SimpleRNN
// its single one) when it has recurrent dropout, or input dropout with
// implementation 1; each mask is drawn only for a rate > 0. Otherwise a
// layer with `dropout` uses one input mask shared by all gates (applied to
// its input by the model). The draws of one step come in this order: the
// input masks (gate order), then the recurrent masks.
bool UsesGateMasks(const LayerSpec& layer);
int GateMaskCount(const LayerSpec& layer);  // 4, 3, 1 (0 for Dense)
int InputMasksPerStep(const LayerSpec& layer);
int RecurrentMasksPerStep(const LayerSpec& layer);

// The wrapped layer's forward (backward = false) or backward copy of a
// Bidirectional layer: bidirectional off; the backward copy has
// go_backwards = true (Keras sets it so; a wrapped layer that already goes
// backwards is refused, as Keras refuses it).
// Inline, like LayerJsonKey: the CUDA backend compiles the layer shapes
// without job_spec.cc.
inline LayerSpec DirectionSpec(const LayerSpec& layer, bool backward) {
  LayerSpec d = layer;
  d.bidirectional = false;
  d.merge_mode = MergeMode::kConcat;
  if (backward) d.go_backwards = true;
  d.zero_output_for_mask = layer.return_sequences;
  return d;
}
// A layer's output width: units, or 2·units for a concatenating
// Bidirectional (and for merge_mode none: both outputs side by side).
inline int LayerOutputUnits(const LayerSpec& layer) {
  return layer.bidirectional && (layer.merge_mode == MergeMode::kConcat ||
                                 layer.merge_mode == MergeMode::kNone)
             ? 2 * layer.units
             : layer.units;
}
// "concat", "sum", "mul", "ave", "none": Keras' spelling (none for None).
const char* MergeModeName(MergeMode mode);

// Output width of the model's last layer (the target's last dimension) and
// whether the model output is a sequence (B,T,U) or a vector (B,U).
int ModelOutputUnits(const ModelSpec& model);
// How many Keras outputs the model has: 2 when the last layer is a
// Bidirectional with merge_mode none (the first and second halves of the
// last axis: forward, backward), else 1.
int ModelOutputCount(const ModelSpec& model);
bool ModelOutputIsSequence(const ModelSpec& model);

// Keras class names ("LSTM", "GRU", "SimpleRNN", "Dense"), as the canonical
// text and error messages spell them.
const char* LayerKindName(LayerKind kind);
// "lstm", "gru", "simple_rnn", "dense": the JSON form's key of a layer, as
// field names in messages spell it. Inline: the CUDA backend library
// compiles some engine files (the cuDNN weight map) without job_spec.cc.
inline const char* LayerJsonKey(LayerKind kind) {
  switch (kind) {
    case LayerKind::kLstm:
      return "lstm";
    case LayerKind::kGru:
      return "gru";
    case LayerKind::kSimpleRnn:
      return "simple_rnn";
    case LayerKind::kDense:
      return "dense";
    case LayerKind::kEmbedding:
      return "embedding";
  }
  return "unknown";
}
// "streams", "keras": the canonical text's spelling.
const char* SeedModeName(SeedMode mode);
// "adam", "sgd", "rmsprop": the canonical text's and the JSON form's key.
const char* OptimizerKindName(OptimizerKind kind);

// Canonical, versioned text form of the spec (every field that changes the
// computation, fixed order, doubles as hex-float; capture options are left
// out) and its SHA-256 in lowercase hex. Two runs with the same digest claim
// to compute the same thing.
std::string CanonicalText(const JobSpec& spec);
std::string SpecDigest(const JobSpec& spec);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_JOB_JOB_SPEC_H_
