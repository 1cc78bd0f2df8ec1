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
#include "engine/cuda/device_trainer.h"
#include "engine/data/synthetic.h"
#include "engine/init/initializers.h"
#include "engine/io/init_weights.h"
#include "engine/loss/loss.h"
#include "engine/numerics/context.h"
#include "engine/optim/optimizer.h"
#include "engine/rng/philox.h"
#include "engine/train/model.h"
#include "engine/train/run_setup.h"
#include "engine/train/shuffle.h"

namespace driftscope {

namespace {

using namespace train_internal;  // NOLINT: the shared run setup

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

}  // namespace

absl::Status CheckTokenIds(const std::string& name, const NdArray& x,
                           const ModelSpec& model) {
  return train_internal::CheckTokenIds(name.c_str(), x, model);
}

namespace {

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
      if (IsRecurrentKind(l.kind)) l.implementation = profile.implementation;
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
  // Keras outputs side by side (Bidirectional merge_mode none: 2); the
  // loss adds theirs.
  const int outputs = ModelOutputCount(spec.model);
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
  std::vector<T*> squares;
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
      const uint8_t* keep = model.output_mask();
      losses[step] = LossForward<T>(spec.loss, pred, yb.data(), rows, units,
                                    outputs, keep);
      LossBackward<T>(spec.loss, pred, yb.data(), rows, units, dout.data(),
                      outputs, keep);
      if (loss_scale != 1.0) {
        const T scale = static_cast<T>(loss_scale);
        for (int64_t i = 0; i < rows * units; ++i) dout[i] *= scale;
      }
      model.Backward(ctx, dout.data());
      // An embedding's per-occurrence squares (Optimizer::
      // SetOccurrenceSquares): the layer's buffer exists from the first
      // Backward on and keeps its address.
      if (step == 0) {
        squares = model.occurrence_squares();
        (*optimizer)->SetOccurrenceSquares(squares);
      }
      if (loss_scale != 1.0) {
        const T scale = static_cast<T>(loss_scale);
        T* g = model.grads();
        for (int64_t i = 0; i < num_params; ++i) g[i] /= scale;
        for (size_t v = 0; v < squares.size(); ++v) {
          if (squares[v] == nullptr) continue;
          for (int64_t i = 0; i < model.weights()[v].size; ++i)
            squares[v][i] = squares[v][i] / scale / scale;
        }
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
  FinishRunResult<T>(states, data.eval_n, units, model.weights(),
                     model.params(), fingerprints, t0, t1, t2, eval_seconds,
                     &result);
  return result;
}

}  // namespace

absl::Status CheckRunInputs(const JobSpec& spec, const RunOptions& options,
                            const RunInputNames& names) {
  if (absl::Status s = train_internal::CheckSuppliedData(spec, options, names);
      !s.ok()) {
    return s;
  }
  if (!options.init_weights.has_value()) return absl::OkStatus();
  const std::vector<NdArray>& given = *options.init_weights;
  const std::vector<KerasWeight> layout = KerasWeightLayout(spec.model);
  if (given.size() != layout.size()) {
    std::vector<std::string> expected;
    for (const KerasWeight& w : layout) expected.push_back(w.name);
    return absl::InvalidArgumentError(absl::StrCat(
        names.init_weights, ": expected ", layout.size(), " arrays (",
        absl::StrJoin(expected, ", "), "), got ", given.size()));
  }
  for (size_t k = 0; k < layout.size(); ++k) {
    if (given[k].shape() != layout[k].shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          names.init_weights, ": ", layout[k].name, " has shape ",
          train_internal::ShapeString(given[k].shape()), ", expected ",
          train_internal::ShapeString(layout[k].shape)));
    }
    if (absl::Status s = train_internal::CheckFinite(
            absl::StrCat(names.init_weights, ": ", layout[k].name), given[k]);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

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
  // The backend is chosen here, once per run.
  if (profile.on_device()) return RunDeviceJob(spec, profile, options);
  // fp64 stores and computes in double; fp32, bf16 and fp16 keep float32
  // master weights (the Context rounds what mixed precision rounds).
  if (profile.precision == Precision::kFp64) {
    return Run<double>(spec, profile, options);
  }
  return Run<float>(spec, profile, options);
}

}  // namespace driftscope
