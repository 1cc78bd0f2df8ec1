#include "engine/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/core/sha256.h"
#include "engine/data/synthetic.h"
#include "engine/init/initializers.h"
#include "engine/loss/loss.h"
#include "engine/numerics/context.h"
#include "engine/optim/optimizer.h"
#include "engine/rng/philox.h"
#include "engine/train/model.h"
#include "engine/train/shuffle.h"

namespace driftscope {

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  if (shape.size() == 1) return absl::StrCat("(", shape[0], ",)");
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

// Copies `a` into `out` in precision T (round to nearest when narrowing).
template <typename T>
void Convert(const NdArray& a, std::vector<T>* out) {
  out->resize(static_cast<size_t>(a.size()));
  for (int64_t i = 0; i < a.size(); ++i) {
    (*out)[i] = static_cast<T>(a.at(i));
  }
}

absl::Status CheckFinite(const std::string& what, const NdArray& a) {
  for (int64_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a.at(i))) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " has a non-finite value (", a.at(i), ") at flat index ", i));
    }
  }
  return absl::OkStatus();
}

// A supplied input tensor: rank 3, N ≥ 1, (T, F) equal to the model's.
absl::Status CheckInput(const char* flag, const NdArray& a,
                        const ModelSpec& m) {
  if (a.ndim() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag,
                     " must have rank 3 (samples, timesteps, features), "
                     "got shape ",
                     ShapeString(a.shape())));
  }
  if (a.shape()[0] < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " has 0 samples; at least 1 is needed"));
  }
  if (a.shape()[1] != m.timesteps) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " has timesteps ", a.shape()[1],
                     " but model.input.timesteps is ", m.timesteps));
  }
  if (a.shape()[2] != m.features) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " has features ", a.shape()[2],
                     " but model.input.features is ", m.features));
  }
  return CheckFinite(flag, a);
}

std::vector<int64_t> OutputShape(const ModelSpec& m, int64_t n) {
  if (ModelOutputIsSequence(m)) return {n, m.timesteps, ModelOutputUnits(m)};
  return {n, ModelOutputUnits(m)};
}

// The training and eval data in run precision.
template <typename T>
struct RunData {
  std::vector<T> x, y, eval_x;
  int64_t n = 0, eval_n = 0;
};

