#include "engine/job/job_limits.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace driftscope {

namespace {

double ForwardFlopsPerSample(const ModelSpec& model) {
  double flops = 0;
  double width = model.features;
  bool sequence = true;
  for (const LayerSpec& l : model.layers) {
    const double u = l.units;
    const double steps = sequence ? model.timesteps : 1;
    double layer = 0;
    switch (l.kind) {
      case LayerKind::kLstm:
        layer = steps * 2 * 4 * u * (width + u);
        break;
      case LayerKind::kGru:
        layer = steps * 2 * 3 * u * (width + u);
        break;
      case LayerKind::kSimpleRnn:
        layer = steps * 2 * u * (width + u);
        break;
      case LayerKind::kDense:
        layer = steps * 2 * width * u;
        break;
      case LayerKind::kEmbedding:  // a row copy per token
        layer = steps * u;
        break;
    }
    // A Bidirectional layer runs its RNN twice.
    flops += l.bidirectional ? 2 * layer : layer;
    if (IsRecurrentKind(l.kind)) sequence = l.return_sequences;
    width = LayerOutputUnits(l);
  }
  return flops;
}

absl::Status Exceeds(absl::string_view flag, absl::string_view what,
                     double value, double limit) {
  return absl::ResourceExhaustedError(
      absl::StrCat(what, " is ", value, ", above this worker's ", flag, "=",
                   limit, " (the job was not started)"));
}

}  // namespace

double EstimateJobFlops(const JobSpec& spec, int64_t train_samples,
                        int64_t eval_samples) {
  const double forward = ForwardFlopsPerSample(spec.model);
  const double epochs = spec.training.epochs;
  const double evals = 1 + (spec.training.capture_epoch_outputs ? epochs : 0);
  return 3 * forward * static_cast<double>(train_samples) * epochs +
         forward * static_cast<double>(eval_samples) * evals;
}

absl::Status CheckJobLimits(const JobSpec& spec, int64_t train_samples,
                            int64_t eval_samples, const JobLimits& limits) {
  for (size_t i = 0; i < spec.model.layers.size(); ++i) {
    if (spec.model.layers[i].units > limits.max_units) {
      return Exceeds("--max_units",
                     absl::StrCat("spec.model.layers[", i, "] units"),
                     spec.model.layers[i].units, limits.max_units);
    }
  }
  if (spec.model.timesteps > limits.max_timesteps) {
    return Exceeds("--max_timesteps", "spec.model.input.timesteps",
                   spec.model.timesteps, limits.max_timesteps);
  }
  if (train_samples > limits.max_samples) {
    return Exceeds("--max_samples", "the number of training samples",
                   static_cast<double>(train_samples), limits.max_samples);
  }
  if (eval_samples > limits.max_samples) {
    return Exceeds("--max_samples", "the number of eval samples",
                   static_cast<double>(eval_samples), limits.max_samples);
  }
  if (spec.training.epochs > limits.max_epochs) {
    return Exceeds("--max_epochs", "spec.training.epochs", spec.training.epochs,
                   limits.max_epochs);
  }
  const double flops = EstimateJobFlops(spec, train_samples, eval_samples);
  if (limits.max_flops > 0 && flops > limits.max_flops) {
    return Exceeds("--max_flops", "the job's estimated FLOP count", flops,
                   limits.max_flops);
  }
  return absl::OkStatus();
}

}  // namespace driftscope
