// The setup every backend's run shares (engine/train/trainer.cc for the CPU,
// engine/cuda/device_trainer.cc for devices): the same data, the same initial
// weights (Philox streams on the host), the same perturbation and the same
// fingerprints, so that runs on any backend are records of one computation
// and their step-0 fingerprints agree. Internal to the engine's trainers.
#ifndef DRIFTSCOPE_ENGINE_TRAIN_RUN_SETUP_H_
#define DRIFTSCOPE_ENGINE_TRAIN_RUN_SETUP_H_

#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/core/ndarray.h"
#include "engine/core/sha256.h"
#include "engine/data/synthetic.h"
#include "engine/init/initializers.h"
#include "engine/job/job_spec.h"
#include "engine/rng/philox.h"
#include "engine/train/model.h"
#include "engine/train/run_result.h"
#include "engine/train/trainer.h"

namespace driftscope {
namespace train_internal {

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

inline std::string ShapeString(const std::vector<int64_t>& shape) {
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

inline absl::Status CheckFinite(const std::string& what, const NdArray& a) {
  for (int64_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a.at(i))) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " has a non-finite value (", a.at(i), ") at flat index ", i));
    }
  }
  return absl::OkStatus();
}

// For a model that starts with an Embedding: every value of x (N, T, 1) is
// a token id, an integer in [0, input_dim). The error names the tensor, the
// sample, the timestep and the value, before any training.
inline absl::Status CheckTokenIds(const char* flag, const NdArray& a,
                                  const ModelSpec& m) {
  if (m.layers.empty() || m.layers.front().kind != LayerKind::kEmbedding) {
    return absl::OkStatus();
  }
  const int64_t vocab = m.layers.front().input_dim;
  const int64_t steps = a.ndim() >= 2 ? a.shape()[1] : 1;
  for (int64_t i = 0; i < a.size(); ++i) {
    const double v = a.at(i);
    if (v >= 0 && v < static_cast<double>(vocab) && v == std::floor(v)) {
      continue;
    }
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": sample ", i / steps, ", timestep ", i % steps,
                     ": token id ", v, " is not an integer in [0, ", vocab,
                     ") (model.layers[0].embedding.input_dim is ", vocab, ")"));
  }
  return absl::OkStatus();
}

// A supplied input tensor: rank 3, N ≥ 1, (T, F) equal to the model's.
inline absl::Status CheckInput(const char* flag, const NdArray& a,
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
  if (absl::Status s = CheckFinite(flag, a); !s.ok()) return s;
  return CheckTokenIds(flag, a, m);
}

inline std::vector<int64_t> OutputShape(const ModelSpec& m, int64_t n) {
  if (ModelOutputIsSequence(m)) return {n, m.timesteps, ModelOutputUnits(m)};
  return {n, ModelOutputUnits(m)};
}

// Supplied x and y (together), eval_x: shapes against the model, finite.
// Inline: the device backend library has no trainer.cc.
inline absl::Status CheckSuppliedData(const JobSpec& spec,
                                      const RunOptions& options,
                                      const RunInputNames& names) {
  const ModelSpec& m = spec.model;
  if (options.x.has_value() != options.y.has_value()) {
    return absl::InvalidArgumentError(
        options.x.has_value()
            ? absl::StrCat(names.y, " is required when ", names.x, " is given")
            : absl::StrCat(names.x, " is required when ", names.y,
                           " is given"));
  }
  if (options.x.has_value()) {
    const NdArray& x = *options.x;
    const NdArray& y = *options.y;
    if (absl::Status s = CheckInput(names.x.c_str(), x, m); !s.ok()) return s;
    const std::vector<int64_t> want = OutputShape(m, x.shape()[0]);
    if (y.shape() != want) {
      return absl::InvalidArgumentError(
          absl::StrCat(names.y, " has shape ", ShapeString(y.shape()),
                       " but the model output for ", x.shape()[0],
                       " samples is ", ShapeString(want)));
    }
    if (absl::Status s = CheckFinite(names.y, y); !s.ok()) return s;
  }
  if (options.eval_x.has_value()) {
    return CheckInput(names.eval_x.c_str(), *options.eval_x, m);
  }
  return absl::OkStatus();
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
  if (absl::Status s = CheckSuppliedData(spec, options, RunInputNames{});
      !s.ok()) {
    return s;
  }
  if (options.x.has_value()) {
    const NdArray& x = *options.x;
    const NdArray& y = *options.y;
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

// The end of a run shared by both trainers: the final states of the eval
// pass (LSTM {h, c}, others {h}), the final weights in get_weights() order,
// the fingerprints and the timings. `eval_seconds` is the time the per-epoch
// evaluations took inside [t1, t2).
template <typename T>
void FinishRunResult(const std::vector<std::vector<T>>& states, int64_t eval_n,
                     int units, const std::vector<ModelWeight>& weights,
                     const T* params, const Fingerprinter<T>& fingerprints,
                     Clock::time_point t0, Clock::time_point t1,
                     Clock::time_point t2, double eval_seconds,
                     RunResult* result) {
  static constexpr const char* kStateNames[] = {"state_h", "state_c"};
  for (size_t s = 0; s < states.size() && s < 2; ++s) {
    result->final_states.push_back(NamedArray{
        kStateNames[s], NdArray::From<T>({eval_n, units}, states[s])});
  }
  for (const ModelWeight& w : weights) {
    result->final_weights.push_back(
        NamedArray{w.name, NdArray::From<T>(w.shape, params + w.offset)});
  }
  result->fingerprints = fingerprints.Finish();
  const Clock::time_point t3 = Clock::now();
  result->timings.init_seconds = Seconds(t0, t1);
  result->timings.train_seconds = Seconds(t1, t2) - eval_seconds;
  result->timings.eval_seconds = Seconds(t2, t3) + eval_seconds;
}

}  // namespace train_internal

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_TRAIN_RUN_SETUP_H_