template <typename T>
absl::Status PrepareData(const JobSpec& spec, const RunOptions& options,
                         RunData<T>* data) {
  const ModelSpec& m = spec.model;
  if (options.x.has_value() != options.y.has_value()) {
    return absl::InvalidArgumentError(
        options.x.has_value() ? "--y is required when --x is given"
                              : "--x is required when --y is given");
  }
  if (options.x.has_value()) {
    const NdArray& x = *options.x;
    const NdArray& y = *options.y;
    if (absl::Status s = CheckInput("--x", x, m); !s.ok()) return s;
    const std::vector<int64_t> want = OutputShape(m, x.shape()[0]);
    if (y.shape() != want) {
      return absl::InvalidArgumentError(
          absl::StrCat("--y has shape ", ShapeString(y.shape()),
                       " but the model output for ", x.shape()[0],
                       " samples is ", ShapeString(want)));
    }
    if (absl::Status s = CheckFinite("--y", y); !s.ok()) return s;
    Convert(x, &data->x);
    Convert(y, &data->y);
    data->n = x.shape()[0];
  } else {
    absl::StatusOr<Dataset> train = GenerateDataset(spec, DataSplit::kTrain);
    if (!train.ok()) return train.status();
    Convert(train->x, &data->x);
    Convert(train->y, &data->y);
    data->n = train->x.shape()[0];
  }
  if (options.eval_x.has_value()) {
    if (absl::Status s = CheckInput("--eval-x", *options.eval_x, m); !s.ok()) {
      return s;
    }
    Convert(*options.eval_x, &data->eval_x);
    data->eval_n = options.eval_x->shape()[0];
  } else if (options.x.has_value()) {
    data->eval_x = data->x;
    data->eval_n = data->n;
  } else {
    absl::StatusOr<Dataset> eval = GenerateDataset(spec, DataSplit::kEval);
    if (!eval.ok()) return eval.status();
    Convert(eval->x, &data->eval_x);
    data->eval_n = eval->x.shape()[0];
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status InitializeWeights(const JobSpec& spec, const RunOptions& options,
                               Model<T>* model) {
  const std::vector<ModelWeight>& weights = model->weights();
  T* params = model->params();
  if (options.init_weights.has_value()) {
    const std::vector<NdArray>& given = *options.init_weights;
    if (given.size() != weights.size()) {
      std::vector<std::string> names;
      for (const ModelWeight& w : weights) names.push_back(w.name);
      return absl::InvalidArgumentError(
          absl::StrCat("init weights: expected ", weights.size(), " arrays (",
                       absl::StrJoin(names, ", "), "), got ", given.size()));
    }
    for (size_t k = 0; k < weights.size(); ++k) {
      const ModelWeight& w = weights[k];
      if (given[k].shape() != w.shape) {
        return absl::InvalidArgumentError(
            absl::StrCat("init weights: ", w.name, " has shape ",
                         ShapeString(given[k].shape()), ", expected ",
                         ShapeString(w.shape)));
      }
      if (absl::Status s = CheckFinite("init weights: " + w.name, given[k]);
          !s.ok()) {
        return s;
      }
      for (int64_t i = 0; i < w.size; ++i) {
        params[w.offset + i] = static_cast<T>(given[k].at(i));
      }
    }
    return absl::OkStatus();
  }
  // Drawn in float32 (Keras' floatx) and widened, so every precision starts
  // from the same values.
  std::vector<float> values;
  const std::vector<LayerSeeds> seeds = ModelInitSeeds(spec);
  for (int i = 0; i < model->num_layers(); ++i) {
    std::vector<std::vector<int64_t>> shapes;
    for (const WeightShape& w : model->layer(i).weights()) {
      shapes.push_back(w.shape);
    }
    values.clear();
    if (absl::Status s =
            InitializeLayer(spec.model.layers[i], shapes, seeds[i], i, &values);
        !s.ok()) {
      return s;
    }
    const int64_t n = model->layer(i).num_params();
    if (static_cast<int64_t>(values.size()) != n) {
      return absl::InternalError(
          absl::StrCat("InitializeLayer gave ", values.size(),
                       " values for layer ", i, ", expected ", n));
    }
    T* block = params + model->layer_offset(i);
    for (int64_t j = 0; j < n; ++j) block[j] = static_cast<T>(values[j]);
  }
  return absl::OkStatus();
}

// Profile perturb=p: flips the last mantissa bit (one ulp in the run
// precision) of each initial weight whose draw from (seed, kPerturb) is
// below p, in flat get_weights() order, whatever the weights' source.
template <typename T>
void PerturbWeights(double fraction, uint64_t seed, T* params, int64_t n) {
  if (!(fraction > 0)) return;
  using Bits = std::conditional_t<std::is_same_v<T, float>, uint32_t, uint64_t>;
  PhiloxStream rng(seed, streams::kPerturb);
  for (int64_t i = 0; i < n; ++i) {
    if (static_cast<double>(rng.NextUint32()) * 0x1p-32 >= fraction) continue;
    Bits bits;
    std::memcpy(&bits, &params[i], sizeof(T));
    bits ^= Bits{1};
    std::memcpy(&params[i], &bits, sizeof(T));
  }
}

// Hashes the parameter buffer: once in run precision and once rounded to
// float32 (the same digest when T is float, computed once).
template <typename T>
class Fingerprinter {
 public:
  explicit Fingerprinter(int64_t n) {
    if constexpr (!std::is_same_v<T, float>) {
      narrowed_.resize(static_cast<size_t>(n));
    }
  }
  void Record(const T* params, int64_t n) {
    hasher_.Update(params, static_cast<size_t>(n) * sizeof(T));
    run_.push_back(hasher_.Digest());
    if constexpr (std::is_same_v<T, float>) {
      f32_.push_back(run_.back());
    } else {
      for (int64_t i = 0; i < n; ++i) {
        narrowed_[i] = static_cast<float>(params[i]);
      }
      hasher_.Update(narrowed_.data(), narrowed_.size() * sizeof(float));
      f32_.push_back(hasher_.Digest());
    }
  }
  void Reserve(size_t n) {
    run_.reserve(n);
    f32_.reserve(n);
  }
  std::vector<Fingerprint> Finish() const {
    std::vector<Fingerprint> out(run_.size());
    for (size_t i = 0; i < run_.size(); ++i) {
      out[i].step = static_cast<int64_t>(i);
      out[i].sha256 = DigestHex(run_[i]);
      out[i].sha256_f32 = DigestHex(f32_[i]);
    }
    return out;
  }

 private:
  Sha256 hasher_;
  std::vector<float> narrowed_;
  std::vector<Sha256Digest> run_, f32_;
};

// Eval outputs in chunks of `chunk` samples, so their bits never depend on
// the eval-set size. Fills states (each (n, U)) when not null.
template <typename T>
void Evaluate(const Context& ctx, Model<T>& model, const std::vector<T>& x,
              int64_t n, int chunk, T* out,
              std::vector<std::vector<T>>* states) {
  const int64_t in_size = model.input_shape().per_sample();
  const int64_t out_size = model.output_shape().per_sample();
  for (int64_t start = 0; start < n; start += chunk) {
    const int b = static_cast<int>(std::min<int64_t>(chunk, n - start));
    const T* y = model.Forward(ctx, x.data() + start * in_size, b);
    std::memcpy(out + start * out_size, y, sizeof(T) * b * out_size);
    if (states == nullptr) continue;
    const std::vector<const T*> fs =
        model.layer(model.num_layers() - 1).final_states();
    const int units = model.output_shape().dim;
    states->resize(fs.size());
    for (size_t s = 0; s < fs.size(); ++s) {
      (*states)[s].resize(static_cast<size_t>(n * units));
      std::memcpy((*states)[s].data() + start * units, fs[s],
                  sizeof(T) * b * units);
    }
  }
}

template <typename T>
absl::StatusOr<RunResult> Run(const JobSpec& spec, const Profile& profile,
                              const RunOptions& options) {
  const Clock::time_point t0 = Clock::now();
  const TrainingSpec& tr = spec.training;
  RunData<T> data;
  if (absl::Status s = PrepareData(spec, options, &data); !s.ok()) return s;
  // A profile may force Keras' implementation mode on every RNN layer; the
  // spec (and its digest) stay what the user asked for.
  ModelSpec model_spec = spec.model;
  if (profile.implementation != 0) {
    for (LayerSpec& l : model_spec.layers) {
      if (l.kind != LayerKind::kDense)
        l.implementation = profile.implementation;
    }
  }
  absl::StatusOr<std::unique_ptr<Model<T>>> created =
      Model<T>::Create(model_spec, tr.batch_size);
  if (!created.ok()) return created.status();
  Model<T>& model = **created;
  if (absl::Status s = InitializeWeights(spec, options, &model); !s.ok()) {
    return s;
  }
  PerturbWeights(profile.perturb, spec.seed, model.params(),
                 model.num_params());
  absl::StatusOr<std::unique_ptr<Optimizer<T>>> optimizer =
      Optimizer<T>::Create(spec.optimizer, model.variables());
  if (!optimizer.ok()) return optimizer.status();
  const Context ctx(profile, spec.seed);
  // fp16 loss scaling: gradients of loss·scale, unscaled before the update.
  const double loss_scale = profile.effective_loss_scale();

  const bool sequence = ModelOutputIsSequence(spec.model);
  const int units = ModelOutputUnits(spec.model);
  const int64_t in_size = model.input_shape().per_sample();
  const int64_t out_size = model.output_shape().per_sample();
  const int64_t n = data.n;
  const int64_t steps_per_epoch = (n + tr.batch_size - 1) / tr.batch_size;
  const int64_t total_steps = steps_per_epoch * tr.epochs;
  const int64_t num_params = model.num_params();

  RunResult result;
  result.spec_digest = SpecDigest(spec);
  result.profile = ctx.profile().ToString();
  result.steps = total_steps;
  result.losses = NdArray(DTypeOf<T>(), {total_steps});
  T* losses = result.losses.data<T>();
  const std::vector<int64_t> out_shape = OutputShape(spec.model, data.eval_n);

  Fingerprinter<T> fingerprints(num_params);
  fingerprints.Reserve(static_cast<size_t>(total_steps + 1));
  fingerprints.Record(model.params(), num_params);

  // Everything the loop touches is allocated here, before the first step.
  std::vector<T> xb(static_cast<size_t>(tr.batch_size * in_size));
  std::vector<T> yb(static_cast<size_t>(tr.batch_size * out_size));
  std::vector<T> dout(yb.size());
  std::vector<int64_t> order(static_cast<size_t>(n));
  DropoutMasks<T> dropout(spec, ModelInitSeeds(spec), tr.batch_size);
  PhiloxStream shuffle_rng(spec.seed, streams::kShuffle);
  const Clock::time_point t1 = Clock::now();
  double eval_seconds = 0;

  int64_t step = 0;
  for (int epoch = 0; epoch < tr.epochs; ++epoch) {
    EpochOrder(tr.shuffle, &shuffle_rng, &order);
    for (int64_t start = 0; start < n; start += tr.batch_size) {
      if (options.cancel != nullptr && options.cancel->load()) {
        return absl::CancelledError(absl::StrCat(
            "run cancelled before step ", step + 1, " of ", total_steps));
      }
      const int b =
          static_cast<int>(std::min<int64_t>(tr.batch_size, n - start));
      for (int k = 0; k < b; ++k) {
        const int64_t s = order[start + k];
        std::memcpy(&xb[k * in_size], &data.x[s * in_size],
                    sizeof(T) * in_size);
        std::memcpy(&yb[k * out_size], &data.y[s * out_size],
                    sizeof(T) * out_size);
      }
      dropout.Draw(step, b);
      const T* pred =
          model.Forward(ctx, xb.data(), b, dropout.any() ? &dropout : nullptr);
      const int64_t rows = sequence ? int64_t{b} * spec.model.timesteps : b;
      losses[step] = LossForward<T>(spec.loss, pred, yb.data(), rows, units);
      LossBackward<T>(spec.loss, pred, yb.data(), rows, units, dout.data());
      if (loss_scale != 1.0) {
        const T scale = static_cast<T>(loss_scale);
        for (int64_t i = 0; i < rows * units; ++i) dout[i] *= scale;
      }
      model.Backward(ctx, dout.data());
      if (loss_scale != 1.0) {
        const T scale = static_cast<T>(loss_scale);
        T* g = model.grads();
        for (int64_t i = 0; i < num_params; ++i) g[i] /= scale;
      }
      (*optimizer)->Apply(model.params(), model.grads());
      ++step;
      fingerprints.Record(model.params(), num_params);
      if (options.on_progress) {
        options.on_progress(ProgressEvent{
            epoch, step, total_steps, static_cast<double>(losses[step - 1])});
      }
    }
    if (tr.capture_epoch_outputs) {
      const Clock::time_point e0 = Clock::now();
      NdArray snapshot(DTypeOf<T>(), out_shape);
      Evaluate<T>(ctx, model, data.eval_x, data.eval_n, tr.batch_size,
                  snapshot.data<T>(), nullptr);
      result.epoch_outputs.push_back(std::move(snapshot));
      eval_seconds += Seconds(e0, Clock::now());
    }
  }
  const Clock::time_point t2 = Clock::now();

  const bool want_states = spec.model.layers.back().return_state;
  std::vector<std::vector<T>> states;
  result.outputs = NdArray(DTypeOf<T>(), out_shape);
  Evaluate<T>(ctx, model, data.eval_x, data.eval_n, tr.batch_size,
              result.outputs.data<T>(), want_states ? &states : nullptr);
  static constexpr const char* kStateNames[] = {"state_h", "state_c"};
  for (size_t s = 0; s < states.size() && s < 2; ++s) {
    result.final_states.push_back(NamedArray{
        kStateNames[s], NdArray::From<T>({data.eval_n, units}, states[s])});
  }
  for (const ModelWeight& w : model.weights()) {
    result.final_weights.push_back(NamedArray{
        w.name, NdArray::From<T>(w.shape, model.params() + w.offset)});
  }
  result.fingerprints = fingerprints.Finish();
  const Clock::time_point t3 = Clock::now();
  result.timings.init_seconds = Seconds(t0, t1);
  result.timings.train_seconds = Seconds(t1, t2) - eval_seconds;
  result.timings.eval_seconds = Seconds(t2, t3) + eval_seconds;
  return result;
}

}  // namespace

absl::StatusOr<RunResult> RunJob(const JobSpec& spec, const Profile& profile,
                                 const RunOptions& options) {
  if (absl::Status s = ValidateJobSpec(spec); !s.ok()) return s;
  if (absl::Status s = Context::Check(profile); !s.ok()) return s;
  if (profile.perturb < 0 || !(profile.perturb <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "profile perturb must be in [0, 1], got ", profile.perturb));
  }
  if (profile.implementation < 0 || profile.implementation > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile implementation must be 0, 1 or 2, got ",
                     profile.implementation));
  }
  // fp64 stores and computes in double; fp32, bf16 and fp16 keep float32
  // master weights (the Context rounds what mixed precision rounds).
  if (profile.precision == Precision::kFp64) {
    return Run<double>(spec, profile, options);
  }
  return Run<float>(spec, profile, options);
}

}  // namespace driftscope
